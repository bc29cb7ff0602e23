"""Administration API for terminals: register, list, disable, enable, re-key; the suspense queue.

A registration or re-key answers the terminal master key once (hex): it is the key-injection step
and is never shown again. In development, ``POST /api/v1/admin/terminals/test-fleet`` issues funded
test cards and returns their signed personalisation records (``citizen-terminals load`` uses it).
"""

from __future__ import annotations

from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric import ec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from backend.settings import Settings
from card.keys import SoftwareKeyStore
from card.settings import CardSettings
from card.terminal.host.fleet import issue_test_cards
from card.terminal.host.registry import Registration, TerminalNotFound, TerminalRegistry
from card.terminal.spec import TerminalKind

__all__ = ["TerminalAdminController"]


class RegisterTerminal(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: str = msgspec.field(name="id")
    operator: str
    kind: str  # "bus", "gate", "kiosk"
    line: str | None = None
    site: str | None = None


class TerminalKey(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    operator: str
    kind: str
    psam_terminal_no: str
    tmk: str  # hex, shown once
    tmk_version: int


class TestFleetRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    cards: int
    balance: int
    transport_public_key: str  # hex, compressed or uncompressed P-256 point


class TestFleet(msgspec.Struct, frozen=True, kw_only=True):
    documents: list[str]  # each a signed personalisation record (JSON text)


class InvalidRequest(ValueError):
    problem_type = "validation-error"
    problem_title = "Invalid request"
    problem_status = 422


def _key(r: Registration) -> TerminalKey:
    return TerminalKey(
        id=r.id,
        operator=r.operator,
        kind=r.kind.name.lower(),
        psam_terminal_no=r.psam_terminal_no.hex(),
        tmk=r.tmk.hex(),
        tmk_version=r.tmk_version,
    )


class TerminalAdminController(Controller):
    path = "/api/v1/admin/terminals"
    tags = ["terminals"]  # noqa: RUF012 - Litestar's class attribute

    @post("/", operation_id="RegisterTerminal", status_code=201)
    async def register(
        self, terminal_registry: NamedDependency[TerminalRegistry], data: JSONBody[RegisterTerminal]
    ) -> TerminalKey:
        try:
            kind = TerminalKind[data.kind.upper()]
        except KeyError:
            raise InvalidRequest("kind must be bus, gate or kiosk") from None
        return _key(
            await terminal_registry.register(
                data.id, operator=data.operator, kind=kind, line=data.line, site=data.site
            )
        )

    @get("/", operation_id="ListTerminals")
    async def list_terminals(
        self, terminal_registry: NamedDependency[TerminalRegistry]
    ) -> list[dict[str, Any]]:
        return await terminal_registry.list()

    @post("/{terminal_id:str}/disable", operation_id="DisableTerminal", status_code=204)
    async def disable(
        self, terminal_registry: NamedDependency[TerminalRegistry], terminal_id: FromPath[str]
    ) -> None:
        await terminal_registry.set_status(terminal_id, "disabled")

    @post("/{terminal_id:str}/enable", operation_id="EnableTerminal", status_code=204)
    async def enable(
        self, terminal_registry: NamedDependency[TerminalRegistry], terminal_id: FromPath[str]
    ) -> None:
        await terminal_registry.set_status(terminal_id, "active")

    @post("/{terminal_id:str}/rekey", operation_id="RekeyTerminal", status_code=200)
    async def rekey(
        self, terminal_registry: NamedDependency[TerminalRegistry], terminal_id: FromPath[str]
    ) -> TerminalKey:
        return _key(await terminal_registry.rekey(terminal_id))

    @get("/suspense", operation_id="ListTerminalSuspense")
    async def suspense(self, terminal_registry: NamedDependency[TerminalRegistry]) -> list[dict[str, Any]]:
        return await terminal_registry.suspense()

    @post("/test-fleet", operation_id="IssueTestFleet", status_code=201)
    async def test_fleet(
        self,
        terminal_registry: NamedDependency[TerminalRegistry],
        settings: NamedDependency[Settings],
        data: JSONBody[TestFleetRequest],
    ) -> TestFleet:
        if not settings.is_development:
            raise TerminalNotFound("test fleets exist only in development")
        if not 1 <= data.cards <= 100_000 or not 0 <= data.balance <= 1_000_000:
            raise InvalidRequest("cards 1..100000, balance 0..1000000 fen")
        try:
            transport = ec.EllipticCurvePublicKey.from_encoded_point(
                ec.SECP256R1(), bytes.fromhex(data.transport_public_key)
            )
        except ValueError:
            raise InvalidRequest("transport_public_key is not a P-256 point") from None
        pool = terminal_registry.pool
        keys = SoftwareKeyStore(pool, terminal_registry.kek)
        await keys.ensure_initialised()
        card_settings: CardSettings = getattr(settings, "card", None) or CardSettings()
        documents = await issue_test_cards(
            pool,
            keys,
            count=data.cards,
            balance=data.balance,
            issuer_id=card_settings.issuer_id,
            transport_key=transport,
        )
        return TestFleet(documents=[d.decode() for d in documents])
