"""Activating a card on a phone, and (development only) the demo page's simulated phone.

The app generates a P-256 key pair and sends the public key; the platform signs a ``card.qr``
authorisation binding card number, device key, single-payment cap, concession and expiry. One
active device per card: binding a new one revokes the old binding and puts the old authorisation
on the blacklist in the same transaction. The app then builds QR payloads offline
(``card.qr.build_qr_payload``) until the authorisation expires, and activates again to renew it.
"""

from __future__ import annotations

import datetime as dt
import io
import uuid
from typing import Literal

import msgspec
import segno
from cryptography.hazmat.primitives.asymmetric import ec

from card._db import Pool
from card.audit import Actor, AuditSink, DetailValue
from card.blacklist.store import EntryKind, ListEntry, change_txn
from card.devices.repo import insert_binding_txn, revoke_active_txn
from card.errors import BadDeviceKey, CardError, CardNotFound
from card.keys.api import CardKeyStore
from card.keys.wrap import unwrap_key, wrap_key
from card.lifecycle import repo
from card.lifecycle.states import Action, transition
from card.qr import Concession, build_qr_payload, encode_qr_text
from card.qr.payload import authorisation_id, compress_public_key
from card.settings import CardSettings

__all__ = ["Activation", "DeviceService", "parse_device_key"]


class Activation(msgspec.Struct, frozen=True, kw_only=True):
    binding_id: uuid.UUID
    authorisation: bytes  # 123 bytes (base64 on the wire); the app keeps it to build QR codes
    key_id: int
    expires_at: dt.datetime
    qr_validity_seconds: int
    cap_fen: int
    concession: int


def parse_device_key(raw: bytes) -> ec.EllipticCurvePublicKey:
    """A SEC1 P-256 point (compressed 33 bytes or uncompressed 65 bytes), else 422."""
    if len(raw) not in (33, 65):
        raise BadDeviceKey("expected a SEC1 P-256 point of 33 or 65 bytes")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        raise BadDeviceKey("not a point on P-256") from None


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class DeviceService:
    def __init__(
        self,
        pool: Pool,
        keys: CardKeyStore,
        settings: CardSettings,
        *,
        audit: AuditSink | None = None,
        demo_kek: bytes | None = None,
    ) -> None:
        """``demo_kek`` enables the simulated phone; pass it only in development."""
        self.pool = pool
        self.keys = keys
        self.settings = settings
        self.audit = audit
        self._demo_kek = demo_kek

    async def activate(
        self,
        card_id: uuid.UUID,
        device_public_key: bytes | ec.EllipticCurvePublicKey,
        actor: Actor,
        *,
        label: str | None = None,
        now: dt.datetime | None = None,
    ) -> Activation:
        key = (
            device_public_key
            if isinstance(device_public_key, ec.EllipticCurvePublicKey)
            else parse_device_key(device_public_key)
        )
        now = now or _utcnow()
        expires = now.replace(microsecond=0) + dt.timedelta(seconds=self.settings.authorisation_ttl_seconds)
        async with self.pool.acquire() as connection, connection.transaction():
            card = await repo.lock_card_txn(connection, card_id)
            transition(Action.ACTIVATE_DEVICE, card.status)
            concession = Concession(
                await connection.fetchval("SELECT concession FROM card.epurses WHERE card_id = $1", card_id)
            )
            authorisation = await self.keys.sign_qr_authorisation(
                issuer_id=self.settings.issuer_code,
                card_number=card.card_number,
                concession=concession,
                cap_fen=self.settings.single_payment_cap_fen,
                expires_at=expires,
                device_public_key=key,
            )
            key_id = int.from_bytes(authorisation[1:3], "big")
            revoked = await revoke_active_txn(connection, card_id, reason="replaced by a new device", now=now)
            binding_id = uuid.uuid4()
            await insert_binding_txn(
                connection,
                binding_id=binding_id,
                card_id=card_id,
                device_public_key=compress_public_key(key),
                label=label,
                authorisation=authorisation,
                authorisation_id=authorisation_id(authorisation),
                key_id=key_id,
                expires_at=expires,
                now=now,
            )
            details: dict[str, DetailValue] = {"binding_id": str(binding_id)}
            if revoked is not None:
                details["blacklist_version"] = await change_txn(
                    connection,
                    adds=[ListEntry(EntryKind.AUTHORISATION, revoked, card_id, "device replaced")],
                    now=now,
                )
            await repo.record_event_txn(
                connection,
                card_id,
                action=Action.ACTIVATE_DEVICE.value,
                from_status=card.status,
                to_status=card.status,
                actor=actor,
                now=now,
                details=details,
            )
            if self.audit is not None:
                await self.audit(connection, actor, Action.ACTIVATE_DEVICE.value, card_id, details)
        return Activation(
            binding_id=binding_id,
            authorisation=authorisation,
            key_id=key_id,
            expires_at=expires,
            qr_validity_seconds=self.settings.qr_validity_seconds,
            cap_fen=self.settings.single_payment_cap_fen,
            concession=int(concession),
        )

    # --- development: the demo page's simulated phone ---------------------------------------------------

    def _require_demo(self) -> bytes:
        if self._demo_kek is None:
            raise CardError("the simulated phone exists only in development")
        return self._demo_kek

    async def demo_activate(
        self, card_id: uuid.UUID, actor: Actor, *, now: dt.datetime | None = None
    ) -> Activation:
        """Activate the card on a server-held demo key (development only) and keep that key, wrapped."""
        kek = self._require_demo()
        private = ec.generate_private_key(ec.SECP256R1())
        activation = await self.activate(card_id, private.public_key(), actor, label="demo phone", now=now)
        scalar = private.private_numbers().private_value.to_bytes(32, "big")
        purpose = f"demo-device:{activation.binding_id}"
        await self.pool.execute(
            "INSERT INTO card.demo_device_keys (binding_id, wrapped_key) VALUES ($1, $2)",
            activation.binding_id,
            wrap_key(kek, purpose, 1, scalar),
        )
        return activation

    async def demo_qr(
        self, card_id: uuid.UUID, *, kind: Literal["svg", "png", "text"], now: dt.datetime | None = None
    ) -> bytes:
        """The current QR of the demo phone: SVG or PNG through segno, or the Base45 text."""
        kek = self._require_demo()
        row = await self.pool.fetchrow(
            "SELECT b.id, b.authorisation, k.wrapped_key FROM card.device_bindings b"
            " JOIN card.demo_device_keys k ON k.binding_id = b.id"
            " WHERE b.card_id = $1 AND b.status = 'active'",
            card_id,
        )
        if row is None:
            raise CardNotFound("the card is not activated on the demo phone")
        scalar = unwrap_key(kek, f"demo-device:{row['id']}", 1, bytes(row["wrapped_key"]))
        private = ec.derive_private_key(int.from_bytes(scalar, "big"), ec.SECP256R1())
        payload = build_qr_payload(bytes(row["authorisation"]), private, now or _utcnow())
        text = encode_qr_text(payload)
        if kind == "text":
            return text.encode()
        symbol = segno.make_qr(text, error="m")
        buffer = io.BytesIO()
        if kind == "svg":
            symbol.save(buffer, kind="svg", scale=4, border=2, xmldecl=False)
        else:
            symbol.save(buffer, kind="png", scale=4, border=2)
        return buffer.getvalue()
