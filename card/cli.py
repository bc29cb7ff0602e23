"""What ``citizen card ...`` does: key status and rotation, the reissue settlement job, personalisation,
the resolution of online loads the kiosk never confirmed."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from card._db import Pool
from card.audit import identity_audit_sink
from card.keys.software import SoftwareKeyStore
from card.ledger import PaymentsEpurseLedger
from card.lifecycle.aftercare import run_due_refunds
from card.lifecycle.settlement import Export, export_requested, run_balance_transfers
from card.refunds import payments_refunder

__all__ = ["keys_rotate", "keys_status", "personalise", "refund_closed", "resolve_loads", "settle"]


def _store(pool: Pool, keyring: Any) -> SoftwareKeyStore:
    return SoftwareKeyStore(pool, keyring.get("card-kek"))


async def keys_status(pool: Pool, keyring: Any) -> list[str]:
    store = _store(pool, keyring)
    current = await store.ensure_initialised()
    rows = await pool.fetch(
        "SELECT purpose, version, algorithm, encode(check_value, 'hex') AS check_value, created_at"
        " FROM card.issuer_keys ORDER BY version, purpose"
    )
    lines = [f"current version: {current}"]
    lines += [
        f"  v{r['version']:<3} {r['purpose']:<8} {r['algorithm']:<5} check {r['check_value'][:16]}  "
        f"created {r['created_at']:%Y-%m-%d %H:%M}Z"
        for r in rows
    ]
    return lines


async def keys_rotate(pool: Pool, keyring: Any) -> list[str]:
    version = await _store(pool, keyring).rotate()
    return [f"new key version {version}: new cards use it; older versions keep verifying"]


async def settle(pool: Pool, now: dt.datetime, settings: Any, keyring: Any) -> list[str]:
    """The jobs due at ``now`` once the offline settlement window has passed: balances of reissued
    cards moved to their new cards, then balances of closed cards refunded."""
    done = await run_balance_transfers(pool, PaymentsEpurseLedger(), now=now, audit=identity_audit_sink())
    lines = [f"card {s.old_card_id} -> {s.new_card_id}: moved {s.amount} fen, old card closed" for s in done]
    lines += await refund_closed(pool, now, settings, keyring)
    return lines or [f"nothing due at {now.isoformat()}"]


async def refund_closed(pool: Pool, now: dt.datetime, settings: Any, keyring: Any) -> list[str]:
    from card.wiring import build_card_services
    from payments.cli import channel_connectors
    from payments.topup.service import TopupService

    services = await build_card_services(pool, settings, keyring)
    section = settings.payments
    async with channel_connectors(settings, keyring) as connectors:
        topups = TopupService(pool, section, connectors, section.notify_base_url or settings.public_url)
        done = await run_due_refunds(services.cards, payments_refunder(topups), now=now)
    return [
        f"card {card_id}: balance {o.balance} fen, refunded {o.refunded}, for the card desk {o.unrefunded}"
        + (f" ({o.error})" if o.error else "")
        for card_id, o in done
    ]


async def personalise(
    pool: Pool, settings: Any, keyring: Any, transport_key_pem: bytes, out: Path
) -> list[str]:
    key = load_pem_public_key(transport_key_pem)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return ["the transport key must be a P-256 public key (PEM)"]
    store = _store(pool, keyring)
    await store.ensure_initialised()
    lines: list[str] = []

    async def write(export: Export) -> None:
        # As each export commits: a failure later in the run must not lose the files already made.
        path = out / f"{export.card_number}.perso.json"
        await asyncio.to_thread(_write, path, export.document)
        lines.append(f"wrote {path}")

    await export_requested(
        pool,
        store,
        settings.card,
        key,
        now=dt.datetime.now(dt.UTC),
        audit=identity_audit_sink(),
        on_export=write,
    )
    return lines or ["no physical card requests are waiting"]


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


async def resolve_loads(pool: Pool, settings: Any, *, as_json: bool = False) -> tuple[int, list[str]]:
    """``citizen card loads``: the loads kiosks left authorised, each resolved on the card's evidence
    or reported (docs/terminal-protocol.md §6). Exit 1 when the ledger refused a resolution."""
    from card.terminal.host.load_resolution import resolve_open_loads
    from card.terminal.host.ports import LedgerPostings

    terminal = settings.terminal
    outcomes = await resolve_open_loads(
        pool,
        LedgerPostings(),
        now=dt.datetime.now(dt.UTC),
        resolve_after=dt.timedelta(seconds=terminal.load_resolve_after_seconds),
        doubtful_after=dt.timedelta(seconds=terminal.load_doubtful_after_seconds),
    )
    counts = Counter(o.result for o in outcomes)
    code = 1 if counts["refused"] else 0
    if as_json:
        summary = {"counts": dict(sorted(counts.items())), "loads": [o.as_dict() for o in outcomes]}
        return code, [json.dumps(summary, ensure_ascii=False)]
    lines = [
        f"{o.result:<9} {o.load.load_id} {o.load.terminal_id:<16} {o.load.amount:>8} fen  "
        f"{o.load.created_at:%Y-%m-%d %H:%M}Z  {o.detail}"
        for o in outcomes
    ]
    totals = ", ".join(f"{n} {name}" for name, n in sorted(counts.items()))
    return code, [*lines, f"open loads: {len(outcomes)}" + (f" ({totals})" if totals else "")]
