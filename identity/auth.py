"""Who is calling: the :class:`Principal`, the ``principal`` dependency and the guards other domains use.

Usage in another domain::

    from identity.auth import Principal, requires_loa, requires_org_role

    @post("/api/v1/cards", guards=[requires_loa(2)], operation_id="IssueCard")
    async def issue(principal: NamedDependency[Principal], ...) -> ...

The principal is resolved once per request (one Redis round trip for a bearer session) by the
:class:`Authenticator` that identity's lifespan puts in ``app.state``; guards and the dependency share
it. Token resolvers are pluggable, so OpenID access tokens (issue 4) can resolve to the same
:class:`Principal` without anything downstream knowing how the token was issued.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, Protocol

import msgspec
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from identity.errors import Forbidden, InsufficientAssurance, Unauthenticated

__all__ = [
    "APP_STATE_KEY",
    "OPERATOR_ROLES",
    "ORG_ROLES",
    "Authenticator",
    "PossessionCheck",
    "Principal",
    "TokenResolver",
    "authenticate",
    "bearer_token",
    "presented_token",
    "provide_principal",
    "requires_loa",
    "requires_operator",
    "requires_operator_role",
    "requires_org_role",
    "requires_person",
]

APP_STATE_KEY = "identity_authenticator"
_STATE_KEY = "identity_principal"

# The fixed role catalogue for agents (经办人) acting for an organisation.
ORG_ROLES: tuple[str, ...] = ("card_admin", "payments", "filings")
OPERATOR_ROLES: tuple[str, ...] = ("support", "auditor", "security_admin")

Kind = Literal["person", "operator"]
Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """The authenticated caller, independent of how its token was issued."""

    account_id: uuid.UUID
    kind: Kind
    loa: int  # 1 mobile confirmed, 2 real name verified, 3 L2 plus a second factor
    session_id: uuid.UUID
    expires_at: dt.datetime
    # Set when a person acts for an organisation; ``org_roles`` are their roles there.
    acting_for: uuid.UUID | None = None
    org_roles: frozenset[str] = frozenset()
    operator_roles: frozenset[str] = frozenset()
    amr: tuple[str, ...] = ()  # RFC 8176 methods: "sms", "pwd", "otp"
    client_id: str | None = None
    # OAuth scopes of a provider access token (identity.oidc); None for identity's own sessions.
    scopes: frozenset[str] | None = None
    # The DPoP key thumbprint a provider access token is bound to (RFC 9449 cnf.jkt), if any.
    cnf_jkt: str | None = None

    @property
    def is_person(self) -> bool:
        return self.kind == "person"

    @property
    def is_operator(self) -> bool:
        return self.kind == "operator"


class TokenResolver(Protocol):
    async def resolve(self, token: str) -> Principal | None: ...


class PossessionCheck(Protocol):
    """Proof that the caller holds the key a token is bound to (DPoP, RFC 9449 §7); raises
    :class:`Unauthenticated` when it does not."""

    async def verify(self, connection: ASGIConnection[Any, Any, Any, Any], token: str, jkt: str) -> None: ...


class Authenticator:
    def __init__(self, resolvers: Sequence[TokenResolver]) -> None:
        self.resolvers = list(resolvers)
        self.possession: PossessionCheck | None = None  # set by the OpenID provider when wired

    async def resolve(self, token: str) -> Principal | None:
        for resolver in self.resolvers:
            principal = await resolver.resolve(token)
            if principal is not None:
                return principal
        return None


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    return presented_token(connection)[1]


def presented_token(connection: ASGIConnection[Any, Any, Any, Any]) -> tuple[str, str]:
    """The Authorization header's scheme ("bearer", or "dpop" for a DPoP-bound token) and token."""
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token, scheme = token.strip(), scheme.lower()
    if scheme not in {"bearer", "dpop"} or not token or len(token) > 4096:  # JWT access tokens (oidc)
        raise Unauthenticated()
    return scheme, token


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The request's principal (resolved once, then cached on the connection); 401 if none."""
    cached = connection.scope.get("state", {}).get(_STATE_KEY)
    if isinstance(cached, Principal):
        return cached
    scheme, token = presented_token(connection)
    authenticator = connection.app.state.get(APP_STATE_KEY)
    if not isinstance(authenticator, Authenticator):
        raise TypeError("identity is not wired into this app (no authenticator in app.state)")
    principal = await authenticator.resolve(token)
    if principal is None:
        raise Unauthenticated("The bearer token is unknown, expired or revoked")
    if principal.cnf_jkt is not None or scheme == "dpop":
        # RFC 9449 §7.1: a bound token only with the DPoP scheme and a proof by its key; the DPoP
        # scheme only with a bound token (else a stolen bearer token could pose as DPoP).
        if principal.cnf_jkt is None or scheme != "dpop" or authenticator.possession is None:
            raise Unauthenticated(
                "A DPoP-bound token goes with the DPoP scheme, and only such a token", dpop=True
            )
        await authenticator.possession.verify(connection, token, principal.cnf_jkt)
    connection.scope.setdefault("state", {})[_STATE_KEY] = principal
    return principal


async def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    """The ``principal`` named dependency."""
    return await authenticate(request)


def requires_loa(level: int) -> Guard:
    """At least this level of assurance; below it, 401 with an RFC 9470 step-up challenge."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = await authenticate(connection)
        if principal.loa < level:
            raise InsufficientAssurance(level, principal.loa)

    return guard


async def requires_person(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if not (await authenticate(connection)).is_person:
        raise Forbidden("this is for citizens' own accounts")


async def requires_operator(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if not (await authenticate(connection)).is_operator:
        raise Forbidden("this is for the city's operators")


def requires_operator_role(*roles: str) -> Guard:
    """An operator holding at least one of ``roles``."""
    unknown = set(roles) - set(OPERATOR_ROLES)
    if unknown or not roles:
        raise ValueError(f"unknown operator roles: {sorted(unknown)}")

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = await authenticate(connection)
        if not principal.is_operator or not principal.operator_roles & set(roles):
            raise Forbidden(f"requires the operator role {' or '.join(roles)}")

    return guard


def requires_org_role(role: str, *, path_param: str | None = None) -> Guard:
    """A person acting for an organisation in which they hold ``role``.

    With ``path_param`` (e.g. ``"organisation_id"``), the organisation named in the path must be the
    one the person is acting for. Anything else is 403, whatever the organisation.
    """
    if role not in ORG_ROLES:
        raise ValueError(f"unknown organisation role {role!r}")

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = await authenticate(connection)
        if not principal.is_person or principal.acting_for is None:
            raise Forbidden("switch to acting for an organisation first")
        if path_param is not None and str(connection.path_params.get(path_param)) != str(
            principal.acting_for
        ):
            raise Forbidden("you are not acting for this organisation")
        if role not in principal.org_roles:
            raise Forbidden(f"requires the role {role} in the organisation")

    return guard
