"""Identity: registrations/s, sign-ins/s (one-time code, password) and blind-index look-ups/s.

Measured on the service layer in one process and one event loop (what one API worker runs, without
HTTP parsing, with its background audit sealer), against real PostgreSQL and Redis. One-time-code
sign-ins are measured with the code already sent (``code_logins``, the ≥ 1,000/s target); sending
codes and the two steps together are measured separately. Baselines from the same run: the raw argon2id hash
rate on one core with the same parameters (password sign-ins are bounded by it), and a bare
primary-key SELECT for the look-ups. Codes are read back through a recording SMS gateway.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import argon2

from backend.db import create_pool
from backend.keyring import Keyring
from backend.runtime import migrate_database
from bench._harness import emit, services
from identity.audit import AuditSealer, seal_all, verify_chain
from identity.checks import resident_id_check_char
from identity.context import ClientInfo
from identity.persons.service import PersonService
from identity.settings import IdentitySettings
from identity.wiring import build_core

NAME = "identity_auth"
CONCURRENCY = 32
N_REGISTER = 2000
N_CODE_LOGIN = 2000
N_PASSWORD = 200
N_LOOKUP = 20000
PASSWORD = "bench passphrase 2025"


class RecordingSms:
    def __init__(self) -> None:
        self.last: dict[str, str] = {}

    async def send(self, mobile: str, text: str) -> None:
        self.last[mobile] = text.split("验证码 ")[1][:6]


class NoRegistries:
    """Registration and sign-in never call a registry; a call would fail loudly."""

    population: Any = None
    enterprise: Any = None


def _mobiles(n: int, offset: int) -> list[str]:
    return [f"139{offset + i:08d}" for i in range(n)]


def _client(i: int) -> ClientInfo:
    return ClientInfo(address=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", client_id="bench")


async def _run(items: list[Any], work: Any) -> float:
    queue = iter(enumerate(items))

    async def lane() -> None:
        for i, item in queue:
            await work(i, item)

    start = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(CONCURRENCY)))
    return len(items) / (time.perf_counter() - start)


def _argon2_rate(settings: IdentitySettings, seconds: float = 3.0) -> float:
    hasher = argon2.PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
        type=argon2.Type.ID,
    )
    stored = hasher.hash(PASSWORD)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        hasher.verify(stored, PASSWORD)
        count += 1
    return count / (time.perf_counter() - start)


async def main() -> None:
    settings_id = IdentitySettings(
        code_sends_per_mobile=100, code_sends_per_address=10**6, address_failure_limit=10**6
    )
    with services() as resolved:
        settings = resolved.settings.replace(identity=settings_id)
        await migrate_database(settings)
        assert settings.redis.url is not None
        import redis.asyncio as aioredis

        db = settings.database
        assert db.url is not None
        pool = await create_pool(
            type(db)(url=db.url, pool_min=CONCURRENCY // 2, pool_max=CONCURRENCY),
            db.url.reveal(),
        )
        redis = aioredis.from_url(settings.redis.url.reveal())
        sms = RecordingSms()
        core = build_core(
            pool=pool,
            redis=redis,
            settings=settings_id,
            keyring=Keyring.load(settings),
            registries=NoRegistries(),
            development=True,
            sms=sms,
        )
        persons = PersonService(core)
        params = core.hasher.parameters
        try:
            # The app's background audit sealer, as identity's lifespan runs it.
            async with AuditSealer(pool, interval=settings_id.audit_seal_interval).running():
                await _bench(persons, sms, pool, settings_id, params)
            async with pool.acquire() as connection:
                await seal_all(connection)
                report = await verify_chain(connection)
            emit(
                NAME,
                "audit_chain",
                report.entries,
                "entries",
                target="verifies, nothing left unsealed",
                ok=report.ok,
                unsealed=report.unsealed,
            )
        finally:
            await redis.aclose()
            await pool.close()


async def _bench(
    persons: PersonService, sms: RecordingSms, pool: Any, s: IdentitySettings, params: dict[str, Any]
) -> None:
    common = {"concurrency": CONCURRENCY, "argon2": params}
    # Registrations: send a code, then register with it (two steps, as a phone does).
    mobiles = _mobiles(N_REGISTER, 0)

    async def register(i: int, mobile: str) -> None:
        await persons.send_code("register", mobile, _client(i))
        await persons.register(mobile, sms.last[mobile], None, _client(i))

    reg_rate = await _run(mobiles, register)
    emit(
        NAME,
        "registrations",
        reg_rate,
        "per_s",
        target="(informative)",
        steps="send code + register",
        **common,
    )

    # One-time-code sign-ins, split: sending the code, then signing in with a code already sent
    # (the two are separate requests from a phone, minutes apart), then the two together.
    login_mobiles = mobiles[:N_CODE_LOGIN]

    async def send_login_code(i: int, mobile: str) -> None:
        await persons.send_code("login", mobile, _client(i))

    send_rate = await _run(login_mobiles, send_login_code)
    codes = {m: sms.last[m] for m in login_mobiles}
    emit(NAME, "code_sends", send_rate, "per_s", target="(informative)", steps="send code", **common)

    async def code_login(i: int, mobile: str) -> None:
        await persons.login_with_code(mobile, codes[mobile], _client(i))

    login_rate = await _run(login_mobiles, code_login)
    finished = time.perf_counter()
    while await pool.fetchval("SELECT EXISTS (SELECT 1 FROM identity.audit_pending)"):  # noqa: ASYNC110
        await asyncio.sleep(0.005)  # polling the database, not an in-process condition
    seal_lag = time.perf_counter() - finished
    emit(
        NAME,
        "code_logins",
        login_rate,
        "per_s",
        target=">= 1000/s",
        steps="sign in with a code already sent",
        audit_sealed_within_s=round(seal_lag, 3),
        **common,
    )

    async def send_and_login(i: int, mobile: str) -> None:
        await persons.send_code("login", mobile, _client(i))
        await persons.login_with_code(mobile, sms.last[mobile], _client(i))

    both_rate = await _run(login_mobiles, send_and_login)
    emit(
        NAME,
        "code_send_and_login",
        both_rate,
        "per_s",
        target="(informative)",
        steps="send code + sign in, one after the other",
        **common,
    )
    bare_ids = [uuid.uuid4() for _ in range(N_LOOKUP)]
    await pool.execute("CREATE TABLE IF NOT EXISTS public.bench_identity (id uuid PRIMARY KEY)")
    await pool.executemany("INSERT INTO public.bench_identity VALUES ($1)", [(i,) for i in bare_ids])

    # Password sign-ins, against the raw argon2id rate of one core with the same parameters.
    pw_mobiles = _mobiles(N_PASSWORD, 50_000)
    for i, mobile in enumerate(pw_mobiles):
        await persons.send_code("register", mobile, _client(i))
        await persons.register(mobile, sms.last[mobile], PASSWORD, _client(i))
    per_core = await asyncio.to_thread(_argon2_rate, s)

    async def password_login(i: int, mobile: str) -> None:
        await persons.login_with_password(mobile, PASSWORD, _client(i))

    pw_rate = await _run(pw_mobiles, password_login)
    emit(
        NAME,
        "password_logins",
        pw_rate,
        "per_s",
        target=">= 0.8 x per-core argon2id rate",
        baseline="argon2id verify, one core, same parameters",
        baseline_value=round(per_core, 1),
        **common,
    )

    # Blind-index look-ups by ID number over verified accounts (seeded directly: no registry here).
    ids = []
    for n in range(N_LOOKUP // 10):
        first17 = f"110101{1950 + n % 50}0101{n % 1000:03d}"
        ids.append(first17 + resident_id_check_char(first17))
    core = persons.core
    rows = []
    for k, id_number in enumerate(ids):
        aid = uuid.uuid4()
        rows.append(
            (
                aid,
                core.seal("mobile", aid, f"137{k:08d}"),
                core.index.mobile(f"137{k:08d}"),
                core.seal("id_number", aid, id_number),
                core.index.id_number(id_number),
            )
        )
    await pool.executemany(
        """
        INSERT INTO identity.accounts
            (id, level, mobile_enc, mobile_index, id_number_enc, id_number_index, verified_at)
        VALUES ($1, 2, $2, $3, $4, $5, now()) ON CONFLICT DO NOTHING
        """,
        rows,
    )
    await pool.execute("ANALYZE identity.accounts")
    queries = [ids[i % len(ids)] for i in range(N_LOOKUP)]

    async def lookup(_i: int, id_number: str) -> None:
        assert await persons.find_by_id_number(id_number) is not None

    lookup_rate = await _run(queries, lookup)

    async def bare(_i: int, row_id: uuid.UUID) -> None:
        await pool.fetchval("SELECT id FROM public.bench_identity WHERE id = $1", row_id)

    bare_rate = await _run(bare_ids, bare)
    emit(
        NAME,
        "id_number_lookups",
        lookup_rate,
        "per_s",
        target=">= 5000/s",
        baseline="primary-key SELECT, same pool and concurrency",
        baseline_value=round(bare_rate, 1),
        **common,
    )


if __name__ == "__main__":
    asyncio.run(main())
