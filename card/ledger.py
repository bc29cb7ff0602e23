"""The e-purse's balance of record is a payments ledger account; this is the card's side of that seam.

:class:`EpurseLedger` is what card needs from payments: open the purse account at issuance, read
its balance, and move a balance between two purses on reissue. :class:`PaymentsEpurseLedger`
implements it with ``payments.ledger`` (accounts of code ``EPURSE``, debits limited by credits plus
the overdraft limit). Everything runs on the caller's connection, inside the caller's transaction.
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
        self, connection: Connection, *, card_id: uuid.UUID, card_number: str, overdraft_limit: int
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
        self, connection: Connection, *, card_id: uuid.UUID, card_number: str, overdraft_limit: int
    ) -> uuid.UUID:
        from payments.ledger import Account, AccountCode, AccountFlags, AccountResult
        from payments.ledger.store import create_accounts_txn

        account_id = uuid.uuid5(card_id, "epurse")  # deterministic: a retried issuance finds it
        (result,) = await create_accounts_txn(
            connection,
            [
                Account(
                    id=account_id,
                    code=AccountCode.EPURSE,
                    flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
                    overdraft_limit=overdraft_limit,
                    user_data_128=card_id,
                    reference=f"card:{card_number}:epurse",
                )
            ],
        )
        if result not in (AccountResult.OK, AccountResult.EXISTS):
            raise LedgerRefused(f"the e-purse account was not opened: {result.value}")
        return account_id

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

        (result,) = await create_transfers_txn(
            connection,
            [
                Transfer(
                    id=transfer_id,
                    debit_account_id=from_account,
                    credit_account_id=to_account,
                    amount=amount,
                    code=1,
                    reference="card:reissue:balance",
                )
            ],
        )
        if not result.succeeded:
            raise LedgerRefused(f"the balance was not moved: {result.value}")
