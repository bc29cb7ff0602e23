"""What every identity service shares: the pool, Redis, keys, registries, limits and the audit hook."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import msgspec
import redis.asyncio as aioredis

from identity._db import Connection, Pool
from identity.audit import AuditEvent, AuditReceipt, record
from identity.auth import Principal
from identity.context import ClientInfo, RequestIdGetter
from identity.crypto import BlindIndex, PiiCipher
from identity.errors import CodeRejected, IdentityError, InvalidField
from identity.limits import AttemptLimiter, CodeOutcome, CodeStore
from identity.passwords import PasswordHasher
from identity.sessions import SessionStore
from identity.settings import IdentitySettings
from identity.sms import SmsGateway, SmsOutbox
from integrations.registries import EnterpriseRegistry, PopulationRegistry

__all__ = ["CHINA", "IdentityCore", "code_error", "is_unique_violation", "unique_as"]

CHINA = dt.timezone(dt.timedelta(hours=8), "CST")  # no daylight saving since 1991


class IdentityCore:
    def __init__(
        self,
        *,
        pool: Pool,
        redis: aioredis.Redis,
        settings: IdentitySettings,
        pii_key: bytes,
        index_key: bytes,
        otp_key: bytes,
        population: PopulationRegistry,
        enterprise: EnterpriseRegistry,
        sms: SmsGateway,
        request_id: RequestIdGetter = lambda: None,
        development: bool = False,
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.settings = settings
        self.cipher = PiiCipher(pii_key)
        self.index = BlindIndex(index_key)
        self.hasher = PasswordHasher(settings)
        self.codes = CodeStore(redis, settings, otp_key)
        self.limiter = AttemptLimiter(redis, settings)
        self.sessions = SessionStore(redis)
        self.population = population
        self.enterprise = enterprise
        self.sms = sms
        self.outbox = SmsOutbox(sms)  # what requests send through: never awaited in the request
        self.request_id = request_id
        self.development = development

    @staticmethod
    def today() -> dt.date:
        return dt.datetime.now(CHINA).date()

    # -- personal data at rest -------------------------------------------------------------------------

    def seal(self, purpose: str, owner: uuid.UUID, value: str | bytes) -> bytes:
        return self.cipher.encrypt(value, f"{purpose}:{owner}")

    def open(self, purpose: str, owner: uuid.UUID, blob: bytes | None) -> str | None:
        return None if blob is None else self.cipher.decrypt(bytes(blob), f"{purpose}:{owner}")

    def open_bytes(self, purpose: str, owner: uuid.UUID, blob: bytes) -> bytes:
        return self.cipher.decrypt_bytes(bytes(blob), f"{purpose}:{owner}")

    # -- audit -------------------------------------------------------------------------------------

    async def audit(
        self,
        action: str,
        *,
        client: ClientInfo,
        principal: Principal | None = None,
        actor_kind: str | None = None,
        actor_id: uuid.UUID | str | None = None,
        acting_for: uuid.UUID | str | None = None,
        target_kind: str | None = None,
        target_id: uuid.UUID | str | None = None,
        outcome: str = "success",
        details: dict[str, Any] | None = None,
        connection: Connection | None = None,
    ) -> AuditReceipt:
        event = self.audit_event(
            action,
            client=client,
            principal=principal,
            actor_kind=actor_kind,
            actor_id=actor_id,
            acting_for=acting_for,
            target_kind=target_kind,
            target_id=target_id,
            outcome=outcome,
            details=details,
        )
        if connection is not None:
            return await record(connection, event)
        async with self.pool.acquire() as conn:
            return await record(conn, event)

    @staticmethod
    def audit_event(
        action: str,
        *,
        client: ClientInfo,
        principal: Principal | None = None,
        actor_kind: str | None = None,
        actor_id: uuid.UUID | str | None = None,
        acting_for: uuid.UUID | str | None = None,
        target_kind: str | None = None,
        target_id: uuid.UUID | str | None = None,
        outcome: str = "success",
        details: dict[str, Any] | None = None,
    ) -> AuditEvent:
        if principal is not None:
            actor_kind = actor_kind or principal.kind
            actor_id = actor_id or principal.account_id
            acting_for = acting_for or principal.acting_for
        return msgspec.convert(
            {
                "action": action,
                "outcome": outcome,
                "actor_kind": actor_kind or "anonymous",
                "actor_id": str(actor_id) if actor_id else None,
                "acting_for": str(acting_for) if acting_for else None,
                "target_kind": target_kind,
                "target_id": str(target_id) if target_id else None,
                "client_address": client.address,
                "client_id": client.client_id or (principal.client_id if principal else None),
                "request_id": client.request_id,
                "details": details or {},
            },
            AuditEvent,
        )


def is_unique_violation(exc: BaseException, constraint: str | None = None) -> bool:
    return isinstance(exc, asyncpg.UniqueViolationError) and (
        constraint is None or getattr(exc, "constraint_name", None) == constraint
    )


@contextlib.contextmanager
def unique_as(constraint: str | None, error: IdentityError) -> Iterator[None]:
    """Turn a unique violation of ``constraint`` (any, with None) into ``error``."""
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        if is_unique_violation(exc, constraint):
            raise error from None
        raise


_CODE_MESSAGES = {
    CodeOutcome.INCORRECT: "the code is not correct",
    CodeOutcome.EXPIRED: "the code has expired; request a new one",
    CodeOutcome.ALREADY_USED: "the code was already used; request a new one",
    CodeOutcome.NOT_ISSUED: "no code was sent for this number and purpose; request one",
}


def code_error(outcome: CodeOutcome, field: str = "code") -> InvalidField:
    return CodeRejected(field, outcome.value, _CODE_MESSAGES[outcome])
