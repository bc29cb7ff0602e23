"""Token exchange (RFC 8693) for a person acting for an organisation (Corppass's shape).

A partner presents the access token it holds for a person (``subject_token``), names the
organisation (``organisation``: its id or unified social credit code), optionally the roles it
needs (``scope``, from the fixed catalogue) and where the token will be used (``audience`` or
``resource``, among the audiences the client may name: the API for the first-party web page).
It receives an access token whose ``sub`` is the organisation's credit code, whose ``act`` names
the person (RFC 8693 §4.1), with ``org`` and ``roles`` — only roles the person holds there now,
else ``invalid_scope`` / ``invalid_target``.

What the person consented to bounds the exchange: the subject token must hold the
``organisations`` scope, and the new token is for the API only if it also holds the ``api`` scope
(the new token then carries ``api`` beside the roles, as the API's guard requires); otherwise
``invalid_scope``. An unknown organisation and one where the person holds no role get the same
answer, so the grant is no oracle of who belongs where.
The new token belongs to the person's grant: revoking that grant ends it too.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from identity.auth import ORG_ROLES
from identity.oidc.claims import held_appointment, held_roles
from identity.oidc.clients import API_SCOPE, ORGANISATIONS_SCOPE, Client
from identity.oidc.errors import OAuthError

__all__ = ["ACCESS_TOKEN_TYPE", "TOKEN_EXCHANGE", "exchange"]

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105
_NO_ORGANISATION = "the organisation is not registered, or the person holds no role there"


def _audience(
    allowed: list[str], form: dict[str, str], subject: dict[str, Any], *, api: str, api_granted: bool
) -> list[str]:
    """The new token's ``aud``: what was asked for (``audience`` and ``resource``, RFC 8693 §2.1),
    each one among what this client may name, else ``invalid_target``, and the API only if the
    subject token holds the api scope, else ``invalid_scope``; when nothing was asked for, the
    subject token's own audiences (the organisation's token goes where the person's did)."""
    asked = [*form.get("audience", "").split(), *form.get("resource", "").split()]
    if asked:
        refused = [a for a in asked if a not in allowed]
        if refused:
            raise OAuthError("invalid_target", f"this client may not ask for the audience {refused[0]}")
        if api in asked and not api_granted:
            raise OAuthError("invalid_scope", "subject_token was not granted the api scope")
        return list(dict.fromkeys(asked))
    if not api_granted:
        allowed = [a for a in allowed if a != api]
    present = subject.get("aud")
    current = present if isinstance(present, list) else [present]
    return [a for a in current if isinstance(a, str) and a in allowed] or [allowed[0]]


async def exchange(oidc: Any, client: Client, form: dict[str, str], jkt: str | None = None) -> dict[str, Any]:
    from identity.oidc.provider import Provider

    assert isinstance(oidc, Provider)
    if client.client_type != "confidential":
        raise OAuthError("unauthorized_client", "token exchange is for confidential clients")
    if form.get("subject_token_type") != ACCESS_TOKEN_TYPE:
        raise OAuthError("invalid_request", "subject_token_type must be " + ACCESS_TOKEN_TYPE)
    if form.get("requested_token_type", ACCESS_TOKEN_TYPE) != ACCESS_TOKEN_TYPE:
        raise OAuthError("invalid_request", "only access tokens can be requested")
    if "actor_token" in form:
        raise OAuthError("invalid_request", "actor_token is not supported; the person is the subject token's")
    live = await oidc.access.check(form.get("subject_token", ""))
    if live is None:
        raise OAuthError(
            "invalid_grant", "subject_token is not a live access token of this provider (or was revoked)"
        )
    claims, ctx = live.claims, live.ctx
    if claims.get("client_id") != client.client_id or "gid" not in claims or "org" in claims:
        raise OAuthError("invalid_grant", "subject_token must be a person's token issued to this client")
    bound = claims.get("cnf", {}).get("jkt") if isinstance(claims.get("cnf"), dict) else None
    if bound is not None and bound != jkt:
        # A DPoP-bound subject token is only exchanged by the holder of its key (RFC 9449 §6).
        raise OAuthError("invalid_dpop_proof", "subject_token is DPoP-bound: send a proof by its key")
    if ctx is None or ctx.account_id is None:
        raise OAuthError("invalid_grant", "subject_token was revoked")
    granted = set(str(claims.get("scope", "")).split()) & set(ctx.scope)
    if ORGANISATIONS_SCOPE not in granted:
        raise OAuthError(
            "invalid_scope", "subject_token was not granted the organisations scope (acting for one)"
        )
    gid = uuid.UUID(str(claims["gid"]))
    api = oidc.tokens.api_audience
    audience = _audience(
        oidc.tokens.allowed_audiences(client), form, claims, api=api, api_granted=API_SCOPE in granted
    )
    requested = set(form.get("scope", "").split())
    if not requested <= set(ORG_ROLES):
        raise OAuthError("invalid_scope", "scope names roles from " + " ".join(ORG_ROLES))
    organisation = form.get("organisation", "").strip().upper()
    if not organisation:
        raise OAuthError("invalid_request", "organisation is required (its id or credit code)")
    try:
        row = await oidc.core.pool.fetchrow(
            "SELECT id, credit_code FROM identity.organisations WHERE id = $1", uuid.UUID(organisation)
        )
    except ValueError:
        row = await oidc.core.pool.fetchrow(
            "SELECT id, credit_code FROM identity.organisations WHERE credit_code = $1", organisation[:18]
        )
    held, until = (
        await held_appointment(oidc.core, ctx.account_id, row["id"]) if row is not None else (set(), None)
    )
    if row is None or not held:
        raise OAuthError("invalid_target", _NO_ORGANISATION)
    requested = requested or held
    if not requested <= held:
        raise OAuthError("invalid_scope", "only roles the person holds in the organisation can be granted")
    roles = tuple(sorted(requested))
    scope = (API_SCOPE, *roles) if api in audience else roles
    new_ctx = msgspec.structs.replace(ctx, org=row["id"], roles=roles, scope=scope)
    person = oidc.tokens.subject(client, ctx.account_id)
    access, issued = await oidc.tokens.access_token(
        client,
        new_ctx,
        gid=gid,
        scope=scope,
        act={"sub": person},
        subject=row["credit_code"],
        audience=audience,
        jkt=jkt,
        # The appointment's end is the token's latest: a lapsing role is no agent change, so no
        # revocation would end it.
        not_after=None if until is None else int(until.timestamp()),
    )
    # Remembered before it is answered, so losing the role revokes it (org_tokens.py); then the
    # roles read again: an agent change that committed meanwhile ran its revocation before this
    # token was remembered, and is seen here instead.
    await oidc.org_tokens.remember(ctx.account_id, row["id"], str(issued["jti"]), int(issued["exp"]))
    if not requested <= await held_roles(oidc.core, ctx.account_id, row["id"]):
        await oidc.org_tokens.revoke(ctx.account_id, row["id"])
        raise OAuthError("invalid_target", _NO_ORGANISATION)
    await oidc.core.audit(
        "identity.oidc.token_exchange",
        client=oidc.client_info_for(client.client_id),
        actor_kind="person",
        actor_id=ctx.account_id,
        acting_for=row["id"],
        target_kind="client",
        target_id=client.client_id,
        details={"roles": list(roles), "audience": audience},
    )
    return {
        "access_token": access,
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": "DPoP" if jkt is not None else "Bearer",
        "expires_in": max(0, int(issued["exp"]) - int(issued["iat"])),
        "scope": " ".join(scope),
    }
