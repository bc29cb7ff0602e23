"""Registration with a confirmed mobile, sign-in (code or password) and real-name verification."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from identity._db import Connection
from identity.audit import pending_insert, pending_params, recorded
from identity.auth import Principal
from identity.checks import mask_mobile
from identity.context import ClientInfo
from identity.core import IdentityCore, code_error, unique_as
from identity.errors import (
    AccountUnavailable,
    Conflict,
    DuplicateRegistration,
    InvalidCredentials,
    InvalidField,
    RegistryUnavailable,
)
from identity.limits import CodeOutcome
from identity.passwords import check_password_policy
from identity.persons import validation
from identity.persons.models import CodeSent, SessionIssued
from identity.persons.reauth import audit_account
from identity.sessions import INSERT_COLUMNS
from integrations.registries import UpstreamError, VerificationResult

__all__ = ["PersonService", "session_loa"]

_SMS = "【市民通】验证码 {code}，{minutes} 分钟内有效。请勿告诉他人。"
_OPEN_SESSION = f"""
WITH account AS (
    SELECT id FROM identity.accounts WHERE id = $3 AND status = 'active' FOR SHARE
), session AS (
    INSERT INTO identity.sessions ({INSERT_COLUMNS})
    SELECT $1, $2, id, $4, $5, $6, $7, $8, $9, $10, $11 FROM account
    RETURNING id
), audit AS ({pending_insert(12, "session")})
SELECT count(*) = 1 FROM audit
"""  # noqa: S608 - constants only


def session_loa(level: int, second_factor: bool) -> int:
    """A sign-in reaches the account's level, except L3, which needs the second factor in this session."""
    return min(level, 3 if second_factor else 2)


