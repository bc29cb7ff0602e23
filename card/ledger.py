"""The e-purse's balance of record is a payments ledger account; this is the card's side of that seam.

:class:`EpurseLedger` is what card needs from payments: open the purse account at issuance, read
its balance, and move a balance between two purses on reissue. :class:`PaymentsEpurseLedger`
implements it with ``payments.posting.open_epurse``: the account id is
``payments.posting.epurse_account_id(str(card_id))``, the id the terminal gateway posts taps to
without a look-up (code ``EPURSE``, debits limited by credits plus the overdraft limit).
Everything runs on the caller's connection, inside the caller's transaction.
"""

from __future__ import annotations

import uuid
from typing import Protocol

from card._db import Connection
from card.errors import CardError

__all__ = ["EpurseLedger", "LedgerRefused", "PaymentsEpurseLedger"]


class LedgerRefused(CardError):
    problem_type = "card-ledger-refused"
    problem_title = "The ledger refused the e-purse operation"
    problem_status = 409


class EpurseLedger(Protocol):
    async def open_account_txn(
        self, connection: Connection, *, card_id: uuid.UUID, overdraft_limit: int
    ) -> uuid.UUID: ...

    async def balance(self, connection: Connection, account_id: uuid.UUID) -> int: ...

    async def move_balance_txn(
        self,
        connection: Connection,
        *,
        transfer_id: uuid.UUID,
        from_account: uuid.UUID,
        to_account: uuid.UUID,
        amount: int,
    ) -> None: ...


class PaymentsEpurseLedger:
    async def open_account_txn(
        self, connection: Connection, *, card_id: uuid.UUID, overdraft_limit: int
    ) -> uuid.UUID:
        from payments.posting import open_epurse

        try:
            return await open_epurse(connection, str(card_id), overdraft_limit=overdraft_limit)
        except ValueError as exc:
            raise LedgerRefused(f"the e-purse account was not opened: {exc}") from None

    async def balance(self, connection: Connection, account_id: uuid.UUID) -> int:
        from payments.ledger import lookup_balances

        balances = await lookup_balances(connection, [account_id])
        found = balances.get(account_id)
        return 0 if found is None else found.credit_balance

    async def move_balance_txn(
        self,
        connection: Connection,
        *,
        transfer_id: uuid.UUID,
        from_account: uuid.UUID,
        to_account: uuid.UUID,
        amount: int,
    ) -> None:
        from payments.ledger import Transfer, create_transfers_txn
        from payments.posting import TRANSFER_CODES

        (result,) = await create_transfers_txn(
            connection,
            [
                Transfer(
                    id=transfer_id,
                    debit_account_id=from_account,
                    credit_account_id=to_account,
                    amount=amount,
                    code=TRANSFER_CODES["settlement"],
                    reference="card:reissue:balance",
                )
            ],
        )
        if not result.succeeded:
            raise LedgerRefused(f"the balance was not moved: {result.value}")
