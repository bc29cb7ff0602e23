"""Change of the account's mobile number: the number signs in and receives every code, so changing
it is changing a factor.

A bearer session alone must not be enough: with a stolen session and a code sent to a number of
their own, anyone could move the account to that number and keep it (the owner can no longer sign
in, the second factor is bypassed). So the change needs fresh proof of a factor the account already
has (ASVS 7.5.1): a code sent to the current number or the current password, and the TOTP code when
the account has a second factor. The new number proves itself with its own code. The current
number is told when a change is asked for and when it is done (ASVS 6.3.7), and every other session
and OpenID grant ends (ASVS 7.4.3).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from identity.auth import Principal
from identity.checks import mask_mobile
from identity.context import ClientInfo
from identity.core import IdentityCore, code_error, unique_as
from identity.errors import DuplicateRegistration, InvalidCredentials, InvalidField, TooManyAttempts
from identity.limits import CodeOutcome
from identity.persons import validation
from identity.persons.account import AccountService
from identity.persons.models import CodeSent, MobileChange, Profile
from identity.persons.reauth import (
    audit_account,
    check_password,
    consume_totp_step,
    end_other_sessions,
    match_totp,
)
from identity.persons.service import _SMS

__all__ = ["MobileService"]

_SMS_CURRENT = (
    "【市民通】您正在更换账号绑定的手机号，验证码 {code}，{minutes} 分钟内有效。"
    "如非本人操作，请勿提供验证码并立即修改密码。"
)
_SMS_CHANGED = "【市民通】您的账号绑定手机号已更换为 {masked}。如非本人操作，请立即联系客服。"


@dataclasses.dataclass
class Proof:
    """What the person proved afresh: the factors (audited), and the TOTP step to spend."""

    factors: list[str] = dataclasses.field(default_factory=list)
    totp_step: int | None = None


class MobileService:
    def __init__(self, core: IdentityCore, accounts: AccountService) -> None:
        self.core = core
        self.accounts = accounts

    @staticmethod
    def _purposes(principal: Principal) -> tuple[str, str]:
        """The codes' purposes: to the new number, and to the current one."""
        aid = principal.account_id
        return f"change_mobile:{aid}", f"change_mobile_current:{aid}"

    async def _current_mobile(self, principal: Principal) -> str:
        aid = principal.account_id
        blob = await self.core.pool.fetchval("SELECT mobile_enc FROM identity.accounts WHERE id = $1", aid)
        current = self.core.open("mobile", aid, blob)
        assert current is not None
        return current

    async def send_codes(self, principal: Principal, raw_mobile: str, client: ClientInfo) -> CodeSent:
        """A code to the new number, and one to the current number, which also tells its holder that
        a change was asked for (if it was not them, they change the password)."""
        mobile = validation.mobile(raw_mobile)
        current = await self._current_mobile(principal)
        to_new, to_current = self._purposes(principal)
        issued = await self.core.codes.issue(to_new, self.core.index.mobile(mobile).hex(), client.address)
        proof = await self.core.codes.issue(to_current, self.core.index.mobile(current).hex(), client.address)
        minutes = issued.expires_in // 60
        self.core.outbox.send(mobile, _SMS.format(code=issued.code, minutes=minutes))
        self.core.outbox.send(current, _SMS_CURRENT.format(code=proof.code, minutes=minutes))
        return CodeSent(mobile=mask_mobile(mobile), expires_in=issued.expires_in)

    async def _check_code(
        self, principal: Principal, purpose: str, mobile: str, code: str, *, field: str, client: ClientInfo
    ) -> None:
        outcome = await self.core.codes.verify(
            purpose,
            self.core.index.mobile(mobile).hex(),
            validation.code_format(code, field),
            lock_subject=str(principal.account_id),
            address=client.address,
        )
        if outcome is not CodeOutcome.OK:
            raise code_error(outcome, field)

    async def _prove(
        self, principal: Principal, request: MobileChange, row: Any, client: ClientInfo
    ) -> Proof:
        """Check the fresh proofs. The second factor first, then the current number or password:
        each failure counts against the account, and codes (spent when right) come last, so a wrong
        TOTP code or password does not cost the person their SMS codes."""
        aid = principal.account_id
        proof = Proof()
        if row["totp_secret_enc"] is not None:
            if request.totp_code is None:
                raise InvalidField("totp_code", "required", "this account has a second factor: give its code")
            secret = self.core.open_bytes("totp", aid, row["totp_secret_enc"])
            totp_code = validation.code_format(request.totp_code, "totp_code")
            proof.totp_step = await match_totp(self.core, principal, secret, totp_code, client)
            proof.factors.append("otp")
        to_new, to_current = self._purposes(principal)
        if request.current_mobile_code is not None:
            current = self.core.open("mobile", aid, row["mobile_enc"]) or ""
            await self._check_code(
                principal,
                to_current,
                current,
                request.current_mobile_code,
                field="current_mobile_code",
                client=client,
            )
            proof.factors.append("sms_current")
        elif request.current_password is not None and row["password_hash"] is not None:
            await check_password(self.core, principal, row["password_hash"], request.current_password, client)
            proof.factors.append("pwd")
        else:
            raise InvalidField(
                "current_mobile_code",
                "required",
                "give the code sent to the current number (or the current password, if one is set)",
            )
        new = validation.mobile(request.mobile)
        await self._check_code(principal, to_new, new, request.code, field="code", client=client)
        return proof

    async def change(self, principal: Principal, request: MobileChange, client: ClientInfo) -> Profile:
        mobile = validation.mobile(request.mobile)
        aid = principal.account_id
        row = await self.core.pool.fetchrow(
            "SELECT mobile_enc, password_hash, totp_secret_enc FROM identity.accounts WHERE id = $1", aid
        )
        assert row is not None
        current = self.core.open("mobile", aid, row["mobile_enc"])
        assert current is not None
        try:
            proof = await self._prove(principal, request, row, client)
        except (InvalidField, InvalidCredentials, TooManyAttempts) as exc:
            rule = exc.rule if isinstance(exc, InvalidField) else type(exc).__name__
            await audit_account(
                self.core,
                principal,
                client,
                "identity.mobile.change",
                outcome="failure",
                details={"rule": rule},
            )
            raise
        index = self.core.index.mobile(mobile)
        with unique_as(
            "accounts_mobile_index", DuplicateRegistration("another account uses this mobile number")
        ):
            async with self.core.pool.acquire() as conn, conn.transaction():
                if proof.totp_step is not None:
                    await consume_totp_step(conn, principal, proof.totp_step, "totp_code")
                await conn.execute(
                    """
                    UPDATE identity.accounts SET mobile_enc = $2, mobile_index = $3, updated_at = now()
                    WHERE id = $1
                    """,
                    aid,
                    self.core.seal("mobile", aid, mobile),
                    index,
                )
                ended = await end_other_sessions(self.core, conn, principal, "mobile number changed")
                await audit_account(
                    self.core,
                    principal,
                    client,
                    "identity.mobile.change",
                    details={"proofs": proof.factors, "sessions_ended": ended},
                    connection=conn,
                )
        self.core.outbox.send(current, _SMS_CHANGED.format(masked=mask_mobile(mobile)))
        return await self.accounts.profile(principal)
