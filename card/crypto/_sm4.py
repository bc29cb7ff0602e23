"""SM4 (GB/T 32907, GM/T 0002) in ECB mode, for the SM4 key derivations of card-protocol.md §1.9.

``cryptography`` exposes SM4 when its OpenSSL build has it; if it does not, encryption raises
``cryptography.exceptions.UnsupportedAlgorithm``, which is left to propagate.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["SM4_BLOCK_SIZE", "sm4_ecb_decrypt", "sm4_ecb_encrypt"]

SM4_BLOCK_SIZE = 16


def _ecb(key: bytes, data: bytes, *, encrypt: bool) -> bytes:
    if len(key) != 16:
        raise ValueError(f"an SM4 key is 16 bytes, got {len(key)}")
    if not data or len(data) % SM4_BLOCK_SIZE:
        raise ValueError(f"SM4 data must be a non-empty multiple of 16 bytes, got {len(data)}")
    # Raw block permutation; see _des.py for why ECB is the right primitive here.
    cipher = Cipher(algorithms.SM4(bytes(key)), modes.ECB())  # noqa: S305
    context = cipher.encryptor() if encrypt else cipher.decryptor()
    return context.update(bytes(data)) + context.finalize()


def sm4_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    """SM4 ECB encryption; ``key`` is 16 bytes, ``data`` a multiple of 16 bytes."""
    return _ecb(key, data, encrypt=True)


def sm4_ecb_decrypt(key: bytes, data: bytes) -> bytes:
    """SM4 ECB decryption; ``key`` is 16 bytes, ``data`` a multiple of 16 bytes."""
    return _ecb(key, data, encrypt=False)
