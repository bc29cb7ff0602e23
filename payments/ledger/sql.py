"""The ledger's SQL (``store`` and ``ahead``), and its writer lock."""

from __future__ import annotations

from payments.ledger.snapshot import SELECT_ROW, TRANSFER_COLUMNS
from payments.ledger.types import AMOUNT_MAX, AccountFlags

WRITER_LOCK = 0x50_41_59_4C  # "PAYL": the ledger's writer lock for large batches
READ_ACCOUNTS = (
    "SELECT id, ledger, flags, overdraft_limit, debits_pending, debits_posted, credits_pending, "
    "credits_posted FROM payments.accounts WHERE id = ANY($1::uuid[])"
)
LOCK_SHARED = "SELECT pg_advisory_xact_lock_shared($1), now()"
ANY_FAILED = "SELECT EXISTS (SELECT 1 FROM payments.failed_transfers WHERE id = ANY($1::uuid[]))"
LOCK_ACCOUNTS = READ_ACCOUNTS + " ORDER BY id FOR UPDATE"
# Built from the constant column list of TransferRow (no user input).
EXISTING = (
    f"SELECT q.id AS qid, f.result, {SELECT_ROW} FROM unnest($1::uuid[]) AS q(id) "  # noqa: S608
    "LEFT JOIN payments.transfers t ON t.id = q.id "
    "LEFT JOIN payments.failed_transfers f ON f.id = q.id "
    "WHERE t.id IS NOT NULL OR f.id IS NOT NULL"
)
INSERT_TRANSFERS = (
    f"INSERT INTO payments.transfers ({', '.join(TRANSFER_COLUMNS)}) SELECT * FROM unnest("  # noqa: S608
    "$1::uuid[], $2::uuid[], $3::uuid[], $4::bigint[], $5::uuid[], $6::int[], $7::smallint[], "
    "$8::smallint[], $9::int[], $10::uuid[], $11::bigint[], $12::int[], $13::text[], "
    "$14::timestamptz[])"
)


_CLOSED = int(AccountFlags.CLOSED)
_DMNEC = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
_CMNED = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
# ``ahead``: a batch's totals per account ($1 ids, $2 debits, $3 credits; ledger $4) applied only
# if every account exists, is on the ledger, is open, and can take its whole total at once
# within AMOUNT_MAX and its balance rule (subtractions and numeric: nothing overflows while
# comparing). Answers how many accounts were updated: all of them, or none.
AHEAD_TOTALS = f"""
WITH batch AS (
    SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) AS b(id, deb, cred)
), ok AS (
    SELECT a.ctid AS row, b.deb, b.cred FROM batch b JOIN payments.accounts a ON a.id = b.id
    WHERE a.ledger = $4 AND a.flags & {_CLOSED} = 0
      AND b.deb <= {AMOUNT_MAX} - greatest(a.debits_pending, a.debits_posted)
      AND b.cred <= {AMOUNT_MAX} - greatest(a.credits_pending, a.credits_posted)
      AND (a.flags & {_DMNEC} = 0 OR a.debits_pending::numeric + a.debits_posted + b.deb
                                     <= a.credits_posted::numeric + a.overdraft_limit)
      AND (a.flags & {_CMNED} = 0 OR a.credits_pending::numeric + a.credits_posted + b.cred
                                     <= a.debits_posted)
), updated AS (
    -- By the row found above (ctid): the writer lock keeps every other writer out meanwhile.
    UPDATE payments.accounts a
    SET debits_posted = a.debits_posted + ok.deb, credits_posted = a.credits_posted + ok.cred
    FROM ok WHERE a.ctid = ok.row AND (SELECT count(*) FROM ok) = cardinality($1::uuid[])
    RETURNING 1
)
SELECT count(*) FROM updated
"""  # noqa: S608 - constants only
