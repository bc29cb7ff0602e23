"""Connectors to bus arrivals (API key), government services (signed), utilities (API key).

Bill payment moves money at the utility: it carries the payment reference as its
``Idempotency-Key`` (the upstream pays a bill once per reference), so a retry never pays twice.
Where the money comes from (the e-purse or a channel) is the payments package's business; this
connector only tells the utility that the bill is paid and by which reference.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal, Unpack
from urllib.parse import quote

import httpx
import msgspec

from integrations.connectors.auth import ApiKey, SignedRequests
from integrations.connectors.base import Connector, ConnectorOptions
from integrations.connectors.cache import CachePolicy
from integrations.connectors.calls import (
    Fetched,
    Lookup,
    Operation,
    answer,
    answer_or_none,
    expect_status,
    same,
)
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
    "accounts_by_id_number",
    "applications_by_id_number",
    "arrivals_at",
    "bills_of",
    "licences_by_id_number",
    "organisation_licences_by_code",
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


def _no_negative_eta(stop: StopArrivals | None) -> bool:
    return stop is None or all(a.eta_seconds >= 0 for a in stop.arrivals)


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
_DAILY = CachePolicy(ttl=3600.0, stale=86_400.0, keep=_WEEK)  # licences and accounts change rarely

# Arrivals go out of date in minutes: no last-known value beyond the stale window.
ARRIVALS = Operation(
    "arrivals",
    answer_or_none(StopArrivals, same, check=_no_negative_eta),
    StopArrivals | None,
    cache=CachePolicy(ttl=15.0, stale=60.0),
)
APPLICATIONS = Operation(
    "applications",
    answer(_Applications, lambda a: a.applications),
    tuple[Application, ...],
    cache=CachePolicy(ttl=60.0, stale=3600.0, keep=_WEEK),
)
_licences = answer(_Licences, lambda a: a.licences)
LICENCES = Operation("licences", _licences, tuple[Licence, ...], cache=_DAILY)
ORGANISATION_LICENCES = Operation("organisation_licences", _licences, tuple[Licence, ...], cache=_DAILY)
ACCOUNTS = Operation(
    "accounts", answer(_Accounts, lambda a: a.accounts), tuple[UtilityAccount, ...], cache=_DAILY
)
BILLS = Operation(
    "bills",
    answer_or_none(_Bills, lambda a: a.bills),
    tuple[Bill, ...] | None,
    cache=CachePolicy(ttl=300.0, stale=3600.0, keep=_WEEK),
)
PAY = Operation("pay", _payment, BillPayment, idempotent=True)  # with its Idempotency-Key


def arrivals_at(stop_id: str) -> Lookup[StopArrivals | None]:
    return Lookup(ARRIVALS, f"/v1/stops/{quote(stop_id, safe='')}/arrivals", stop_id)


def applications_by_id_number(id_number: str, *, cached: bool = True) -> Lookup[tuple[Application, ...]]:
    """``cached=False``: straight from the upstream (the status poll), the cache untouched."""
    found = Lookup.search(APPLICATIONS, "/v1/applications/search", "id_number", id_number)
    return found if cached else Lookup(APPLICATIONS, found.path, None, found.method, found.body)


def licences_by_id_number(id_number: str) -> Lookup[tuple[Licence, ...]]:
    return Lookup.search(LICENCES, "/v1/licences/search", "id_number", id_number)


def organisation_licences_by_code(credit_code: str) -> Lookup[tuple[Licence, ...]]:
    """The licences an organisation holds (营业执照 and others), by unified social credit code."""
    return Lookup.search(ORGANISATION_LICENCES, "/v1/licences/search", "credit_code", credit_code)


def accounts_by_id_number(id_number: str) -> Lookup[tuple[UtilityAccount, ...]]:
    return Lookup.search(ACCOUNTS, "/v1/accounts/search", "id_number", id_number)


def bills_of(account_number: str) -> Lookup[tuple[Bill, ...] | None]:
    return Lookup(BILLS, f"/v1/accounts/{quote(account_number, safe='')}/bills", account_number)


class BusConnector(Connector):
    def __init__(self, *, api_key: str, **options: Unpack[ConnectorOptions]) -> None:
        super().__init__(name="bus", auth=ApiKey(api_key), **options)

    async def arrivals(self, stop_id: str) -> Fetched[StopArrivals | None]:
        """Served from a cache entry up to 15 s old: ``age`` says how much to subtract from ETAs."""
        return await self.get(arrivals_at(stop_id))


class GovServicesConnector(Connector):
    personal_data = True  # sealed in the cache (``Connector.personal_data``)

    def __init__(self, *, signing_key: str, **options: Unpack[ConnectorOptions]) -> None:
        super().__init__(name="gov_services", auth=SignedRequests(signing_key), **options)

    async def applications(self, id_number: str, *, cached: bool = True) -> Fetched[tuple[Application, ...]]:
        return await self.get(applications_by_id_number(id_number, cached=cached))

    async def licences(self, id_number: str) -> Fetched[tuple[Licence, ...]]:
        return await self.get(licences_by_id_number(id_number))

    async def organisation_licences(self, credit_code: str) -> Fetched[tuple[Licence, ...]]:
        return await self.get(organisation_licences_by_code(credit_code))


class UtilitiesConnector(Connector):
    personal_data = True  # sealed in the cache (``Connector.personal_data``)

    def __init__(self, *, api_key: str, **options: Unpack[ConnectorOptions]) -> None:
        super().__init__(name="utilities", auth=ApiKey(api_key), **options)

    async def accounts(self, id_number: str) -> Fetched[tuple[UtilityAccount, ...]]:
        return await self.get(accounts_by_id_number(id_number))

    async def bills(self, account_number: str) -> Fetched[tuple[Bill, ...] | None]:
        return await self.get(bills_of(account_number))

    async def pay(
        self, bill_id: str, amount: int, payment_reference: str, method: Literal["e_purse", "channel"]
    ) -> BillPayment:
        """Tell the utility the bill is paid. The cached bills of its account are then out of date
        for up to their time to live; callers show the receipt."""
        body = {"amount": amount, "payment_reference": payment_reference, "method": method}
        path = f"/v1/bills/{quote(bill_id, safe='')}/payments"
        headers = {"Idempotency-Key": payment_reference}
        return (await self.fetch(PAY, path, method="POST", body=body, headers=headers)).value
