"""Who the home is about: the person's resident ID number (the key every person upstream takes)
or the organisation's credit code, from identity, remembered in this process for a few minutes.

The ID number is read the way identity's own OpenID claims read personal data (``IdentityCore``:
its pool and ``open``); it stays in this process's memory only, never in Redis or a log.
Identity could expose ``id_number_of(account_id)``; then only ``_load_id_number`` changes.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import msgspec

from identity.auth import Principal

__all__ = ["OrganisationRef", "Subjects"]

V = TypeVar("V")


class OrganisationRef(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    credit_code: str
    name: str


class _Memo(Generic[V]):
    """A small LRU with a time to live."""

    def __init__(self, ttl: float, size: int) -> None:
        self._ttl = ttl
        self._size = size
        self._items: OrderedDict[Any, tuple[float, V]] = OrderedDict()

    def get(self, key: Any) -> tuple[bool, V | None]:
        found = self._items.get(key)
        if found is None or found[0] < time.monotonic():
            return False, None
        self._items.move_to_end(key)
        return True, found[1]

    def put(self, key: Any, value: V) -> None:
        self._items[key] = (time.monotonic() + self._ttl, value)
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)


class Subjects:
    """``identity``: a callable giving identity's services (``identity.services.IdentityServices``)."""

    def __init__(self, identity: Callable[[], Any], *, ttl: float = 300.0, size: int = 50_000) -> None:
        self._identity = identity
        self._id_numbers: _Memo[str | None] = _Memo(ttl, size)
        self._organisations: _Memo[OrganisationRef] = _Memo(ttl, size)

    async def id_number(self, account_id: uuid.UUID) -> str | None:
        """The verified resident ID number of an active account (None before real-name checks)."""
        hit, value = self._id_numbers.get(account_id)
        if hit:
            return value
        value = await self._load_id_number(account_id)
        self._id_numbers.put(account_id, value)
        return value

    async def _load_id_number(self, account_id: uuid.UUID) -> str | None:
        core = self._identity().core
        blob = await core.pool.fetchval(
            "SELECT id_number_enc FROM identity.accounts WHERE id = $1 AND status = 'active'", account_id
        )
        opened = core.open("id_number", account_id, blob)
        return opened if isinstance(opened, str) else None

    async def organisation(self, principal: Principal) -> OrganisationRef:
        """The organisation the principal acts for (identity checks that they are its agent:
        ``identity.errors.Forbidden`` otherwise)."""
        org_id = principal.acting_for
        if org_id is None:
            raise ValueError("the principal acts for no organisation")
        key = (principal.account_id, org_id)
        hit, value = self._organisations.get(key)
        if hit and value is not None:
            return value
        view = await self._identity().organisations.view(principal, org_id)
        ref = OrganisationRef(id=view.id, credit_code=view.credit_code, name=view.name)
        self._organisations.put(key, ref)
        return ref
