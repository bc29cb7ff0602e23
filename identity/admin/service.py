"""What operators do: search, freeze and unfreeze, sessions, audit trails. Every action is audited."""

from __future__ import annotations

import uuid
from typing import Any

from identity._db import Connection
from identity.audit import AuditEntry, ChainReport, entries_for, verify_chain
from identity.auth import Principal
from identity.checks import mask_mobile, mask_resident_id
from identity.context import ClientInfo
from identity.core import IdentityCore
from identity.errors import Conflict, InvalidField, NotFound
from identity.persons import validation
from identity.persons.account import mask_name

from .models import AccountSummary, OrganisationSummary, SessionView

__all__ = ["AdminService"]

_ACCOUNTS_BY = {
    "mobile_index": "SELECT * FROM identity.accounts WHERE mobile_index = $1 ORDER BY created_at",
    "id_number_index": "SELECT * FROM identity.accounts WHERE id_number_index = $1 ORDER BY created_at",
}
_ORGANISATIONS = """
SELECT o.*, (SELECT count(*) FROM identity.agents g  -- invitations not accepted are no agents
             WHERE g.organisation_id = o.id AND g.status IN ('active', 'suspended')) AS agents
FROM identity.organisations o
WHERE o.credit_code = $1
   OR o.id IN (SELECT g.organisation_id FROM identity.agents g JOIN identity.accounts a ON a.id = g.account_id
               WHERE g.status <> 'removed' AND (a.mobile_index = $2 OR a.id_number_index = $3))
ORDER BY o.name
"""
_PEOPLE_BY = {
    "mobile_index": "SELECT id FROM identity.accounts WHERE mobile_index = $1",
    "id_number_index": "SELECT id FROM identity.accounts WHERE id_number_index = $1",
}


