"""Fresh proof of a factor the account already has, and what a change of credentials ends.

A bearer session proves that someone signed in once, maybe hours ago, maybe on a lost phone. Before
a change of credentials the person proves a factor again (ASVS 7.5.1 re-authentication before
sensitive changes); after it, every other session and every OpenID grant of the account ends, so a
stolen session or token does not outlive the change meant to shut it out (ASVS 7.4.3).
"""

from __future__ import annotations

import time
from typing import Any, Literal

from identity._db import Connection
from identity.auth import Principal
from identity.context import ClientInfo
from identity.core import IdentityCore, code_error
from identity.errors import InvalidCredentials
from identity.limits import CodeOutcome
from identity.totp import matching_step

__all__ = ["audit_account", "check_password", "consume_totp_step", "end_other_sessions", "match_totp"]


async def audit_account(
    core: IdentityCore,
    principal: Principal,
    client: ClientInfo,
    action: str,
    *,
    outcome: Literal["success", "failure"] = "success",
    details: dict[str, Any] | None = None,
    connection: Connection | None = None,
) -> None:
    """Audit ``action`` by the principal on their own account (in ``connection``'s transaction)."""
    await core.audit(
        action,
        client=client,
        principal=principal,
        target_kind="account",
        target_id=principal.account_id,
        outcome=outcome,
        details=details,
        connection=connection,
    )


async def check_password(
    core: IdentityCore, principal: Principal, stored: str, password: str | None, client: ClientInfo
) -> None:
    """The account's current password; a wrong one counts as a failed attempt (atomically reserved)."""
    subject = str(principal.account_id)
    await core.limiter.reserve(subject, client.address)
    if password is None or not await core.hasher.verify(stored, password[:1024]):
        raise InvalidCredentials("the current password is not correct")
    await core.limiter.release(subject, client.address)


async def match_totp(
    core: IdentityCore, principal: Principal, secret: bytes, code: str, client: ClientInfo
) -> int:
    """The matching time step; a wrong code counts as a failed attempt (atomically reserved).

    The step is not consumed here: the caller does it with :func:`consume_totp_step` in the
    transaction that acts on the code, so a code is accepted once.
    """
    subject = str(principal.account_id)
    await core.limiter.reserve(subject, client.address)
    step = matching_step(secret, code, time.time())
    if step is None:
        await audit_account(core, principal, client, "identity.totp.check", outcome="failure")
        raise code_error(CodeOutcome.INCORRECT)
    await core.limiter.release(subject, client.address)
    return step


async def consume_totp_step(connection: Connection, principal: Principal, step: int, field: str) -> None:
    """Accept each time step once (RFC 6238 §5.2: a replayed code is refused)."""
    fresh = await connection.execute(
        "UPDATE identity.accounts SET totp_last_step = $2 WHERE id = $1 AND totp_last_step < $2",
        principal.account_id,
        step,
    )
    if fresh != "UPDATE 1":
        raise code_error(CodeOutcome.ALREADY_USED, field)


async def end_other_sessions(
    core: IdentityCore, connection: Connection, principal: Principal, reason: str
) -> int:
    """End the account's other sessions and all its OpenID grants (ASVS 7.4.3), in the caller's
    transaction; how many sessions ended. The caller's own session stays, unless it is a provider
    access token: its grant ends with the others, and the service signs the person in again."""
    keep = principal.session_id if principal.scopes is None else None
    return await core.sessions.revoke_all(connection, principal.account_id, reason, keep=keep)
