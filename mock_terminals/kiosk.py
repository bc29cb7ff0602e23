"""A kiosk: online load (圈存) with the card, as docs/terminal-protocol.md §6 tells a vendor's."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from card.crypto import credit_for_load_command, initialize_for_load_command, parse_load_init_response
from card.terminal.messages import (
    Load,
    LoadConfirm,
    LoadConfirmResponse,
    LoadResponse,
    Reversal,
    ReversalResponse,
)
from card.terminal.spec import ResultCode
from mock_terminals.card import SW_OK, SoftwareCard, TapRefused
from mock_terminals.link import LinkError, TerminalLink

__all__ = ["Kiosk"]


@dataclass
class Kiosk:
    link: TerminalLink
    terminal_no: bytes

    async def load(
        self,
        card: SoftwareCard,
        amount: int,
        *,
        funding: str = "cash",
        drop_credit: bool = False,
        tear_credit: bool = False,
    ) -> LoadConfirmResponse | ReversalResponse:
        """Online load (圈存): INITIALIZE FOR LOAD → host MAC2 → CREDIT FOR LOAD → confirmation
        (docs/terminal-protocol.md §6). ``drop_credit``: the card is pulled away before CREDIT FOR
        LOAD; ``tear_credit``: it takes the credit but is pulled before it answers. Either way the
        kiosk has no answer and asks the card (``_prove``) before it confirms or reverses."""
        card.apdu(bytes.fromhex("00A4040008A000000632010105"))
        init = card.apdu(
            initialize_for_load_command(key_index=1, amount=amount, terminal_no=self.terminal_no)
        )
        if init[-2:] != SW_OK:
            raise TapRefused(f"initialize for load {init[-2:].hex()}")
        info = parse_load_init_response(init[:-2])
        load_id = uuid.uuid4().bytes
        answer = await self.link.request(
            Load(
                load_id=load_id, app_serial=card.app_serial, issuer_id=card.issuer_id, amount=amount,
                balance_before=info.balance, online_counter=info.online_counter,
                key_version=info.key_version, pseudo_random=info.pseudo_random, mac1=info.mac1,
                psam_terminal_no=self.terminal_no, funding=funding,
            ),
            LoadResponse,
        )  # fmt: skip
        if answer.result != ResultCode.OK or answer.mac2 is None or answer.host_time is None:
            raise LinkError(answer.result, answer.detail or "load refused")
        credit = b""  # no answer
        if not drop_credit:
            sent = card.apdu(credit_for_load_command(transaction_time=answer.host_time, mac2=answer.mac2))
            credit = b"" if tear_credit else sent
        # The card credits exactly MAC2's amount onto the balance MAC1 covered (card-protocol §1.6).
        new_balance = info.balance + amount
        if credit[-2:] != SW_OK:  # no answer, or a refusal: only the card knows what it did
            tac = _prove(card, info.online_counter)
            if tac is None:  # 9406: no such load on the card
                return await self.link.request(Reversal(load_id=load_id, reason=2), ReversalResponse)
            credit = tac + SW_OK
        return await self.link.request(
            LoadConfirm(load_id=load_id, tac=credit[:4], new_balance=new_balance), LoadConfirmResponse
        )


def _prove(card: SoftwareCard, online_counter: int) -> bytes | None:
    """GET TRANSACTION PROVE for the load at ``online_counter`` (card-protocol.md §1.7: ``80 5A 00
    02 02 | counter after (old + 1) | 08``, type 02 = EP load): the load's TAC if the card took
    it, None on ``9406`` (no such transaction). Any other answer: the kiosk cannot tell, so it
    neither confirms nor reverses (the host resolves the load on the card's later evidence)."""
    counter = (online_counter + 1).to_bytes(2, "big")
    proof = card.apdu(bytes((0x80, 0x5A, 0x00, 0x02, 0x02)) + counter + b"\x08")
    if proof[-2:] == b"\x94\x06":
        return None
    if proof[-2:] != SW_OK:
        raise TapRefused(f"get transaction prove {proof[-2:].hex()}")
    return proof[4:8]  # MAC(4) || TAC(4)
