"""HTTP routes of the administration API (operators only)."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT

from identity.admin.models import (
    AccountSummary,
    FreezeRequest,
    OperatorLogin,
    OrganisationSummary,
    SessionView,
)
from identity.admin.operators import operator_login
from identity.audit import AuditEntry, ChainReport
from identity.auth import Principal, requires_operator_role
from identity.persons.models import SessionIssued
from identity.services import IdentityServices

__all__ = ["AdminController", "OperatorSignInController"]

Req = Request[Any, Any, Any]
_READERS = requires_operator_role("support", "security_admin", "auditor")
_SUPPORT = requires_operator_role("support", "security_admin")
_SECURITY = requires_operator_role("security_admin")
_AUDIT = requires_operator_role("auditor", "security_admin")


class OperatorSignInController(Controller):
    path = "/api/v1/identity/operator-sessions"
    tags = ["identity-admin"]  # noqa: RUF012

    @post("", operation_id="OperatorSignIn")
    async def sign_in(
        self, request: Req, identity: NamedDependency[IdentityServices], data: JSONBody[OperatorLogin]
    ) -> SessionIssued:
        return await operator_login(identity.core, data.username, data.password, identity.client(request))


class AdminController(Controller):
    path = "/api/v1/identity/admin"
    tags = ["identity-admin"]  # noqa: RUF012

    @get("/accounts", operation_id="AdminSearchAccounts", guards=[_READERS])
    async def search_accounts(
        self,
        request: Req,
        identity: NamedDependency[IdentityServices],
        principal: NamedDependency[Principal],
        mobile: FromQuery[str | None] = None,
        id_number: FromQuery[str | None] = None,
    ) -> list[AccountSummary]:
        """Find people by mobile or ID number (through the blind index); results are masked."""
        return await identity.admin.search_accounts(
            principal, identity.client(request), mobile=mobile, id_number=id_number
        )

    @get("/organisations", operation_id="AdminSearchOrganisations", guards=[_READERS])
    async def search_organisations(
        self,
        *,
        request: Req,
        identity: NamedDependency[IdentityServices],
        principal: NamedDependency[Principal],
        credit_code: FromQuery[str | None] = None,
        mobile: FromQuery[str | None] = None,
        id_number: FromQuery[str | None] = None,
    ) -> list[OrganisationSummary]:
        return await identity.admin.search_organisations(
            principal, identity.client(request), credit_code=credit_code, mobile=mobile, id_number=id_number
        )

    @get("/accounts/{account_id:uuid}", operation_id="AdminGetAccount", guards=[_READERS])
    async def account(
        self,
        request: Req,
        identity: NamedDependency[IdentityServices],
        principal: NamedDependency[Principal],
        account_id: FromPath[uuid.UUID],
    ) -> AccountSummary:
        return await identity.admin.account(principal, identity.client(request), account_id)

    @post(
        "/accounts/{account_id:uuid}/freeze",
        status_code=HTTP_200_OK,
        operation_id="AdminFreeze",
        guards=[_SUPPORT],
    )
    async def freeze(
        self,
        request: Req,
        identity: NamedDependency[IdentityServices],
        principal: NamedDependency[Principal],
        account_id: FromPath[uuid.UUID],
        data: JSONBody[FreezeRequest],
    ) -> AccountSummary:
        """Freeze an account: every session ends at once and sign-in is refused."""
        return await identity.admin.set_frozen(
            principal, identity.client(request), account_id, frozen=True, reason=data.reason
        )

    @post(
        "/accounts/{account_id:uuid}/unfreeze",
        status_code=HTTP_200_OK,
        operation_id="AdminUnfreeze",
        guards=[_SECURITY],
    )
    async def unfreeze(
        self,
        request: Req,
        identity: NamedDependency[IdentityServices],
        principal: NamedDependency[Principal],
        account_id: FromPath[uuid.UUID],
        data: JSONBody[FreezeRequest],
    ) -> AccountSummary:
        return await identity.admin.set_frozen(
            principal, identity.client(request), account_id, frozen=False, reason=data.reason
        )

    @get("/accounts/{account_id:uuid}/sessions", operation_id="AdminListSessions", guards=[_SUPPORT])
    async def sessions(
        self,
        request: Req,
        identity: NamedDependency[IdentityServices],
        principal: NamedDependency[Principal],
        account_id: FromPath[uuid.UUID],
    ) -> list[SessionView]:
        return await identity.admin.sessions(principal, identity.client(request), account_id)

    @delete(
        "/sessions/{session_id:uuid}",
        status_code=HTTP_204_NO_CONTENT,
        operation_id="AdminRevokeSession",
        guards=[_SECURITY],
    )
    async def revoke(
        self,
        request: Req,
        identity: NamedDependency[IdentityServices],
        principal: NamedDependency[Principal],
        session_id: FromPath[uuid.UUID],
    ) -> None:
        await identity.admin.revoke_session(principal, identity.client(request), session_id)

    @get("/audit/{subject_id:uuid}", operation_id="AdminAuditTrail", guards=[_AUDIT])
    async def audit_trail(
        self,
        request: Req,
        identity: NamedDependency[IdentityServices],
        principal: NamedDependency[Principal],
        subject_id: FromPath[uuid.UUID],
    ) -> list[AuditEntry]:
        """The audit entries in which an account or organisation acted, was acted for, or was the target."""
        return await identity.admin.audit_trail(principal, identity.client(request), subject_id)

    @post("/audit/verification", status_code=HTTP_200_OK, operation_id="AdminVerifyAudit", guards=[_AUDIT])
    async def verify(
        self, request: Req, identity: NamedDependency[IdentityServices], principal: NamedDependency[Principal]
    ) -> ChainReport:
        return await identity.admin.verify(principal, identity.client(request))
