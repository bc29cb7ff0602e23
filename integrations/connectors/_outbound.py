"""One request to an upstream, and the failures the connector's retry loop may try again.

``send`` makes one attempt: the connector's credentials applied (``Auth``), one refresh of them and
one more try after a 401, and every transport failure, timeout or token-endpoint failure turned
into ``Retryable``. Which statuses are worth another try is ``RETRYABLE_STATUS`` (408, RFC 9110
§15.5.9, and 429, RFC 6585 §4, ask for a later try; the 5xx are the server's). The loop itself,
the budget and the breaker are in ``base.Connector``.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from integrations.connectors.auth import Auth
from integrations.registries import UpstreamUnavailable

__all__ = ["RETRYABLE_STATUS", "Outbound", "Retryable", "send"]

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Outbound:
    method: str
    path: str
    content: bytes | None
    headers: dict[str, str]


class Retryable(Exception):  # an internal signal between an attempt and the retry loop
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


async def send(client: httpx.AsyncClient, auth: Auth | None, outbound: Outbound) -> httpx.Response:
    headers = {"Accept": "application/json", **outbound.headers}
    if outbound.content is not None:
        headers["Content-Type"] = "application/json"
    for first in (True, False):
        request = client.build_request(
            outbound.method, outbound.path, content=outbound.content, headers=headers
        )
        try:
            if auth is not None:
                await auth.apply(request, client)
            response = await client.send(request)
        except UpstreamUnavailable as exc:  # the token endpoint
            raise Retryable("token", str(exc)) from None
        except httpx.TimeoutException as exc:
            raise Retryable("timeout", f"timed out ({exc.__class__.__name__})") from None
        except httpx.HTTPError as exc:
            raise Retryable("transport", exc.__class__.__name__) from None
        if response.status_code == 401 and first and auth is not None and auth.refresh():
            continue
        return response
    raise AssertionError("unreachable")  # pragma: no cover
