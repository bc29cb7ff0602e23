"""The API accepts the provider's access tokens: a resolver for :class:`identity.auth.Authenticator`
and a scope guard.

A token is accepted only if it is signed with the configured algorithm (never the header's
choice), typed ``at+jwt``, issued here, unexpired, its ``aud`` names the API, it and its grant
hold the api scope (an organisation token from token exchange is only for the API when the
person's token held it), and it is live (its grant not revoked, the token not revoked on its
own). Identity's opaque session tokens are not JWTs and pass straight through to the next resolver.

A DPoP-bound token (``cnf.jkt``) resolves to a principal carrying that thumbprint;
:class:`DPoPPossession` then checks the request's proof (``identity.auth.authenticate``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from identity.auth import Guard, Principal, authenticate
from identity.errors import Forbidden, Unauthenticated
from identity.oidc.access import AccessChecker
from identity.oidc.clients import API_SCOPE
from identity.oidc.dpop import DPoPInvalid, DPoPVerifier

__all__ = ["AccessTokenResolver", "DPoPPossession", "requires_scope"]


class AccessTokenResolver:
    def __init__(self, checker: AccessChecker, audience: str) -> None:
        self.checker = checker
        self.audience = audience

    async def resolve(self, token: str) -> Principal | None:
        if token.count(".") != 2:
            return None
        live = await self.checker.check(token, audience=self.audience)
        if live is None or live.ctx is None or live.ctx.account_id is None:
            return None
        claims, ctx = live.claims, live.ctx
        assert ctx.account_id is not None
        scopes = frozenset(str(claims.get("scope", "")).split())
        if API_SCOPE not in scopes or API_SCOPE not in ctx.scope:
            # The audience alone is not enough: the token and its grant (what the person consented
            # to; an organisation token's is the person's grant) must hold the api scope.
            return None
        acr = str(claims.get("acr", "loa1"))
        org = claims.get("org")
        return Principal(
            account_id=ctx.account_id,
            kind="person",
            loa=int(acr[3]) if len(acr) == 4 and acr[3] in "123" else 1,
            session_id=uuid.UUID(str(claims["gid"])),
            expires_at=dt.datetime.fromtimestamp(int(claims["exp"]), dt.UTC),
            acting_for=uuid.UUID(str(org)) if org else None,
            org_roles=frozenset(claims.get("roles", ())),
            amr=tuple(claims.get("amr", ())),
            client_id=str(claims.get("client_id")),
            scopes=scopes,
            cnf_jkt=_bound_key(claims),
        )


def _bound_key(claims: dict[str, Any]) -> str | None:
    cnf = claims.get("cnf")
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    return str(jkt) if jkt is not None else None


class DPoPPossession:
    """The API's DPoP check (RFC 9449 §7): a proof for this method and URI, with ``ath`` of the
    token, signed by the key the token is bound to. ``origin`` is the public scheme and host the
    clients see (the issuer's), so a proxy in front does not change ``htu``."""

    def __init__(self, verifier: DPoPVerifier, origin: str) -> None:
        self.verifier = verifier
        self.origin = origin.rstrip("/")

    async def verify(self, connection: ASGIConnection[Any, Any, Any, Any], token: str, jkt: str) -> None:
        try:
            found = await self.verifier.verify(
                connection.headers.getall("dpop", []),
                method=str(connection.scope.get("method", "GET")),
                url=self.origin + connection.scope["path"],
                access_token=token,
            )
        except DPoPInvalid as exc:
            raise Unauthenticated(f"DPoP: {exc}", dpop=True) from None
        if found != jkt:
            raise Unauthenticated("DPoP: the proof is signed by another key than the token's", dpop=True)


def requires_scope(*scopes: str) -> Guard:
    """Every one of ``scopes`` for a provider access token; identity's own sessions pass."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = await authenticate(connection)
        if principal.scopes is not None and not set(scopes) <= principal.scopes:
            raise Forbidden(
                f"the access token lacks the scope {' '.join(sorted(set(scopes) - principal.scopes))}"
            )

    return guard
