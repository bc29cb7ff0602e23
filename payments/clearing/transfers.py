"""The settling transfers of one operator's settlement, with ids derived from (operator, date[,
e-purse, service day]) so that a re-run finds them all in the ledger and moves nothing."""

from __future__ import annotations

import datetime as dt
import uuid

from payments.clearing.rebates import EPOCH, Rebate
from payments.demo import platform_account_id
from payments.ledger import Transfer
from payments.posting import TRANSFER_CODES

__all__ = ["settlement_ids", "settling_transfers"]

_NAMESPACE = uuid.UUID("6f7a4f0a-4d0a-4b51-9d8e-1f0c5a2e9b33")  # settlement ids, fixed forever


def settlement_ids(operator: str, day: dt.date) -> tuple[uuid.UUID, uuid.UUID]:
    """(fee transfer id, settlement transfer id) of an operator's settlement for ``day``."""
    return (
        uuid.uuid5(_NAMESPACE, f"fee:{operator}:{day.isoformat()}"),
        uuid.uuid5(_NAMESPACE, f"settlement:{operator}:{day.isoformat()}"),
    )


def _rebate_id(operator: str, rebate: Rebate, day: dt.date) -> uuid.UUID:
    return uuid.uuid5(
        _NAMESPACE, f"rebate:{operator}:{rebate.epurse}:{rebate.service_day.isoformat()}:{day.isoformat()}"
    )


def settling_transfers(
    *, operator: str, account: uuid.UUID, day: dt.date, rebates: list[Rebate], fee: int, net: int
) -> tuple[list[Transfer], uuid.UUID | None]:
    day_n = (day - EPOCH).days
    transfers = [
        Transfer(
            id=_rebate_id(operator, r, day),
            debit_account_id=account,
            credit_account_id=r.epurse,
            amount=r.amount,
            code=TRANSFER_CODES["rebate"],
            user_data_32=(r.service_day - EPOCH).days,
            user_data_64=day_n,
            reference=f"rebate:{operator}:{r.service_day.isoformat()}",
        )
        for r in rebates
    ]
    fee_id, settlement_id = settlement_ids(operator, day)
    if fee > 0:
        transfers.append(
            Transfer(
                id=fee_id,
                debit_account_id=account,
                credit_account_id=platform_account_id("fees"),
                amount=fee,
                code=TRANSFER_CODES["fee"],
                user_data_64=day_n,
                reference=f"fee:{operator}:{day.isoformat()}",
            )
        )
    if net == 0:
        return transfers, None
    bank = platform_account_id("settlement")
    transfers.append(
        Transfer(
            id=settlement_id,
            debit_account_id=account if net > 0 else bank,
            credit_account_id=bank if net > 0 else account,
            amount=abs(net),
            code=TRANSFER_CODES["settlement"],
            user_data_64=day_n,
            reference=f"settlement:{operator}:{day.isoformat()}",
        )
    )
    return transfers, settlement_id