class PersonService:
    def __init__(self, core: IdentityCore) -> None:
        self.core = core

    async def _account_by_mobile(self, mobile: str) -> tuple[uuid.UUID, str, int, str | None] | None:
        row = await self.core.pool.fetchrow(
            """
            SELECT id, status, level, password_hash FROM identity.accounts
            WHERE mobile_index = $1 AND status <> 'deactivated'
            """,
            self.core.index.mobile(mobile),
        )
        return None if row is None else (row["id"], row["status"], row["level"], row["password_hash"])

    async def find_by_id_number(self, raw_id: str) -> uuid.UUID | None:
        """The live verified account holding this ID number (through the blind index), if any."""
        id_number = validation.id_number(raw_id, self.core.today())
        found: uuid.UUID | None = await self.core.pool.fetchval(
            """
            SELECT id FROM identity.accounts
            WHERE id_number_index = $1 AND status <> 'deactivated' AND id_number_index IS NOT NULL
            """,
            self.core.index.id_number(id_number),
        )
        return found

    async def send_code(self, purpose: str, raw_mobile: str, client: ClientInfo) -> CodeSent:
        """Send a one-time code; for "login" to an unknown number nothing is sent, with the same answer.

        The message goes through the outbox, never awaited here: awaiting the gateway for
        registered numbers only would answer them later and tell them apart (ASVS 6.3.8).
        """
        mobile = validation.mobile(raw_mobile)
        subject = self.core.index.mobile(mobile).hex()
        issued = await self.core.codes.issue(purpose, subject, client.address)
        if purpose == "register" or await self._account_by_mobile(mobile) is not None:
            self.core.outbox.send(mobile, _SMS.format(code=issued.code, minutes=issued.expires_in // 60))
        return CodeSent(mobile=mask_mobile(mobile), expires_in=issued.expires_in)

    def _lock_subjects(self, mobile: str, account_id: uuid.UUID | None) -> tuple[str, ...]:
        """What a failed sign-in or registration counts against: always the mobile number, and its
        account when it has one. The number's counter is the same in every flow, so whether a number
        is locked never depends on whether it is registered (ASVS 6.3.8, no enumeration through
        lockout state); the account's counter keeps the lockout across a change of number."""
        by_mobile = "m:" + self.core.index.mobile(mobile).hex()
        return (by_mobile,) if account_id is None else (by_mobile, str(account_id))

    async def _check_code(
        self, purpose: str, mobile: str, code: str, lock_subject: tuple[str, ...], client: ClientInfo
    ) -> None:
        subject = self.core.index.mobile(mobile).hex()
        outcome = await self.core.codes.verify(
            purpose, subject, code, lock_subject=lock_subject, address=client.address
        )
        if outcome is not CodeOutcome.OK:
            raise code_error(outcome)

    async def register(
        self, raw_mobile: str, raw_code: str, password: str | None, client: ClientInfo
    ) -> SessionIssued:
        mobile = validation.mobile(raw_mobile)
        code = validation.code_format(raw_code)
        if password is not None:
            check_password_policy(password)
        mobile_index = self.core.index.mobile(mobile)
        await self._check_code("register", mobile, code, self._lock_subjects(mobile, None), client)
        password_hash = await self.core.hasher.hash(password) if password else None
        account_id = uuid.uuid4()
        duplicate = DuplicateRegistration("an account with this mobile number exists; sign in instead")
        with unique_as("accounts_mobile_index", duplicate):
            async with self.core.pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    """
                    INSERT INTO identity.accounts
                        (id, mobile_enc, mobile_index, password_hash, password_changed_at)
                    VALUES ($1, $2, $3, $4, CASE WHEN $4::text IS NULL THEN NULL ELSE now() END)
                    """,
                    account_id,
                    self.core.seal("mobile", account_id, mobile),
                    mobile_index,
                    password_hash,
                )
                await self.core.audit(
                    "identity.person.register",
                    client=client,
                    actor_kind="person",
                    actor_id=account_id,
                    target_kind="account",
                    target_id=account_id,
                    details={"level": 1, "password": password is not None},
                    connection=conn,
                )
        return await self.open_session(account_id, 1, ("sms",), client)

    async def open_session(
        self, account_id: uuid.UUID, loa: int, amr: tuple[str, ...], client: ClientInfo
    ) -> SessionIssued:
        """A new session, refused if the account is not active.

        One round trip each to Redis and PostgreSQL (sign-ins are the hot path): the session is
        published to Redis first (its token has not left this function), then one statement
        share-locks the account if it is active, records the session and its audit event, and
        commits. A concurrent freeze either waits for that lock and then revokes the recorded
        session, Redis included, or commits first, and the statement then finds no active account
        and the published session is withdrawn.
        """
        ttl = self.core.settings.session_ttl
        sessions = self.core.sessions
        token, digest, session = sessions.new(
            account_id=account_id, kind="person", loa=loa, amr=amr, ttl=ttl, client=client
        )
        event = self.core.audit_event(
            "identity.session.create",
            client=client,
            actor_kind="person",
            actor_id=account_id,
            target_kind="session",
            target_id=session.sid,
            details={"loa": loa, "amr": list(amr)},
        )
        await sessions.publish(digest, session, ttl)
        try:
            opened = await self.core.pool.fetchval(
                _OPEN_SESSION, *sessions.record_params(digest, session, client, ttl), *pending_params(event)
            )
        except BaseException:
            await sessions.unpublish(digest)
            raise
        if not opened:
            await sessions.unpublish(digest)
            status = await self.core.pool.fetchval(
                "SELECT status FROM identity.accounts WHERE id = $1", account_id
            )
            raise AccountUnavailable(f"the account is {status or 'unknown'}")
        recorded()
        return SessionIssued(
            token=token, session_id=session.sid, account_id=account_id, loa=loa, expires_at=session.exp
        )

    async def _login_failed(
        self, client: ClientInfo, account_id: uuid.UUID | None, method: str, rule: str
    ) -> None:
        await self.core.audit(
            "identity.session.create",
            client=client,
            actor_kind="person" if account_id else "anonymous",
            actor_id=account_id,
            target_kind="account" if account_id else None,
            target_id=account_id,
            outcome="failure",
            details={"method": method, "rule": rule},
        )

    async def login_with_code(self, raw_mobile: str, raw_code: str, client: ClientInfo) -> SessionIssued:
        mobile = validation.mobile(raw_mobile)
        code = validation.code_format(raw_code)
        account = await self._account_by_mobile(mobile)
        lock_subject = self._lock_subjects(mobile, account[0] if account else None)
        try:
            await self._check_code("login", mobile, code, lock_subject, client)
        except InvalidField as exc:
            await self._login_failed(client, account[0] if account else None, "sms", exc.rule)
            raise
        if account is None:  # a code is only ever sent to a registered number
            raise code_error(CodeOutcome.NOT_ISSUED)
        account_id, _status, level, _ = account
        return await self.open_session(account_id, session_loa(level, False), ("sms",), client)

    async def login_with_password(self, raw_mobile: str, password: str, client: ClientInfo) -> SessionIssued:
        mobile = validation.mobile(raw_mobile)
        account = await self._account_by_mobile(mobile)
        lock_subject = self._lock_subjects(mobile, account[0] if account else None)
        await self.core.limiter.reserve(lock_subject, client.address)
        if not await self.core.hasher.verify(account[3] if account else None, password[:1024]):
            await self._login_failed(client, account[0] if account else None, "pwd", "mismatch")
            raise InvalidCredentials("the mobile number or the password is not correct")
        await self.core.limiter.release(lock_subject, client.address)
        assert account is not None
        account_id, _status, level, stored = account
        if self.core.hasher.needs_rehash(stored or ""):
            new_hash = await self.core.hasher.hash(password)
            await self.core.pool.execute(
                "UPDATE identity.accounts SET password_hash = $2 WHERE id = $1", account_id, new_hash
            )
        return await self.open_session(account_id, session_loa(level, False), ("pwd",), client)

    async def logout(self, principal: Principal, client: ClientInfo) -> None:
        """End what the bearer token stands for: identity's session, or, for an OpenID provider
        access token, its grant (every token of it, the refresh token included). Termination must
        prevent further use (ASVS 7.4.1), and the audit says what really ended."""
        if principal.scopes is not None:  # a provider access token: its session id is its grant's
            await self._end_grant(principal, client)
            return
        async with self.core.pool.acquire() as conn:
            ended = await self.core.sessions.revoke(conn, principal.session_id, "logout")
            details = None if ended else {"rule": "already_ended"}
            await self._audit_end(principal, client, "session", ended is not None, details, conn)

    async def _end_grant(self, principal: Principal, client: ClientInfo) -> None:
        """Revoke the token's grant through the provider (none revoked: it ended meanwhile, in a
        concurrent sign-out, and stays ended; the audit says so)."""
        revoked = await self.core.sessions.revoke_grant(principal.session_id, "logout")
        await self._audit_end(
            principal,
            client,
            "oidc_grant",
            bool(revoked),
            {"token": "provider_access_token", "grants_revoked": revoked or 0},
        )
        if revoked is None:
            raise Conflict(
                "this access token was issued by the OpenID provider, which is not running here;"
                " revoke it at the provider (RFC 7009) instead"
            )

    async def _audit_end(  # noqa: PLR0917 - one audit event
        self,
        principal: Principal,
        client: ClientInfo,
        target_kind: str,
        ended: bool,
        details: dict[str, Any] | None,
        connection: Connection | None = None,
    ) -> None:
        """``identity.session.end`` of what the principal's token stands for (a failure if it had
        ended already)."""
        await self.core.audit(
            "identity.session.end",
            client=client,
            principal=principal,
            target_kind=target_kind,
            target_id=principal.session_id,
            outcome="success" if ended else "failure",
            details=details,
            connection=connection,
        )

    async def verify_real_name(
        self, principal: Principal, token: str, raw_name: str, raw_id: str, client: ClientInfo
    ) -> SessionIssued:
        """L1 -> L2: the name and ID number must match one living person in the population registry."""
        name = validation.person_name(raw_name)
        id_number = validation.id_number(raw_id, self.core.today())
        aid = principal.account_id
        id_index = self.core.index.id_number(id_number)
        row = await self.core.pool.fetchrow(
            """
            SELECT a.verified_at,
                   EXISTS (SELECT 1 FROM identity.accounts o WHERE o.id_number_index = $2
                           AND o.status <> 'deactivated' AND o.id <> a.id) AS taken
            FROM identity.accounts a WHERE a.id = $1
            """,
            aid,
            id_index,
        )
        assert row is not None
        if row["verified_at"] is not None:
            raise Conflict("this account is already verified")
        # Each answer is an oracle on names and ID numbers: it counts as an attempt, reserved before
        # anything is looked at (ASVS 6.3.1), "taken" included.
        await self.core.limiter.reserve(str(aid), client.address)
        try:
            answer = await self.core.population.verify_person(name, id_number)
        except UpstreamError:
            await self.core.limiter.release(str(aid), client.address)
            raise RegistryUnavailable("the population registry is unavailable; try again shortly") from None
        if answer.result is not VerificationResult.MATCH:
            field, message = {
                VerificationResult.NAME_MISMATCH: ("name", "the name does not match the ID number"),
                VerificationResult.NOT_FOUND: ("id_number", "the registry has no person with this ID number"),
                VerificationResult.DECEASED: ("id_number", "the registry records this person as deceased"),
            }[answer.result]
            await self._verify_refused(principal, client, answer.result.value)
            raise InvalidField(field, f"registry_{answer.result.value}", message)
        if row["taken"]:
            # Said only to whoever gave the name that goes with the ID number (the registry matched
            # both), so the answer cannot enumerate registered ID numbers (ASVS 6.3.8). The attempt
            # stays counted: it is still a probe.
            await self._verify_refused(principal, client, "id_number_taken")
            raise DuplicateRegistration("another account is registered with this ID number")
        await self.core.limiter.release(str(aid), client.address)
        attributes = msgspec.json.encode(
            {"birth_date": answer.birth_date, "gender": answer.gender, "region_code": answer.region_code}
        )
        with unique_as(
            "accounts_id_number_index",
            DuplicateRegistration("another account is registered with this ID number"),
        ):
            async with self.core.pool.acquire() as conn, conn.transaction():
                done = await conn.execute(
                    """
                    UPDATE identity.accounts
                    SET name_enc = $2, id_number_enc = $3, id_number_index = $4, attributes_enc = $5,
                        verified_at = now(), level = 2, updated_at = now()
                    WHERE id = $1 AND verified_at IS NULL AND status = 'active'
                    """,
                    aid,
                    self.core.seal("name", aid, name),
                    self.core.seal("id_number", aid, id_number),
                    id_index,
                    self.core.seal("attributes", aid, attributes),
                )
                if done != "UPDATE 1":
                    raise Conflict("the account changed meanwhile; reload it")
                amr = tuple(sorted({*principal.amr}))
                new_token = await self.core.sessions.raise_level(
                    conn, principal, token, loa=max(principal.loa, 2), amr=amr
                )
                await self.core.audit(
                    "identity.person.verify",
                    client=client,
                    principal=principal,
                    target_kind="account",
                    target_id=aid,
                    details={"level": 2},
                    connection=conn,
                )
        return SessionIssued(
            token=new_token,
            session_id=principal.session_id,
            account_id=aid,
            loa=max(principal.loa, 2),
            expires_at=principal.expires_at,
        )

    async def _verify_refused(self, principal: Principal, client: ClientInfo, rule: str) -> None:
        """Audit a refused verification with the rule it broke."""
        await audit_account(
            self.core, principal, client, "identity.person.verify", outcome="failure", details={"rule": rule}
        )
