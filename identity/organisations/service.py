"""Register an organisation as its legal representative, appoint agents, and act for an organisation."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from identity._db import Connection
from identity.auth import ORG_ROLES, Principal
from identity.checks import mask_resident_id
from identity.context import ClientInfo
from identity.core import CHINA, IdentityCore, unique_as
from identity.errors import Conflict, DuplicateRegistration, Forbidden, InvalidField, RegistryUnavailable
from identity.organisations.models import (
    AgentAppointment,
    AgentChange,
    AgentView,
    Membership,
    OrganisationRegistration,
    OrganisationView,
)
from identity.persons import validation
from identity.persons.account import mask_name
from identity.persons.models import ContextState
from identity.sessions import ActingContext
from integrations.registries import UpstreamError

__all__ = ["ContextNotCarried", "OrganisationService"]

_NO_ROLE = "you hold no role in this organisation"


def _roles(values: list[str]) -> list[str]:
    roles = sorted(set(values))
    if not roles:
        raise InvalidField("roles", "empty", "name at least one role")
    unknown = [r for r in roles if r not in ORG_ROLES]
    if unknown:
        raise InvalidField("roles", "unknown_role", f"roles are {', '.join(ORG_ROLES)}")
    return roles


def _end(ends_on: dt.date, today: dt.date) -> dt.datetime:
    if ends_on < today:
        raise InvalidField("ends_on", "in_the_past", "the end date is in the past")
    return dt.datetime.combine(ends_on + dt.timedelta(days=1), dt.time(0), tzinfo=CHINA)


class ContextNotCarried(Conflict):
    """The token is not one of identity's sessions (an OpenID provider's access token): it has no
    place for an acting context. OpenID clients act for an organisation by token exchange."""

    problem_type = "context-not-carried"
    problem_title = "This token cannot act for an organisation"

    def __init__(self) -> None:
        super().__init__(
            "only a session signed in with identity carries an acting context; an OpenID client "
            "acts for an organisation through token exchange (RFC 8693)"
        )


class OrganisationService:
    def __init__(self, core: IdentityCore) -> None:
        self.core = core

    async def register(
        self, principal: Principal, req: OrganisationRegistration, client: ClientInfo
    ) -> OrganisationView:
        credit_code = validation.credit_code(req.credit_code)
        name, kind = req.name.strip(), req.kind.strip()
        if not 1 <= len(name) <= 200:
            raise InvalidField("name", "length", "1 to 200 characters")
        aid = principal.account_id
        if await self.core.pool.fetchval(
            "SELECT 1 FROM identity.organisations WHERE credit_code = $1", credit_code
        ):
            raise DuplicateRegistration("this organisation is already registered")
        try:
            found = await self.core.enterprise.find_enterprise(credit_code)
        except UpstreamError:
            raise RegistryUnavailable("the enterprise registry is unavailable; try again shortly") from None
        if found is None:
            raise InvalidField(
                "credit_code", "registry_not_found", "the enterprise registry has no such code"
            )
        if found.status != "active":
            raise InvalidField("credit_code", "registry_inactive", f"the registry lists it as {found.status}")
        if found.name != name:
            raise InvalidField("name", "registry_mismatch", "the name differs from the registry's")
        if found.kind != kind:
            raise InvalidField("kind", "registry_mismatch", "the type differs from the registry's")
        row = await self.core.pool.fetchrow("SELECT id_number_enc FROM identity.accounts WHERE id = $1", aid)
        own_id = self.core.open("id_number", aid, row["id_number_enc"] if row else None)
        if own_id is None or own_id != found.legal_representative_id_number:
            await self.core.audit(
                "identity.organisation.register",
                client=client,
                principal=principal,
                outcome="denied",
                target_kind="credit_code",
                target_id=credit_code,
                details={"rule": "not_legal_representative"},
            )
            raise Forbidden("only the legal representative named by the enterprise registry may register it")
        org_id = uuid.uuid4()
        with unique_as(None, DuplicateRegistration("this organisation is already registered")):
            async with self.core.pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    """
                    INSERT INTO identity.organisations
                        (id, credit_code, name, kind, registry_status, registered_on, legal_representative_id)
                    VALUES ($1, $2, $3, $4, $5, $6, $7)
                    """,
                    org_id,
                    credit_code,
                    found.name,
                    found.kind,
                    found.status,
                    found.registered_on,
                    aid,
                )
                await conn.execute(
                    """
                    INSERT INTO identity.agents
                        (id, organisation_id, account_id, roles, is_legal_representative)
                    VALUES ($1, $2, $3, $4, true)
                    """,
                    uuid.uuid4(),
                    org_id,
                    aid,
                    list(ORG_ROLES),
                )
                await self.core.audit(
                    "identity.organisation.register",
                    client=client,
                    principal=principal,
                    acting_for=org_id,
                    target_kind="organisation",
                    target_id=org_id,
                    details={"credit_code": credit_code},
                    connection=conn,
                )
        return await self.view(principal, org_id)

    async def _agent_row(self, conn: Connection, org_id: uuid.UUID, account_id: uuid.UUID) -> Any:
        return await conn.fetchrow(
            """
            SELECT g.roles, g.valid_until, g.is_legal_representative FROM identity.agents g
            WHERE g.organisation_id = $1 AND g.account_id = $2 AND g.status = 'active'
              AND (g.valid_until IS NULL OR g.valid_until > now())
            FOR SHARE OF g
            """,
            org_id,
            account_id,
        )

    async def view(self, principal: Principal, org_id: uuid.UUID) -> OrganisationView:
        """Any agent of the organisation may see it; anyone else gets 403, whether or not it exists."""
        row = await self.core.pool.fetchrow(
            """
            SELECT o.*, a.name_enc FROM identity.organisations o
            JOIN identity.accounts a ON a.id = o.legal_representative_id
            JOIN identity.agents g ON g.organisation_id = o.id AND g.account_id = $2 AND g.status = 'active'
                 AND (g.valid_until IS NULL OR g.valid_until > now())
            WHERE o.id = $1
            """,
            org_id,
            principal.account_id,
        )
        if row is None:
            raise Forbidden(_NO_ROLE)
        rep_name = self.core.open("name", row["legal_representative_id"], row["name_enc"]) or ""
        return OrganisationView(
            id=row["id"],
            credit_code=row["credit_code"],
            name=row["name"],
            kind=row["kind"],
            registry_status=row["registry_status"],
            registered_on=row["registered_on"],
            legal_representative=mask_name(rep_name),
            created_at=row["created_at"],
        )

    async def memberships(self, principal: Principal) -> list[Membership]:
        rows = await self.core.pool.fetch(
            """
            SELECT g.organisation_id, o.credit_code, o.name, g.roles, g.is_legal_representative, g.status,
                   g.valid_until
            FROM identity.agents g JOIN identity.organisations o ON o.id = g.organisation_id
            WHERE g.account_id = $1 AND g.status <> 'removed' ORDER BY o.name
            """,
            principal.account_id,
        )
        return [Membership(**dict(r)) for r in rows]

    async def switch_context(
        self, principal: Principal, token: str, org_id: uuid.UUID | None, client: ClientInfo
    ) -> ContextState:
        """Act for ``org_id`` (or for oneself with None). No active role there: 403, always. A token
        that is not an identity session (an OpenID access token) cannot carry the context: 409,
        audited as a failure, rather than an answer that claims a switch that did not happen."""
        if org_id is None:
            switched = await self.core.sessions.set_context(token, None)
            await self.core.audit(
                "identity.context.switch",
                client=client,
                principal=principal,
                acting_for=None,
                outcome="success" if switched else "failure",
                details={"to": "self"} if switched else {"to": "self", "rule": "not_an_identity_session"},
            )
            if not switched:
                raise ContextNotCarried
            return ContextState(account_id=principal.account_id, acting_for=None, roles=[])
        switched = False
        async with self.core.pool.acquire() as conn, conn.transaction():
            # Share-locked until the session carries the context: a concurrent suspension either
            # waits and then clears it, or is seen here.
            row = await self._agent_row(conn, org_id, principal.account_id)
            if row is not None:
                context = ActingContext(org=org_id, roles=frozenset(row["roles"]), until=row["valid_until"])
                switched = await self.core.sessions.set_context(token, context)
                details = {"roles": sorted(row["roles"])}
                await self.core.audit(
                    "identity.context.switch",
                    client=client,
                    principal=principal,
                    acting_for=org_id if switched else principal.acting_for,
                    target_kind="organisation",
                    target_id=org_id,
                    outcome="success" if switched else "failure",
                    details=details if switched else {**details, "rule": "not_an_identity_session"},
                    connection=conn,
                )
        if row is None:
            await self.core.audit(
                "identity.context.switch",
                client=client,
                principal=principal,
                outcome="denied",
                target_kind="organisation",
                target_id=org_id,
            )
            raise Forbidden(_NO_ROLE)
        if not switched:
            raise ContextNotCarried
        return ContextState(
            account_id=principal.account_id,
            acting_for=org_id,
            roles=sorted(row["roles"]),
            acting_until=row["valid_until"],
        )

    async def _require_representative(
        self, conn: Connection, principal: Principal, org_id: uuid.UUID
    ) -> None:
        row = await self._agent_row(conn, org_id, principal.account_id)
        if row is None or not row["is_legal_representative"]:
            raise Forbidden("only the organisation's legal representative manages its agents")

    def _agent_view(self, row: Any) -> AgentView:
        aid = row["account_id"]
        return AgentView(
            id=row["id"],
            organisation_id=row["organisation_id"],
            account_id=aid,
            name=mask_name(self.core.open("name", aid, row["name_enc"]) or ""),
            id_number=mask_resident_id(self.core.open("id_number", aid, row["id_number_enc"]) or ""),
            roles=sorted(row["roles"]),
            is_legal_representative=row["is_legal_representative"],
            status=row["status"],
            valid_until=row["valid_until"],
            created_at=row["created_at"],
        )

    async def agents(self, principal: Principal, org_id: uuid.UUID) -> list[AgentView]:
        async with self.core.pool.acquire() as conn, conn.transaction():
            await self._require_representative(conn, principal, org_id)
            rows = await conn.fetch(
                """
                SELECT g.*, a.name_enc, a.id_number_enc FROM identity.agents g
                JOIN identity.accounts a ON a.id = g.account_id
                WHERE g.organisation_id = $1 AND g.status <> 'removed' ORDER BY g.created_at
                """,
                org_id,
            )
        return [self._agent_view(r) for r in rows]

    async def appoint(
        self, principal: Principal, org_id: uuid.UUID, req: AgentAppointment, client: ClientInfo
    ) -> AgentView:
        id_number = validation.id_number(req.id_number, self.core.today())
        name = validation.person_name(req.name)
        roles = _roles(req.roles)
        until = _end(req.ends_on, self.core.today())
        agent_id = uuid.uuid4()
        with unique_as("agents_one_live", Conflict("this person is already an agent of the organisation")):
            async with self.core.pool.acquire() as conn, conn.transaction():
                await self._require_representative(conn, principal, org_id)
                person = await conn.fetchrow(
                    """
                    SELECT id, name_enc FROM identity.accounts
                    WHERE id_number_index = $1 AND status = 'active' AND level >= 2
                    """,
                    self.core.index.id_number(id_number),
                )
                if person is None:
                    raise InvalidField(
                        "id_number", "no_verified_account", "no verified account has this ID number"
                    )
                if self.core.open("name", person["id"], person["name_enc"]) != name:
                    raise InvalidField("name", "mismatch", "the name does not match the account's")
                if person["id"] == principal.account_id:
                    raise Conflict("the legal representative already holds every role")
                await conn.execute(
                    """
                    INSERT INTO identity.agents
                        (id, organisation_id, account_id, roles, valid_until, appointed_by)
                    VALUES ($1, $2, $3, $4, $5, $6)
                    """,
                    agent_id,
                    org_id,
                    person["id"],
                    roles,
                    until,
                    principal.account_id,
                )
                await self.core.audit(
                    "identity.agent.appoint",
                    client=client,
                    principal=principal,
                    acting_for=org_id,
                    target_kind="account",
                    target_id=person["id"],
                    details={"agent_id": str(agent_id), "roles": roles, "ends_on": req.ends_on.isoformat()},
                    connection=conn,
                )
                row = await self._agent_full(conn, agent_id)
        return self._agent_view(row)

    async def _agent_full(self, conn: Connection, agent_id: uuid.UUID) -> Any:
        return await conn.fetchrow(
            """
            SELECT g.*, a.name_enc, a.id_number_enc FROM identity.agents g
            JOIN identity.accounts a ON a.id = g.account_id WHERE g.id = $1
            """,
            agent_id,
        )

    async def change_agent(
        self,
        principal: Principal,
        org_id: uuid.UUID,
        agent_id: uuid.UUID,
        change: AgentChange | None,
        client: ClientInfo,
    ) -> AgentView:
        """Change roles, end date or status; ``change=None`` removes the agent. Their sessions acting
        for the organisation drop back to acting for themselves."""
        roles = _roles(change.roles) if change and change.roles is not None else None
        until = _end(change.ends_on, self.core.today()) if change and change.ends_on else None
        status = "removed" if change is None else change.status
        async with self.core.pool.acquire() as conn, conn.transaction():
            await self._require_representative(conn, principal, org_id)
            row = await conn.fetchrow(
                """
                SELECT account_id, is_legal_representative FROM identity.agents
                WHERE id = $1 AND organisation_id = $2 AND status <> 'removed' FOR UPDATE
                """,
                agent_id,
                org_id,
            )
            if row is None:
                raise Forbidden("no such agent in this organisation")
            if row["is_legal_representative"]:
                raise Conflict("the legal representative's roles come from the registry")
            await conn.execute(
                """
                UPDATE identity.agents
                SET roles = coalesce($2, roles), valid_until = coalesce($3, valid_until),
                    status = coalesce($4, status), updated_at = now()
                WHERE id = $1
                """,
                agent_id,
                roles,
                until,
                status,
            )
            result = await self._agent_full(conn, agent_id)
            await self.core.audit(
                "identity.agent.remove" if change is None else "identity.agent.change",
                client=client,
                principal=principal,
                acting_for=org_id,
                target_kind="account",
                target_id=row["account_id"],
                details={
                    "agent_id": str(agent_id),
                    "roles": sorted(result["roles"]),
                    "status": result["status"],
                },
                connection=conn,
            )
        # After the commit (the row lock made any concurrent switch wait or see the change).
        async with self.core.pool.acquire() as conn:
            await self.core.sessions.clear_context(conn, row["account_id"], org_id)
        return self._agent_view(result)
