"""``SoftwareKeyStore``: the :class:`~card.keys.api.CardKeyStore` for development and tests.

Master keys (MK_DPK, MK_DLK, MK_DTK: 16-byte two-key 3DES) and the platform's P-256 signing keys
(QR_SIGN for ride authorisations, DOC_SIGN for files) are generated once per version and stored in
``card.issuer_keys`` wrapped with AES-256-GCM under the keyring's ``card-kek``. They are decrypted
into this process's memory on first use, and per-card diversified keys are kept in a bounded LRU.
Nothing here hands a key to a caller.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections import OrderedDict
from typing import Final

import msgspec
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from card._db import Connection, Pool
from card.crypto import (
    BlockCipher,
    DiversificationOrder,
    LoadInputs,
    PurchaseInputs,
    QrTacInputs,
    derive_epurse_card_key,
    derive_qr_tac_key,
    load_session_key,
    purchase_tac_under,
    qr_tac,
    tac_key,
    tdes_ecb_encrypt,
    verify_mac,
)
from card.crypto import (
    load_mac2 as _load_mac2,
)
from card.crypto import (
    purchase_tac as _purchase_tac,
)
from card.crypto import (
    verify_load_mac1 as _verify_load_mac1,
)
from card.errors import KeyStoreError, UnknownKeyVersion
from card.keys.api import CardKeyRef, PersonalisationCard, SignedDocument
from card.keys.personalisation import FORMAT, PersonalisationRecord, recipient_kid, seal_card_keys
from card.keys.wrap import unwrap_key, wrap_key
from card.qr import Concession, sign_authorisation
from card.qr.payload import sign_raw

__all__ = ["DIVERSIFICATION_ORDER", "SoftwareKeyStore", "key_check_value"]

# The order of the two diversification levels is not confirmed by the reference (§1.8, §10); this
# deployment diversifies by issuer first, and says so in every personalisation record.
DIVERSIFICATION_ORDER: Final = DiversificationOrder.ISSUER_FIRST
_SYMMETRIC: Final = ("DPK", "DLK", "DTK")
_SIGNING: Final = ("QR_SIGN", "DOC_SIGN")
_LOCK_KEY: Final = 0x43415244_4B455953  # pg_advisory_xact_lock id for key generation ("CARDKEYS")


def key_check_value(key: bytes) -> bytes:
    """KCV: the first 3 bytes of 3DES(K, 00x8) (the usual check value; reveals nothing useful)."""
    return tdes_ecb_encrypt(key, bytes(8))[:3]


class SoftwareKeyStore:
    def __init__(
        self,
        pool: Pool,
        kek: bytes,
        *,
        cipher: BlockCipher = BlockCipher.TDES,
        card_key_cache_size: int = 65536,
    ) -> None:
        if len(kek) != 32:
            raise ValueError("card-kek must be 32 bytes")
        if cipher is not BlockCipher.TDES:
            # The diversification is SM4-ready (card.crypto); the SM4 session keys and MACs are not
            # in the reference yet, so the store refuses rather than half-supporting it.
            raise KeyStoreError("only 3DES card keys are issued for now")
        self._pool = pool
        self._kek = kek
        self._cipher = cipher
        self._masters: dict[tuple[str, int], bytes] = {}
        self._signers: dict[tuple[str, int], ec.EllipticCurvePrivateKey] = {}
        self._card_keys: OrderedDict[tuple[str, int, bytes, bytes], bytes] = OrderedDict()
        self._cache_size = card_key_cache_size
        self._load_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SoftwareKeyStore(versions loaded: {sorted({v for _, v in self._masters})})"

    # --- key management --------------------------------------------------------------------------------

    async def ensure_initialised(self) -> int:
        """Generate version 1 if the database has no keys yet; return the current version."""
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            current = await connection.fetchval("SELECT current_version FROM card.key_state")
            if current is None:
                await self._generate(connection, 1)
                await connection.execute("INSERT INTO card.key_state (current_version) VALUES (1)")
                current = 1
        return int(current)

    async def current_version(self) -> int:
        current = await self._pool.fetchval("SELECT current_version FROM card.key_state")
        if current is None:
            return await self.ensure_initialised()
        return int(current)

    async def rotate(self) -> int:
        await self.ensure_initialised()
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
            latest = await connection.fetchval("SELECT max(version) FROM card.issuer_keys")
            version = int(latest) + 1
            if version > 0xFFFF:
                raise KeyStoreError("no key versions left")
            await self._generate(connection, version)
            await connection.execute("UPDATE card.key_state SET current_version = $1", version)
        return version

    async def versions(self) -> list[int]:
        rows = await self._pool.fetch("SELECT DISTINCT version FROM card.issuer_keys ORDER BY version")
        return [int(r["version"]) for r in rows]

    async def _generate(self, connection: Connection, version: int) -> None:
        rows: list[tuple[str, int, str, bytes, bytes]] = []
        for purpose in _SYMMETRIC:
            key = os.urandom(16)
            rows.append(
                (purpose, version, "3DES", wrap_key(self._kek, purpose, version, key), key_check_value(key))
            )
        for purpose in _SIGNING:
            private = ec.generate_private_key(ec.SECP256R1())
            scalar = private.private_numbers().private_value.to_bytes(32, "big")
            point = private.public_key().public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
            rows.append((purpose, version, "P-256", wrap_key(self._kek, purpose, version, scalar), point))
        await connection.executemany(
            "INSERT INTO card.issuer_keys (purpose, version, algorithm, wrapped, check_value)"
            " VALUES ($1, $2, $3, $4, $5)",
            rows,
        )

    async def _unwrapped(self, purpose: str, version: int) -> bytes:
        async with self._load_lock:
            row = await self._pool.fetchrow(
                "SELECT wrapped FROM card.issuer_keys WHERE purpose = $1 AND version = $2", purpose, version
            )
        if row is None:
            raise UnknownKeyVersion(f"no {purpose} key of version {version}")
        return unwrap_key(self._kek, purpose, version, bytes(row["wrapped"]))

    async def _master(self, purpose: str, version: int) -> bytes:
        key = self._masters.get((purpose, version))
        if key is None:
            key = await self._unwrapped(purpose, version)
            self._masters[(purpose, version)] = key
        return key

    async def _signer(self, purpose: str, version: int) -> ec.EllipticCurvePrivateKey:
        key = self._signers.get((purpose, version))
        if key is None:
            scalar = await self._unwrapped(purpose, version)
            key = ec.derive_private_key(int.from_bytes(scalar, "big"), ec.SECP256R1())
            self._signers[(purpose, version)] = key
        return key

    async def _card_key(self, purpose: str, ref: CardKeyRef) -> bytes:
        cache_key = (purpose, ref.key_version, ref.app_serial, ref.issuer_id)
        key = self._card_keys.get(cache_key)
        if key is not None:
            self._card_keys.move_to_end(cache_key)
            return key
        master = self._masters.get((purpose, ref.key_version)) or await self._master(purpose, ref.key_version)
        key = derive_epurse_card_key(
            master,
            app_serial=ref.app_serial,
            issuer_id=ref.issuer_id,
            order=DIVERSIFICATION_ORDER,
            cipher=self._cipher,
        )
        self._card_keys[cache_key] = key
        if len(self._card_keys) > self._cache_size:
            self._card_keys.popitem(last=False)
        return key

    # --- e-purse -----------------------------------------------------------------------------------------

    async def purchase_tac(self, ref: CardKeyRef, inputs: PurchaseInputs) -> bytes:
        return _purchase_tac(await self._card_key("DTK", ref), inputs)

    async def verify_purchase_tac(self, ref: CardKeyRef, inputs: PurchaseInputs, tac: bytes) -> bool:
        return verify_mac(_purchase_tac(await self._card_key("DTK", ref), inputs), tac)

    async def verify_purchase_tacs(self, items: list[tuple[CardKeyRef, PurchaseInputs, bytes]]) -> list[bool]:
        # The host's hot path (one TAC per uploaded record): the card's 8-byte TAC key
        # (DTK_L XOR DTK_R) is what stays in the cache, not the DTK it is derived from.
        cache = self._card_keys
        results = []
        for ref, inputs, tac in items:
            cache_key = ("TAC", ref.key_version, ref.app_serial, ref.issuer_id)
            key = cache.get(cache_key)
            if key is None:
                key = await self._tac_key(ref)
            else:
                cache.move_to_end(cache_key)
            results.append(verify_mac(purchase_tac_under(key, inputs), tac))
        return results

    async def _tac_key(self, ref: CardKeyRef) -> bytes:
        key = tac_key(await self._card_key("DTK", ref))
        self._card_keys[("TAC", ref.key_version, ref.app_serial, ref.issuer_id)] = key
        if len(self._card_keys) > self._cache_size:
            self._card_keys.popitem(last=False)
        return key

    async def verify_load_mac1(
        self, ref: CardKeyRef, *, pseudo_random: bytes, online_counter: int, inputs: LoadInputs, mac1: bytes
    ) -> bool:
        seslk = load_session_key(await self._card_key("DLK", ref), pseudo_random, online_counter)
        return _verify_load_mac1(seslk, inputs, mac1)

    async def load_mac2(
        self,
        ref: CardKeyRef,
        *,
        pseudo_random: bytes,
        online_counter: int,
        inputs: LoadInputs,
        mac1: bytes,
        transaction_time: bytes,
    ) -> bytes:
        seslk = load_session_key(await self._card_key("DLK", ref), pseudo_random, online_counter)
        if not _verify_load_mac1(seslk, inputs, mac1):
            raise KeyStoreError("load MAC1 does not verify: no MAC2 is issued")
        return _load_mac2(seslk, inputs, transaction_time)

    async def verify_qr_tac(self, key_version: int, account: bytes, inputs: QrTacInputs, tac: bytes) -> bool:
        cache_key = ("QR_DTK", key_version, bytes(account), b"")
        key = self._card_keys.get(cache_key)
        if key is None:
            master = await self._master("DTK", key_version)
            key = derive_qr_tac_key(master, bytes(account), order=DIVERSIFICATION_ORDER)
            self._card_keys[cache_key] = key
        return verify_mac(qr_tac(key, inputs), tac)

    # --- signatures ---------------------------------------------------------------------------------------

    async def sign_qr_authorisation(
        self,
        *,
        issuer_id: int,
        card_number: str,
        concession: Concession,
        cap_fen: int,
        expires_at: dt.datetime,
        device_public_key: ec.EllipticCurvePublicKey,
    ) -> bytes:
        version = await self.current_version()
        return sign_authorisation(
            await self._signer("QR_SIGN", version),
            key_id=version,
            issuer_id=issuer_id,
            card_number=card_number,
            concession=concession,
            cap_fen=cap_fen,
            expires_at=expires_at,
            device_public_key=device_public_key,
        )

    async def _public_keys(self, purpose: str) -> dict[int, ec.EllipticCurvePublicKey]:
        rows = await self._pool.fetch(
            "SELECT version, check_value FROM card.issuer_keys WHERE purpose = $1 ORDER BY version", purpose
        )
        return {
            int(r["version"]): ec.EllipticCurvePublicKey.from_encoded_point(
                ec.SECP256R1(), bytes(r["check_value"])
            )
            for r in rows
        }

    async def qr_public_keys(self) -> dict[int, ec.EllipticCurvePublicKey]:
        return await self._public_keys("QR_SIGN")

    async def document_public_keys(self) -> dict[int, ec.EllipticCurvePublicKey]:
        return await self._public_keys("DOC_SIGN")

    async def sign_document(self, payload: bytes) -> SignedDocument:
        version = await self.current_version()
        signature = sign_raw(await self._signer("DOC_SIGN", version), payload)
        return SignedDocument(payload=payload, key_id=version, signature=signature)

    # --- personalisation ---------------------------------------------------------------------------------

    async def export_personalisation(
        self, card: PersonalisationCard, transport_key: ec.EllipticCurvePublicKey
    ) -> SignedDocument:
        keys = {purpose: await self._card_key(purpose, card.key) for purpose in _SYMMETRIC}
        point, nonce, sealed = seal_card_keys(transport_key, card.card_number, b"".join(keys.values()))
        record = PersonalisationRecord(
            format=FORMAT,
            card_number=card.card_number,
            app_serial=card.key.app_serial.hex(),
            issuer_id=card.key.issuer_id.hex(),
            issued_on=card.issued_on,
            expires_on=card.expires_on,
            key_version=card.key.key_version,
            cipher=self._cipher.value,
            diversification_order=DIVERSIFICATION_ORDER.value,
            concession=int(card.concession),
            overdraft_limit=card.overdraft_limit,
            key_check_values={p: key_check_value(k).hex() for p, k in keys.items()},
            recipient_kid=recipient_kid(transport_key),
            ephemeral_public_key=point,
            nonce=nonce,
            encrypted_keys=sealed,
            created_at=dt.datetime.now(dt.UTC),
        )
        return await self.sign_document(msgspec.json.encode(record))
