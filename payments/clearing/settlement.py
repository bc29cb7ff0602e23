"""Clearing and settlement: the daily cut-off, per-operator totals, files and settling transfers.

**Windows.** A run for business date D covers the purchases the ledger *recorded* (transfer
timestamp, processing time) from the end of the previous run's window up to D's cut-off:
the end of service day D (D+1 04:00 China time), or now when the run starts earlier, and never
past the start of a transaction still running (``pg_stat_activity``): a posting that began
before the cut-off but commits after the run read the ledger would otherwise fall between two
windows. The window is stored in ``payments.settlement_runs`` on the first run; a re-run uses the
stored window, so it reads the same rows. Taps whose service day (event time) is before D were
uploaded late and are counted as ``late_taps`` (the ETC "pending carried over" rule). Runs are
contiguous: D cannot be settled after a later date was.

**Per operator** (an ``OPERATOR_PAYABLE`` account credited by purchases): taps, gross fares,
late taps, concession taps (cards with a student, senior or military concession), stored-value
cap rebates (``payments.clearing.rebates``), the platform's fee (``fee_bps`` of gross minus
rebates, rounded down) and the net payable. The ledger transfers, in one transaction with the
``payments.settlements`` rows: each rebate (payable → e-purse), the fee (payable → fees) and the
settlement (payable → the settlement bank account). Every id is derived from (operator, date[,
e-purse, day]), so a re-run finds them all ``exists`` and moves nothing; when the ledger no
longer agrees (a different amount under the same id) the run stops and changes nothing.

**Terminal totals.** The totals terminals reported against the host's in the window, per
operator, with the differences (``payments.clearing.terminals``).

**Audit.** Each run is recorded as ``payments.settlement.run`` with who ran it, the window, each
operator's net and whether it settled the day or found it already settled, in the transaction
that posts the transfers (so the log and the ledger cannot disagree); a refused run, which moves
nothing, is recorded as a failure on its own.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import msgspec

from payments._db import Connection, Pool
from payments.clearing.audit import CLEARING, Actor, DetailValue, audit_txn
from payments.clearing.files import DetailLine, FileTotals, build_file
from payments.clearing.rebates import EPOCH, SERVICE_DAY_SQL, Rebate, compute_rebates
from payments.clearing.terminals import TerminalTotals, terminal_totals
from payments.clearing.transfers import settlement_ids, settling_transfers
from payments.clearing.window import SettlementRefused, cut_off, settlement_window
from payments.demo import ensure_platform_accounts
from payments.errors import PaymentsError
from payments.fares import FareTable, current_fare_table
from payments.ledger import AccountCode, Transfer, TransferResult, create_transfers_txn
from payments.posting import operator_account_id

__all__ = [
    "OperatorSettlement",
    "SettlementChanged",
    "SettlementRefused",
    "SettlementReport",
    "TerminalTotals",
    "cut_off",
    "settle",
    "settlement_ids",
]

Progress = Callable[[int, int, str], None]
_CONCESSIONS = (2, 3, 5)  # card.epurses.concession: student, senior, military


class SettlementChanged(PaymentsError):
    """A re-run found the ledger disagreeing with what the first run settled; nothing was changed."""

    problem_type = "settlement-changed"
    problem_title = "The settled window no longer matches the ledger"
    problem_status = 409


class OperatorSettlement(msgspec.Struct, frozen=True, kw_only=True):
    operator: str
    taps: int
    gross: int
    late_taps: int
    concession_taps: int
    rebates: int
    rebate_transfers: int
    fees: int
    net: int
    transfer_id: uuid.UUID | None
    file_name: str
    file: bytes
    terminals: list[TerminalTotals]

    @property
    def terminal_differences(self) -> list[TerminalTotals]:
        return [t for t in self.terminals if not t.matched]


class SettlementReport(msgspec.Struct, frozen=True, kw_only=True):
    business_date: dt.date
    window_from: dt.datetime
    window_to: dt.datetime
    rerun: bool
    operators: list[OperatorSettlement]
    created: int  # ledger transfers made by this run (0 on a re-run)


class _Totals:
    __slots__ = ("account", "concession_taps", "details", "gross", "late_taps", "taps")

    def __init__(self, account: uuid.UUID) -> None:
        self.account = account
        self.taps = self.gross = self.late_taps = self.concession_taps = 0
        self.details: list[DetailLine] = []


async def _aggregate(
    pool: Pool, window_from: dt.datetime, window_to: dt.datetime, day: dt.date
) -> dict[str, _Totals]:
    card = await pool.fetchval("SELECT to_regclass('card.epurses') IS NOT NULL")
    concession = "count(*) FILTER (WHERE e.concession = ANY($3::smallint[]))" if card else "0::bigint"
    join = "LEFT JOIN card.epurses e ON e.ledger_account_id = t.debit_account_id" if card else ""
    extra = [list(_CONCESSIONS)] if card else []
    rows = await pool.fetch(
        f"""
        SELECT t.credit_account_id AS account, {SERVICE_DAY_SQL} AS day,
               split_part(coalesce(t.reference, ''), '@', 2) AS terminal,
               count(*) AS taps, sum(t.amount)::bigint AS gross, {concession} AS concession_taps
        FROM payments.transfers t {join}
        WHERE t.code = 1 AND t."timestamp" >= $1 AND t."timestamp" < $2
        GROUP BY 1, 2, 3
        """,  # noqa: S608 - constant SQL fragments only
        window_from,
        window_to,
        *extra,
    )
    names = {
        r["id"]: r["reference"]
        for r in await pool.fetch(
            "SELECT id, reference FROM payments.accounts WHERE id = ANY($1::uuid[]) AND code = $2",
            list({r["account"] for r in rows}),
            int(AccountCode.OPERATOR_PAYABLE),
        )
    }
    totals: dict[str, _Totals] = {}
    for r in rows:
        reference = names.get(r["account"])
        if reference is None or not reference.startswith("operator:"):
            continue  # a purchase credited to something that is not an operator's payable
        operator = reference.removeprefix("operator:")
        entry = totals.setdefault(operator, _Totals(r["account"]))
        service_day = EPOCH + dt.timedelta(days=r["day"])
        entry.taps += r["taps"]
        entry.gross += r["gross"]
        entry.concession_taps += r["concession_taps"]
        entry.late_taps += r["taps"] if service_day < day else 0
        entry.details.append(DetailLine(service_day, r["terminal"], int(r["taps"]), int(r["gross"])))
    return totals


async def _fare_tables(pool: Pool, operators: list[str], day: dt.date) -> dict[uuid.UUID, FareTable]:
    tables = {}
    for operator in operators:
        table = await current_fare_table(pool, operator, at=cut_off(day))
        if table is not None:
            tables[operator_account_id(operator)] = table
    return tables


async def settle(
    pool: Pool,
    day: dt.date,
    *,
    key: bytes,
    fee_bps: int,
    progress: Progress | None = None,
    now: dt.datetime | None = None,
    actor: Actor = CLEARING,
) -> SettlementReport:
    """Settle business date ``day`` (see the module docstring); safe to run again."""
    try:
        return await _settle(pool, day, key=key, fee_bps=fee_bps, progress=progress, now=now, actor=actor)
    except (SettlementRefused, SettlementChanged) as refused:
        async with pool.acquire() as connection, connection.transaction():
            await audit_txn(
                connection,
                actor,
                "settlement.run",
                ("settlement", day.isoformat()),
                {"business_date": day.isoformat(), "refused": str(refused)[:300]},
                "failure",
            )
        raise


async def _settle(
    pool: Pool,
    day: dt.date,
    *,
    key: bytes,
    fee_bps: int,
    progress: Progress | None,
    now: dt.datetime | None,
    actor: Actor,
) -> SettlementReport:
    steps = 6
    tell = progress or (lambda _done, _total, _label: None)
    tell(0, steps, "platform accounts")
    await ensure_platform_accounts(pool)
    tell(1, steps, "cut-off")
    window_from, window_to, rerun = await settlement_window(pool, day, now)
    tell(2, steps, "aggregating the window's taps")
    totals = await _aggregate(pool, window_from, window_to, day)
    terminals = await terminal_totals(pool, window_from, window_to)
    for operator in terminals:
        totals.setdefault(operator, _Totals(operator_account_id(operator)))
    tell(3, steps, "cap rebates")
    first_day = min((d.service_day for t in totals.values() for d in t.details), default=day)
    tables = await _fare_tables(pool, sorted(totals), day)
    by_operator: dict[uuid.UUID, list[Rebate]] = defaultdict(list)
    for rebate in await compute_rebates(pool, tables, window_from, window_to, first_day, day):
        by_operator[rebate.operator_account].append(rebate)
    tell(4, steps, "files and transfers")
    results: list[OperatorSettlement] = []
    transfers: list[Transfer] = []
    for operator in sorted(totals):
        t = totals[operator]
        rebates = by_operator.get(t.account, [])
        rebate_total = sum(r.amount for r in rebates)
        fee = max(0, t.gross - rebate_total) * fee_bps // 10_000
        net = t.gross - rebate_total - fee
        made, settlement_id = settling_transfers(
            operator=operator, account=t.account, day=day, rebates=rebates, fee=fee, net=net
        )
        transfers += made
        file_totals = FileTotals(
            operator=operator,
            business_date=day,
            window_from=window_from,
            window_to=window_to,
            taps=t.taps,
            gross=t.gross,
            late_taps=t.late_taps,
            concession_taps=t.concession_taps,
            rebates=rebate_total,
            fees=fee,
            net=net,
            transfer_id=str(settlement_id or ""),
        )
        results.append(
            OperatorSettlement(
                operator=operator,
                taps=t.taps,
                gross=t.gross,
                late_taps=t.late_taps,
                concession_taps=t.concession_taps,
                rebates=rebate_total,
                rebate_transfers=len(rebates),
                fees=fee,
                net=net,
                transfer_id=settlement_id,
                file_name=f"settlement-{operator}-{day:%Y%m%d}.csv",
                file=build_file(file_totals, t.details, key),
                terminals=terminals.get(operator, []),
            )
        )
    tell(5, steps, "posting")
    async with pool.acquire() as connection, connection.transaction():
        outcome = await create_transfers_txn(connection, transfers)
        bad = [(x, r) for x, r in zip(transfers, outcome, strict=True) if not r.succeeded]
        if bad:
            raise SettlementChanged(
                f"{len(bad)} settlement transfer(s) refused, nothing moved; first: "
                f"{bad[0][0].reference} {bad[0][1].value}"
                + (
                    " (the window's totals differ from the first run's)"
                    if bad[0][1] is TransferResult.EXISTS_WITH_DIFFERENT_FIELDS
                    else ""
                )
            )
        await _store_txn(connection, day, results)
        report = SettlementReport(
            business_date=day,
            window_from=window_from,
            window_to=window_to,
            rerun=rerun,
            operators=results,
            created=sum(r is TransferResult.OK for r in outcome),
        )
        await audit_txn(
            connection, actor, "settlement.run", ("settlement", day.isoformat()), _audit_details(report)
        )
    tell(6, steps, "done")
    return report


def _audit_details(report: SettlementReport) -> dict[str, DetailValue]:
    return {
        "business_date": report.business_date.isoformat(),
        "window_from": report.window_from.isoformat(),
        "window_to": report.window_to.isoformat(),
        "net": [f"{op.operator}={op.net}" for op in report.operators],  # fen, per operator
        "transfers_created": report.created,
        # A re-run that found every transfer in the ledger moved nothing: "already settled".
        "result": "already settled" if report.rerun and report.created == 0 else "settled",
    }


async def _store_txn(connection: Connection, day: dt.date, results: list[OperatorSettlement]) -> None:
    stored = {
        r["operator"]: r
        for r in await connection.fetch(
            "SELECT operator, net, file FROM payments.settlements WHERE business_date = $1", day
        )
    }
    changed = [
        r.operator
        for r in results
        if r.operator in stored
        and (stored[r.operator]["net"] != r.net or bytes(stored[r.operator]["file"]) != r.file)
    ]
    if changed or set(stored) - {r.operator for r in results}:
        raise SettlementChanged(
            f"the settlement of {day} differs from the stored one for: "
            + ", ".join(sorted(set(changed) | (set(stored) - {r.operator for r in results})))
        )
    rows: list[tuple[Any, ...]] = [
        (
            day,
            r.operator,
            r.taps,
            r.gross,
            r.late_taps,
            r.concession_taps,
            r.rebates,
            r.fees,
            r.net,
            r.transfer_id,
            r.file_name,
            r.file,
            json.dumps([msgspec.to_builtins(t) | {"matched": t.matched} for t in r.terminals]),
        )
        for r in results
        if r.operator not in stored
    ]
    await connection.executemany(
        "INSERT INTO payments.settlements (business_date, operator, taps, gross, late_taps, concession_taps, "
        "rebates, fees, net, transfer_id, file_name, file, terminal_report) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb)",
        rows,
    )
