"""The second factor (TOTP, RFC 6238) and step-up to L3 within the same session."""

from __future__ import annotations

import base64

from identity.auth import Principal
from identity.checks import mask_mobile
from identity.context import ClientInfo
from identity.core import IdentityCore
from identity.errors import Conflict, InsufficientAssurance
from identity.persons import validation
from identity.persons.models import SessionIssued, TotpEnrolment
from identity.persons.reauth import consume_totp_step, end_other_sessions, match_totp
from identity.totp import new_secret, otpauth_uri

__all__ = ["FactorService"]


class FactorService:
    def __init__(self, core: IdentityCore) -> None:
        self.core = core

    async def begin_totp(self, principal: Principal, client: ClientInfo) -> TotpEnrolment:
        """A new secret, pending until a code from it is confirmed. Needs L2 (L3 to replace one)."""
        aid = principal.account_id
        row = await self.core.pool.fetchrow(
            "SELECT level, totp_enabled_at, mobile_enc FROM identity.accounts WHERE id = $1", aid
        )
        assert row is not None
        if row["level"] < 2:
            raise Conflict("verify your real name first: a second factor raises a verified account to L3")
        if row["totp_enabled_at"] is not None and principal.loa < 3:
            raise InsufficientAssurance(3, principal.loa)
        secret = new_secret()
        await self.core.pool.execute(
            "UPDATE identity.accounts SET totp_pending_enc = $2, updated_at = now() WHERE id = $1",
            aid,
            self.core.seal("totp_pending", aid, secret),
        )
        await self.core.audit(
            "identity.totp.begin", client=client, principal=principal, target_kind="account", target_id=aid
        )
        label = mask_mobile(self.core.open("mobile", aid, row["mobile_enc"]) or "")
        return TotpEnrolment(
            secret=base64.b32encode(secret).decode().rstrip("="), otpauth_uri=otpauth_uri(secret, label)
        )

    async def confirm_totp(
        self, principal: Principal, token: str, raw_code: str, client: ClientInfo
    ) -> SessionIssued:
        code = validation.code_format(raw_code)
        aid = principal.account_id
        row = await self.core.pool.fetchrow(
            "SELECT level, totp_pending_enc, totp_enabled_at FROM identity.accounts WHERE id = $1", aid
        )
        assert row is not None
        if row["totp_pending_enc"] is None:
            raise Conflict("no TOTP enrolment is pending; start one first")
        secret = self.core.open_bytes("totp_pending", aid, row["totp_pending_enc"])
        step = await match_totp(self.core, principal, secret, code, client)
        async with self.core.pool.acquire() as conn, conn.transaction():
            done = await conn.execute(
                """
                UPDATE identity.accounts
                SET totp_secret_enc = $2, totp_pending_enc = NULL, totp_enabled_at = now(),
                    totp_last_step = $3, level = 3, updated_at = now()
                WHERE id = $1 AND totp_pending_enc = $4 AND level >= 2 AND status = 'active'
                """,
                aid,
                self.core.seal("totp", aid, secret),
                step,
                row["totp_pending_enc"],
            )
            if done != "UPDATE 1":
                raise Conflict("the enrolment changed meanwhile; start again")
            amr = tuple(sorted({*principal.amr, "otp"}))
            new_token = await self.core.sessions.raise_level(conn, principal, token, loa=3, amr=amr)
            details: dict[str, object] = {"level": 3}
            if row["totp_enabled_at"] is not None:
                # A replaced second factor shuts out whoever held the old one (ASVS 7.4.3).
                details["replaced"] = True
                details["sessions_ended"] = await end_other_sessions(
                    self.core, conn, principal, "second factor replaced"
                )
            await self.core.audit(
                "identity.totp.enable",
                client=client,
                principal=principal,
                target_kind="account",
                target_id=aid,
                details=details,
                connection=conn,
            )
        return SessionIssued(
            token=new_token,
            session_id=principal.session_id,
            account_id=aid,
            loa=3,
            expires_at=principal.expires_at,
        )

    async def step_up(
        self, principal: Principal, token: str, raw_code: str, client: ClientInfo
    ) -> SessionIssued:
        """L2 session -> L3 with a TOTP code; each time step is accepted once (replay refused)."""
        code = validation.code_format(raw_code)
        aid = principal.account_id
        row = await self.core.pool.fetchrow(
            "SELECT level, totp_secret_enc FROM identity.accounts WHERE id = $1", aid
        )
        assert row is not None
        if row["level"] < 3 or row["totp_secret_enc"] is None:
            raise Conflict("this account has no second factor; enrol TOTP first")
        secret = self.core.open_bytes("totp", aid, row["totp_secret_enc"])
        step = await match_totp(self.core, principal, secret, code, client)
        async with self.core.pool.acquire() as conn, conn.transaction():
            await consume_totp_step(conn, principal, step, "code")
            amr = tuple(sorted({*principal.amr, "otp"}))
            new_token = await self.core.sessions.raise_level(conn, principal, token, loa=3, amr=amr)
            await self.core.audit(
                "identity.session.step_up",
                client=client,
                principal=principal,
                target_kind="session",
                target_id=principal.session_id,
                details={"loa": 3},
                connection=conn,
            )
        return SessionIssued(
            token=new_token,
            session_id=principal.session_id,
            account_id=aid,
            loa=3,
            expires_at=principal.expires_at,
        )
