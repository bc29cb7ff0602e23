"""The account's lifecycle: profile, password, deactivation, data export (the mobile: mobile.py)."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from identity.audit import entries_for
from identity.auth import Principal
from identity.checks import mask_mobile, mask_resident_id
from identity.context import ClientInfo
from identity.core import IdentityCore
from identity.errors import Conflict, InsufficientAssurance
from identity.passwords import check_password_policy
from identity.persons.export import for_export
from identity.persons.models import Profile
from identity.persons.reauth import audit_account, check_password, end_other_sessions

__all__ = ["AccountService", "mask_name"]


def mask_name(name: str) -> str:
    return name[0] + "*" * (len(name) - 1) if len(name) > 1 else "*"


class AccountService:
    def __init__(self, core: IdentityCore) -> None:
        self.core = core

    async def _row(self, account_id: uuid.UUID) -> Any:
        row = await self.core.pool.fetchrow("SELECT * FROM identity.accounts WHERE id = $1", account_id)
        assert row is not None
        return row

    async def profile(self, principal: Principal) -> Profile:
        row = await self._row(principal.account_id)
        aid = principal.account_id
        name = self.core.open("name", aid, row["name_enc"])
        id_number = self.core.open("id_number", aid, row["id_number_enc"])
        return Profile(
            account_id=aid,
            status=row["status"],
            level=row["level"],
            mobile=mask_mobile(self.core.open("mobile", aid, row["mobile_enc"]) or ""),
            name=mask_name(name) if name else None,
            id_number=mask_resident_id(id_number) if id_number else None,
            verified_at=row["verified_at"],
            has_password=row["password_hash"] is not None,
            totp_enabled=row["totp_enabled_at"] is not None,
            created_at=row["created_at"],
        )

    async def set_password(
        self, principal: Principal, password: str, current: str | None, client: ClientInfo
    ) -> None:
        """Set or replace the password: the current one is required if there is one, and the session
        must be at the account's verified level (a reset must not bypass real-name or MFA)."""
        check_password_policy(password)
        row = await self._row(principal.account_id)
        if principal.loa < min(row["level"], 2):
            raise InsufficientAssurance(min(row["level"], 2), principal.loa)
        if row["password_hash"] is not None:
            await check_password(self.core, principal, row["password_hash"], current, client)
        new_hash = await self.core.hasher.hash(password)
        async with self.core.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """
                UPDATE identity.accounts
                SET password_hash = $2, password_changed_at = now(), updated_at = now()
                WHERE id = $1
                """,
                principal.account_id,
                new_hash,
            )
            # Whoever signed in with the old password is signed out with it (ASVS 7.4.3).
            ended = await end_other_sessions(self.core, conn, principal, "password changed")
            await audit_account(
                self.core,
                principal,
                client,
                "identity.password.set",
                details={"sessions_ended": ended},
                connection=conn,
            )

    async def deactivate(self, principal: Principal, client: ClientInfo) -> None:
        """Close the account: sessions end, agent roles end; the mobile and ID number become free."""
        aid = principal.account_id
        async with self.core.pool.acquire() as conn, conn.transaction():
            represents = await conn.fetchval(
                """
                SELECT count(*) FROM identity.agents
                WHERE account_id = $1 AND is_legal_representative AND status <> 'removed'
                """,
                aid,
            )
            if represents:
                raise Conflict("you are the legal representative of an organisation; hand it over first")
            await conn.execute(
                """
                UPDATE identity.accounts
                SET status = 'deactivated', deactivated_at = now(), updated_at = now()
                WHERE id = $1
                """,
                aid,
            )
            removed = await conn.execute(
                """
                UPDATE identity.agents SET status = 'removed', updated_at = now()
                WHERE account_id = $1 AND status <> 'removed'
                """,
                aid,
            )
            ended = await self.core.sessions.revoke_all(conn, aid, "deactivated")
            await self.core.audit(
                "identity.person.deactivate",
                client=client,
                principal=principal,
                target_kind="account",
                target_id=aid,
                details={"sessions_ended": ended, "agent_roles_ended": int(removed.split()[-1])},
                connection=conn,
            )

    async def export(self, principal: Principal, client: ClientInfo) -> dict[str, Any]:
        """Everything held about the person, unmasked (it is theirs), as one JSON document."""
        aid = principal.account_id
        row = await self._row(aid)
        attributes = self.core.open("attributes", aid, row["attributes_enc"])
        async with self.core.pool.acquire() as conn:
            agents = await conn.fetch(
                """
                SELECT g.id, g.organisation_id, o.credit_code, o.name, g.roles, g.is_legal_representative,
                       g.status, g.valid_until, g.created_at
                FROM identity.agents g JOIN identity.organisations o ON o.id = g.organisation_id
                WHERE g.account_id = $1 ORDER BY g.created_at
                """,
                aid,
            )
            sessions = await conn.fetch(
                """
                SELECT id, loa, amr, client_address, client_id, user_agent, created_at, expires_at,
                       revoked_at, revoked_reason
                FROM identity.sessions WHERE account_id = $1 ORDER BY created_at
                """,
                aid,
            )
            audit = [for_export(e, aid) for e in await entries_for(conn, aid, limit=10_000)]
            await self.core.audit(
                "identity.person.export",
                client=client,
                principal=principal,
                target_kind="account",
                target_id=aid,
                connection=conn,
            )
        document = {
            "account": {
                "id": aid,
                "status": row["status"],
                "level": row["level"],
                "mobile": self.core.open("mobile", aid, row["mobile_enc"]),
                "name": self.core.open("name", aid, row["name_enc"]),
                "id_number": self.core.open("id_number", aid, row["id_number_enc"]),
                "registry_attributes": msgspec.json.decode(attributes) if attributes else None,
                "verified_at": row["verified_at"],
                "password_set": row["password_hash"] is not None,
                "password_changed_at": row["password_changed_at"],
                "totp_enabled_at": row["totp_enabled_at"],
                "frozen_at": row["frozen_at"],
                "deactivated_at": row["deactivated_at"],
                "created_at": row["created_at"],
                "updated_at": row["updated_at"],
            },
            "organisation_roles": [dict(r) for r in agents],
            "sessions": [dict(r) for r in sessions],
            "audit_entries": audit,
        }
        exported: dict[str, Any] = msgspec.to_builtins(document)
        return exported
