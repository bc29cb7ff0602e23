"""What `citizen sms tail`, `citizen audit verify` and `citizen operators create` do."""

from __future__ import annotations

import redis.asyncio as aioredis

from identity._db import Pool
from identity.admin.operators import create_operator, generate_password
from identity.audit import verify_chain
from identity.checks import IdentifierError, validate_mobile
from identity.passwords import PasswordHasher
from identity.settings import IdentitySettings
from identity.sms import read_messages

__all__ = ["audit_verify", "operators_create", "sms_tail"]


async def sms_tail(redis: aioredis.Redis, limit: int, mobile: str | None) -> list[str]:
    """The latest messages of the development SMS gateway, oldest first (like ``tail``)."""
    number = None
    if mobile:
        try:
            number = validate_mobile(mobile)
        except IdentifierError as exc:
            return [f"invalid mobile number: {exc.rule}"]
    messages = await read_messages(redis, limit, number)
    return [f"{m.sent_at:%Y-%m-%d %H:%M:%S}Z  {m.to}  {m.text}" for m in reversed(messages)]


async def audit_verify(pool: Pool) -> tuple[int, list[str]]:
    """Exit status 0 when the whole chain verifies, 1 with the first broken entry otherwise."""
    async with pool.acquire() as connection:
        report = await verify_chain(connection)
    if report.ok:
        return 0, [
            f"audit chain verified: {report.entries} entries",
            f"head: seq {report.head_seq} hash {report.head_hash}",
        ]
    return 1, [
        f"audit chain BROKEN at entry {report.first_broken_seq}: {report.reason}",
        f"{report.entries} entries verified before it; head: seq {report.head_seq} hash {report.head_hash}",
    ]


async def operators_create(
    pool: Pool,
    settings: IdentitySettings,
    *,
    username: str,
    display_name: str,
    roles: list[str],
    password: str | None,
) -> list[str]:
    """Create an operator; a generated password is printed once and never stored in clear."""
    chosen = password or generate_password()
    async with pool.acquire() as connection:
        operator_id = await create_operator(
            connection,
            PasswordHasher(settings),
            username=username,
            display_name=display_name,
            roles=roles,
            password=chosen,
        )
    lines = [f"operator {username} created: id {operator_id}, roles {', '.join(sorted(set(roles)))}"]
    if password is None:
        lines.append(f"password (shown once): {chosen}")
    return lines
