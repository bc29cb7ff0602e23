"""Register an organisation as its legal representative, and act for an organisation (the agents
themselves: ``identity.organisations.agents``)."""

from __future__ import annotations

import uuid

from identity.auth import ORG_ROLES, Principal
from identity.context import ClientInfo
from identity.core import IdentityCore, unique_as
from identity.errors import Conflict, DuplicateRegistration, Forbidden, InvalidField, RegistryUnavailable
from identity.organisations.agents import AgentService, agent_row
from identity.organisations.models import Membership, OrganisationRegistration, OrganisationView
from identity.persons import validation
from identity.persons.account import mask_name
from identity.persons.models import ContextState
from identity.sessions import ActingContext
from integrations.registries import UpstreamError

__all__ = ["ContextNotCarried", "OrganisationService"]

_NO_ROLE = "you hold no role in this organisation"


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
        self.appointments = AgentService(core)

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
        """The person's roles, and the invitations waiting for their answer (status "invited"). One
        whose end date has passed is "expired", whatever its row says: it gives no role any more."""
        rows = await self.core.pool.fetch(
            """
            SELECT g.organisation_id, o.credit_code, o.name, g.roles, g.is_legal_representative,
                   CASE WHEN g.valid_until <= now() THEN 'expired' ELSE g.status END AS status,
                   g.valid_until
            FROM identity.agents g JOIN identity.organisations o ON o.id = g.organisation_id
            WHERE g.account_id = $1 AND g.status NOT IN ('removed', 'declined') ORDER BY o.name
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
            row = await agent_row(conn, org_id, principal.account_id)
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
