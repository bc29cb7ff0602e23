"""Token exchange (RFC 8693) for a person acting for an organisation (Corppass's shape).

A partner presents the access token it holds for a person (``subject_token``), names the
organisation (``organisation``: its id or unified social credit code) and optionally the roles it
needs (``scope``, from the fixed catalogue). It receives an access token whose ``sub`` is the
organisation's credit code, whose ``act`` names the person (RFC 8693 §4.1), with ``org`` and
``roles`` — only roles the person holds there now, else ``invalid_scope`` / ``invalid_target``.
The new token belongs to the person's grant: revoking that grant ends it too.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from identity.auth import ORG_ROLES
from identity.oidc.claims import held_roles
from identity.oidc.clients import Client
from identity.oidc.errors import OAuthError
from identity.oidc.jose import TokenInvalid, verify_own

__all__ = ["ACCESS_TOKEN_TYPE", "TOKEN_EXCHANGE", "exchange"]

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105


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
    try:
        claims = await verify_own(
            oidc.keys,
            form.get("subject_token", ""),
            algorithms=[oidc.settings.signing_alg],
            typ="at+jwt",
            issuer=oidc.issuer,
        )
    except TokenInvalid:
        raise OAuthError(
            "invalid_grant", "subject_token is not a valid access token of this provider"
        ) from None
    if claims.get("client_id") != client.client_id or "gid" not in claims or "org" in claims:
        raise OAuthError("invalid_grant", "subject_token must be a person's token issued to this client")
    bound = claims.get("cnf", {}).get("jkt") if isinstance(claims.get("cnf"), dict) else None
    if bound is not None and bound != jkt:
        # A DPoP-bound subject token is only exchanged by the holder of its key (RFC 9449 §6).
        raise OAuthError("invalid_dpop_proof", "subject_token is DPoP-bound: send a proof by its key")
    gid = uuid.UUID(str(claims["gid"]))
    ctx = await oidc.grants.context(gid)
    if ctx is None or ctx.account_id is None or await oidc.redis.exists(f"oidc:atrev:{claims.get('jti')}"):
        raise OAuthError("invalid_grant", "subject_token was revoked")
    organisation = form.get("organisation", "").strip().upper()
    row = None
    if organisation:
        try:
            row = await oidc.core.pool.fetchrow(
                "SELECT id, credit_code FROM identity.organisations WHERE id = $1", uuid.UUID(organisation)
            )
        except ValueError:
            row = await oidc.core.pool.fetchrow(
                "SELECT id, credit_code FROM identity.organisations WHERE credit_code = $1", organisation[:18]
            )
    if row is None:
        raise OAuthError("invalid_target", "organisation is required and must be registered")
    held = await held_roles(oidc.core, ctx.account_id, row["id"])
    if not held:
        raise OAuthError("invalid_target", "the person holds no role in this organisation")
    requested = set(form.get("scope", "").split()) or held
    if not requested <= set(ORG_ROLES) or not requested <= held:
        raise OAuthError("invalid_scope", "only roles the person holds in the organisation can be granted")
    roles = tuple(sorted(requested))
    new_ctx = msgspec.structs.replace(ctx, org=row["id"], roles=roles, scope=roles)
    person = oidc.tokens.subject(client, ctx.account_id)
    access, _ = await oidc.tokens.access_token(
        client, new_ctx, gid=gid, scope=roles, act={"sub": person}, subject=row["credit_code"], jkt=jkt
    )
    await oidc.core.audit(
        "identity.oidc.token_exchange",
        client=oidc.client_info_for(client.client_id),
        actor_kind="person",
        actor_id=ctx.account_id,
        acting_for=row["id"],
        target_kind="client",
        target_id=client.client_id,
        details={"roles": list(roles)},
    )
    return {
        "access_token": access,
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": "DPoP" if jkt is not None else "Bearer",
        "expires_in": oidc.settings.access_token_ttl,
        "scope": " ".join(roles),
    }
