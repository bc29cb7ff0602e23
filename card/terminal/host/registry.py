"""The terminal registry (``card.terminals``): register, disable, enable, re-key, look up.

A terminal master key (TMK, 16 bytes) is generated at registration and at each re-key, returned
once to the caller (the key-injection step of a real deployment) and stored only wrapped with
AES-256-GCM under the keyring's ``card-kek`` (AAD ``citizen-tmk/1|<terminal id>|<version>``).

Every change made for an operator (an :class:`~card.audit.Actor`) is written to identity's
tamper-evident audit log in the same transaction (``card.terminal.<verb>``, target ``terminal``);
:func:`audit_terminal` records the reads and the refusals the admin API answers.

Disabling and re-keying end the terminal's session in Redis once the change has committed, so the
terminal must sign on again (and is refused: disabled, or its old master key no longer signs on).
The host also checks the status and the key version of a session on every request
(``TerminalHost.authenticate``), which covers what the deletion cannot: a sign-on racing the change,
or Redis unreachable at that moment.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from dataclasses import dataclass
from typing import Final

import asyncpg
import redis.asyncio as aioredis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from redis.exceptions import RedisError

from card._db import Connection, Pool
from card.audit import Actor, DetailValue
from card.terminal.host.ports import LedgerPostings
from card.terminal.host.sessions import end_session
from card.terminal.messages import key_check_value
from card.terminal.spec import TerminalKind

__all__ = [
    "InvalidRegistration",
    "Registration",
    "TerminalExists",
    "TerminalNotFound",
    "TerminalRecord",
    "TerminalRegistry",
    "audit_terminal",
    "check_registration",
]

_AAD: Final = b"citizen-tmk/1|"
log = logging.getLogger("citizen.terminal")


class TerminalNotFound(LookupError):
    problem_type = "terminal-not-found"
    problem_title = "No such terminal"
    problem_status = 404


class InvalidRegistration(ValueError):
    """A registration the ``card.terminals`` CHECK constraints would refuse, found before the insert."""

    problem_type = "validation-error"
    problem_title = "The request is not valid"
    problem_status = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.problem_extra = {"errors": [{"field": field, "message": message}]}


# The CHECK constraints of card.terminals (0100_terminals.sql), so a bad value is a 422, not a 500.
_TERMINAL_ID: Final = re.compile(r"^[0-9A-Z-]{1,16}$")
_OPERATOR: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_LINE: Final = _TERMINAL_ID
_SITE_MAX: Final = 100  # no CHECK on site; it is a label on the console, kept to a line


def check_registration(terminal_id: str, operator: str, line: str | None, site: str | None) -> None:
    """Raise :class:`InvalidRegistration` naming the first field the database would refuse."""
    if not _TERMINAL_ID.fullmatch(terminal_id):
        raise InvalidRegistration("id", "1 to 16 of A-Z 0-9 -")
    if not _OPERATOR.fullmatch(operator):
        raise InvalidRegistration("operator", "1 to 40 of a-z 0-9 _ -, starting with a letter or digit")
    if line is not None and not _LINE.fullmatch(line):
        raise InvalidRegistration("line", "1 to 16 of A-Z 0-9 -")
    if site is not None and not (0 < len(site) <= _SITE_MAX and site.isprintable()):
        raise InvalidRegistration("site", f"1 to {_SITE_MAX} printable characters")


class TerminalExists(ValueError):
    problem_type = "terminal-exists"
    problem_title = "The terminal id is taken"
    problem_status = 409


@dataclass(frozen=True, slots=True)
class TerminalRecord:
    id: str
    operator: str
    kind: TerminalKind
    line: str | None
    site: str | None
    status: str
    psam_terminal_no: bytes
    tmk: bytes
    tmk_version: int
    last_serial: int

    def __repr__(self) -> str:  # never print the key
        return f"TerminalRecord({self.id!r}, {self.operator!r}, {self.kind.name}, {self.status})"


@dataclass(frozen=True, slots=True)
class Registration:
    id: str
    operator: str
    kind: TerminalKind
    psam_terminal_no: bytes
    tmk: bytes
    tmk_version: int


def _wrap(kek: bytes, terminal_id: str, version: int, tmk: bytes) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(kek).encrypt(nonce, tmk, _AAD + f"{terminal_id}|{version}".encode())


def _unwrap(kek: bytes, terminal_id: str, version: int, wrapped: bytes) -> bytes:
    try:
        return AESGCM(kek).decrypt(wrapped[:12], wrapped[12:], _AAD + f"{terminal_id}|{version}".encode())
    except InvalidTag:
        raise RuntimeError(
            f"the master key of terminal {terminal_id} does not decrypt under card-kek"
        ) from None


async def audit_terminal(
    db: Connection,
    actor: Actor,
    verb: str,
    terminal_id: str | None,
    details: dict[str, DetailValue] | None = None,
    *,
    outcome: str = "success",
) -> None:
    """One entry ``card.terminal.<verb>`` in identity's audit chain (call it last in a transaction)."""
    from identity.audit import AuditEvent, record

    await record(
        db,
        AuditEvent(
            action=f"card.terminal.{verb}",
            outcome="failure" if outcome == "failure" else "denied" if outcome == "denied" else "success",
            actor_kind=actor.kind,
            actor_id=actor.id,
            target_kind="terminal" if terminal_id is not None else None,
            target_id=terminal_id,
            client_address=actor.client_address,
            client_id=actor.client_id,
            request_id=actor.request_id,
            details=details or {},
        ),
    )


