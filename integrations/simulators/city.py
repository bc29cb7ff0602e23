"""Bus arrivals (API key), government services (signed requests), utility bills (API key).

Bus, under ``/bus``: ``GET /v1/stops/{stop_id}/arrivals``, the next vehicles of each line, from
the clock (a fixed headway per line), so consecutive calls see the times count down.

Government services, under ``/gov_services``: ``POST /v1/applications/search`` and
``POST /v1/licences/search`` with ``{"id_number"}`` (a POST: no ID number in a URL): the
citizen's applications with their status, and electronic licences (电子证照); the licences
search also takes ``{"credit_code"}``: the licences an organisation holds. For tests and the
demo, ``POST /v1/_status`` ``{"application_id", "status"}`` changes an application's status.

Utilities, under ``/utilities``: ``POST /v1/accounts/search`` ``{"id_number"}``; ``GET
/v1/accounts/{account}/bills`` (the last three months, the latest unpaid); ``POST
/v1/bills/{bill_id}/payments`` ``{"amount", "payment_reference", "method"}``: the reference
makes it idempotent; another reference for a paid bill is 409, a wrong amount 422.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Literal

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.params import FromPath, JSONBody

from integrations.simulators.auth import api_key, error, signed
from integrations.simulators.faults import UpstreamState
from integrations.simulators.seed import APPLICATIONS, BUS_STOPS, LICENCES, UTILITY_ACCOUNTS

__all__ = ["bill_amount", "bus_router", "gov_services_router", "utilities_router"]

_STOPS = {s.stop_id: s for s in BUS_STOPS}
_ACCOUNTS = {a.account_number: a for a in UTILITY_ACCOUNTS}


def bus_router(state: UpstreamState, key: str) -> Router:
    authorised = api_key(key)

    @get("/v1/stops/{stop_id:str}/arrivals", operation_id="BusArrivals")
    async def arrivals(stop_id: FromPath[str], request: Request[Any, Any, Any]) -> Response[Any]:
        if not await authorised(request):
            return error(401, "invalid_api_key")
        stop = _STOPS.get(stop_id)
        if stop is None:
            return error(404, "not_found")
        now = int(time.time())
        listed = []
        for index, line in enumerate(stop.lines):
            headway = 300 + 120 * index
            first = headway - (now + 97 * index) % headway
            for n in range(2):
                listed.append(
                    {
                        "line": line,
                        "destination": "深圳北站" if index % 2 == 0 else "福田口岸",
                        "eta_seconds": first + n * headway,
                        "vehicle_id": f"{line}-{(now // headway + n) % 40:02d}",
                    }
                )
        listed.sort(key=lambda a: a["eta_seconds"])
        return Response({"stop_id": stop.stop_id, "name": stop.name, "arrivals": listed})

    del state
    return Router("/bus", route_handlers=[arrivals])


class IdNumberQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    id_number: str


class LicenceQuery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    id_number: str | None = None
    credit_code: str | None = None


class StatusChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    application_id: str
    status: Literal["submitted", "in_review", "approved", "rejected", "completed"]


def gov_services_router(state: UpstreamState, signing_key: str) -> Router:
    authorised = signed(signing_key)

    @post("/v1/applications/search", operation_id="GovApplications", status_code=200)
    async def applications(data: JSONBody[IdNumberQuery], request: Request[Any, Any, Any]) -> Response[Any]:
        if not await authorised(request):
            return error(401, "invalid_signature")
        overrides: dict[str, str] = state.store.get("status", {})
        found = [
            {
                "application_id": a.application_id,
                "service": a.service,
                "status": overrides.get(a.application_id, a.status),
                "submitted_on": a.submitted_on.isoformat(),
            }
            for a in APPLICATIONS
            if a.applicant_id_number == data.id_number.upper()
        ]
        return Response({"applications": found})

    @post("/v1/licences/search", operation_id="GovLicences", status_code=200)
    async def licences(data: JSONBody[LicenceQuery], request: Request[Any, Any, Any]) -> Response[Any]:
        if not await authorised(request):
            return error(401, "invalid_signature")
        if (data.id_number is None) == (data.credit_code is None):
            return error(400, "give_id_number_or_credit_code")
        holder = (data.id_number or "").upper()
        organisation = (data.credit_code or "").upper()
        found = [
            {
                "licence_number": lic.licence_number,
                "kind": lic.kind,
                "title": lic.title,
                "issuer": lic.issuer,
                "issued_on": lic.issued_on.isoformat(),
                "expires_on": lic.expires_on.isoformat() if lic.expires_on else None,
                "credit_code": lic.credit_code,
            }
            for lic in LICENCES
            if (lic.holder_id_number == holder) or (organisation and lic.credit_code == organisation)
        ]
        return Response({"licences": found})

    @post("/v1/_status", operation_id="GovSetStatus", status_code=200)
    async def set_status(data: JSONBody[StatusChange]) -> Response[Any]:
        if data.application_id not in {a.application_id for a in APPLICATIONS}:
            return error(404, "not_found")
        state.store.setdefault("status", {})[data.application_id] = data.status
        return Response({"application_id": data.application_id, "status": data.status})

    return Router("/gov_services", route_handlers=[applications, licences, set_status])


def _months(today: dt.date) -> list[str]:
    months, year, month = [], today.year, today.month
    for _ in range(3):
        month -= 1
        if month == 0:
            year, month = year - 1, 12
        months.append(f"{year:04d}{month:02d}")
    return months


def bill_amount(account_number: str, period: str) -> int:
    """Fen; deterministic per account and month."""
    return 4_000 + (sum(map(ord, account_number + period)) * 37) % 30_000


class PaymentRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    amount: int
    payment_reference: str
    method: Literal["e_purse", "channel"]


def utilities_router(state: UpstreamState, key: str) -> Router:
    authorised = api_key(key)

    def bills_of(account_number: str) -> list[dict[str, Any]]:
        paid: dict[str, dict[str, Any]] = state.store.get("paid", {})
        listed = []
        for index, period in enumerate(_months(dt.datetime.now(dt.UTC).date())):
            bill_id = f"{account_number}-{period}"
            settled = index > 0 or bill_id in paid
            listed.append(
                {
                    "bill_id": bill_id,
                    "period": period,
                    "amount": bill_amount(account_number, period),
                    "due_on": f"{period[:4]}-{period[4:]}-28",
                    "status": "paid" if settled else "unpaid",
                }
            )
        return listed

    @post("/v1/accounts/search", operation_id="UtilityAccounts", status_code=200)
    async def accounts(data: JSONBody[IdNumberQuery], request: Request[Any, Any, Any]) -> Response[Any]:
        if not await authorised(request):
            return error(401, "invalid_api_key")
        found = [
            {"account_number": a.account_number, "kind": a.kind, "provider": a.provider, "address": a.address}
            for a in UTILITY_ACCOUNTS
            if a.holder_id_number == data.id_number.upper()
        ]
        return Response({"accounts": found})

    @get("/v1/accounts/{account:str}/bills", operation_id="UtilityBills")
    async def bills(account: FromPath[str], request: Request[Any, Any, Any]) -> Response[Any]:
        if not await authorised(request):
            return error(401, "invalid_api_key")
        if account not in _ACCOUNTS:
            return error(404, "not_found")
        return Response({"account_number": account, "bills": bills_of(account)})

    @post("/v1/bills/{bill_id:str}/payments", operation_id="UtilityPay", status_code=200)
    async def pay(
        bill_id: FromPath[str], data: JSONBody[PaymentRequest], request: Request[Any, Any, Any]
    ) -> Response[Any]:
        if not await authorised(request):
            return error(401, "invalid_api_key")
        paid: dict[str, dict[str, Any]] = state.store.setdefault("paid", {})
        account = bill_id.rsplit("-", 1)[0]
        bill = (
            next((b for b in bills_of(account) if b["bill_id"] == bill_id), None)
            if account in _ACCOUNTS
            else None
        )
        if bill is None:
            return error(404, "not_found")
        receipt = paid.get(bill_id)
        if receipt is not None:
            if receipt["payment_reference"] == data.payment_reference:
                return Response(receipt)
            return error(409, "already_paid")
        if bill["status"] == "paid":
            return error(409, "already_paid")
        if data.amount != bill["amount"]:
            return error(422, "amount_mismatch")
        receipt = {
            "bill_id": bill_id,
            "payment_reference": data.payment_reference,
            "amount": data.amount,
            "method": data.method,
            "paid_at": dt.datetime.now(dt.UTC).isoformat(),
            "status": "paid",
        }
        paid[bill_id] = receipt
        return Response(receipt)

    return Router("/utilities", route_handlers=[accounts, bills, pay])
