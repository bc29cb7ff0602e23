"""``Idempotency-Key`` for money-moving POSTs, stored in PostgreSQL (reference §2.2-2.3).

``claim`` inserts the key (scope = the caller) with a hash of the operation and its parameters,
or finds it: a finished key with the same hash gives the stored response; another hash is a 422;
a key still running is a 409. ``finish`` stores the response; ``release`` forgets a key whose
request failed validation, so the client can retry it (nothing is stored for those).
"""

from __future__ import annotations

import hashlib
import re

import msgspec

from payments._db import Pool
from payments.errors import PaymentsError

__all__ = [
    "IdempotencyInProgress",
    "IdempotencyKeyInvalid",
    "IdempotencyMismatch",
    "Stored",
    "claim",
    "finish",
    "release",
]

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
        raise IdempotencyInProgress(
            "the first request with this Idempotency-Key has not finished; retry later"
        )
    return Stored(int(row["response_status"]), bytes(row["response_body"]))


async def finish(pool: Pool, scope: str, key: str, status: int, body: bytes) -> None:
    await pool.execute(
        "UPDATE payments.idempotency_keys SET response_status = $3, response_body = $4, locked_at = NULL "
        "WHERE scope = $1 AND key = $2",
        scope,
        key,
        status,
        body,
    )


async def release(pool: Pool, scope: str, key: str) -> None:
    await pool.execute(
        "DELETE FROM payments.idempotency_keys WHERE scope = $1 AND key = $2 AND response_status IS NULL",
        scope,
        key,
    )
