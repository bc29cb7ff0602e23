"""The API accepts the provider's access tokens: a resolver for :class:`identity.auth.Authenticator`
and a scope guard.

A token is accepted only if it is signed with the configured algorithm (never the header's
choice), typed ``at+jwt``, issued here, unexpired, its ``aud`` names the API, and it is live (its
grant not revoked, the token not revoked on its own). Identity's opaque session tokens are not
JWTs and pass straight through to the next resolver.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from identity.auth import Guard, Principal, authenticate
from identity.errors import Forbidden
from identity.oidc.access import AccessChecker

__all__ = ["AccessTokenResolver", "requires_scope"]


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
            scopes=frozenset(str(claims.get("scope", "")).split()),
        )


def requires_scope(*scopes: str) -> Guard:
    """Every one of ``scopes`` for a provider access token; identity's own sessions pass."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = await authenticate(connection)
        if principal.scopes is not None and not set(scopes) <= principal.scopes:
            raise Forbidden(
                f"the access token lacks the scope {' '.join(sorted(set(scopes) - principal.scopes))}"
            )

    return guard
