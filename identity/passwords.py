"""Optional passwords, hashed with argon2id; hashing runs off the event loop (argon2 releases the GIL)."""

from __future__ import annotations

import asyncio

import argon2
import argon2.exceptions

from identity.errors import InvalidField
from identity.settings import IdentitySettings

__all__ = ["PasswordHasher", "check_password_policy"]

MIN_LENGTH = 8
MAX_LENGTH = 128


def check_password_policy(password: str) -> None:
    """ASVS 6.2: at least 8 characters (15 recommended), no composition rules, a sane maximum."""
    if len(password) < MIN_LENGTH:
        raise InvalidField("password", "min_length", f"at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise InvalidField("password", "max_length", f"at most {MAX_LENGTH} characters")
    if password.strip() == "" or len(set(password)) < 3:
        raise InvalidField("password", "too_simple", "use a passphrase, not a repeated character")


class PasswordHasher:
    def __init__(self, settings: IdentitySettings) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            type=argon2.Type.ID,
        )
        # Verified against when the account does not exist, so both paths cost one hash.
        self._dummy = self._hasher.hash("citizen dummy password for timing")

    @property
    def parameters(self) -> dict[str, int | str]:
        h = self._hasher
        return {
            "type": "argon2id",
            "time_cost": h.time_cost,
            "memory_kib": h.memory_cost,
            "parallelism": h.parallelism,
            "hash_len": h.hash_len,
            "salt_len": h.salt_len,
        }

    def hash_sync(self, password: str) -> str:
        return self._hasher.hash(password)

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    def verify_sync(self, stored: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(stored or self._dummy, password) and stored is not None
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False

    async def verify(self, stored: str | None, password: str) -> bool:
        return await asyncio.to_thread(self.verify_sync, stored, password)

    def needs_rehash(self, stored: str) -> bool:
        return self._hasher.check_needs_rehash(stored)
