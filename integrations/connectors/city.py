"""Connectors to bus arrivals (API key), government services (signed), utilities (API key).

Bill payment moves money at the utility: it carries the payment reference as its
``Idempotency-Key`` (the upstream pays a bill once per reference), so a retry never pays twice.
Where the money comes from (the e-purse or a channel) is the payments package's business; this
connector only tells the utility that the bill is paid and by which reference.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal
from urllib.parse import quote

import httpx
import msgspec
import redis.asyncio as aioredis

from integrations.connectors.auth import ApiKey, SignedRequests
from integrations.connectors.base import Connector, ConnectorPolicy, Fetched, Operation, expect_status
from integrations.connectors.cache import CachePolicy, GetBatcher
from integrations.errors import BillAlreadyPaid, BillAmountMismatch, UnknownAtUpstream

__all__ = [
    "Application",
    "Arrival",
    "Bill",
    "BillPayment",
    "BusConnector",
    "GovServicesConnector",
    "Licence",
    "StopArrivals",
    "UtilitiesConnector",
    "UtilityAccount",
]


class Arrival(msgspec.Struct, frozen=True, kw_only=True):
    line: str
    destination: str
    eta_seconds: int
    vehicle_id: str


class StopArrivals(msgspec.Struct, frozen=True, kw_only=True):
    stop_id: str
    name: str
    arrivals: tuple[Arrival, ...]


class Application(msgspec.Struct, frozen=True, kw_only=True):
    application_id: str
    service: str
    status: Literal["submitted", "in_review", "approved", "rejected", "completed"]
    submitted_on: dt.date


class Licence(msgspec.Struct, frozen=True, kw_only=True):
    """An electronic licence or certificate (电子证照)."""

    licence_number: str
    kind: str
    title: str
    issuer: str
    issued_on: dt.date
    expires_on: dt.date | None = None
    credit_code: str | None = None


class UtilityAccount(msgspec.Struct, frozen=True, kw_only=True):
    account_number: str
    kind: Literal["electricity", "water", "gas"]
    provider: str
    address: str


class Bill(msgspec.Struct, frozen=True, kw_only=True):
    bill_id: str
    period: str  # "202610"
    amount: int  # fen
    due_on: dt.date
    status: Literal["unpaid", "paid"]


class BillPayment(msgspec.Struct, frozen=True, kw_only=True):
    bill_id: str
    payment_reference: str
    amount: int
    method: Literal["e_purse", "channel"]
    paid_at: dt.datetime
    status: Literal["paid"]


class _Applications(msgspec.Struct, frozen=True):
    applications: tuple[Application, ...]


class _Licences(msgspec.Struct, frozen=True):
    licences: tuple[Licence, ...]


class _Accounts(msgspec.Struct, frozen=True):
    accounts: tuple[UtilityAccount, ...]


class _Bills(msgspec.Struct, frozen=True):
    account_number: str
    bills: tuple[Bill, ...]


def _arrivals(response: httpx.Response) -> StopArrivals | None:
    expect_status(response, 200, 404)
    if response.status_code == 404:
        return None
    answer = msgspec.json.decode(response.content, type=StopArrivals)
    if any(a.eta_seconds < 0 for a in answer.arrivals):
        raise msgspec.ValidationError("negative eta_seconds")
    return answer


def _applications(response: httpx.Response) -> tuple[Application, ...]:
    expect_status(response, 200)
    return msgspec.json.decode(response.content, type=_Applications).applications


def _licences(response: httpx.Response) -> tuple[Licence, ...]:
    expect_status(response, 200)
    return msgspec.json.decode(response.content, type=_Licences).licences


def _accounts(response: httpx.Response) -> tuple[UtilityAccount, ...]:
    expect_status(response, 200)
    return msgspec.json.decode(response.content, type=_Accounts).accounts


def _bills(response: httpx.Response) -> tuple[Bill, ...] | None:
    expect_status(response, 200, 404)
    if response.status_code == 404:
        return None
    return msgspec.json.decode(response.content, type=_Bills).bills


def _payment(response: httpx.Response) -> BillPayment:
    if response.status_code == 404:
        raise UnknownAtUpstream("the utility does not know this bill")
    if response.status_code == 409:
        raise BillAlreadyPaid("the bill was already paid under another reference")
    if response.status_code == 422:
        raise BillAmountMismatch("the amount is not the bill's amount")
    expect_status(response, 200)
    return msgspec.json.decode(response.content, type=BillPayment)


_WEEK = 7 * 86_400.0  # how long a last-known value is kept for when the upstream is down

# Arrivals go out of date in minutes: no last-known value beyond the stale window.
ARRIVALS = Operation("arrivals", _arrivals, StopArrivals | None, cache=CachePolicy(ttl=15.0, stale=60.0))
APPLICATIONS = Operation(
    "applications",
    _applications,
    tuple[Application, ...],
    cache=CachePolicy(ttl=60.0, stale=3600.0, keep=_WEEK),
)
LICENCES = Operation(
    "licences", _licences, tuple[Licence, ...], cache=CachePolicy(ttl=3600.0, stale=86_400.0, keep=_WEEK)
)
ORGANISATION_LICENCES = Operation(
    "organisation_licences",
    _licences,
    tuple[Licence, ...],
    cache=CachePolicy(ttl=3600.0, stale=86_400.0, keep=_WEEK),
)
ACCOUNTS = Operation(
    "accounts",
    _accounts,
    tuple[UtilityAccount, ...],
    cache=CachePolicy(ttl=3600.0, stale=86_400.0, keep=_WEEK),
)
BILLS = Operation(
    "bills", _bills, tuple[Bill, ...] | None, cache=CachePolicy(ttl=300.0, stale=3600.0, keep=_WEEK)
)
PAY = Operation("pay", _payment, BillPayment, idempotent=True)  # with its Idempotency-Key


class BusConnector(Connector):
    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        redis: aioredis.Redis,
        policy: ConnectorPolicy | None = None,
        cache_secret: bytes = b"",
        batcher: GetBatcher | None = None,
    ) -> None:
        super().__init__(
            name="bus",
            base_url=base_url,
            redis=redis,
            auth=ApiKey(api_key),
            policy=policy,
            cache_secret=cache_secret,
            batcher=batcher,
        )

    async def arrivals(self, stop_id: str) -> Fetched[StopArrivals | None]:
        """Served from a cache entry up to 15 s old: ``age`` says how much to subtract from ETAs."""
        path = f"/v1/stops/{quote(stop_id, safe='')}/arrivals"
        return await self.fetch(ARRIVALS, path, cache_key=stop_id)


class GovServicesConnector(Connector):
    def __init__(
        self,
        *,
        base_url: str,
        signing_key: str,
        redis: aioredis.Redis,
        policy: ConnectorPolicy | None = None,
        cache_secret: bytes = b"",
        batcher: GetBatcher | None = None,
    ) -> None:
        super().__init__(
            name="gov_services",
            base_url=base_url,
            redis=redis,
            auth=SignedRequests(signing_key),
            policy=policy,
            cache_secret=cache_secret,
            batcher=batcher,
        )

    async def applications(self, id_number: str, *, cached: bool = True) -> Fetched[tuple[Application, ...]]:
        """``cached=False``: straight from the upstream (the status poll), the cache untouched."""
        body = {"id_number": id_number}
        path = "/v1/applications/search"
        key = id_number if cached else None
        return await self.fetch(APPLICATIONS, path, method="POST", body=body, cache_key=key)

    async def licences(self, id_number: str) -> Fetched[tuple[Licence, ...]]:
        body = {"id_number": id_number}
        return await self.fetch(
            LICENCES, "/v1/licences/search", method="POST", body=body, cache_key=id_number
        )

    async def organisation_licences(self, credit_code: str) -> Fetched[tuple[Licence, ...]]:
        """The licences an organisation holds (营业执照 and others), by unified social credit code."""
        code = credit_code.strip().upper()
        body = {"credit_code": code}
        return await self.fetch(
            ORGANISATION_LICENCES, "/v1/licences/search", method="POST", body=body, cache_key=code
        )


class UtilitiesConnector(Connector):
    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        redis: aioredis.Redis,
        policy: ConnectorPolicy | None = None,
        cache_secret: bytes = b"",
        batcher: GetBatcher | None = None,
    ) -> None:
        super().__init__(
            name="utilities",
            base_url=base_url,
            redis=redis,
            auth=ApiKey(api_key),
            policy=policy,
            cache_secret=cache_secret,
            batcher=batcher,
        )

    async def accounts(self, id_number: str) -> Fetched[tuple[UtilityAccount, ...]]:
        body = {"id_number": id_number}
        return await self.fetch(
            ACCOUNTS, "/v1/accounts/search", method="POST", body=body, cache_key=id_number
        )

    async def bills(self, account_number: str) -> Fetched[tuple[Bill, ...] | None]:
        path = f"/v1/accounts/{quote(account_number, safe='')}/bills"
        return await self.fetch(BILLS, path, cache_key=account_number)

    async def pay(
        self, bill_id: str, amount: int, payment_reference: str, method: Literal["e_purse", "channel"]
    ) -> BillPayment:
        """Tell the utility the bill is paid. The cached bills of its account are then out of date
        for up to their time to live; callers show the receipt."""
        body = {"amount": amount, "payment_reference": payment_reference, "method": method}
        path = f"/v1/bills/{quote(bill_id, safe='')}/payments"
        headers = {"Idempotency-Key": payment_reference}
        return (await self.fetch(PAY, path, method="POST", body=body, headers=headers)).value
