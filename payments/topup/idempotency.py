"""``Idempotency-Key`` for money-moving POSTs, stored in PostgreSQL (reference §2.2-2.3).

``claim`` inserts the key (scope = the caller) with a hash of the operation and its parameters,
or finds it: a finished key with the same hash gives the stored response; another hash is a 422;
a key still running is a 409 (for ``LOCK_TIMEOUT``: a request that was interrupted, its process
gone, leaves its key locked; after that time a retry takes the key over, with a conditional
update so that only one retry does). ``finish`` stores the response; ``release`` forgets a key
whose request failed validation, so the client can retry it (nothing is stored for those).

A claim holds the key with a random ``lock_token``, set at the insert and anew at a takeover; the
returned :class:`Claim` carries it. Storing, finishing and releasing match the token, so a request
that was only slow, not gone, and whose key a retry took over cannot overwrite the retry's answer
or delete the key under it: its :meth:`Claim.store_txn` raises :class:`IdempotencyKeyTakenOver`
(a 409, as for a key in progress), which rolls back the work it was to answer.

Work whose effects would be repeated by a retry (a new order, a new refund) stores its response
in its own transaction (:meth:`Claim.store_txn`): once the work has committed, the key answers
it, even if the process stopped before ``finish``; before that, nothing happened and a takeover
is safe. The sweep prunes keys after ``RETENTION`` (Stripe keeps them at least 24 hours).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid

import msgspec

from payments._db import Connection, Pool
from payments.errors import PaymentsError

__all__ = [
    "LOCK_TIMEOUT",
    "RETENTION",
    "Claim",
    "IdempotencyInProgress",
    "IdempotencyKeyInvalid",
    "IdempotencyKeyTakenOver",
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


class IdempotencyKeyTakenOver(IdempotencyInProgress):
    """This request held the key so long that a retry took it over: the retry answers it."""


class Stored(msgspec.Struct, frozen=True):
    status: int
    body: bytes


class Claim(msgspec.Struct, frozen=True):
    """A key this request holds (``token``: its hold), for work that stores its response in its
    own transaction."""

    scope: str
    key: str
    status: int  # the HTTP status the work answers with
    token: uuid.UUID

    async def store_txn(self, connection: Connection, result: msgspec.Struct) -> None:
        """Store the work's response in the work's transaction; raises (so the work rolls back)
        unless the key is still held by this claim and unanswered."""
        stored = await connection.fetchval(
            "UPDATE payments.idempotency_keys SET response_status = $4, response_body = $5, locked_at = NULL "
            "WHERE scope = $1 AND key = $2 AND lock_token = $3 AND response_status IS NULL RETURNING true",
            self.scope,
            self.key,
            self.token,
            self.status,
            msgspec.json.encode(result),
        )
        if not stored:
            raise IdempotencyKeyTakenOver(
                "this request took so long that a retry with its Idempotency-Key took over; "
                "nothing was done here: the retry's answer is the key's"
            )


def request_hash(operation: str, params: object) -> bytes:
    return hashlib.sha256(operation.encode() + b"\0" + msgspec.json.encode(params, order="sorted")).digest()


async def claim(
    pool: Pool, scope: str, key: str | None, operation: str, params: object, *, status: int
) -> Stored | Claim:
    """A :class:`Claim`: the key is ours, go ahead (the work answers with ``status``); a
    :class:`Stored`: answer it again."""
    if key is None or not _KEY.match(key):
        raise IdempotencyKeyInvalid("send an Idempotency-Key header: 8 to 255 of A-Z a-z 0-9 . _ : -")
    digest = request_hash(operation, params)
    token = uuid.uuid4()
    inserted = await pool.fetchval(
        "INSERT INTO payments.idempotency_keys (scope, key, operation, request_hash, locked_at, lock_token) "
        "VALUES ($1, $2, $3, $4, now(), $5) ON CONFLICT DO NOTHING RETURNING true",
        scope,
        key,
        operation,
        digest,
        token,
    )
    if inserted:
        return Claim(scope, key, status, token)
    row = await pool.fetchrow(
        "SELECT request_hash, response_status, response_body FROM payments.idempotency_keys "
        "WHERE scope = $1 AND key = $2",
        scope,
        key,
    )
    if row is None:  # released meanwhile: try once more
        return await claim(pool, scope, key, operation, params, status=status)
    if bytes(row["request_hash"]) != digest:
        raise IdempotencyMismatch("this Idempotency-Key was first used with other parameters")
    if row["response_status"] is None:
        if await _take_over(pool, scope, key, token):
            return Claim(scope, key, status, token)
        raise IdempotencyInProgress(
            "the first request with this Idempotency-Key has not finished; retry later"
        )
    return Stored(int(row["response_status"]), bytes(row["response_body"]))


async def _take_over(pool: Pool, scope: str, key: str, token: uuid.UUID) -> bool:
    """Lock a key left unfinished for longer than ``LOCK_TIMEOUT`` (its request was interrupted,
    or is very slow: the new ``token`` fences it off)."""
    taken = await pool.fetchval(
        "UPDATE payments.idempotency_keys SET locked_at = now(), lock_token = $4 "
        "WHERE scope = $1 AND key = $2 AND response_status IS NULL "
        "AND (locked_at IS NULL OR locked_at < now() - $3::interval) RETURNING true",
        scope,
        key,
        LOCK_TIMEOUT,
        token,
    )
    return bool(taken)


async def finish(pool: Pool, held: Claim, body: bytes) -> bool:
    """Store the response; ``False`` when the key is no longer this claim's (taken over).

    A response the work stored under this same claim (:meth:`Claim.store_txn`) is replaced by the
    final one: once stored, no retry can take the key over, so the token still proves it ours."""
    stored = await pool.fetchval(
        "UPDATE payments.idempotency_keys SET response_status = $4, response_body = $5, locked_at = NULL "
        "WHERE scope = $1 AND key = $2 AND lock_token = $3 RETURNING true",
        held.scope,
        held.key,
        held.token,
        held.status,
        body,
    )
    return bool(stored)


async def release(pool: Pool, held: Claim) -> None:
    """Forget the key, unless answered or taken over meanwhile (then it is not this claim's)."""
    await pool.execute(
        "DELETE FROM payments.idempotency_keys "
        "WHERE scope = $1 AND key = $2 AND lock_token = $3 AND response_status IS NULL",
        held.scope,
        held.key,
        held.token,
    )


async def prune(pool: Pool, now: dt.datetime) -> int:
    """Forget keys older than ``RETENTION``; how many. A key reused after that is a new request."""
    deleted = await pool.fetch(
        "DELETE FROM payments.idempotency_keys WHERE created_at < $1 RETURNING 1", now - RETENTION
    )
    return len(deleted)
