"""What terminals download (docs/terminal-protocol.md §8): heartbeat versions, the platform and
fare parameters, and the blacklist in pages. Shared by every connection of a gateway process;
the platform part is re-read after ``parameters_cache_seconds``, the rest read per request.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from card.terminal.host.blacklist_reader import BlacklistReader, UnknownListVersion
from card.terminal.host.registry import TerminalRecord
from card.terminal.messages import (
    Blacklist,
    BlacklistResponse,
    FareRule,
    HeartbeatResponse,
    ParametersResponse,
    PlatformKey,
    ProtocolError,
)
from card.terminal.spec import ResultCode

if TYPE_CHECKING:
    from card.terminal.host.service import TerminalHost

__all__ = ["Downloads", "Platform"]


@dataclass(frozen=True, slots=True)
class Platform:
    """The shared platform parameters and the QR public keys they carry."""

    parameters: ParametersResponse
    qr_keys: dict[int, ec.EllipticCurvePublicKey]


class Downloads:
    """Reads the host's settings, pool, key store and fares at each call (like ``BatchProcessor``),
    so what the host is given later is what a download uses."""

    def __init__(self, host: TerminalHost) -> None:
        self.host = host
        self.blacklist = BlacklistReader()
        self._platform: Platform | None = None
        self._platform_read_at = 0.0
        self._platform_lock = asyncio.Lock()

    async def heartbeat(self, terminal: TerminalRecord) -> HeartbeatResponse:
        params = await self.platform_parameters()
        async with self.host.pool.acquire() as db:
            blacklist_version = await self.blacklist.head(db)
            fare_version = await self.host.fares.version(db, terminal.operator)
        return HeartbeatResponse(
            server_time=int(time.time()),
            fare_version=fare_version,
            blacklist_version=blacklist_version,
            parameter_version=params.parameter_version,
        )

    async def platform(self) -> Platform:
        """The platform parameters, re-read after ``parameters_cache_seconds``.

        Not cached for the life of the process: a rotated QR signing key (``keys.rotate()``) must
        reach the terminals (through the parameter version of sign-on and heartbeat answers) and
        the host's own QR checks without a restart. While nothing has changed the same object is
        returned, so what is built from it (the QR verifier of batch uploads) is not rebuilt.
        """
        ttl = self.host.settings.parameters_cache_seconds
        if self._platform is not None and time.monotonic() - self._platform_read_at < ttl:
            return self._platform
        async with self._platform_lock:  # one read per expiry, not one per waiting request
            if self._platform is not None and time.monotonic() - self._platform_read_at < ttl:
                return self._platform
            keys = await self.host.keys.qr_public_keys()
            encoded = tuple(
                PlatformKey(key_id=k, public_key=v.public_bytes(Encoding.X962, PublicFormat.CompressedPoint))
                for k, v in sorted(keys.items())
            )
            parameters = ParametersResponse(
                parameter_version=max(keys, default=0) * 1000 + 1,
                qr_validity=self.host.card_settings.qr_validity_seconds,
                issuers=(self.host.card_settings.issuer_code,),
                keys=encoded,
            )
            if self._platform is None or self._platform.parameters != parameters:
                self._platform = Platform(parameters, keys)
            self._platform_read_at = time.monotonic()
            return self._platform

    async def platform_parameters(self) -> ParametersResponse:
        """The parameters every terminal shares: platform keys, issuers, QR validity (no fares)."""
        return (await self.platform()).parameters

    async def parameters(self, operator: str) -> ParametersResponse:
        """A terminal's parameter download: the shared part and its operator's current fare table."""
        shared = await self.platform_parameters()
        table = await self.host.fares.for_operator(self.host.pool, operator)
        if table is None:
            return msgspec.structs.replace(shared, fare_version=0)
        rules = tuple(
            FareRule(line=line, base_fare=base, per_stop_fare=per_stop, max_fare=most)
            for line, base, per_stop, most in table.rules
        )
        return msgspec.structs.replace(
            shared, fare_version=table.version, fares=rules, default_fare=table.default_fare
        )

    async def blacklist_page(self, body: Blacklist) -> BlacklistResponse:
        """One page of the list the terminal asked for (§8): at most ``blacklist_page_entries``
        card numbers, so that the answer fits one frame however long the list is."""
        if (body.list_version is None) != (body.after is None):
            # A continuation names both the list and the place in it; one alone is neither.
            missing = "after" if body.after is None else "list_version"
            raise ProtocolError(ResultCode.MISSING_FIELD, missing)
        # The list holds bigints: a key past the largest has no card after it (an empty last page).
        after = None if body.after is None else min(int(body.after), (1 << 63) - 1)
        try:
            async with self.host.pool.acquire() as db:
                page = await self.blacklist.delta(
                    db,
                    body.since_version,
                    limit=self.host.settings.blacklist_page_entries,
                    list_version=body.list_version,
                    after=after,
                )
        except UnknownListVersion:
            raise ProtocolError(ResultCode.BAD_FIELD_VALUE, "list_version") from None
        return BlacklistResponse(
            version=page.version,
            full=int(page.full),
            added=tuple(page.added),
            removed=tuple(page.removed),
            next_after=None if page.after is None else str(page.after),
        )
