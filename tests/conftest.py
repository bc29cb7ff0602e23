"""Test harness: real PostgreSQL and Redis, each test on a fresh database cloned from a migrated template.

The rule is the product's: with ``CITIZEN_DATABASE_URL``/``CITIZEN_REDIS_URL`` set, the tests use
those servers; otherwise the embedded servers are started once for the session. The template
database is built by the real migrations (``backend.migrations``), never by a parallel schema.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import hypothesis  # noqa: F401 - early: trio's hypothesis hook must run before the app's gc.freeze()
import msgspec
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.app import create_app
from backend.keyring import Keyring
from backend.runtime import Services, migrate_database, resolved_services
from backend.settings import DatabaseSettings, Environment, Secret, Settings
from integrations.simulators.control import SimulatorControl
from integrations.simulators.process import SimulatorsProcess, running_simulators
from integrations.wiring import Connectors, build_connectors

pytest_plugins = ["tests._watchdog"]

_counter = itertools.count()


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database (path form, or ``dbname=`` query)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    data_dir = tmp_path_factory.mktemp("citizen-data")
    env_settings = Settings.from_env()
    settings = Settings(
        environment=Environment.TEST,
        data_dir=data_dir,
        log_json=False,
        database=DatabaseSettings(url=env_settings.database.url, pool_min=1, pool_max=5),
        redis=env_settings.redis,
    )
    with resolved_services(settings, durable=False) as resolved:
        yield resolved


@pytest_asyncio.fixture(scope="session")
async def template_database(services: Services) -> str:
    """A database migrated once per session; each test clones it."""
    url = services.settings.database.url
    assert url is not None
    name = f"citizen_template_{os.getpid()}"
    admin = await asyncpg.connect(url.reveal())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    migrated = services.settings.replace(
        database=msgspec.structs.replace(
            services.settings.database, url=Secret(with_database(url.reveal(), name))
        )
    )
    await migrate_database(migrated)
    return name


@pytest_asyncio.fixture
async def database_url(services: Services, template_database: str) -> AsyncIterator[str]:
    url = services.settings.database.url
    assert url is not None
    name = f"citizen_test_{os.getpid()}_{next(_counter)}_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(url.reveal())
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
        yield with_database(url.reveal(), name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest_asyncio.fixture
async def redis_client(services: Services) -> AsyncIterator[aioredis.Redis]:
    url = services.settings.redis.url
    assert url is not None
    client = aioredis.from_url(url.reveal())
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
def settings(services: Services, database_url: str, redis_client: aioredis.Redis) -> Settings:
    """Settings for one test: its own database, a flushed Redis."""
    return services.settings.replace(
        database=msgspec.structs.replace(services.settings.database, url=Secret(database_url))
    )


@pytest.fixture
def keyring(settings: Settings) -> Keyring:
    return Keyring.load(settings)


@pytest.fixture
def app(settings: Settings, keyring: Keyring) -> Litestar:
    return create_app(settings, keyring)


@pytest_asyncio.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app) as test_client:
        yield test_client


@pytest_asyncio.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    connection: Any = await asyncpg.connect(database_url)
    yield connection
    await connection.close()


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


# --- integrations: the upstream simulators, a real separate process for the whole session ---


@pytest.fixture(scope="session")
def simulators(services: Services) -> Iterator[SimulatorsProcess]:
    """``simulators.urls``: each simulated upstream's base URL (``{"population": "http://..."}``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITIZEN_")}
    env.update(
        {
            "CITIZEN_ENV": "test",
            "CITIZEN_DATA_DIR": str(services.settings.data_dir),  # the same keyring as the tests
            "CITIZEN_LOG_LEVEL": "WARNING",
            "CITIZEN_LOG_JSON": "false",
        }
    )
    with running_simulators(env) as process:
        yield process


@pytest_asyncio.fixture
async def upstreams(simulators: SimulatorsProcess) -> AsyncIterator[SimulatorControl]:
    """The simulators' fault controls, every upstream reset before and after the test."""
    async with SimulatorControl(simulators.urls) as control:
        await control.reset()
        yield control
        await control.reset()


@pytest.fixture
def settings_with_upstreams(settings: Settings, simulators: SimulatorsProcess) -> Settings:
    """``settings`` whose connectors point at the simulators (for ``create_app``)."""
    return settings.replace(integrations=settings.integrations.with_urls(simulators.urls))


@pytest_asyncio.fixture
async def registries(
    services: Services, upstreams: SimulatorControl, redis_client: aioredis.Redis
) -> AsyncIterator[Connectors]:
    """Connected connectors to the simulators: ``registries.population`` (a ``PopulationRegistry``),
    ``registries.enterprise`` (an ``EnterpriseRegistry``), and the others. Breakers and caches
    start empty (Redis is flushed)."""
    session = services.settings
    connectors = build_connectors(
        session.integrations.with_urls(upstreams.urls),
        redis_client,
        simulator_key=Keyring.load(session, names=("simulator",)).get("simulator"),
        development=True,
    )
    yield connectors
    await connectors.aclose()
