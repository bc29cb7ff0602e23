"""The two MAC algorithms the card protocols use.

* ``epurse_mac``: the ED/EP MAC of PBOC / JT/T 978 (MAC1, MAC2, TAC), card-protocol.md §1.4.
* ``retail_mac``: ISO/IEC 9797-1 MAC algorithm 3 ("retail MAC") for EMV / PBOC application
  cryptograms (ARQC, TC, AAC), card-protocol.md §3.

Both pad with ISO/IEC 9797-1 padding method 2 and chain from a zero IV.
"""

from __future__ import annotations

from card.crypto._common import require_length
from card.crypto._des import DES_BLOCK_SIZE, des_cbc_encrypt, des_ecb_decrypt, des_ecb_encrypt

__all__ = ["EPURSE_MAC_LENGTH", "epurse_mac", "iso9797_pad_method2", "retail_mac"]

EPURSE_MAC_LENGTH = 4  # §1.4 step 4: MAC = leftmost 4 bytes of the last block
_ZERO_IV = bytes(DES_BLOCK_SIZE)  # §1.4 step 3; §3 (chaining starts from zero)


def iso9797_pad_method2(data: bytes, block_size: int = DES_BLOCK_SIZE) -> bytes:
    """ISO/IEC 9797-1 padding method 2 (§1.4 step 2).

    Always append ``0x80``, then ``0x00`` until the length is a multiple of ``block_size``. Data that
    is already a multiple of the block size gains a whole block ``80 00 … 00``.
    """
    padded = bytes(data) + b"\x80"
    return padded + bytes(-len(padded) % block_size)


def _des_cbc_mac_last_block(key: bytes, padded: bytes) -> bytes:
    """Single-DES CBC over ``padded`` from a zero IV; returns the last ciphertext block.

    One CBC pass of the library instead of one ECB call per block chained here: the host recomputes
    a TAC for every uploaded record, and building a cipher context costs more than the blocks.
    """
    if not padded or len(padded) % DES_BLOCK_SIZE:
        raise ValueError(f"CBC-MAC data must be a non-empty multiple of 8 bytes, got {len(padded)}")
    return des_cbc_encrypt(key, _ZERO_IV, padded)[-DES_BLOCK_SIZE:]


def epurse_mac(key: bytes, data: bytes) -> bytes:
    """ED/EP MAC of PBOC / JT/T 978 (§1.4), 4 bytes.

    1. ``data`` is the concatenation of the inputs (built by the ``*_input`` helpers).
    2. Pad with ``80 00 …`` (always, see ``iso9797_pad_method2``).
    3. CBC-MAC with single DES under the 8-byte process key (SESPK, SESLK or the TAC key), IV 00×8.
    4. Keep the leftmost 4 bytes of the last block.
    """
    key = require_length(key, 8, name="e-purse MAC key (process key)")
    return _des_cbc_mac_last_block(key, iso9797_pad_method2(data))[:EPURSE_MAC_LENGTH]


def retail_mac(key: bytes, data: bytes) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3 with padding method 2, 8 bytes (§3, ARQC).

    Single-DES CBC under ``K_L`` (left half of the 16-byte session key) over all blocks, then the
    last block is decrypted with ``K_R`` and encrypted again with ``K_L``. §3 records that a full
    3DES-CBC does not reproduce the published ARQC; this does.
    """
    key = require_length(key, 16, name="retail MAC key (session key)")
    left, right = key[:8], key[8:]
    last = _des_cbc_mac_last_block(left, iso9797_pad_method2(data))
    return des_ecb_encrypt(left, des_ecb_decrypt(right, last))
