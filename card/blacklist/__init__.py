"""The versioned blacklist (hotlist) of cards and device authorisations, card-protocol.md §6.1.

Server side (``store``): ``change_txn`` adds/removes in one version, ``build_delta(conn, since)``
nets the changes a terminal needs (a full snapshot when ``since`` is 0 or unknown), and
``signed_delta`` wraps the encoded bytes (``format``) in a platform-signed document.
Terminal side (``compact``): ``CompactBlacklist`` applies snapshots/deltas and answers
``card_listed(number)`` / ``authorisation_listed(id)``; it plugs into ``card.qr.OfflineVerifier``
as ``blacklist=bl.card_listed, revoked_authorisations=bl.authorisation_listed``.
"""

from __future__ import annotations

from card._db import Connection
from card.blacklist.compact import CompactBlacklist, SortedU64Set
from card.blacklist.format import FORMAT, BlacklistDelta, decode_delta, encode_delta
from card.blacklist.store import EntryKind, ListEntry, build_delta, change_txn, current_version, is_listed
from card.keys.api import CardKeyStore, SignedDocument

__all__ = [
    "FORMAT",
    "BlacklistDelta",
    "CompactBlacklist",
    "EntryKind",
    "ListEntry",
    "SortedU64Set",
    "build_delta",
    "change_txn",
    "current_version",
    "decode_delta",
    "encode_delta",
    "is_listed",
    "signed_delta",
]


async def signed_delta(connection: Connection, keys: CardKeyStore, since_version: int) -> SignedDocument:
    """The encoded delta from ``since_version`` (or snapshot), signed with the DOC_SIGN key.

    ``connection`` must not be inside a transaction (the delta opens a repeatable-read one).
    """
    return await keys.sign_document(encode_delta(await build_delta(connection, since_version)))
