"""Connector to the social security upstream (社保): contribution history and pension status.

Signed requests (``integrations.credentials``). The record changes at most monthly: cached for
ten minutes and served stale for a day while it is refreshed.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal
from urllib.parse import quote

import httpx
import msgspec
import redis.asyncio as aioredis

from integrations.connectors.auth import SignedRequests
from integrations.connectors.base import Connector, ConnectorPolicy, Fetched, Operation, expect_status
from integrations.connectors.cache import CachePolicy, GetBatcher

__all__ = ["Contribution", "Pension", "SocialSecurityConnector", "SocialSecurityRecord"]


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


_answer = msgspec.json.Decoder(_Answer)


def _decode(response: httpx.Response) -> SocialSecurityRecord | None:
    expect_status(response, 200, 404)
    if response.status_code == 404:
        return None
    answer = _answer.decode(response.content)
    if answer.months_contributed < 0 or any(c.base < 0 for c in answer.recent_contributions):
        raise msgspec.ValidationError("negative amounts or months")
    fields = {f: getattr(answer, f) for f in SocialSecurityRecord.__struct_fields__}
    return SocialSecurityRecord(**fields)


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


class SocialSecurityConnector(Connector):
    def __init__(
        self,
        *,
        base_url: str,
        signing_key: str,
        redis: aioredis.Redis,
        policy: ConnectorPolicy | None = None,
        cache_secret: bytes = b"",
        batcher: GetBatcher | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            name="social_security",
            base_url=base_url,
            redis=redis,
            auth=SignedRequests(signing_key),
            policy=policy,
            cache_secret=cache_secret,
            batcher=batcher,
            transport=transport,
        )

    async def insured_record(self, social_security_number: str) -> Fetched[SocialSecurityRecord | None]:
        number = social_security_number.strip()
        path = f"/v1/insured/{quote(number, safe='')}"
        return await self.fetch(RECORD, path, cache_key=number)

    async def insured_record_of_person(self, id_number: str) -> Fetched[SocialSecurityRecord | None]:
        """By resident ID number (in the body: no ID number in a URL)."""
        number = id_number.strip().upper()
        body = {"id_number": number}
        path = "/v1/insured/search"
        return await self.fetch(RECORD_OF_PERSON, path, method="POST", body=body, cache_key=number)