class AdminService:
    def __init__(self, core: IdentityCore) -> None:
        self.core = core

    def _summary(self, row: Any) -> AccountSummary:
        aid = row["id"]
        name = self.core.open("name", aid, row["name_enc"])
        id_number = self.core.open("id_number", aid, row["id_number_enc"])
        return AccountSummary(
            account_id=aid,
            status=row["status"],
            level=row["level"],
            mobile=mask_mobile(self.core.open("mobile", aid, row["mobile_enc"]) or ""),
            name=mask_name(name) if name else None,
            id_number=mask_resident_id(id_number) if id_number else None,
            created_at=row["created_at"],
            frozen_reason=row["frozen_reason"],
        )

    async def _audit_search(
        self,
        conn: Connection,
        action: str,
        principal: Principal,
        client: ClientInfo,
        *,
        details: dict[str, Any],
        targets: list[tuple[str, uuid.UUID]],
    ) -> None:
        """One event per account or organisation found, each naming it as the target: a trail is
        queried by target, so a person (and their export) sees every lookup that found them. The
        events of one search share its id; a search that found nothing is one event, no target."""
        search = str(uuid.uuid4())
        named: list[tuple[str | None, uuid.UUID | None]] = list(targets) or [(None, None)]
        async with conn.transaction():
            for kind, target in named:
                await self.core.audit(
                    action,
                    client=client,
                    principal=principal,
                    target_kind=kind,
                    target_id=target,
                    details={**details, "search": search},
                    connection=conn,
                )

    def _criterion(self, mobile: str | None, id_number: str | None) -> tuple[str, str, bytes]:
        if (mobile is None) == (id_number is None):
            raise InvalidField("query", "one_of", "search by exactly one of mobile or id_number")
        if mobile is not None:
            return "mobile", "mobile_index", self.core.index.mobile(validation.mobile(mobile))
        assert id_number is not None
        value = validation.id_number(id_number, self.core.today())
        return "id_number", "id_number_index", self.core.index.id_number(value)

    async def search_accounts(
        self, principal: Principal, client: ClientInfo, *, mobile: str | None, id_number: str | None
    ) -> list[AccountSummary]:
        """Through the blind index; deactivated accounts too (an operator may need to find them)."""
        by, column, digest = self._criterion(mobile, id_number)
        async with self.core.pool.acquire() as conn:
            rows = await conn.fetch(_ACCOUNTS_BY[column], digest)
            await self._audit_search(
                conn,
                "identity.admin.account.search",
                principal,
                client,
                details={"by": by, "found": len(rows)},
                targets=[("account", r["id"]) for r in rows],
            )
        return [self._summary(r) for r in rows]

    async def search_organisations(
        self,
        principal: Principal,
        client: ClientInfo,
        *,
        credit_code: str | None,
        mobile: str | None,
        id_number: str | None,
    ) -> list[OrganisationSummary]:
        """By credit code, or by the mobile or ID number of any of its agents."""
        async with self.core.pool.acquire() as conn:
            code, by_mobile, by_id = None, None, None
            targets: list[tuple[str, uuid.UUID]] = []
            if credit_code is not None:
                by, code = "credit_code", validation.credit_code(credit_code)
            else:
                by, column, digest = self._criterion(mobile, id_number)
                by_mobile, by_id = (digest, None) if column == "mobile_index" else (None, digest)
                # The person whose number was looked up, agent of anything or not, sees it too.
                people = await conn.fetch(_PEOPLE_BY[column], digest)
                targets += [("account", r["id"]) for r in people]
            rows = await conn.fetch(_ORGANISATIONS, code, by_mobile, by_id)
            targets += [("organisation", r["id"]) for r in rows]
            await self._audit_search(
                conn,
                "identity.admin.organisation.search",
                principal,
                client,
                details={"by": by, "found": len(rows)},
                targets=targets,
            )
        return [
            OrganisationSummary(
                id=r["id"],
                credit_code=r["credit_code"],
                name=r["name"],
                kind=r["kind"],
                legal_representative_id=r["legal_representative_id"],
                agents=r["agents"],
            )
            for r in rows
        ]

    async def account(
        self, principal: Principal, client: ClientInfo, account_id: uuid.UUID
    ) -> AccountSummary:
        async with self.core.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM identity.accounts WHERE id = $1", account_id)
            if row is None:
                raise NotFound("no such account")
            await self.core.audit(
                "identity.admin.account.view",
                client=client,
                principal=principal,
                target_kind="account",
                target_id=account_id,
                connection=conn,
            )
        return self._summary(row)

    async def set_frozen(
        self, principal: Principal, client: ClientInfo, account_id: uuid.UUID, *, frozen: bool, reason: str
    ) -> AccountSummary:
        reason = reason.strip()
        if not 3 <= len(reason) <= 500:
            raise InvalidField("reason", "length", "give a reason of 3 to 500 characters")
        async with self.core.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT status FROM identity.accounts WHERE id = $1 FOR UPDATE", account_id
            )
            if row is None:
                raise NotFound("no such account")
            wanted, current = ("frozen", "active") if frozen else ("active", "frozen")
            if row["status"] != current:
                raise Conflict(f"the account is {row['status']}, not {current}")
            updated = await conn.fetchrow(
                """
                UPDATE identity.accounts
                SET status = $2, frozen_at = CASE WHEN $3 THEN now() END,
                    frozen_reason = CASE WHEN $3 THEN $4 END, updated_at = now()
                WHERE id = $1 RETURNING *
                """,
                account_id,
                wanted,
                frozen,
                reason,
            )
            ended = await self.core.sessions.revoke_all(conn, account_id, "frozen") if frozen else 0
            await self.core.audit(
                "identity.admin.account.freeze" if frozen else "identity.admin.account.unfreeze",
                client=client,
                principal=principal,
                target_kind="account",
                target_id=account_id,
                details={"reason": reason, "sessions_ended": ended},
                connection=conn,
            )
        return self._summary(updated)

    async def sessions(
        self, principal: Principal, client: ClientInfo, account_id: uuid.UUID
    ) -> list[SessionView]:
        async with self.core.pool.acquire() as conn:
            rows = await conn.fetch(
                """
                SELECT *, (revoked_at IS NULL AND expires_at > now()) AS live FROM identity.sessions
                WHERE account_id = $1 ORDER BY created_at DESC LIMIT 200
                """,
                account_id,
            )
            await self.core.audit(
                "identity.admin.sessions.view",
                client=client,
                principal=principal,
                target_kind="account",
                target_id=account_id,
                connection=conn,
            )
        return [
            SessionView(
                id=r["id"],
                loa=r["loa"],
                amr=list(r["amr"]),
                client_address=r["client_address"],
                client_id=r["client_id"],
                user_agent=r["user_agent"],
                created_at=r["created_at"],
                expires_at=r["expires_at"],
                revoked_at=r["revoked_at"],
                revoked_reason=r["revoked_reason"],
                live=r["live"],
            )
            for r in rows
        ]

    async def revoke_session(self, principal: Principal, client: ClientInfo, session_id: uuid.UUID) -> None:
        async with self.core.pool.acquire() as conn:
            account_id = await self.core.sessions.revoke(conn, session_id, "revoked by an operator")
            if account_id is None:
                raise NotFound("no live session with this id")
            await self.core.audit(
                "identity.admin.session.revoke",
                client=client,
                principal=principal,
                target_kind="session",
                target_id=session_id,
                details={"account_id": str(account_id)},
                connection=conn,
            )

    async def audit_trail(
        self, principal: Principal, client: ClientInfo, subject: uuid.UUID
    ) -> list[AuditEntry]:
        async with self.core.pool.acquire() as conn:
            entries = await entries_for(conn, subject, limit=500)
            await self.core.audit(
                "identity.admin.audit.view",
                client=client,
                principal=principal,
                target_kind="account",
                target_id=subject,
                details={"entries": len(entries)},
                connection=conn,
            )
        return entries

    async def verify(self, principal: Principal, client: ClientInfo) -> ChainReport:
        async with self.core.pool.acquire() as conn:
            report = await verify_chain(conn)
            await self.core.audit(
                "identity.admin.audit.verify",
                client=client,
                principal=principal,
                outcome="success" if report.ok else "failure",
                details={"entries": report.entries, "first_broken_seq": report.first_broken_seq},
                connection=conn,
            )
        return report
