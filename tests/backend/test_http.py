from typing import Any

import msgspec
from litestar import Litestar, post
from litestar.params import JSONBody
from litestar.testing import AsyncTestClient

from backend import migrations
from backend.errors import exception_handlers
from backend.observability import Metrics, ObservabilityMiddleware


async def test_status_reads_the_database(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/api/v1/platform/status")
    assert response.status_code == 200
    body = response.json()
    assert body["environment"] == "test"
    assert body["migrations_applied"] == len(migrations.discover()) > 0  # the test database has them all
    assert body["database_time"].endswith("Z")


async def test_readiness_checks_every_backing_service(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "redis": "ok"},
    }
    assert (await client.get("/healthz")).json() == {"status": "ok"}


async def test_unknown_route_is_problem_json(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/no/such/thing")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "/problems/not-found"
    assert body["status"] == 404
    assert body["request_id"] == response.headers["x-request-id"]


async def test_wrong_method_is_problem_json(client: AsyncTestClient[Litestar]) -> None:
    response = await client.delete("/healthz")
    assert response.status_code == 405
    assert response.json()["type"] == "/problems/method-not-allowed"


async def test_request_id_is_taken_from_the_caller_when_well_formed(
    client: AsyncTestClient[Litestar],
) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "trace-abc-12345"})
    assert response.headers["x-request-id"] == "trace-abc-12345"
    response = await client.get("/healthz", headers={"X-Request-ID": "<script>"})
    assert response.headers["x-request-id"] != "<script>"


async def test_metrics_count_requests_per_route_template(client: AsyncTestClient[Litestar]) -> None:
    await client.get("/api/v1/platform/status")
    await client.get("/api/v1/platform/status")
    text = (await client.get("/metrics")).text
    line = next(
        line
        for line in text.splitlines()
        if line.startswith("citizen_http_requests_total{") and "/api/v1/platform/status" in line
    )
    assert line.endswith(" 2.0")
    assert "citizen_http_request_duration_seconds_bucket" in text


async def test_openapi_document_is_served(client: AsyncTestClient[Litestar]) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    assert "/api/v1/platform/status" in document["paths"]
    assert (await client.get("/schema")).status_code == 200


class Holder(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    age: int


@post("/echo")
async def echo(data: JSONBody[Holder]) -> Holder:
    return data


@post("/explode")
async def explode() -> None:
    raise RuntimeError("SELECT secret FROM identity.person WHERE password = 'hunter2'")


def _error_app() -> Litestar:
    app = Litestar([echo, explode], exception_handlers=exception_handlers, logging_config=None)
    app.asgi_handler = ObservabilityMiddleware(app.asgi_handler, Metrics())
    return app


async def test_validation_errors_name_the_fields() -> None:
    async with AsyncTestClient(_error_app()) as client:
        response = await client.post("/echo", json={"name": "x", "age": "old"})
    assert response.status_code == 422
    body: dict[str, Any] = response.json()
    assert body["type"] == "/problems/validation-error"
    assert body["errors"][0]["field"] == "age"


async def test_unknown_fields_are_refused() -> None:
    async with AsyncTestClient(_error_app()) as client:
        response = await client.post("/echo", json={"name": "x", "age": 3, "admin": True})
    assert response.status_code == 422
    assert "admin" in response.text


async def test_malformed_json_is_a_client_error() -> None:
    async with AsyncTestClient(_error_app()) as client:
        response = await client.post(
            "/echo", content=b"{not json", headers={"content-type": "application/json"}
        )
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"] == "application/problem+json"


async def test_internal_errors_leak_nothing() -> None:
    async with AsyncTestClient(_error_app()) as client:
        response = await client.post("/explode")
    assert response.status_code == 500
    assert "hunter2" not in response.text
    assert "SELECT" not in response.text
    assert "Traceback" not in response.text
    assert set(response.json()) == {"type", "title", "status", "detail", "request_id"}
