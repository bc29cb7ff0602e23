"""The key store: rotation, MACs and TACs through the HSM-like API, no plaintext at rest, personalisation."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from card.applications import HolderDetails
from card.audit import Actor
from card.crypto import (
    DiversificationOrder,
    LoadInputs,
    PurchaseInputs,
    derive_epurse_card_key,
    encode_dt7,
    load_mac1,
    load_mac2,
    load_session_key,
    purchase_tac,
)
from card.errors import KeyStoreError, UnknownKeyVersion
from card.keys import CardKeyRef, SoftwareKeyStore, key_check_value, open_personalisation, verify_document
from card.keys.wrap import unwrap_key
from card.lifecycle.repo import key_ref_for
from card.lifecycle.service import CardService
from card.lifecycle.settlement import export_requested
from card.settings import CardSettings

NOW = dt.datetime(2025, 6, 1, 8, 0, tzinfo=dt.UTC)
ISSUER = CardSettings().issuer_id
PURCHASE = PurchaseInputs(
    amount=200,
    terminal_no=bytes.fromhex("001122334455"),
    terminal_txn_serial=7,
    transaction_time=encode_dt7(NOW),
)


def ref(version: int, serial: str = "00310477000000000012") -> CardKeyRef:
    return CardKeyRef(version, bytes.fromhex(serial), ISSUER)


async def _plain_masters(keys: SoftwareKeyStore, kek: bytes) -> dict[tuple[str, int], bytes]:
    rows = await keys._pool.fetch("SELECT purpose, version, wrapped FROM card.issuer_keys")
    return {
        (r["purpose"], r["version"]): unwrap_key(kek, r["purpose"], r["version"], bytes(r["wrapped"]))
        for r in rows
    }


async def test_tac_verifies_and_tampering_fails(keys: SoftwareKeyStore) -> None:
    tac = await keys.purchase_tac(ref(1), PURCHASE)
    assert await keys.verify_purchase_tac(ref(1), PURCHASE, tac)
    assert not await keys.verify_purchase_tac(ref(1), PURCHASE, bytes(4))
    tampered = PurchaseInputs(
        amount=201,
        terminal_no=PURCHASE.terminal_no,
        terminal_txn_serial=7,
        transaction_time=PURCHASE.transaction_time,
    )
    assert not await keys.verify_purchase_tac(ref(1), tampered, tac)
    assert await keys.verify_purchase_tacs([(ref(1), PURCHASE, tac), (ref(1), tampered, tac)]) == [
        True,
        False,
    ]


async def test_tac_matches_the_published_algorithm_with_the_diversified_key(
    keys: SoftwareKeyStore, keyring: object
) -> None:
    from backend.keyring import Keyring

    assert isinstance(keyring, Keyring)
    masters = await _plain_masters(keys, keyring.get("card-kek"))
    dtk = derive_epurse_card_key(
        masters[("DTK", 1)],
        app_serial=ref(1).app_serial,
        issuer_id=ISSUER,
        order=DiversificationOrder.ISSUER_FIRST,
    )
    assert await keys.purchase_tac(ref(1), PURCHASE) == purchase_tac(dtk, PURCHASE)


async def test_rotation_new_version_old_still_verifies(keys: SoftwareKeyStore) -> None:
    old_tac = await keys.purchase_tac(ref(1), PURCHASE)
    assert await keys.rotate() == 2
    assert await keys.current_version() == 2
    assert await keys.verify_purchase_tac(ref(1), PURCHASE, old_tac)
    new_tac = await keys.purchase_tac(ref(2), PURCHASE)
    assert new_tac != old_tac
    assert not await keys.verify_purchase_tac(ref(1), PURCHASE, new_tac)
    assert set(await keys.qr_public_keys()) == {1, 2}
    with pytest.raises(UnknownKeyVersion):
        await keys.purchase_tac(ref(3), PURCHASE)
    # A second store (another process) sees the same keys.
    other = SoftwareKeyStore(keys._pool, keys._kek)
    assert await other.verify_purchase_tac(ref(1), PURCHASE, old_tac)


async def test_rotation_reaches_new_cards(
    service: CardService, keys: SoftwareKeyStore, holder: HolderDetails, citizen: Actor
) -> None:
    first = await service.issue(holder, citizen, now=NOW)
    await keys.rotate()
    other = HolderDetails(person_id=holder.person_id.__class__(int=7), loa=3)
    second = await service.issue(other, citizen, now=NOW)
    assert first.epurse is not None and second.epurse is not None
    assert (first.epurse.key_version, second.epurse.key_version) == (1, 2)


async def test_load_mac1_then_mac2(keys: SoftwareKeyStore, keyring: object) -> None:
    from backend.keyring import Keyring

    assert isinstance(keyring, Keyring)
    masters = await _plain_masters(keys, keyring.get("card-kek"))
    dlk = derive_epurse_card_key(
        masters[("DLK", 1)],
        app_serial=ref(1).app_serial,
        issuer_id=ISSUER,
        order=DiversificationOrder.ISSUER_FIRST,
    )
    rnd, counter = bytes.fromhex("11223344"), 5
    inputs = LoadInputs(balance_before=100, amount=5000, terminal_no=bytes.fromhex("001122334455"))
    mac1 = load_mac1(load_session_key(dlk, rnd, counter), inputs)  # what the software card sends
    assert await keys.verify_load_mac1(
        ref(1), pseudo_random=rnd, online_counter=counter, inputs=inputs, mac1=mac1
    )
    mac2 = await keys.load_mac2(
        ref(1),
        pseudo_random=rnd,
        online_counter=counter,
        inputs=inputs,
        mac1=mac1,
        transaction_time=encode_dt7(NOW),
    )
    # Computed apart from the key store, from the card's own load key (§1.6).
    assert mac2 == load_mac2(load_session_key(dlk, rnd, counter), inputs, encode_dt7(NOW))
    with pytest.raises(KeyStoreError):
        await keys.load_mac2(
            ref(1),
            pseudo_random=rnd,
            online_counter=counter + 1,
            inputs=inputs,
            mac1=mac1,
            transaction_time=encode_dt7(NOW),
        )


async def test_no_plaintext_master_key_in_the_database(
    keys: SoftwareKeyStore, keyring: object, db: object
) -> None:
    from backend.keyring import Keyring

    assert isinstance(keyring, Keyring)
    await keys.rotate()
    masters = await _plain_masters(keys, keyring.get("card-kek"))
    assert len(masters) == 10
    # Every byte of every table in the card schema, as one hex dump.
    tables = await keys._pool.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'card'"
    )
    dump = ""
    for t in tables:
        rows = await keys._pool.fetch(f'SELECT t::text AS r FROM card."{t["table_name"]}" t')
        dump += "".join(r["r"] for r in rows).lower()
    for (purpose, _), plain in masters.items():
        assert plain.hex() not in dump, purpose
        if purpose in ("DPK", "DLK", "DTK"):
            assert key_check_value(plain).hex() in dump  # the KCV is stored, the key is not
    assert "card-kek" not in repr(keys)


async def test_personalisation_export_signature_and_keys(
    service: CardService, keys: SoftwareKeyStore, holder: HolderDetails, citizen: Actor
) -> None:
    card = await service.issue(holder, citizen, now=NOW)
    await service.request_physical(card.id, citizen, now=NOW)
    again = await service.request_physical(card.id, citizen, now=NOW)
    assert again.physical_request == "requested"
    bureau = ec.generate_private_key(ec.SECP256R1())
    (export,) = await export_requested(service.pool, keys, service.settings, bureau.public_key(), now=NOW)
    assert (await service.view(card.id)).physical
    from card.keys import SignedDocument

    document = msgspec.json.decode(export.document, type=SignedDocument)
    assert verify_document(document, await keys.document_public_keys())
    forged = msgspec.structs.replace(document, payload=document.payload.replace(b"3DES", b"3DEZ"))
    assert not verify_document(forged, await keys.document_public_keys())
    opened = open_personalisation(export.document, bureau, await keys.document_public_keys())
    assert opened.record.card_number == card.card_number
    assert opened.record.key_check_values["DTK"] == key_check_value(opened.dtk).hex()
    # The exported DTK makes TACs the store accepts for this card.
    async with service.pool.acquire() as connection:
        card_ref = await key_ref_for(connection, card.card_number, service.settings)
    assert await keys.verify_purchase_tac(card_ref, PURCHASE, purchase_tac(opened.dtk, PURCHASE))
    with pytest.raises(ValueError, match="another transport key"):
        open_personalisation(
            export.document, ec.generate_private_key(ec.SECP256R1()), await keys.document_public_keys()
        )
    assert await export_requested(service.pool, keys, service.settings, bureau.public_key(), now=NOW) == []
