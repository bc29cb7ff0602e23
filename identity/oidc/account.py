"""The person's own view: SSO sessions (list, end one, end all) and consents (list, revoke)."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, delete, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.status_codes import HTTP_204_NO_CONTENT

from identity.auth import Principal, requires_person
from identity.errors import NotFound
from identity.oidc.consent import ConsentView
from identity.oidc.provider import Provider
from identity.oidc.sso import COOKIE, SessionView

__all__ = ["PersonOidcController"]

Req = Request[Any, Any, Any]


class PersonOidcController(Controller):
    path = "/api/v1/identity/me"
    tags = ["identity-sso"]  # noqa: RUF012
    guards = [requires_person]  # noqa: RUF012

    @get("/sso-sessions", operation_id="ListSsoSessions")
    async def sessions(
        self, request: Req, oidc: NamedDependency[Provider], principal: NamedDependency[Principal]
    ) -> list[SessionView]:
        """Your single sign-on sessions (browsers and devices), with the services used in each."""
        current = oidc.sso.parse_cookie(request.cookies.get(COOKIE))
        return await oidc.sso.list_for(principal.account_id, current)

    @delete("/sso-sessions/{session_id:uuid}", status_code=HTTP_204_NO_CONTENT, operation_id="EndSsoSession")
    async def end(
        self,
        request: Req,
        oidc: NamedDependency[Provider],
        principal: NamedDependency[Principal],
        session_id: FromPath[uuid.UUID],
    ) -> None:
        """End one session: every service signed in through it is notified (back-channel logout)."""
        session = await oidc.sso.get(session_id)
        if session is None or session.account_id != principal.account_id:
            raise NotFound("no such session")
        await oidc.end_session(session_id, "ended by the person", principal.account_id)
        await oidc.core.audit(
            "identity.sso.end",
            client=oidc.client_info(request),
            principal=principal,
            target_kind="sso_session",
            target_id=session_id,
        )

    @delete("/sso-sessions", status_code=HTTP_204_NO_CONTENT, operation_id="EndAllSsoSessions")
    async def end_all(
        self, request: Req, oidc: NamedDependency[Provider], principal: NamedDependency[Principal]
    ) -> None:
        ended = 0
        for view in await oidc.sso.list_for(principal.account_id):
            ended += await oidc.end_session(view.session_id, "ended by the person", principal.account_id)
        await oidc.core.audit(
            "identity.sso.end_all",
            client=oidc.client_info(request),
            principal=principal,
            target_kind="account",
            target_id=principal.account_id,
            details={"ended": ended},
        )

    @get("/consents", operation_id="ListConsents")
    async def consents(
        self, oidc: NamedDependency[Provider], principal: NamedDependency[Principal]
    ) -> list[ConsentView]:
        """The services you allowed, and what each may see."""
        return await oidc.consents.list(principal.account_id)

    @delete("/consents/{client_id:str}", status_code=HTTP_204_NO_CONTENT, operation_id="RevokeConsent")
    async def revoke(
        self,
        request: Req,
        oidc: NamedDependency[Provider],
        principal: NamedDependency[Principal],
        client_id: FromPath[str],
    ) -> None:
        """Withdraw consent: the service's tokens for you stop working at once."""
        if not await oidc.consents.revoke(principal.account_id, client_id):
            raise NotFound("no consent for this client")
        revoked = await oidc.grants.revoke_where(
            "consent revoked", account_id=principal.account_id, client_id=client_id
        )
        await oidc.core.audit(
            "identity.oidc.consent.revoke",
            client=oidc.client_info(request),
            principal=principal,
            target_kind="client",
            target_id=client_id,
            details={"grants_revoked": revoked},
        )
