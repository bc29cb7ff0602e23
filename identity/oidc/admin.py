"""Client registration by the city's operators (security_admin): create (the secret is shown once),
list, read, rotate the secret, disable. Every action is audited."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK

from identity.auth import Principal, requires_operator_role
from identity.oidc.clients import ClientRegistration, ClientView
from identity.oidc.provider import Provider

__all__ = ["ClientAdminController"]

Req = Request[Any, Any, Any]


class ClientAdminController(Controller):
    path = "/api/v1/identity/admin/oidc-clients"
    tags = ["identity-admin"]  # noqa: RUF012
    guards = [requires_operator_role("security_admin")]  # noqa: RUF012

    async def _audit(
        self,
        oidc: Provider,
        request: Req,
        principal: Principal,
        *,
        action: str,
        client_id: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        await oidc.core.audit(
            action,
            client=oidc.client_info(request),
            principal=principal,
            target_kind="client",
            target_id=client_id,
            details=details,
        )

    @post("", operation_id="AdminRegisterClient")
    async def create(
        self,
        request: Req,
        oidc: NamedDependency[Provider],
        principal: NamedDependency[Principal],
        data: JSONBody[ClientRegistration],
    ) -> ClientView:
        """Register a client; a generated secret is in this answer only."""
        created = await oidc.clients.create(data)
        await oidc.cors.forget()  # its origins are allowed in preflights now, not at the set's expiry
        await self._audit(
            oidc,
            request,
            principal,
            action="identity.oidc.client.create",
            client_id=created.client_id,
            details={
                "auth_method": created.auth_method,
                "redirect_uris": created.redirect_uris,
                "web_origins": created.web_origins,
                "scopes": created.scopes,
                "grant_types": created.grant_types,
            },
        )
        return created

    @get("", operation_id="AdminListClients")
    async def list_clients(self, oidc: NamedDependency[Provider]) -> list[ClientView]:
        return await oidc.clients.list()

    @get("/{client_id:str}", operation_id="AdminGetClient")
    async def get_client(self, oidc: NamedDependency[Provider], client_id: FromPath[str]) -> ClientView:
        return await oidc.clients.view(client_id)

    @post("/{client_id:str}/secret", operation_id="AdminRotateClientSecret", status_code=HTTP_200_OK)
    async def rotate_secret(
        self,
        request: Req,
        oidc: NamedDependency[Provider],
        principal: NamedDependency[Principal],
        client_id: FromPath[str],
    ) -> ClientView:
        rotated = await oidc.clients.rotate_secret(client_id)
        await oidc.revocations.publish(f"c:{client_id}")  # the old secret stops in every worker
        await self._audit(
            oidc, request, principal, action="identity.oidc.client.rotate_secret", client_id=client_id
        )
        return rotated

    @post("/{client_id:str}/disable", operation_id="AdminDisableClient", status_code=HTTP_200_OK)
    async def disable(
        self,
        request: Req,
        oidc: NamedDependency[Provider],
        principal: NamedDependency[Principal],
        client_id: FromPath[str],
    ) -> ClientView:
        """Disable a client: it can no longer sign anyone in, and its grants are revoked."""
        disabled = await oidc.clients.disable(client_id)
        await oidc.revocations.publish(f"c:{client_id}")
        await oidc.cors.forget()
        revoked = await oidc.grants.revoke_where("client disabled", client_id=client_id)
        await self._audit(
            oidc,
            request,
            principal,
            action="identity.oidc.client.disable",
            client_id=client_id,
            details={"grants_revoked": revoked},
        )
        return disabled
