"""The card key store: an HSM-like boundary around the issuer master keys. Keys never leave it.

Use it through the :class:`CardKeyStore` Protocol; the implementation wired into the app is
:class:`SoftwareKeyStore` (master keys in ``card.issuer_keys``, AES-256-GCM under ``card-kek``).
A PKCS#11 implementation can replace it without changing any caller.

Getting one
    In the app: ``.keys`` of the named dependency ``card`` (``NamedDependency[CardServices]``); in the
    terminal gateway or a CLI: ``SoftwareKeyStore(pool, keyring.get("card-kek"))``. Call
    ``await store.ensure_initialised()`` once at start-up (idempotent, safe across processes).

Which keys a card uses: :class:`CardKeyRef`
    ``CardKeyRef(key_version, app_serial, issuer_id)``. Build it with
    ``await card.lifecycle.key_ref_for(connection, card_number, settings.card)`` (or by card id);
    it reads ``card.cards.app_serial`` and ``card.epurses.key_version``. Cache it per card if hot.

E-purse operations (card-protocol.md §1.3-§1.8; inputs are ``card.crypto`` dataclasses)
    ``await verify_purchase_tac(ref, PurchaseInputs(...), tac) -> bool``  uploaded purchase (06/09)
    ``await verify_purchase_tacs([(ref, inputs, tac), ...]) -> list[bool]``  a whole batch
    ``await verify_load_mac1(ref, pseudo_random=, online_counter=, inputs=LoadInputs(...), mac1=)``
    ``await load_mac2(ref, pseudo_random=, online_counter=, inputs=, mac1=, transaction_time=DT7)``
        re-checks MAC1 itself and raises ``card.errors.KeyStoreError`` if it is wrong
    ``await verify_qr_tac(key_version, account10, QrTacInputs(...), tac)``  reader SAM TAC (§5.4)
    ``await purchase_tac(ref, inputs)``  the card's own TAC, for software cards and tests only

Platform signatures (ECDSA P-256, raw 64-byte low-S r||s; key id = key version)
    ``await qr_public_keys() -> {key_id: public key}``  terminals' parameter download (QR §5)
    ``await document_public_keys()``  verifies blacklist deltas and personalisation files
    ``await sign_qr_authorisation(...)`` / ``await sign_document(payload) -> SignedDocument``

Rotation
    ``await rotate() -> new version``: new cards and new signatures use it; every older version
    keeps verifying (``CardKeyRef.key_version`` of the card selects the masters).

Personalisation
    ``await export_personalisation(PersonalisationCard(...), transport_public_key)`` returns a
    :class:`SignedDocument` whose payload holds the diversified DPK/DLK/DTK sealed to the
    transport key. ``open_personalisation(document, transport_private_key, document_public_keys)``
    is the bureau's / software card's side (``mock_terminals`` uses it to personalise a card).
"""

from card.keys.api import CardKeyRef, CardKeyStore, PersonalisationCard, SignedDocument
from card.keys.personalisation import (
    OpenedPersonalisation,
    PersonalisationRecord,
    open_personalisation,
    recipient_kid,
    verify_document,
)
from card.keys.software import DIVERSIFICATION_ORDER, SoftwareKeyStore, key_check_value

__all__ = [
    "DIVERSIFICATION_ORDER",
    "CardKeyRef",
    "CardKeyStore",
    "OpenedPersonalisation",
    "PersonalisationCard",
    "PersonalisationRecord",
    "SignedDocument",
    "SoftwareKeyStore",
    "key_check_value",
    "open_personalisation",
    "recipient_kid",
    "verify_document",
]
