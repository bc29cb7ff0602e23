"""The console's pages that read PostgreSQL themselves (the activity chart, the settlement files)
ask identity about the operator's token on every request: once the operator's sessions are
revoked, they are refused like every page that calls the API."""

from __future__ import annotations

import datetime as dt

import asyncpg
import redis.asyncio as aioredis
from litestar import Litestar
from litestar.testing import AsyncTestClient

from identity.sessions import SessionStore
from tests.web.conftest import demo_operator, operator_sign_in

Client = AsyncTestClient[Litestar]
RUN = dt.date(2025, 6, 3)
FILE = b"taps,gross\n12,2400\n"


async def _settled(connection: asyncpg.Connection) -> None:
    await connection.execute(
        "INSERT INTO payments.settlement_runs (business_date, as_of) VALUES ($1, now())", RUN
    )
    await connection.execute(
        "INSERT INTO payments.settlements (business_date, operator, taps, gross, late_taps,"
        " concession_taps, rebates, fees, net, file_name, file)"
        " VALUES ($1, 'citybus', 12, 2400, 0, 1, 0, 12, 2388, 'citybus-20250603.csv', $2)",
        RUN,
        FILE,
    )


async def test_a_revoked_operator_gets_neither_the_settlement_file_nor_the_chart(
    client: Client, operator_password: str, database_url: str, redis_client: aioredis.Redis
) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await _settled(connection)
        console = await operator_sign_in(client, operator_password)
        assert console.url.path == "/console/"
        file = await client.get("/console/settlements/2025-06-03/citybus", follow_redirects=False)
        assert file.status_code == 200
        assert file.content == FILE
        assert (await client.get("/console/chart.svg", follow_redirects=False)).status_code == 200
        # A security administrator ends every session of the operator (stolen token, left the city).
        operator_id = await connection.fetchval(
            "SELECT id FROM identity.operators WHERE username = $1", demo_operator()
        )
        assert await SessionStore(redis_client).revoke_all(connection, operator_id, "test") > 0
    finally:
        await connection.close()
    file = await client.get("/console/settlements/2025-06-03/citybus", follow_redirects=False)
    assert file.status_code == 303
    assert file.headers["location"].startswith("/console/login?next=")
    assert FILE not in file.content
    chart = await client.get("/console/chart.svg", follow_redirects=False)
    assert chart.status_code == 401
    assert chart.content == b""
