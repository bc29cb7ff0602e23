"""What `citizen sms tail`, `citizen audit verify|seal` and `citizen operators create` do."""

from __future__ import annotations

import sys

import redis.asyncio as aioredis

from identity._db import Pool
from identity.admin.operators import create_operator, generate_password
from identity.audit import seal_all, verify_chain
from identity.checks import IdentifierError, validate_mobile
from identity.errors import IdentityError
from identity.passwords import PasswordHasher
from identity.settings import IdentitySettings
from identity.sms import read_messages

__all__ = ["audit_seal", "audit_verify", "operators_create", "sms_tail"]


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
    head = f"head: seq {report.head_seq} hash {report.head_hash}"
    unsealed = f"{report.unsealed} recorded events not sealed yet (`citizen audit seal` chains them)"
    if report.ok:
        return 0, [f"audit chain verified: {report.entries} entries", head, unsealed]
    if report.first_broken_pending_id is not None:
        return 1, [
            f"audit log BROKEN at unsealed event {report.first_broken_pending_id}: {report.reason}",
            f"the chain verified: {report.entries} entries; {head}",
        ]
    return 1, [
        f"audit chain BROKEN at entry {report.first_broken_seq}: {report.reason}",
        f"{report.entries} entries verified before it; {head}",
    ]


async def audit_seal(pool: Pool) -> tuple[int, list[str]]:
    """Chain every committed event not sealed yet."""
    async with pool.acquire() as connection:
        sealed = await seal_all(connection)
        head = await connection.fetchval("SELECT seq FROM identity.audit_head")
    return 0, [f"sealed {sealed} events; the chain has {head} entries"]


async def operators_create(
    pool: Pool,
    settings: IdentitySettings,
    *,
    username: str,
    display_name: str,
    roles: list[str],
    password: str | None,
) -> list[str]:
    """Create an operator; a generated password is printed once and never stored in clear.

    A taken username or a value that breaks a rule ends the command with exit status 2 and the
    reason on stderr (``SystemExit``: the pool and Redis are closed on the way out)."""
    chosen = password or generate_password()
    try:
        async with pool.acquire() as connection:
            operator_id = await create_operator(
                connection,
                PasswordHasher(settings),
                username=username,
                display_name=display_name,
                roles=roles,
                password=chosen,
            )
    except IdentityError as exc:
        sys.stderr.write(f"citizen: operator {username} not created: {exc}\n")
        raise SystemExit(2) from None
    lines = [f"operator {username} created: id {operator_id}, roles {', '.join(sorted(set(roles)))}"]
    if password is None:
        lines.append(f"password (shown once): {chosen}")
    return lines
