"""HTTP routes of legal persons: registration, agents, and the acting context of a session."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK

from identity.auth import Principal, bearer_token, requires_loa, requires_person
from identity.organisations.models import (
    AgentAppointment,
    AgentChange,
    AgentView,
    Membership,
    OrganisationRegistration,
    OrganisationView,
)
from identity.persons.models import ContextRequest, ContextState
from identity.services import IdentityServices

__all__ = ["OrganisationController", "SessionContextController"]

Req = Request[Any, Any, Any]


def _answer_route(accept: bool, doc: str, **route: Any) -> HTTPRouteHandler:
    """``POST .../invitation/accept`` or ``.../decline``: the invited person's answer, a handler
    named (and so summarised in the OpenAPI document) after its verb, ``doc`` its docstring."""
    verb = "accept" if accept else "decline"

    async def answer(
        self: Controller,
        request: Req,
        identity: NamedDependency[IdentityServices],
        principal: NamedDependency[Principal],
        organisation_id: FromPath[uuid.UUID],
    ) -> Membership:
        return await identity.organisations.appointments.answer(
            principal, organisation_id, accept, identity.client(request)
        )

    answer.__name__, answer.__qualname__, answer.__doc__ = verb, f"OrganisationController.{verb}", doc
    return post(f"/{{organisation_id:uuid}}/invitation/{verb}", status_code=HTTP_200_OK, **route)(answer)


class OrganisationController(Controller):
    path = "/api/v1/identity/organisations"
    tags = ["identity"]  # noqa: RUF012
    guards = [requires_person]  # noqa: RUF012

    @post("", operation_id="RegisterOrganisation", guards=[requires_loa(2)])
    async def register(
        self,
        request: Req,
        identity: NamedDependency[IdentityServices],
        principal: NamedDependency[Principal],
        data: JSONBody[OrganisationRegistration],
    ) -> OrganisationView:
        """Claim an organisation: only its legal representative (per the enterprise registry), at L2."""
        return await identity.organisations.register(principal, data, identity.client(request))

    @get("", operation_id="ListMyOrganisations")
    async def mine(
        self, identity: NamedDependency[IdentityServices], principal: NamedDependency[Principal]
    ) -> list[Membership]:
        return await identity.organisations.memberships(principal)

    @get("/{organisation_id:uuid}", operation_id="GetOrganisation")
    async def view(
        self,
        identity: NamedDependency[IdentityServices],
        principal: NamedDependency[Principal],
        organisation_id: FromPath[uuid.UUID],
    ) -> OrganisationView:
        return await identity.organisations.view(principal, organisation_id)

    @get("/{organisation_id:uuid}/agents", operation_id="ListAgents")
    async def agents(
        self,
        identity: NamedDependency[IdentityServices],
        principal: NamedDependency[Principal],
        organisation_id: FromPath[uuid.UUID],
    ) -> list[AgentView]:
        return await identity.organisations.appointments.agents(principal, organisation_id)

    @post("/{organisation_id:uuid}/agents", operation_id="AppointAgent", guards=[requires_loa(2)])
    async def appoint(
        self,
        request: Req,
        identity: NamedDependency[IdentityServices],
        principal: NamedDependency[Principal],
        organisation_id: FromPath[uuid.UUID],
        data: JSONBody[AgentAppointment],
    ) -> AgentView:
        """The legal representative invites a verified person with roles and an end date; the
        person holds the roles once they accept (status "invited" until then)."""
        return await identity.organisations.appointments.invite(
            principal, organisation_id, data, identity.client(request)
        )

    accept = _answer_route(
        True,
        "The invited person accepts the organisation's invitation and holds its roles.",
        operation_id="AcceptAgentInvitation",
        guards=[requires_loa(2)],
    )
    decline = _answer_route(
        False,
        "The invited person declines; the representative sees the invitation as declined.",
        operation_id="DeclineAgentInvitation",
    )

    @patch(
        "/{organisation_id:uuid}/agents/{agent_id:uuid}", operation_id="ChangeAgent", guards=[requires_loa(2)]
    )
    async def change(
        self,
        *,
        request: Req,
        identity: NamedDependency[IdentityServices],
        principal: NamedDependency[Principal],
        organisation_id: FromPath[uuid.UUID],
        agent_id: FromPath[uuid.UUID],
        data: JSONBody[AgentChange],
    ) -> AgentView:
        """Change an agent's roles or end date, or suspend / reinstate them (not an invitation
        still waiting for the person's answer: withdraw it with DELETE instead)."""
        return await identity.organisations.appointments.change(
            principal, organisation_id, agent_id, data, identity.client(request)
        )

    @delete(
        "/{organisation_id:uuid}/agents/{agent_id:uuid}",
        status_code=HTTP_200_OK,
        operation_id="RemoveAgent",
        guards=[requires_loa(2)],
    )
    async def remove(
        self,
        request: Req,
        identity: NamedDependency[IdentityServices],
        principal: NamedDependency[Principal],
        organisation_id: FromPath[uuid.UUID],
        agent_id: FromPath[uuid.UUID],
    ) -> AgentView:
        return await identity.organisations.appointments.change(
            principal, organisation_id, agent_id, None, identity.client(request)
        )


class SessionContextController(Controller):
    path = "/api/v1/identity/session"
    tags = ["identity"]  # noqa: RUF012

    @get("", operation_id="WhoAmI")
    async def whoami(self, principal: NamedDependency[Principal]) -> Principal:
        """The caller as the API sees them: who acts, for whom, with which roles, at which level."""
        return principal

    @put("/context", operation_id="SwitchContext", guards=[requires_person])
    async def switch(
        self,
        request: Req,
        identity: NamedDependency[IdentityServices],
        principal: NamedDependency[Principal],
        data: JSONBody[ContextRequest],
    ) -> ContextState:
        """Act for an organisation (where you hold a role) or, with null, for yourself."""
        return await identity.organisations.switch_context(
            principal, bearer_token(request), data.organisation_id, identity.client(request)
        )
