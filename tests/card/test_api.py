"""The card API end to end: L2 citizen applies, activates a phone, QR verifies offline, loss blacklists."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.db import Pool
from card.blacklist import CompactBlacklist, build_delta, decode_delta, signed_delta
from card.keys import SoftwareKeyStore, verify_document
from card.qr import OfflineVerifier, QRRejected, RejectReason, build_qr_payload, encode_qr_text
from identity.audit import entries_for
from integrations.simulators.seed import PEOPLE
from tests.identity.conftest import Flows, bearer

API = "/api/v1/cards"
R = RejectReason


@pytest.fixture
def citizen(citizen_headers: dict[str, str]) -> dict[str, str]:
    """The citizen's headers (``citizen`` is the holder's Actor elsewhere in tests/card)."""
    return citizen_headers


def _point(key: ec.EllipticCurvePrivateKey) -> str:
    raw = key.public_key().public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
    return base64.b64encode(raw).decode()


async def _verifier(
    client: AsyncTestClient[Litestar], blacklist: CompactBlacklist | None = None
) -> OfflineVerifier:
    params = (await client.get(f"{API}/qr-parameters")).json()
    keys = {
        int(k): ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), base64.b64decode(v))
        for k, v in params["platform_keys"].items()
    }
    bl = blacklist or CompactBlacklist()
    return OfflineVerifier(
        keys,
        [params["issuer_id"]],
        bl.card_listed,
        params["qr_validity_seconds"],
        revoked_authorisations=bl.authorisation_listed,
    )


def _reason(verifier: OfflineVerifier, payload: bytes, now: dt.datetime, amount: int | None = None) -> R:
    with pytest.raises(QRRejected) as info:
        verifier.verify(payload, now, amount)
    return info.value.reason


async def test_apply_activate_qr_loss_blacklist(
    client: AsyncTestClient[Litestar], citizen: dict[str, str], pool: Pool, keys: SoftwareKeyStore
) -> None:
    response = await client.post(API, headers=citizen)
    assert response.status_code == 201, response.text
    card = response.json()
    assert {a["type"] for a in card["applications"]} == {"transit_epurse", "social_security", "health"}
    again = await client.post(API, headers=citizen)
    assert again.status_code == 409
    assert again.json()["type"] == "/problems/card-exists"

    phone = ec.generate_private_key(ec.SECP256R1())
    response = await client.post(
        f"{API}/me/devices", json={"device_public_key": _point(phone)}, headers=citizen
    )
    assert response.status_code == 201, response.text
    activation = response.json()
    authorisation = base64.b64decode(activation["authorisation"])
    now = dt.datetime.now(dt.UTC)
    payload = build_qr_payload(authorisation, phone, now)
    verifier = await _verifier(client)
    ride = verifier.verify_text(encode_qr_text(payload), now, amount_fen=200)
    assert ride.card_number == card["card_number"]

    # Each reject reason, from the API-issued authorisation.
    cap = activation["cap_fen"]
    validity = activation["qr_validity_seconds"]
    assert _reason(verifier, payload, now, cap + 1) is R.OVER_CAP
    assert _reason(verifier, payload, now + dt.timedelta(seconds=validity + 1)) is R.EXPIRED
    assert _reason(verifier, build_qr_payload(authorisation, phone, now + dt.timedelta(minutes=5)), now) is (
        R.NOT_YET_VALID
    )
    tampered_auth = authorisation[:-1] + bytes([authorisation[-1] ^ 1])
    assert _reason(await _verifier(client), payload[:122] + tampered_auth[122:] + payload[123:], now) in (
        R.BAD_SIGNATURE,
        R.MALFORMED,
    )
    assert _reason(verifier, payload[:-1] + bytes([payload[-1] ^ 1]), now) is R.BAD_DEVICE_SIGNATURE
    assert _reason(verifier, payload[:-3], now) is R.MALFORMED
    other_issuer = OfflineVerifier(verifier._keys, [1], (), validity)
    assert _reason(other_issuer, payload, now) is R.UNKNOWN_ISSUER
    assert _reason(OfflineVerifier({}, [activation["key_id"]], (), validity), payload, now) is R.UNKNOWN_KEY

    # The terminal's blacklist after the loss report: the delta the gateway would send, signed.
    terminal = CompactBlacklist()
    response = await client.post(f"{API}/me/loss", headers=citizen)
    assert response.status_code == 200
    assert response.json()["status"] == "lost"
    assert response.json()["device"] is None
    assert (await client.post(f"{API}/me/loss", headers=citizen)).json()["status"] == "lost"  # idempotent
    async with pool.acquire() as connection:
        document = await signed_delta(connection, keys, terminal.version)
    assert verify_document(document, await keys.document_public_keys())
    # ...and with the keys the platform publishes (what a reader or a card bureau has).
    published = (await client.get(f"{API}/document-keys")).json()
    assert published["algorithm"] == "ES256"
    public = {
        int(k): ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), base64.b64decode(v))
        for k, v in published["document_keys"].items()
    }
    assert document.key_id in public and verify_document(document, public)
    forged = msgspec.structs.replace(document, payload=document.payload + b" ")
    assert not verify_document(forged, public)
    delta = decode_delta(document.payload)
    assert int(card["card_number"]) in delta.values(delta.card_adds)
    terminal.apply(delta)
    blocking = await _verifier(client, terminal)
    assert _reason(blocking, payload, now) is R.BLACKLISTED

    # Lifecycle over HTTP: reissue gives a new number; closing it makes every operation 409.
    response = await client.post(f"{API}/me/reissue", headers=citizen)
    assert response.status_code == 201, response.text
    assert response.json()["card_number"] != card["card_number"]
    assert (await client.post(f"{API}/me/close", headers=citizen)).status_code == 200
    for action in ("freeze", "unfreeze", "loss", "close", "reissue", "physical-requests"):
        refused = await client.post(f"{API}/me/{action}", headers=citizen)
        assert refused.status_code == 409, (action, refused.text)
        assert refused.json()["type"] == "/problems/card-closed"
    refused = await client.post(
        f"{API}/me/devices", json={"device_public_key": _point(phone)}, headers=citizen
    )
    assert refused.status_code == 409


async def test_new_device_revokes_the_old_authorisation(
    client: AsyncTestClient[Litestar], citizen: dict[str, str], pool: Pool
) -> None:
    assert (await client.post(API, headers=citizen)).status_code == 201
    old_phone, new_phone = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    first = (
        await client.post(f"{API}/me/devices", json={"device_public_key": _point(old_phone)}, headers=citizen)
    ).json()
    second = await client.post(
        f"{API}/me/devices", json={"device_public_key": _point(new_phone)}, headers=citizen
    )
    assert second.status_code == 201
    terminal = CompactBlacklist()
    async with pool.acquire() as connection:
        terminal.apply(await build_delta(connection, 0))
    verifier = await _verifier(client, terminal)
    now = dt.datetime.now(dt.UTC)
    old_qr = build_qr_payload(base64.b64decode(first["authorisation"]), old_phone, now)
    new_qr = build_qr_payload(base64.b64decode(second.json()["authorisation"]), new_phone, now)
    assert _reason(verifier, old_qr, now) is R.BLACKLISTED
    assert verifier.verify(new_qr, now).card_number
    bad = await client.post(
        f"{API}/me/devices", json={"device_public_key": base64.b64encode(b"x" * 33).decode()}, headers=citizen
    )
    assert bad.status_code == 422


async def test_assurance_and_authentication(client: AsyncTestClient[Litestar]) -> None:
    assert (await client.post(API)).status_code == 401
    session = await Flows(client).register(PEOPLE[1].mobile)
    low = await client.post(API, headers=bearer(session["token"]))
    assert low.status_code in (401, 403)
    assert (await client.get(f"{API}/me", headers=bearer(session["token"]))).status_code in (401, 403)


async def test_admin_search_history_freeze_close(
    client: AsyncTestClient[Litestar], citizen: dict[str, str], operator: dict[str, str], db: Any
) -> None:
    card = (await client.post(API, headers=citizen)).json()
    assert (await client.get("/api/v1/admin/cards", headers=citizen)).status_code == 403
    found = (
        await client.get("/api/v1/admin/cards", params={"card_number": card["card_number"]}, headers=operator)
    ).json()
    assert [c["id"] for c in found] == [card["id"]]
    assert (await client.post(f"/api/v1/admin/cards/{card['id']}/freeze", headers=operator)).json()[
        "status"
    ] == "frozen"
    assert (await client.post(f"/api/v1/admin/cards/{card['id']}/close", headers=operator)).json()[
        "status"
    ] == "closed"
    again = await client.post(f"/api/v1/admin/cards/{card['id']}/freeze", headers=operator)
    assert again.status_code == 409
    history = (await client.get(f"/api/v1/admin/cards/{card['id']}/history", headers=operator)).json()
    assert [(e["action"], e["to_status"], e["actor_kind"]) for e in history] == [
        ("issue", "active", "person"),
        ("freeze", "frozen", "operator"),
        ("close", "closed", "operator"),
    ]
    # Every change, and the operator's read of the history, is also in identity's audit log.
    audited = await entries_for(db, uuid.UUID(card["id"]))
    assert {e.action for e in audited} == {"card.issue", "card.freeze", "card.close", "card.admin.history"}


async def test_demo_phone_qr(client: AsyncTestClient[Litestar], citizen: dict[str, str]) -> None:
    assert (await client.post(API, headers=citizen)).status_code == 201
    assert (await client.post(f"{API}/me/demo-phone", headers=citizen)).status_code == 201
    svg = await client.get(f"{API}/me/demo-phone/qr", headers=citizen)
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    png = await client.get(f"{API}/me/demo-phone/qr", params={"kind": "png"}, headers=citizen)
    assert png.content.startswith(b"\x89PNG")
    text = (await client.get(f"{API}/me/demo-phone/qr", params={"kind": "text"}, headers=citizen)).text
    verifier = await _verifier(client)
    assert verifier.verify_text(text, dt.datetime.now(dt.UTC)).card_number
