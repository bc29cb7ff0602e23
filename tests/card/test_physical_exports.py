"""Physical card requests and their export to the card bureau: one card's status never blocks the
others, a lost, replaced or closed card's request is cancelled, two runs never export one request."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from backend.keyring import Keyring
from card._db import Connection
from card.applications import HolderDetails
from card.audit import Actor, DetailValue
from card.keys import SoftwareKeyStore
from card.lifecycle.service import CardService
from card.lifecycle.settlement import Export, export_requested, run_balance_transfers

NOW = dt.datetime(2025, 6, 1, 8, 0, tzinfo=dt.UTC)


class Audited:
    """An audit sink that keeps what it was given."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, uuid.UUID | None, dict[str, DetailValue]]] = []

    async def __call__(
        self,
        connection: Connection,
        actor: Actor,
        action: str,
        card_id: uuid.UUID | None,
        details: dict[str, DetailValue],
    ) -> None:
        self.entries.append((action, card_id, details))


async def _requested(service: CardService, n: int) -> list[tuple[uuid.UUID, str, Actor]]:
    """``n`` cards of ``n`` holders, each with an open physical card request, oldest first."""
    cards = []
    for i in range(n):
        holder = HolderDetails(person_id=uuid.uuid4(), loa=2)
        actor = Actor(kind="person", id=str(holder.person_id))
        card = await service.issue(holder, actor, now=NOW)
        await service.request_physical(card.id, actor, now=NOW + dt.timedelta(seconds=i))
        cards.append((card.id, card.card_number, actor))
    return cards


async def _request_status(service: CardService, card_id: uuid.UUID) -> list[str]:
    rows = await service.pool.fetch(
        "SELECT status FROM card.physical_requests WHERE card_id = $1 ORDER BY requested_at", card_id
    )
    return [r["status"] for r in rows]


def _bureau() -> ec.EllipticCurvePublicKey:
    return ec.generate_private_key(ec.SECP256R1()).public_key()


async def test_a_frozen_card_waits_and_does_not_block_the_others(
    service: CardService, keys: SoftwareKeyStore
) -> None:
    (frozen, _, frozen_by), (_, number_b, _), (lost, _, lost_by) = await _requested(service, 3)
    await service.freeze(frozen, frozen_by, now=NOW)
    await service.report_loss(lost, lost_by, now=NOW)
    bureau = _bureau()

    exports = await export_requested(service.pool, keys, service.settings, bureau, now=NOW)
    assert [e.card_number for e in exports] == [number_b]
    assert await _request_status(service, frozen) == ["requested"]  # waits for the unfreeze
    assert await _request_status(service, lost) == ["cancelled"]  # by the loss report itself

    await service.unfreeze(frozen, frozen_by, now=NOW)
    (later,) = await export_requested(service.pool, keys, service.settings, bureau, now=NOW)
    assert later.card_number == (await service.view(frozen)).card_number
    assert await export_requested(service.pool, keys, service.settings, bureau, now=NOW) == []


async def test_a_request_left_open_on_a_card_no_longer_active_is_cancelled_and_audited(
    service: CardService, keys: SoftwareKeyStore
) -> None:
    (closed, _, _), (_, number_b, _) = await _requested(service, 2)
    # A request left open by a status change made before lost, replaced and closed cancelled them.
    await service.pool.execute("UPDATE card.cards SET status = 'replaced' WHERE id = $1", closed)
    audit = Audited()

    exports = await export_requested(service.pool, keys, service.settings, _bureau(), now=NOW, audit=audit)
    assert [e.card_number for e in exports] == [number_b]
    assert await _request_status(service, closed) == ["cancelled"]
    (event,) = [e for e in await service.history(closed) if e.action == "cancel_physical"]
    assert event.details["card_status"] == "replaced"
    assert [(a, c, d.get("card_status")) for a, c, d in audit.entries if a == "cancel_physical"] == [
        ("cancel_physical", closed, "replaced")
    ]


async def test_loss_reissue_close_and_settle_cancel_the_open_request(
    service: CardService, keys: SoftwareKeyStore
) -> None:
    (lost, _, a), (reissued, _, b), (closed, _, c), (settled, _, d) = await _requested(service, 4)
    await service.report_loss(lost, a, now=NOW)
    await service.reissue(reissued, b, now=NOW)
    await service.close(closed, c, now=NOW)
    for card_id in (lost, reissued, closed):
        assert await _request_status(service, card_id) == ["cancelled"], card_id
        last = (await service.history(card_id))[-1]
        assert "physical_request_cancelled" in last.details, last
    # Settling a replaced card cancels a request still open on it (one from before reissue did).
    await service.reissue(settled, d, now=NOW)
    await service.pool.execute(
        "UPDATE card.physical_requests SET status = 'requested' WHERE card_id = $1", settled
    )
    window = dt.timedelta(days=service.settings.settlement_window_days + 1)
    await run_balance_transfers(service.pool, service.ledger, now=NOW + window)
    assert await _request_status(service, settled) == ["cancelled"]
    assert "physical_request_cancelled" in (await service.history(settled))[-1].details
    assert await export_requested(service.pool, keys, service.settings, _bureau(), now=NOW) == []


async def test_two_runs_at_once_export_each_request_once(
    service: CardService, keys: SoftwareKeyStore
) -> None:
    cards = await _requested(service, 6)
    bureau = _bureau()
    first, second = await asyncio.gather(
        export_requested(service.pool, keys, service.settings, bureau, now=NOW),
        export_requested(service.pool, keys, service.settings, bureau, now=NOW),
    )
    numbers = [e.card_number for e in (*first, *second)]
    assert sorted(numbers) == sorted(number for _, number, _ in cards)
    assert await service.pool.fetchval("SELECT count(*) FROM card.personalisation_exports") == len(cards)


class FailingOnSecond(SoftwareKeyStore):
    """The key store failing on the second card it personalises (an HSM gone, a bad key version)."""

    calls = 0

    async def export_personalisation(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("key store unavailable")
        return await super().export_personalisation(*args, **kwargs)


async def test_a_failure_later_in_the_run_keeps_the_files_already_exported(
    service: CardService, keys: SoftwareKeyStore, keyring: Keyring
) -> None:
    (first, number_a, _), (second, _, _) = await _requested(service, 2)
    failing = FailingOnSecond(service.pool, keyring.get("card-kek"))
    written: list[Export] = []

    async def write(export: Export) -> None:
        written.append(export)

    with pytest.raises(RuntimeError, match="key store unavailable"):
        await export_requested(service.pool, failing, service.settings, _bureau(), now=NOW, on_export=write)
    assert [e.card_number for e in written] == [number_a]
    assert await _request_status(service, first) == ["exported"]
    assert await _request_status(service, second) == ["requested"]  # rolled back, exported next run
