"""HTTP routes of natural persons: codes, registration, sessions, verification, TOTP, own account."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from identity.auth import Principal, bearer_token, requires_loa, requires_person
from identity.persons.models import (
    CodeLoginRequest,
    CodeRequest,
    CodeSent,
    MobileChange,
    MobileChangeCode,
    PasswordChange,
    PasswordLoginRequest,
    Profile,
    RegistrationRequest,
    SessionIssued,
    TotpCode,
    TotpEnrolment,
    VerificationRequest,
)
from identity.services import IdentityServices

__all__ = ["AccountController", "SignInController"]

Req = Request[Any, Any, Any]


class SignInController(Controller):
    path = "/api/v1/identity"
    tags = ["identity"]  # noqa: RUF012

    @post("/codes", status_code=HTTP_202_ACCEPTED, operation_id="SendCode")
    async def send_code(
        self, request: Req, identity: NamedDependency[IdentityServices], data: JSONBody[CodeRequest]
    ) -> CodeSent:
        """Send a six-digit one-time code by SMS (registration or sign-in)."""
        return await identity.persons.send_code(data.purpose, data.mobile, identity.client(request))

    @post("/registrations", operation_id="RegisterPerson")
    async def register(
        self, request: Req, identity: NamedDependency[IdentityServices], data: JSONBody[RegistrationRequest]
    ) -> SessionIssued:
        """Register with a confirmed mobile number (L1); returns a session."""
        return await identity.persons.register(
            data.mobile, data.code, data.password, identity.client(request)
        )

    @post("/sessions/code", operation_id="SignInWithCode")
    async def sign_in_code(
        self, request: Req, identity: NamedDependency[IdentityServices], data: JSONBody[CodeLoginRequest]
    ) -> SessionIssued:
        return await identity.persons.login_with_code(data.mobile, data.code, identity.client(request))

    @post("/sessions/password", operation_id="SignInWithPassword")
    async def sign_in_password(
        self, request: Req, identity: NamedDependency[IdentityServices], data: JSONBody[PasswordLoginRequest]
    ) -> SessionIssued:
        return await identity.persons.login_with_password(
            data.mobile, data.password, identity.client(request)
        )

    @post(
        "/sessions/current/step-up", status_code=HTTP_200_OK, operation_id="StepUp", guards=[requires_person]
    )
    async def step_up(
        self,
        request: Req,
        identity: NamedDependency[IdentityServices],
        principal: NamedDependency[Principal],
        data: JSONBody[TotpCode],
    ) -> SessionIssued:
        """L2 -> L3 with a TOTP code; the session keeps its id and gets a new token."""
        return await identity.factors.step_up(
            principal, bearer_token(request), data.code, identity.client(request)
        )

    @delete("/sessions/current", status_code=HTTP_204_NO_CONTENT, operation_id="SignOut")
    async def sign_out(
        self, request: Req, identity: NamedDependency[IdentityServices], principal: NamedDependency[Principal]
    ) -> None:
        await identity.persons.logout(principal, identity.client(request))


class AccountController(Controller):
    path = "/api/v1/identity/me"
    tags = ["identity"]  # noqa: RUF012
    guards = [requires_person]  # noqa: RUF012

    @get("", operation_id="GetProfile")
    async def profile(
        self, identity: NamedDependency[IdentityServices], principal: NamedDependency[Principal]
    ) -> Profile:
        return await identity.accounts.profile(principal)

    @post("/verification", status_code=HTTP_200_OK, operation_id="VerifyRealName")
    async def verify(
        self,
        request: Req,
        identity: NamedDependency[IdentityServices],
        principal: NamedDependency[Principal],
        data: JSONBody[VerificationRequest],
    ) -> SessionIssued:
        """Real-name verification against the population registry: the account and session reach L2."""
        return await identity.persons.verify_real_name(
            principal, bearer_token(request), data.name, data.id_number, identity.client(request)
        )

    @post("/totp", status_code=HTTP_200_OK, operation_id="BeginTotp", guards=[requires_loa(2)])
    async def begin_totp(
        self, request: Req, identity: NamedDependency[IdentityServices], principal: NamedDependency[Principal]
    ) -> TotpEnrolment:
        return await identity.factors.begin_totp(principal, identity.client(request))

    @post("/totp/confirm", status_code=HTTP_200_OK, operation_id="ConfirmTotp", guards=[requires_loa(2)])
    async def confirm_totp(
        self,
        request: Req,
        identity: NamedDependency[IdentityServices],
        principal: NamedDependency[Principal],
        data: JSONBody[TotpCode],
    ) -> SessionIssued:
        """Confirm the enrolment with a first code: the account and this session reach L3."""
        return await identity.factors.confirm_totp(
            principal, bearer_token(request), data.code, identity.client(request)
        )

    @put("/password", status_code=HTTP_204_NO_CONTENT, operation_id="SetPassword")
    async def set_password(
        self,
        request: Req,
        identity: NamedDependency[IdentityServices],
        principal: NamedDependency[Principal],
        data: JSONBody[PasswordChange],
    ) -> None:
        await identity.accounts.set_password(
            principal, data.password, data.current_password, identity.client(request)
        )

    @post("/mobile/code", status_code=HTTP_202_ACCEPTED, operation_id="SendMobileChangeCode")
    async def mobile_code(
        self,
        request: Req,
        identity: NamedDependency[IdentityServices],
        principal: NamedDependency[Principal],
        data: JSONBody[MobileChangeCode],
    ) -> CodeSent:
        """A code to the new number, and one to the current number (the proof that the change needs)."""
        return await identity.mobile.send_codes(principal, data.mobile, identity.client(request))

    @put("/mobile", operation_id="ChangeMobile")
    async def change_mobile(
        self,
        request: Req,
        identity: NamedDependency[IdentityServices],
        principal: NamedDependency[Principal],
        data: JSONBody[MobileChange],
    ) -> Profile:
        """Change the number: its code, and the current number's code or the current password (and
        the TOTP code when the account has a second factor). Every other session ends."""
        return await identity.mobile.change(principal, data, identity.client(request))

    @post("/deactivation", status_code=HTTP_204_NO_CONTENT, operation_id="DeactivateAccount")
    async def deactivate(
        self, request: Req, identity: NamedDependency[IdentityServices], principal: NamedDependency[Principal]
    ) -> None:
        await identity.accounts.deactivate(principal, identity.client(request))

    @get("/export", operation_id="ExportPersonalData")
    async def export(
        self, request: Req, identity: NamedDependency[IdentityServices], principal: NamedDependency[Principal]
    ) -> dict[str, Any]:
        """Everything held about you, as JSON."""
        return await identity.accounts.export(principal, identity.client(request))
