"""The terminal host: one authenticated request in, one answer out (docs/terminal-protocol.md §4, §6).

:class:`TerminalHost` is shared by every connection of a gateway process; a :class:`Link` is one
connection's view (which terminal, which session). State lives in PostgreSQL and Redis only. The
host authenticates and dispatches; batches, loads and downloads each have a module of their own.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Final

import redis.asyncio as aioredis

from card._db import Pool
from card.keys import CardKeyStore
from card.settings import CardSettings
from card.terminal.host.downloads import Downloads
from card.terminal.host.ports import CardDirectory, Fares, LedgerPostings
from card.terminal.host.registry import TerminalRecord, TerminalRegistry
from card.terminal.host.sessions import Session, SessionStore
from card.terminal.messages import (
    Blacklist,
    EncodedBody,
    Envelope,
    ErrorResponse,
    Heartbeat,
    Message,
    Parameters,
    ProtocolError,
    Response,
    Settlement,
    SettlementResponse,
    SignOff,
    SignOffResponse,
    SignOn,
    SignOnResponse,
    key_check_value,
    seal_frame,
    sign_on_keys,
    wrap_session_key,
)
from card.terminal.settings import TerminalSettings
from card.terminal.spec import MessageType, ResultCode, TerminalKind

__all__ = ["Link", "TerminalHost"]

log = logging.getLogger("citizen.terminal")
_UNKNOWN_ID: Final = "-"


@dataclass
class Link:
    """One connection: the terminal it speaks for, once a message has authenticated."""

    peer: str = ""
    terminal: TerminalRecord | None = None
    session: Session | None = None
    verified_at: float = field(default=0.0)


class TerminalHost:
    def __init__(
        self,
        *,
        pool: Pool,
        redis: aioredis.Redis,
        kek: bytes,
        keys: CardKeyStore,
        settings: TerminalSettings,
        card_settings: CardSettings,
        fares: Fares | None = None,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.card_settings = card_settings
        self.keys = keys
        self.registry = TerminalRegistry(pool, kek, redis=redis)
        self.sessions = SessionStore(redis, kek, settings.session_ttl_seconds)
        self.cards = CardDirectory()
        self.ledger = LedgerPostings()
        self.fares = fares or Fares()
        self.downloads = Downloads(self)
        self.blacklist = self.downloads.blacklist
        # terminal id -> (monotonic time read, record) of active terminals, for _usable_terminal.
        self._terminals: dict[str, tuple[float, TerminalRecord]] = {}
        self._terminal_cache_limit = max(1024, 4 * settings.max_connections)
        from card.terminal.host.batches import BatchProcessor
        from card.terminal.host.loads import LoadService

        self.batches = BatchProcessor(self)
        self.loads = LoadService(self)

    # --- framing of answers ----------------------------------------------------------------------------

    def answer(self, link: Link, request: Envelope | None, body: Message | EncodedBody) -> bytes:
        key = link.session.key if link.session is not None else None
        terminal_id = request.header.terminal_id if request is not None else _UNKNOWN_ID
        sequence = request.header.sequence if request is not None else 0
        return seal_frame(body, terminal_id=terminal_id, sequence=sequence, time=int(time.time()), key=key)

    def error(self, link: Link, request: Envelope | None, code: ResultCode, detail: str = "") -> bytes:
        """An error answer: of the request's own type when it has one, else ``ERROR``."""
        body: Response = ErrorResponse(result=int(code), detail=detail[:64] or None)
        if request is not None:
            from card.terminal.messages import MESSAGE_TYPES

            answer_cls = MESSAGE_TYPES.get(request.header.message_type | 0x80)
            if (
                answer_cls is not None
                and issubclass(answer_cls, Response)
                and request.header.message_type < 0x80
            ):
                body = answer_cls(result=int(code), detail=detail[:64] or None)
        return self.answer(link, request, body)

    # --- authentication --------------------------------------------------------------------------------

    async def authenticate(self, link: Link, envelope: Envelope) -> None:
        """Check the MAC, the terminal and the sequence of a non-sign-on message; fills ``link``."""
        header = envelope.header
        if link.terminal is not None and link.terminal.id != header.terminal_id:
            raise ProtocolError(ResultCode.TERMINAL_MISMATCH)
        session = link.session
        if session is None or session.terminal_id != header.terminal_id:
            session = await self.sessions.load(header.terminal_id)
            if session is None:
                raise ProtocolError(ResultCode.NOT_SIGNED_ON)
        if not envelope.verify(session.key):
            # Perhaps a newer session exists (the terminal signed on through another gateway).
            fresh = await self.sessions.load(header.terminal_id)
            if fresh is None or fresh.sid == session.sid or not envelope.verify(fresh.key):
                raise ProtocolError(ResultCode.BAD_MAC)
            session = fresh
        # Before the sequence advances, so that a refused session is not kept alive by the attempt.
        terminal = await self._usable_terminal(link, session)
        advanced = await self.sessions.advance(session, header.sequence)
        if advanced == 0:
            link.session = None
            raise ProtocolError(ResultCode.NOT_SIGNED_ON, "session ended")
        if advanced < 0:
            link.session = session  # the answer is MACed: the terminal can trust the refusal
            raise ProtocolError(ResultCode.REPLAYED_SEQUENCE)
        link.session = session
        link.terminal = terminal

    async def _usable_terminal(self, link: Link, session: Session) -> TerminalRecord:
        """The terminal of ``session`` if the session may still be used, else a refusal.

        Checked on every request, not once per connection: a terminal disabled or re-keyed while
        its connection (or its session, which survives reconnects) is open must stop at once.
        Disable and re-key delete the session in Redis too; this check is what holds when that
        deletion lost a race with a sign-on or did not reach Redis. A record read within
        ``status_cache_seconds`` may serve to accept (gateways run side by side, so longer would
        let another process's change go unseen); a refusal is decided on a fresh read only, so a
        terminal enabled again is never refused from a stale record.
        """
        cached = self._terminals.get(session.terminal_id)
        if (
            cached is not None
            and time.monotonic() - cached[0] < self.settings.status_cache_seconds
            and cached[1].tmk_version == session.tmk_version
        ):
            return cached[1]
        terminal = await self.registry.get(session.terminal_id)
        if terminal is None or terminal.status != "active":
            self._terminals.pop(session.terminal_id, None)
            await self.sessions.close(session.terminal_id)
            link.session = None  # no session applies: the refusal carries the all-zero MAC
            raise ProtocolError(ResultCode.TERMINAL_DISABLED)
        self._remember(terminal)
        if terminal.tmk_version != session.tmk_version:
            # Signed on with a master key since replaced (and perhaps compromised): its session key
            # proves nothing, and the answer is not MACed with it.
            await self.sessions.end(session)
            link.session = None
            raise ProtocolError(ResultCode.NOT_SIGNED_ON, "terminal re-keyed")
        return terminal

    def _remember(self, terminal: TerminalRecord) -> None:
        """Cache an active terminal's record for :meth:`_usable_terminal` (never a refused one)."""
        ttl = self.settings.status_cache_seconds
        if ttl <= 0:
            return
        now = time.monotonic()
        if len(self._terminals) >= self._terminal_cache_limit:
            self._terminals = {k: v for k, v in self._terminals.items() if now - v[0] < ttl}
            if len(self._terminals) >= self._terminal_cache_limit:
                self._terminals.clear()  # all fresh: a burst of terminals, re-read them
        self._terminals[terminal.id] = (now, terminal)

    # --- dispatch ----------------------------------------------------------------------------------------

    async def handle(self, link: Link, envelope: Envelope) -> bytes:
        message_type = envelope.header.message_type
        if message_type >= 0x80:
            raise ProtocolError(ResultCode.UNKNOWN_MESSAGE_TYPE, "answers are not requests")
        if message_type == MessageType.SIGN_ON:
            return await self.sign_on(link, envelope)
        await self.authenticate(link, envelope)
        assert link.terminal is not None
        body = envelope.body()
        answer: Message | EncodedBody
        if isinstance(body, Heartbeat):
            answer = await self.downloads.heartbeat(link.terminal)
        elif isinstance(body, Parameters):
            answer = await self.downloads.parameters(link.terminal.operator)
        elif isinstance(body, Blacklist):
            answer = await self.downloads.blacklist_page(body)
        elif isinstance(body, Settlement):
            answer = await self.settlement(link.terminal, body)
        elif isinstance(body, SignOff):
            answer = SignOffResponse()
            frame = self.answer(link, envelope, answer)
            await self.sessions.close(link.terminal.id)
            link.session = None
            return frame
        else:
            answer = await self.batches.handle(
                link.terminal, body, envelope.signed
            ) or await self.loads.handle(link.terminal, body)
        return self.answer(link, envelope, answer)

    async def sign_on(self, link: Link, envelope: Envelope) -> bytes:
        header = envelope.header
        if link.terminal is not None and link.terminal.id != header.terminal_id:
            raise ProtocolError(ResultCode.TERMINAL_MISMATCH)
        terminal = await self.registry.get(header.terminal_id)
        if terminal is None:
            raise ProtocolError(ResultCode.UNKNOWN_TERMINAL)
        auth_key, kek = sign_on_keys(terminal.tmk)
        if not envelope.verify(auth_key):
            raise ProtocolError(ResultCode.BAD_MAC)
        if terminal.status != "active":
            raise ProtocolError(ResultCode.TERMINAL_DISABLED)
        body = envelope.body()
        assert isinstance(body, SignOn)
        now = int(time.time())
        drift = self.settings.clock_drift_seconds
        if abs(header.time - now) > drift:
            raise ProtocolError(ResultCode.CLOCK_DRIFT, f"server time {now}")
        if not await self.sessions.nonce_is_fresh(terminal.id, body.nonce, 2 * drift):
            raise ProtocolError(ResultCode.SIGN_ON_REPLAYED)
        session_key = os.urandom(16)
        link.session = await self.sessions.open(
            terminal.id, session_key, header.sequence, terminal.tmk_version
        )
        link.terminal = terminal
        self._remember(terminal)
        await self.registry.record_sign_on(
            terminal.id,
            software=body.software_version,
            fare=body.fare_version,
            blacklist=body.blacklist_version,
            parameters=body.parameter_version,
            at=dt.datetime.now(dt.UTC),
        )
        params = await self.downloads.platform_parameters()
        async with self.pool.acquire() as db:
            blacklist_version = await self.blacklist.head(db)
            fare_version = await self.fares.version(db, terminal.operator)
            if terminal.kind == TerminalKind.KIOSK:
                await self.ledger.ensure_kiosk_account(db, terminal.operator, terminal.id)
        log.info("terminal signed on", extra={"terminal": terminal.id, "peer": link.peer})
        return self.answer(
            link,
            envelope,
            SignOnResponse(
                wrapped_key=wrap_session_key(kek, session_key),
                key_check=key_check_value(session_key),
                server_time=now,
                session_ttl=self.settings.session_ttl_seconds,
                fare_version=fare_version,
                blacklist_version=blacklist_version,
                parameter_version=params.parameter_version,
            ),
        )

    async def settlement(self, terminal: TerminalRecord, body: Settlement) -> SettlementResponse:
        async with self.pool.acquire() as db, db.transaction():
            row = await db.fetchrow(
                "SELECT count(*) AS n, coalesce(sum(r.amount), 0) AS total FROM card.terminal_records r "
                "JOIN card.terminal_batches b ON b.id = r.batch_id "
                "WHERE r.terminal_id = $1 AND b.batch_number BETWEEN $2 AND $3",
                terminal.id,
                body.batch_from,
                body.batch_to,
            )
            assert row is not None
            count, amount = int(row["n"]), int(row["total"])
            matched = count == body.count and amount == body.amount
            await db.execute(
                "INSERT INTO card.terminal_settlements (terminal_id, batch_from, batch_to, terminal_count, "
                "terminal_amount, host_count, host_amount, matched) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                terminal.id,
                body.batch_from,
                body.batch_to,
                body.count,
                body.amount,
                count,
                amount,
                matched,
            )
        code = ResultCode.OK if matched else ResultCode.SETTLEMENT_MISMATCH
        return SettlementResponse(result=int(code), host_count=count, host_amount=amount)
