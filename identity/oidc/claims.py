"""Claims by scope, read from identity's records (personal data decrypted only here).

``profile``: the masked display name and ``updated_at``; ``phone``: the confirmed mobile number;
``real_name``: the verified real name, birth date, gender, ``real_name_verified`` and the account's
level of assurance ``loa``; ``organisations``: the organisations the person acts for, with roles.
A claim is released only when a scope that carries it is both granted (consented to by the
person, or first-party) and still allowed for the client. The ``claims`` request parameter
(OpenID Connect Core §5.5) is held to the same rule: a claim it names outside those scopes is
declined silently (§5.5 lets the provider decline), so it never widens what the consent showed.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec

from identity.core import IdentityCore
from identity.oidc.grants import ClaimRequests
from identity.persons.account import mask_name

__all__ = ["CLAIMS_SUPPORTED", "person_claims"]

CLAIMS_SUPPORTED: tuple[str, ...] = (
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "sid",
    "azp",
    "at_hash",
    "name",
    "updated_at",
    "phone_number",
    "phone_number_verified",
    "birthdate",
    "gender",
    "real_name_verified",
    "loa",
    "organisations",
)
_BY_SCOPE: dict[str, tuple[str, ...]] = {
    "profile": ("name", "updated_at"),
    "phone": ("phone_number", "phone_number_verified"),
    "real_name": ("name", "birthdate", "gender", "real_name_verified", "loa"),
    "organisations": ("organisations",),
}

_SCOPES_OF: dict[str, frozenset[str]] = {
    claim: frozenset(s for s, carried in _BY_SCOPE.items() if claim in carried)
    for claim in {c for carried in _BY_SCOPE.values() for c in carried}
}


def wanted(scope: tuple[str, ...], requested: ClaimRequests | None, *, allowed: tuple[str, ...]) -> set[str]:
    """The person claims to release for a token of ``scope`` (granted) to a client now allowed
    ``allowed``, with ``requested`` the claims asked for individually (the ``claims`` parameter).

    The one place that decides which person claims are released (UserInfo; the ID token carries
    none of them): the claims of every scope both granted and allowed (Core §5.4), and a
    requested claim only if one of those scopes carries it (so it adds nothing the consent did
    not cover); any other requested claim is declined (§5.5)."""
    usable = set(scope) & set(allowed)
    names = {c for s in usable for c in _BY_SCOPE.get(s, ())}
    if requested:
        names |= {n for n in requested if _SCOPES_OF.get(n, frozenset()) & usable}
    return names


async def person_claims(core: IdentityCore, account_id: uuid.UUID, names: set[str]) -> dict[str, Any]:
    if not names:
        return {}
    row = await core.pool.fetchrow(
        """
        SELECT level, mobile_enc, name_enc, attributes_enc, verified_at, updated_at
        FROM identity.accounts WHERE id = $1 AND status = 'active'
        """,
        account_id,
    )
    if row is None:
        return {}
    out: dict[str, Any] = {}
    name = core.open("name", account_id, row["name_enc"])
    real = "real_name_verified" in names or "birthdate" in names
    if "name" in names and name:
        out["name"] = name if real or "loa" in names else mask_name(name)
    if "updated_at" in names:
        out["updated_at"] = int(row["updated_at"].timestamp())
    if "phone_number" in names:
        mobile = core.open("mobile", account_id, row["mobile_enc"]) or ""
        out["phone_number"] = f"+86{mobile}"
        out["phone_number_verified"] = True
    if "real_name_verified" in names:
        out["real_name_verified"] = row["verified_at"] is not None
    if "loa" in names:
        out["loa"] = int(row["level"])
    if ("birthdate" in names or "gender" in names) and row["attributes_enc"] is not None:
        attributes = msgspec.json.decode(core.open("attributes", account_id, row["attributes_enc"]) or "{}")
        if "birthdate" in names and attributes.get("birth_date"):
            out["birthdate"] = str(attributes["birth_date"])
        if "gender" in names and attributes.get("gender"):
            out["gender"] = str(attributes["gender"])
    if "organisations" in names:
        out["organisations"] = await _organisations(core, account_id)
    return out


async def _organisations(core: IdentityCore, account_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await core.pool.fetch(
        """
        SELECT o.id, o.credit_code, o.name, g.roles, g.is_legal_representative, g.valid_until
        FROM identity.agents g JOIN identity.organisations o ON o.id = g.organisation_id
        WHERE g.account_id = $1 AND g.status = 'active' AND (g.valid_until IS NULL OR g.valid_until > now())
        ORDER BY o.name
        """,
        account_id,
    )
    return [
        {
            "id": str(r["id"]),
            "credit_code": r["credit_code"],
            "name": r["name"],
            "roles": sorted(r["roles"]),
            "legal_representative": r["is_legal_representative"],
            "valid_until": int(r["valid_until"].timestamp()) if r["valid_until"] else None,
        }
        for r in rows
    ]


async def held_roles(core: IdentityCore, account_id: uuid.UUID, organisation_id: uuid.UUID) -> set[str]:
    """The roles a person holds in an organisation now (empty: none, or not an agent)."""
    return (await held_appointment(core, account_id, organisation_id))[0]


async def held_appointment(
    core: IdentityCore, account_id: uuid.UUID, organisation_id: uuid.UUID
) -> tuple[set[str], dt.datetime | None]:
    """The roles a person holds in an organisation now, and until when (None: no end)."""
    row = await core.pool.fetchrow(
        """
        SELECT g.roles, g.valid_until FROM identity.agents g JOIN identity.accounts a ON a.id = g.account_id
        WHERE g.account_id = $1 AND g.organisation_id = $2 AND g.status = 'active' AND a.status = 'active'
          AND (g.valid_until IS NULL OR g.valid_until > $3)
        """,
        account_id,
        organisation_id,
        dt.datetime.now(dt.UTC),
    )
    return (set(row["roles"]), row["valid_until"]) if row else (set(), None)
