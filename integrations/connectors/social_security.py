"""Connector to the social security upstream (社保): contribution history and pension status.

Signed requests (``integrations.credentials``). The record changes at most monthly: cached for
ten minutes and served stale for a day while it is refreshed.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal, Unpack
from urllib.parse import quote

import msgspec

from integrations.connectors.auth import SignedRequests
from integrations.connectors.base import Connector, ConnectorOptions
from integrations.connectors.cache import CachePolicy
from integrations.connectors.calls import Fetched, Lookup, Operation, answer_or_none

__all__ = [
    "Contribution",
    "Pension",
    "SocialSecurityConnector",
    "SocialSecurityRecord",
    "record_by_id_number",
]


class Contribution(msgspec.Struct, frozen=True, kw_only=True):
    month: str  # "2026-10"
    base: int  # fen
    personal: int
    employer: int
    employer_name: str


class Pension(msgspec.Struct, frozen=True, kw_only=True):
    monthly_amount: int  # fen
    since: dt.date


class SocialSecurityRecord(msgspec.Struct, frozen=True, kw_only=True):
    social_security_number: str
    status: Literal["contributing", "receiving", "suspended"]
    insured_since: dt.date
    months_contributed: int
    pension: Pension | None = None
    recent_contributions: tuple[Contribution, ...] = ()


# The upstream's answer is our record plus the name it holds, which we do not keep.
class _Answer(SocialSecurityRecord, frozen=True, kw_only=True):
    name: str


def _record(answer: _Answer) -> SocialSecurityRecord:
    return SocialSecurityRecord(**{f: getattr(answer, f) for f in SocialSecurityRecord.__struct_fields__})


def _sound(record: SocialSecurityRecord) -> bool:
    return record.months_contributed >= 0 and all(c.base >= 0 for c in record.recent_contributions)


_decode = answer_or_none(_Answer, _record, check=_sound)

RECORD: Operation[SocialSecurityRecord | None] = Operation(
    "insured_record", _decode, SocialSecurityRecord | None, cache=CachePolicy(ttl=600.0, stale=86_400.0)
)
# The same record found by the person's resident ID number (the home's tile); kept a week as a
# last-known value for when the upstream is down.
RECORD_OF_PERSON: Operation[SocialSecurityRecord | None] = Operation(
    "insured_record_of_person",
    _decode,
    SocialSecurityRecord | None,
    cache=CachePolicy(ttl=600.0, stale=86_400.0, keep=7 * 86_400.0),
)


def record_by_id_number(id_number: str) -> Lookup[SocialSecurityRecord | None]:
    """By resident ID number (in the body: no ID number in a URL)."""
    return Lookup.search(RECORD_OF_PERSON, "/v1/insured/search", "id_number", id_number)


class SocialSecurityConnector(Connector):
    personal_data = True  # sealed in the cache (``Connector.personal_data``)

    def __init__(self, *, signing_key: str, **options: Unpack[ConnectorOptions]) -> None:
        super().__init__(name="social_security", auth=SignedRequests(signing_key), **options)

    async def insured_record(self, social_security_number: str) -> Fetched[SocialSecurityRecord | None]:
        number = social_security_number.strip()
        return await self.get(Lookup(RECORD, f"/v1/insured/{quote(number, safe='')}", number))

    async def insured_record_of_person(self, id_number: str) -> Fetched[SocialSecurityRecord | None]:
        return await self.get(record_by_id_number(id_number))
