"""Operator accounts: creation (CLI and demo) and sign-in."""

from __future__ import annotations

import re
import secrets
import uuid

from identity._db import Connection
from identity.audit import AuditEvent, record
from identity.auth import OPERATOR_ROLES
from identity.context import ClientInfo
from identity.core import IdentityCore
from identity.errors import AccountUnavailable, Conflict, InvalidCredentials, InvalidField
from identity.passwords import PasswordHasher, check_password_policy
from identity.persons.models import SessionIssued

__all__ = ["create_operator", "generate_password", "operator_login"]

_USERNAME = re.compile(r"^[a-z0-9._-]{3,64}$")


def generate_password() -> str:
    return secrets.token_urlsafe(15)


async def create_operator(
    connection: Connection,
    hasher: PasswordHasher,
    *,
    username: str,
    display_name: str,
    roles: list[str],
    password: str,
) -> uuid.UUID:
    if not _USERNAME.match(username):
        raise InvalidField("username", "format", "3-64 of a-z 0-9 . _ -")
    if not roles or set(roles) - set(OPERATOR_ROLES):
        raise InvalidField("roles", "unknown_role", f"roles are {', '.join(OPERATOR_ROLES)}")
    check_password_policy(password)
    if await connection.fetchval("SELECT 1 FROM identity.operators WHERE username = $1", username):
        raise Conflict(f"an operator named {username} exists")  # before hashing; the insert decides
    operator_id = uuid.uuid4()
    password_hash = await hasher.hash(password)
    async with connection.transaction():
        created = await connection.fetchval(
            """
            INSERT INTO identity.operators (id, username, display_name, password_hash, roles)
            VALUES ($1, $2, $3, $4, $5) ON CONFLICT (username) DO NOTHING RETURNING id
            """,
            operator_id,
            username,
            display_name,
            password_hash,
            sorted(set(roles)),
        )
        if created is None:
            raise Conflict(f"an operator named {username} exists")
        await record(
            connection,
            AuditEvent(
                action="identity.operator.create",
                actor_kind="system",
                target_kind="operator",
                target_id=str(operator_id),
                details={"username": username, "roles": sorted(set(roles))},
            ),
        )
    return operator_id


async def operator_login(
    core: IdentityCore, username: str, password: str, client: ClientInfo
) -> SessionIssued:
    row = await core.pool.fetchrow(
        "SELECT id, password_hash, roles, status FROM identity.operators WHERE username = $1", username[:64]
    )
    subject = f"op:{row['id']}" if row else f"op-name:{username[:64]}"
    await core.limiter.reserve(subject, client.address)
    if not await core.hasher.verify(row["password_hash"] if row else None, password[:1024]):
        await core.audit(
            "identity.operator.session.create",
            client=client,
            actor_kind="operator" if row else "anonymous",
            actor_id=row["id"] if row else None,
            outcome="failure",
        )
        raise InvalidCredentials("the username or the password is not correct")
    await core.limiter.release(subject, client.address)
    assert row is not None
    if row["status"] != "active":
        raise AccountUnavailable("this operator account is frozen")
    async with core.pool.acquire() as conn, conn.transaction():
        token, session = await core.sessions.create(
            conn,
            account_id=row["id"],
            kind="operator",
            loa=2,
            amr=("pwd",),
            ttl=core.settings.operator_session_ttl,
            client=client,
            operator_roles=frozenset(row["roles"]),
        )
        await core.audit(
            "identity.operator.session.create",
            client=client,
            actor_kind="operator",
            actor_id=row["id"],
            target_kind="session",
            target_id=session.sid,
            details={"roles": sorted(row["roles"])},
            connection=conn,
        )
    return SessionIssued(
        token=token, session_id=session.sid, account_id=row["id"], loa=2, expires_at=session.exp
    )
