"""Administration API for terminals: register, list, disable, enable, re-key; the suspense queue.

Only the city's operators (identity's operator sessions) reach it, by role:

* reading (list, suspense queue): ``support``, ``security_admin`` or ``auditor``;
* disable / enable: ``support`` or ``security_admin``;
* resolving a suspense entry (accept: the held debit is charged; reject: written off; money moves,
  ``card.terminal.host.suspense``): ``support`` or ``security_admin``, with a note;
* key material (register, re-key — both answer a terminal master key — and the development test
  fleet): ``security_admin``;
* doubtful loads (docs/terminal-protocol.md §6): listing them as reading; resolving one (post or
  void its reservation: money moves) ``support`` or ``security_admin``, with a note.

Every action is written to identity's audit log (``card.terminal.<verb>``): a change in the same
transaction as the change, a read or a refused change (unknown terminal, id taken, a field the
database would refuse: a 422 naming the field) on its own.
A registration or re-key answers the terminal master key once (hex): it is the key-injection step
and is never shown again (the audit entry holds its key check value only). In development,
``POST /api/v1/admin/terminals/test-fleet`` issues funded test cards and returns their signed
personalisation records (``citizen-terminals load`` uses it).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Awaitable
from typing import Annotated, Any, Final, TypeVar

import msgspec
from cryptography.hazmat.primitives.asymmetric import ec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from backend.observability import current_request_id
from backend.settings import Settings
from card.api.services import CardServices
from card.audit import Actor, DetailValue
from card.keys import SoftwareKeyStore
from card.settings import CardSettings
from card.terminal.host.fleet import issue_test_cards
from card.terminal.host.load_resolution import doubtful_loads, resolve_by_operator
from card.terminal.host.ports import LedgerPostings
from card.terminal.host.registry import (
    InvalidRegistration,
    Registration,
    TerminalExists,
    TerminalNotFound,
    TerminalRegistry,
    audit_terminal,
)
from card.terminal.host.suspense import SuspenseResolver, list_suspense
from card.terminal.spec import TerminalKind
from identity.auth import Principal, requires_operator_role

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


class ResolveLoad(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    action: str  # "post" (the card was credited) or "void" (it was not)
    note: str  # why: what the operator found (the kiosk's journal, the citizen's card read at a desk)


class ResolveSuspense(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # Both checked by the resolver, so that a refused value is audited like every refusal.
    decision: str  # "accept" (charge the held card debit) or "reject" (write it off)
    note: str  # why, 1 to 500 characters: what the operator found


class TestFleetRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    cards: int
    balance: int
    transport_public_key: str  # hex, compressed or uncompressed P-256 point


class TestFleet(msgspec.Struct, frozen=True, kw_only=True):
    documents: list[str]  # each a signed personalisation record (JSON text)


Req = Request[Any, Any, Any]
T = TypeVar("T")
_READERS: Final = requires_operator_role("support", "security_admin", "auditor")
_OPERATORS: Final = requires_operator_role("support", "security_admin")
_KEY_ADMINS: Final = requires_operator_role("security_admin")
_CLIENT_ID: Final = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_TERMINAL_ID: Final = re.compile(r"^[0-9A-Z-]{1,16}$")  # as card.terminals.id


def _actor(principal: Principal, request: Req) -> Actor:
    raw_client = request.headers.get("x-client-id")
    return Actor(
        kind=principal.kind,
        id=str(principal.account_id),
        client_address=request.client.host if request.client else None,
        client_id=raw_client if raw_client and _CLIENT_ID.match(raw_client) else None,
        request_id=current_request_id(),
    )


async def _audited(  # noqa: PLR0917 - one call shape, all positional
    registry: TerminalRegistry,
    actor: Actor,
    verb: str,
    terminal_id: str | None,
    action: Awaitable[T],
    details: dict[str, DetailValue] | None = None,
) -> T:
    """Run a change that audits itself on success; a refused change is audited here."""
    try:
        return await action
    except (TerminalNotFound, TerminalExists, InvalidRequest, InvalidRegistration) as exc:
        async with registry.pool.acquire() as db:
            await audit_terminal(
                db,
                actor,
                verb,
                terminal_id,
                {**(details or {}), "refused": exc.problem_type, **_refused_field(exc)},
                outcome="failure",
            )
        raise


def _refused_field(exc: Exception) -> dict[str, DetailValue]:
    """The field a refused registration named (never its value: the audit keeps no input as given)."""
    return {"field": exc.field} if isinstance(exc, InvalidRegistration) else {}


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

    @post("/", operation_id="RegisterTerminal", status_code=201, guards=[_KEY_ADMINS])
    async def register(
        self,
        request: Req,
        principal: NamedDependency[Principal],
        terminal_registry: NamedDependency[TerminalRegistry],
        data: JSONBody[RegisterTerminal],
    ) -> TerminalKey:
        actor = _actor(principal, request)

        async def register() -> Registration:
            # The id, operator, line and site are checked by the registry before anything is written.
            try:
                kind = TerminalKind[data.kind.upper()]
            except KeyError:
                raise InvalidRequest("kind must be bus, gate or kiosk") from None
            return await terminal_registry.register(
                data.id, operator=data.operator, kind=kind, line=data.line, site=data.site, actor=actor
            )

        terminal_id = data.id if _TERMINAL_ID.fullmatch(data.id) else None  # never log a bad id
        return _key(
            await _audited(terminal_registry, actor, "register", terminal_id, register(), {"kind": data.kind})
        )

    @get("/", operation_id="ListTerminals", guards=[_READERS])
    async def list_terminals(
        self,
        request: Req,
        principal: NamedDependency[Principal],
        terminal_registry: NamedDependency[TerminalRegistry],
    ) -> list[dict[str, Any]]:
        found = await terminal_registry.list()
        async with terminal_registry.pool.acquire() as db:
            await audit_terminal(db, _actor(principal, request), "list", None, {"count": len(found)})
        return found

    @post("/{terminal_id:str}/disable", operation_id="DisableTerminal", status_code=204, guards=[_OPERATORS])
    async def disable(
        self,
        request: Req,
        principal: NamedDependency[Principal],
        terminal_registry: NamedDependency[TerminalRegistry],
        terminal_id: FromPath[str],
    ) -> None:
        actor = _actor(principal, request)
        await _audited(
            terminal_registry, actor, "disable", terminal_id,
            terminal_registry.set_status(terminal_id, "disabled", actor),
        )  # fmt: skip

    @post("/{terminal_id:str}/enable", operation_id="EnableTerminal", status_code=204, guards=[_OPERATORS])
    async def enable(
        self,
        request: Req,
        principal: NamedDependency[Principal],
        terminal_registry: NamedDependency[TerminalRegistry],
        terminal_id: FromPath[str],
    ) -> None:
        actor = _actor(principal, request)
        await _audited(
            terminal_registry, actor, "enable", terminal_id,
            terminal_registry.set_status(terminal_id, "active", actor),
        )  # fmt: skip

    @post("/{terminal_id:str}/rekey", operation_id="RekeyTerminal", status_code=200, guards=[_KEY_ADMINS])
    async def rekey(
        self,
        request: Req,
        principal: NamedDependency[Principal],
        terminal_registry: NamedDependency[TerminalRegistry],
        terminal_id: FromPath[str],
    ) -> TerminalKey:
        actor = _actor(principal, request)
        return _key(
            await _audited(
                terminal_registry, actor, "rekey", terminal_id, terminal_registry.rekey(terminal_id, actor)
            )
        )

    @get("/suspense", operation_id="ListTerminalSuspense", guards=[_READERS])
    async def suspense(
        self,
        request: Req,
        principal: NamedDependency[Principal],
        terminal_registry: NamedDependency[TerminalRegistry],
        # ``?state=``; named otherwise here: ``state`` is Litestar's reserved application-state kwarg.
        queue_state: Annotated[str, QueryParameter(name="state")] = "open",
    ) -> list[dict[str, Any]]:
        """The queue's entries: ``open`` (the oldest first), ``resolved`` (the latest first) or ``all``."""
        state = queue_state
        if state not in {"open", "resolved", "all"}:
            raise InvalidRequest("state must be open, resolved or all")
        found = await list_suspense(terminal_registry.pool, state)
        async with terminal_registry.pool.acquire() as db:
            await audit_terminal(
                db, _actor(principal, request), "suspense.list", None, {"count": len(found), "state": state}
            )
        return found

    @post(
        "/suspense/{terminal_id:str}/{serial:int}/resolve",
        operation_id="ResolveTerminalSuspense",
        status_code=200,
        guards=[_OPERATORS],
    )
    async def resolve_suspense(  # noqa: PLR0917 - Litestar's handler shape
        self,
        request: Req,
        principal: NamedDependency[Principal],
        terminal_registry: NamedDependency[TerminalRegistry],
        card: NamedDependency[CardServices],  # its key store: the one the card API verifies with
        settings: NamedDependency[Settings],
        terminal_id: FromPath[str],
        serial: FromPath[int],
        data: JSONBody[ResolveSuspense],
    ) -> dict[str, object]:
        """Accept (charge) or reject (write off) an open suspense entry, once; audited either way."""
        resolver = SuspenseResolver(terminal_registry, card.keys, settings.card)
        resolution = await resolver.resolve(
            terminal_id, serial, decision=data.decision, note=data.note, actor=_actor(principal, request)
        )
        return resolution.as_dict()

    @get("/loads/doubtful", operation_id="ListDoubtfulLoads", guards=[_READERS])
    async def doubtful(
        self,
        request: Req,
        principal: NamedDependency[Principal],
        terminal_registry: NamedDependency[TerminalRegistry],
        settings: NamedDependency[Settings],
    ) -> list[dict[str, object]]:
        """Loads authorised longer than the doubtful age with no evidence yet: the oldest first."""
        pool = terminal_registry.pool
        age = dt.timedelta(seconds=settings.terminal.load_doubtful_after_seconds)
        found = await doubtful_loads(pool, older_than=dt.datetime.now(dt.UTC) - age)
        async with pool.acquire() as db:
            await audit_terminal(db, _actor(principal, request), "load.doubtful", None, {"count": len(found)})
        return [load.as_dict() for load in found]

    @post("/loads/{load_id:uuid}/resolve", operation_id="ResolveLoad", status_code=200, guards=[_OPERATORS])
    async def resolve_load(  # noqa: PLR0917 - Litestar's handler shape
        self,
        request: Req,
        principal: NamedDependency[Principal],
        terminal_registry: NamedDependency[TerminalRegistry],
        settings: NamedDependency[Settings],
        load_id: FromPath[uuid.UUID],
        data: JSONBody[ResolveLoad],
    ) -> dict[str, object]:
        """Post (``action: post``) or void a doubtful load's reservation; audited either way."""
        actor = _actor(principal, request)
        pool = terminal_registry.pool
        note = data.note.strip()
        if data.action not in {"post", "void"} or not 1 <= len(note) <= 500:
            async with pool.acquire() as db:
                await audit_terminal(
                    db, actor, "load.resolve", None,
                    {"load_id": str(load_id), "refused": "validation-error"}, outcome="failure",
                )  # fmt: skip
            raise InvalidRequest("action must be post or void, and a note of 1 to 500 characters")
        load = await resolve_by_operator(
            pool, LedgerPostings(), load_id, post=data.action == "post", note=note, actor=actor,
            doubtful_after=dt.timedelta(seconds=settings.terminal.load_doubtful_after_seconds),
        )  # fmt: skip
        return {**load.as_dict(), "state": "confirmed" if data.action == "post" else "reversed"}

    @post("/test-fleet", operation_id="IssueTestFleet", status_code=201, guards=[_KEY_ADMINS])
    async def test_fleet(
        self,
        request: Req,
        principal: NamedDependency[Principal],
        terminal_registry: NamedDependency[TerminalRegistry],
        settings: NamedDependency[Settings],
        data: JSONBody[TestFleetRequest],
    ) -> TestFleet:
        actor = _actor(principal, request)
        details: dict[str, DetailValue] = {"cards": data.cards, "balance": data.balance}

        async def refuse(exc: Exception) -> Exception:
            async with terminal_registry.pool.acquire() as db:
                await audit_terminal(
                    db, actor, "test_fleet", None, {**details, "refused": str(exc)}, outcome="failure"
                )
            return exc

        if not settings.is_development:
            raise await refuse(TerminalNotFound("test fleets exist only in development"))
        if not 1 <= data.cards <= 100_000 or not 0 <= data.balance <= 1_000_000:
            raise await refuse(InvalidRequest("cards 1..100000, balance 0..1000000 fen"))
        try:
            transport = ec.EllipticCurvePublicKey.from_encoded_point(
                ec.SECP256R1(), bytes.fromhex(data.transport_public_key)
            )
        except ValueError:
            raise await refuse(InvalidRequest("transport_public_key is not a P-256 point")) from None
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
        async with pool.acquire() as db:
            await audit_terminal(db, actor, "test_fleet", None, details)
        return TestFleet(documents=[d.decode() for d in documents])
