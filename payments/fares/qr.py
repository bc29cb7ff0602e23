"""Charging a QR ride at the moment the host learns of it, with the rider's caps applied.

For card/terminal: ``charge_qr_ride_txn(connection, card_id=..., operator=..., ride=Ride(...))``
returns the :class:`RideCharge`; post ``charge.charged`` (skip the posting when it is 0: the cap
was reached). The rider's running totals per operator are locked for the transaction, so two
uploads of one rider's rides never both pass under the cap.
"""

from __future__ import annotations

from payments._db import Connection
from payments.errors import PaymentsError
from payments.fares.model import Ride, RideCharge, RiderState, charge_ride
from payments.fares.store import current_fare_table

__all__ = ["NoFareTable", "charge_qr_ride_txn"]


class NoFareTable(PaymentsError):
    problem_type = "no-fare-table"
    problem_title = "The operator has no fare table"
    problem_status = 409


async def charge_qr_ride_txn(
    connection: Connection, *, card_id: str, operator: str, ride: Ride
) -> RideCharge:
    table = await current_fare_table(connection, operator, at=ride.at)
    if table is None:
        raise NoFareTable(f"operator {operator} has published no fare table")
    row = await connection.fetchrow(
        "SELECT day, day_total, week, week_total, last_paid_at FROM payments.rider_totals "
        "WHERE card_id = $1 AND operator = $2 FOR UPDATE",
        card_id,
        operator,
    )
    state = (
        RiderState()
        if row is None
        else RiderState(
            day=row["day"],
            day_total=int(row["day_total"]),
            week=row["week"],
            week_total=int(row["week_total"]),
            last_paid_at=row["last_paid_at"],
        )
    )
    charge = charge_ride(table, state, ride)
    await connection.execute(
        "INSERT INTO payments.rider_totals (card_id, operator, day, day_total, week, week_total, "
        "last_paid_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (card_id, operator) DO UPDATE SET "
        "day = EXCLUDED.day, day_total = EXCLUDED.day_total, week = EXCLUDED.week, "
        "week_total = EXCLUDED.week_total, last_paid_at = EXCLUDED.last_paid_at",
        card_id,
        operator,
        state.day,
        state.day_total,
        state.week,
        state.week_total,
        state.last_paid_at,
    )
    return charge