class TerminalRegistry:
    def __init__(
        self,
        pool: Pool,
        kek: bytes,
        ledger: LedgerPostings | None = None,
        *,
        redis: aioredis.Redis | None,
    ) -> None:
        """``redis``: where the terminal sessions live, so that disable and re-key end them. No
        default on purpose: only a caller that never disables or re-keys (a script that registers
        terminals) passes None, and then the host alone refuses the old session, within its
        ``status_cache_seconds``."""
        self._pool = pool
        self._kek = kek
        self._ledger = ledger or LedgerPostings()
        self._redis = redis

    async def _end_session(self, terminal_id: str) -> None:
        """End the terminal's session after a committed disable or re-key.

        A failure is logged, not raised: the change and its audit entry have committed (a re-key's
        new key would be lost to the caller), and the host refuses the old session anyway once its
        status check sees the change (``TerminalHost.authenticate``)."""
        if self._redis is None:
            return
        try:
            await end_session(self._redis, terminal_id)
        except (RedisError, OSError) as exc:
            log.warning(
                "terminal session not ended: %s", exc.__class__.__name__, extra={"terminal": terminal_id}
            )

    async def register(
        self,
        terminal_id: str,
        *,
        operator: str,
        kind: TerminalKind,
        line: str | None = None,
        site: str | None = None,
        actor: Actor | None = None,
    ) -> Registration:
        """:class:`InvalidRegistration` before anything is written if a field is not valid."""
        check_registration(terminal_id, operator, line, site)
        tmk = os.urandom(16)
        async with self._pool.acquire() as db, db.transaction():
            seq = int(await db.fetchval("SELECT nextval('card.terminal_psam_seq')"))
            psam_no = bytes.fromhex(f"{seq:012d}")  # 6-byte BCD PSAM terminal number
            try:
                await db.execute(
                    "INSERT INTO card.terminals (id, operator, kind, line, site, status, psam_terminal_no, "
                    "tmk_wrapped, tmk_version, tmk_check) "
                    "VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, 1, $8)",
                    terminal_id,
                    operator,
                    int(kind),
                    line,
                    site,
                    psam_no,
                    _wrap(self._kek, terminal_id, 1, tmk),
                    key_check_value(tmk),
                )
            except asyncpg.UniqueViolationError:
                raise TerminalExists(f"terminal {terminal_id} is already registered") from None
            await self._ledger.ensure_operator_accounts_txn(db, operator)
            if kind == TerminalKind.KIOSK:
                await self._ledger.ensure_kiosk_account(db, operator, terminal_id)
            if actor is not None:
                details: dict[str, DetailValue] = {
                    "operator": operator,
                    "kind": kind.name.lower(),
                    "line": line,
                    "site": site,
                    "psam_terminal_no": psam_no.hex(),
                    "tmk_version": 1,
                    "tmk_check": key_check_value(tmk).hex(),
                }
                await audit_terminal(db, actor, "register", terminal_id, details)
        return Registration(terminal_id, operator, kind, psam_no, tmk, 1)

    @property
    def pool(self) -> Pool:
        return self._pool

    @property
    def kek(self) -> bytes:
        return self._kek

    async def set_status(self, terminal_id: str, status: str, actor: Actor | None = None) -> None:
        async with self._pool.acquire() as db, db.transaction():
            before = await db.fetchval(
                "SELECT status FROM card.terminals WHERE id = $1 FOR UPDATE", terminal_id
            )
            if before is None:
                raise TerminalNotFound(terminal_id)
            await db.execute(
                "UPDATE card.terminals SET status = $2, status_changed_at = now() WHERE id = $1",
                terminal_id,
                status,
            )
            if actor is not None:
                verb = "disable" if status == "disabled" else "enable"
                await audit_terminal(db, actor, verb, terminal_id, {"from": before, "to": status})
        # After the commit: a sign-on from now on reads the new status. (Before it, a sign-on could
        # open a session between the deletion and the commit.)
        if status != "active":
            await self._end_session(terminal_id)

    async def rekey(self, terminal_id: str, actor: Actor | None = None) -> Registration:
        tmk = os.urandom(16)
        async with self._pool.acquire() as db, db.transaction():
            row = await db.fetchrow(
                "SELECT operator, kind, psam_terminal_no, tmk_version FROM card.terminals "
                "WHERE id = $1 FOR UPDATE",
                terminal_id,
            )
            if row is None:
                raise TerminalNotFound(terminal_id)
            version = int(row["tmk_version"]) + 1
            await db.execute(
                "UPDATE card.terminals SET tmk_wrapped = $2, tmk_version = $3, tmk_check = $4 WHERE id = $1",
                terminal_id,
                _wrap(self._kek, terminal_id, version, tmk),
                version,
                key_check_value(tmk),
            )
            if actor is not None:
                await audit_terminal(
                    db, actor, "rekey", terminal_id,
                    {"tmk_version": version, "tmk_check": key_check_value(tmk).hex()},
                )  # fmt: skip
        # After the commit, as in set_status: the old key's session ends, and the old key no
        # longer signs on (sign-on reads the new one).
        await self._end_session(terminal_id)
        return Registration(
            terminal_id,
            row["operator"],
            TerminalKind(row["kind"]),
            bytes(row["psam_terminal_no"]),
            tmk,
            version,
        )

    async def get(self, terminal_id: str, db: Connection | None = None) -> TerminalRecord | None:
        query = (
            "SELECT id, operator, kind, line, site, status, psam_terminal_no, tmk_wrapped, tmk_version, "
            "last_serial FROM card.terminals WHERE id = $1"
        )
        row = await (db or self._pool).fetchrow(query, terminal_id)
        if row is None:
            return None
        return TerminalRecord(
            id=row["id"],
            operator=row["operator"],
            kind=TerminalKind(row["kind"]),
            line=row["line"],
            site=row["site"],
            status=row["status"],
            psam_terminal_no=bytes(row["psam_terminal_no"]),
            tmk=_unwrap(self._kek, row["id"], row["tmk_version"], bytes(row["tmk_wrapped"])),
            tmk_version=int(row["tmk_version"]),
            last_serial=int(row["last_serial"]),
        )

    async def record_sign_on(
        self, terminal_id: str, *, software: str, fare: int, blacklist: int, parameters: int, at: dt.datetime
    ) -> None:
        await self._pool.execute(
            "UPDATE card.terminals SET software_version = $2, fare_version = $3, blacklist_version = $4, "
            "parameter_version = $5, last_sign_on_at = $6 WHERE id = $1",
            terminal_id,
            software,
            fare,
            blacklist,
            parameters,
            at,
        )

    async def list(self, operator: str | None = None) -> list[dict[str, object]]:
        rows = await self._pool.fetch(
            "SELECT id, operator, kind, line, site, status, "
            "encode(psam_terminal_no, 'hex') AS psam_terminal_no, tmk_version, software_version, "
            "fare_version, blacklist_version, parameter_version, last_sign_on_at, last_batch_number, "
            "last_serial FROM card.terminals WHERE $1::text IS NULL OR operator = $1 ORDER BY id",
            operator,
        )
        return [dict(r) for r in rows]
