"""``Idempotency-Key`` for money-moving POSTs, stored in PostgreSQL (reference §2.2-2.3).

``claim`` inserts the key (scope = the caller) with a hash of the operation and its parameters,
or finds it: a finished key with the same hash gives the stored response; another hash is a 422;
a key still running is a 409 (for ``LOCK_TIMEOUT``: a request that was interrupted, its process
gone, leaves its key locked; after that time a retry takes the key over, with a conditional
update so that only one retry does). ``finish`` stores the response; ``release`` forgets a key
whose request failed validation, so the client can retry it (nothing is stored for those).

Work whose effects would be repeated by a retry (a new order, a new refund) stores its response
in its own transaction (:meth:`Claim.store_txn`): once the work has committed, the key answers
it, even if the process stopped before ``finish``; before that, nothing happened and a takeover
is safe. The sweep prunes keys after ``RETENTION`` (Stripe keeps them at least 24 hours).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re

import msgspec

from payments._db import Connection, Pool
from payments.errors import PaymentsError

__all__ = [
    "LOCK_TIMEOUT",
    "RETENTION",
    "Claim",
    "IdempotencyInProgress",
    "IdempotencyKeyInvalid",
    "IdempotencyMismatch",
    "Stored",
    "claim",
    "finish",
    "prune",
    "release",
]

LOCK_TIMEOUT = dt.timedelta(seconds=90)  # brandur's IDEMPOTENCY_KEY_LOCK_TIMEOUT
RETENTION = dt.timedelta(hours=24)
_KEY = re.compile(r"^[A-Za-z0-9._:-]{8,255}$")


class IdempotencyKeyInvalid(PaymentsError):
    problem_type = "idempotency-key-required"
    problem_title = "An Idempotency-Key header (8 to 255 characters) is required"
    problem_status = 400


class IdempotencyMismatch(PaymentsError):
    problem_type = "idempotency-key-reused"
    problem_title = "The Idempotency-Key was used with other parameters"
    problem_status = 422


class IdempotencyInProgress(PaymentsError):
    problem_type = "idempotency-key-in-progress"
    problem_title = "A request with this Idempotency-Key is still running"
    problem_status = 409


class Stored(msgspec.Struct, frozen=True):
    status: int
    body: bytes


class Claim(msgspec.Struct, frozen=True):
    """A key this request holds, for work that stores its response in its own transaction."""

    scope: str
    key: str
    status: int  # the HTTP status the work answers with

    async def store_txn(self, connection: Connection, result: msgspec.Struct) -> None:
        await _store(connection, self.scope, self.key, self.status, msgspec.json.encode(result))


def request_hash(operation: str, params: object) -> bytes:
    return hashlib.sha256(operation.encode() + b"\0" + msgspec.json.encode(params, order="sorted")).digest()


async def claim(pool: Pool, scope: str, key: str | None, operation: str, params: object) -> Stored | None:
    """``None``: the key is ours, go ahead; a :class:`Stored`: answer it again."""
    if key is None or not _KEY.match(key):
        raise IdempotencyKeyInvalid("send an Idempotency-Key header: 8 to 255 of A-Z a-z 0-9 . _ : -")
    digest = request_hash(operation, params)
    inserted = await pool.fetchval(
        "INSERT INTO payments.idempotency_keys (scope, key, operation, request_hash, locked_at) "
        "VALUES ($1, $2, $3, $4, now()) ON CONFLICT DO NOTHING RETURNING true",
        scope,
        key,
        operation,
        digest,
    )
    if inserted:
        return None
    row = await pool.fetchrow(
        "SELECT request_hash, response_status, response_body FROM payments.idempotency_keys "
        "WHERE scope = $1 AND key = $2",
        scope,
        key,
    )
    if row is None:  # released meanwhile: try once more
        return await claim(pool, scope, key, operation, params)
    if bytes(row["request_hash"]) != digest:
        raise IdempotencyMismatch("this Idempotency-Key was first used with other parameters")
    if row["response_status"] is None:
        if await _take_over(pool, scope, key):
            return None
        raise IdempotencyInProgress(
            "the first request with this Idempotency-Key has not finished; retry later"
        )
    return Stored(int(row["response_status"]), bytes(row["response_body"]))


async def _take_over(pool: Pool, scope: str, key: str) -> bool:
    """Lock a key left unfinished for longer than ``LOCK_TIMEOUT`` (its request was interrupted)."""
    taken = await pool.fetchval(
        "UPDATE payments.idempotency_keys SET locked_at = now() "
        "WHERE scope = $1 AND key = $2 AND response_status IS NULL "
        "AND (locked_at IS NULL OR locked_at < now() - $3::interval) RETURNING true",
        scope,
        key,
        LOCK_TIMEOUT,
    )
    return bool(taken)


async def _store(db: Pool | Connection, scope: str, key: str, status: int, body: bytes) -> None:
    await db.execute(
        "UPDATE payments.idempotency_keys SET response_status = $3, response_body = $4, locked_at = NULL "
        "WHERE scope = $1 AND key = $2",
        scope,
        key,
        status,
        body,
    )


async def finish(pool: Pool, scope: str, key: str, status: int, body: bytes) -> None:
    await _store(pool, scope, key, status, body)


async def release(pool: Pool, scope: str, key: str) -> None:
    await pool.execute(
        "DELETE FROM payments.idempotency_keys WHERE scope = $1 AND key = $2 AND response_status IS NULL",
        scope,
        key,
    )


async def prune(pool: Pool, now: dt.datetime) -> int:
    """Forget keys older than ``RETENTION``; how many. A key reused after that is a new request."""
    deleted = await pool.fetch(
        "DELETE FROM payments.idempotency_keys WHERE created_at < $1 RETURNING 1", now - RETENTION
    )
    return len(deleted)
