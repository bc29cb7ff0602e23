"""Every settlement run is in the audit log: who ran it, the window, each operator's net, whether
it settled the day or found it settled; a refused run as a failure."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from payments.clearing.audit import Actor
from payments.clearing.settlement import SettlementRefused, settle
from payments.posting import open_operator
from tests.payments.test_settlement import FEE_BPS, KEY, Taps, fund, pool, today  # noqa: F401


async def test_a_settlement_run_is_audited_with_who_ran_it_and_each_operators_net(
    pool: Any,  # noqa: F811
) -> None:
    await fund(pool, ["c1", "c2"])
    for operator in ("metro", "bus-7"):
        await open_operator(pool, operator)
    taps = Taps(pool)
    now = dt.datetime.now(dt.UTC)
    await taps.tap("c1", "metro", 300, now)
    await taps.tap("c2", "bus-7", 200, now)
    day = today()
    clerk = Actor(kind="operator", id="os:clerk")
    report = await settle(pool, day, key=KEY, fee_bps=FEE_BPS, actor=clerk)
    await settle(pool, day, key=KEY, fee_bps=FEE_BPS, actor=clerk)
    with pytest.raises(SettlementRefused, match="in order"):  # recorded as a failure all the same
        await settle(pool, day - dt.timedelta(days=1), key=KEY, fee_bps=FEE_BPS, actor=clerk)
    events = await pool.fetch(
        "SELECT actor_kind, actor_id, target_kind, target_id, outcome, details FROM identity.audit_events "
        "WHERE action = 'payments.settlement.run' ORDER BY occurred_at"
    )
    assert [(e["actor_kind"], e["actor_id"], e["target_kind"]) for e in events] == [
        ("operator", "os:clerk", "settlement")
    ] * 3
    earlier = day - dt.timedelta(days=1)
    assert [e["target_id"] for e in events] == [day.isoformat(), day.isoformat(), earlier.isoformat()]
    assert [e["outcome"] for e in events] == ["success", "success", "failure"]
    settled, again, refused = (json.loads(e["details"]) for e in events)
    nets = {op.operator: op.net for op in report.operators}
    assert nets == {"bus-7": 199, "metro": 299}
    assert settled == {
        "business_date": day.isoformat(),
        "window_from": report.window_from.isoformat(),
        "window_to": report.window_to.isoformat(),
        "net": ["bus-7=199", "metro=299"],
        "transfers_created": report.created,
        "result": "settled",
    }
    assert report.created == 4  # a fee and a settlement per operator
    assert again == settled | {"transfers_created": 0, "result": "already settled"}
    assert refused["business_date"] == earlier.isoformat()
    assert "in order" in refused["refused"]
