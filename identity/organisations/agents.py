"""An organisation's agents: the legal representative invites a verified person with roles and an
end date; the person accepts (or declines) before they can act for the organisation; the
representative changes, suspends or removes them.

An invitation names the person by ID number and name. Each attempt counts against the
representative (``AttemptLimiter``, released when a verified account matches), and "no verified
account" and "wrong name" are one answer, so the form is not an oracle on who holds an account.
The invited person is told by SMS (through the outbox) once the invitation is committed; a refused
invitation sends nothing to anyone.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Final

from redis.exceptions import RedisError

from identity._db import Connection
from identity.auth import ORG_ROLES, Principal
from identity.checks import mask_resident_id
from identity.context import ClientInfo
from identity.core import CHINA, IdentityCore, unique_as
from identity.errors import Conflict, Forbidden, InvalidField, NotFound
from identity.organisations.models import AgentAppointment, AgentChange, AgentView, Membership
from identity.persons import validation
from identity.persons.account import mask_name

__all__ = ["INVITATION_SMS", "AgentService", "agent_row", "default_end"]

# Invitations still waiting for an answer, or refused: neither is a role the person holds.
_UNANSWERED: Final = frozenset({"invited", "declined"})
# Names the organisation only (it comes from the enterprise registry): no ID number, no name of the
# person, nothing a stranger reading the phone's lock screen could use.
INVITATION_SMS: Final = (
    "【市民通】{organisation} 邀请您担任经办人。请打开市民通 App，在“我的单位”中接受或拒绝；"
    "如不认识该单位，请拒绝。"
)
INVITATION_SMS_EVERY: Final = 86_400  # seconds: at most one invitation SMS per organisation and person


def _roles(values: list[str]) -> list[str]:
    roles = sorted(set(values))
    if not roles:
        raise InvalidField("roles", "empty", "name at least one role")
    unknown = [r for r in roles if r not in ORG_ROLES]
    if unknown:
        raise InvalidField("roles", "unknown_role", f"roles are {', '.join(ORG_ROLES)}")
    return roles


def default_end(today: dt.date) -> dt.date:
    """The last day of an appointment made without an end date: one year, to the day before the
    same date next year (29 February: to 28 February). Every agent has an end (the table's check),
    so that a forgotten appointment lapses rather than lasting for ever."""
    try:
        anniversary = today.replace(year=today.year + 1)
    except ValueError:
        anniversary = dt.date(today.year + 1, 3, 1)
    return anniversary - dt.timedelta(days=1)


def _already(message: str, rule: str) -> Conflict:
    """A 409 naming the rule on ``id_number`` (the person the form named), for a client to show
    next to that field."""
    return Conflict(message, extra={"errors": [{"field": "id_number", "rule": rule, "message": message}]})


def _end(ends_on: dt.date, today: dt.date) -> dt.datetime:
    if ends_on < today:
        raise InvalidField("ends_on", "in_the_past", "the end date is in the past")
    return dt.datetime.combine(ends_on + dt.timedelta(days=1), dt.time(0), tzinfo=CHINA)


async def agent_row(conn: Connection, org_id: uuid.UUID, account_id: uuid.UUID) -> Any:
    """The person's live, accepted role in the organisation (share-locked), or None."""
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


class AgentService:
    def __init__(self, core: IdentityCore) -> None:
        self.core = core

    async def _require_representative(
        self, conn: Connection, principal: Principal, org_id: uuid.UUID
    ) -> None:
        row = await agent_row(conn, org_id, principal.account_id)
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

    async def _agent_full(self, conn: Connection, agent_id: uuid.UUID) -> Any:
        return await conn.fetchrow(
            """
            SELECT g.*, a.name_enc, a.id_number_enc FROM identity.agents g
            JOIN identity.accounts a ON a.id = g.account_id WHERE g.id = $1
            """,
            agent_id,
        )

    async def agents(self, principal: Principal, org_id: uuid.UUID) -> list[AgentView]:
        """Agents and invitations (pending or declined) of the organisation, for its representative."""
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

    async def invite(
        self, principal: Principal, org_id: uuid.UUID, req: AgentAppointment, client: ClientInfo
    ) -> AgentView:
        """Invite a verified person as an agent; they hold no role until they accept."""
        id_number = validation.id_number(req.id_number, self.core.today())
        name = validation.person_name(req.name)
        roles = _roles(req.roles)
        ends_on = req.ends_on or default_end(self.core.today())
        until = _end(ends_on, self.core.today())
        async with self.core.pool.acquire() as conn, conn.transaction():
            await self._require_representative(conn, principal, org_id)
        # Per representative, not per account: a failed search must not lock them out of signing in.
        subject = f"invite:{principal.account_id}"
        await self.core.limiter.reserve(subject, client.address)
        person = await self.core.pool.fetchrow(
            """
            SELECT id, name_enc, mobile_enc FROM identity.accounts
            WHERE id_number_index = $1 AND status = 'active' AND level >= 2
            """,
            self.core.index.id_number(id_number),
        )
        if person is None or self.core.open("name", person["id"], person["name_enc"]) != name:
            await self.core.audit(
                "identity.agent.invite",
                client=client,
                principal=principal,
                acting_for=org_id,
                outcome="failure",
                details={"rule": "no_matching_account"},
            )
            # One answer for "no verified account" and "another name": no oracle on either.
            raise InvalidField(
                "id_number", "no_matching_account", "no verified account has this ID number and name"
            )
        await self.core.limiter.release(subject, client.address)
        if person["id"] == principal.account_id:
            raise _already("the legal representative already holds every role", "is_representative")
        mobile = self.core.open("mobile", person["id"], person["mobile_enc"])
        # One message per organisation and person a day: invite, withdraw (or be declined) and
        # invite again must not make a representative a way to text someone without end.
        notify = mobile is not None and await self._may_notify(org_id, person["id"])
        agent_id = uuid.uuid4()
        conflict = _already("this person is already an agent or invited", "already_agent")
        with unique_as("agents_one_live", conflict):
            async with self.core.pool.acquire() as conn, conn.transaction():
                await self._require_representative(conn, principal, org_id)
                await conn.execute(
                    """
                    INSERT INTO identity.agents
                        (id, organisation_id, account_id, roles, valid_until, appointed_by, status)
                    VALUES ($1, $2, $3, $4, $5, $6, 'invited')
                    """,
                    agent_id,
                    org_id,
                    person["id"],
                    roles,
                    until,
                    principal.account_id,
                )
                await self.core.audit(
                    "identity.agent.invite",
                    client=client,
                    principal=principal,
                    acting_for=org_id,
                    target_kind="account",
                    target_id=person["id"],
                    details={
                        "agent_id": str(agent_id),
                        "roles": roles,
                        "ends_on": ends_on.isoformat(),
                        "notified": notify,
                    },
                    connection=conn,
                )
                row = await self._agent_full(conn, agent_id)
                organisation = await conn.fetchval(
                    "SELECT name FROM identity.organisations WHERE id = $1", org_id
                )
        # Queued after the commit, in the same call: the outbox hands the message to the gateway at
        # once, in the background, so queued inside the transaction it would go out for an
        # invitation that then rolls back. Never awaited: the answer does not wait for the gateway.
        if mobile and notify:
            self.core.outbox.send(mobile, INVITATION_SMS.format(organisation=organisation))
        return self._agent_view(row)

    async def _may_notify(self, org_id: uuid.UUID, account_id: uuid.UUID) -> bool:
        """Whether no invitation SMS went to this person for this organisation in the last day. A
        Redis failure sends none (the invitation stands; the person sees it in the app)."""
        try:
            first = await self.core.redis.set(
                f"identity:invite-sms:{org_id}:{account_id}", b"1", nx=True, ex=INVITATION_SMS_EVERY
            )
        except RedisError:
            return False
        return bool(first)

    async def answer(
        self, principal: Principal, org_id: uuid.UUID, accept: bool, client: ClientInfo
    ) -> Membership:
        """The invited person accepts (the roles become theirs) or declines the invitation."""
        async with self.core.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """
                UPDATE identity.agents SET status = $3, updated_at = now()
                WHERE organisation_id = $1 AND account_id = $2 AND status = 'invited'
                  AND valid_until > now()
                RETURNING id, roles, valid_until
                """,
                org_id,
                principal.account_id,
                "active" if accept else "declined",
            )
            if row is None:
                raise NotFound("no pending invitation from this organisation")
            await self.core.audit(
                "identity.agent.accept" if accept else "identity.agent.decline",
                client=client,
                principal=principal,
                acting_for=org_id,
                target_kind="account",
                target_id=principal.account_id,
                details={"agent_id": str(row["id"]), "roles": sorted(row["roles"])},
                connection=conn,
            )
            org = await conn.fetchrow(
                "SELECT credit_code, name FROM identity.organisations WHERE id = $1", org_id
            )
            assert org is not None  # the agent row references it
        return Membership(
            organisation_id=org_id,
            credit_code=org["credit_code"],
            name=org["name"],
            roles=sorted(row["roles"]),
            is_legal_representative=False,
            status="active" if accept else "declined",
            valid_until=row["valid_until"],
        )

    async def change(
        self,
        principal: Principal,
        org_id: uuid.UUID,
        agent_id: uuid.UUID,
        change: AgentChange | None,
        client: ClientInfo,
    ) -> AgentView:
        """Change roles, end date or status; ``change=None`` removes the agent (or withdraws an
        invitation). Their sessions acting for the organisation drop back to acting for themselves."""
        roles = _roles(change.roles) if change and change.roles is not None else None
        until = _end(change.ends_on, self.core.today()) if change and change.ends_on else None
        status = "removed" if change is None else change.status
        async with self.core.pool.acquire() as conn, conn.transaction():
            await self._require_representative(conn, principal, org_id)
            row = await conn.fetchrow(
                """
                SELECT account_id, is_legal_representative, status FROM identity.agents
                WHERE id = $1 AND organisation_id = $2 AND status <> 'removed' FOR UPDATE
                """,
                agent_id,
                org_id,
            )
            if row is None:
                raise Forbidden("no such agent in this organisation")
            if row["is_legal_representative"]:
                raise Conflict("the legal representative's roles come from the registry")
            if row["status"] in _UNANSWERED and change is not None:
                # Else "status": "active" would make someone an agent without their consent.
                raise Conflict("the person has not accepted this invitation; withdraw it and invite again")
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
