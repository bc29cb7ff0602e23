"""Government application status changes become inbox messages.

``record_statuses`` compares the applications the upstream just gave for a person with the last
statuses seen (``integrations.application_statuses``) and, in one transaction, stores the new
ones and notifies each change (``gov.application_status_changed``; the first sight of an
application is recorded without a message). Two callers: the home, whenever the government
services connector fetched fresh data, and ``poll_applications`` (``python -m
integrations.messages poll``), which asks the upstream for every person seen so far.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence

from integrations._db import Pool
from integrations.connectors.city import Application
from integrations.messages.store import Recipient, notify
from integrations.registries import UpstreamError
from integrations.wiring import Connectors

__all__ = ["STATUS_ZH", "poll_applications", "record_statuses"]

log = logging.getLogger("citizen.integrations.messages")

STATUS_ZH = {
    "submitted": "已提交",
    "in_review": "审核中",
    "approved": "已通过",
    "rejected": "未通过",
    "completed": "已办结",
}


async def record_statuses(pool: Pool, person_id: uuid.UUID, applications: Sequence[Application]) -> int:
    """Store what was seen; returns how many changes were notified."""
    if not applications:
        return 0
    changed = 0
    async with pool.acquire() as connection, connection.transaction():
        rows = await connection.fetch(
            """
            INSERT INTO integrations.application_statuses AS s (person_id, application_id, service, status)
            SELECT $1, a.id, a.service, a.status
            FROM unnest($2::text[], $3::text[], $4::text[]) AS a(id, service, status)
            ON CONFLICT (person_id, application_id) DO UPDATE
                SET status = excluded.status, service = excluded.service, seen_at = now()
                WHERE s.status IS DISTINCT FROM excluded.status
            RETURNING application_id, service, status,
                      (SELECT p.status FROM integrations.application_statuses p
                       WHERE p.person_id = s.person_id AND p.application_id = s.application_id) AS before
            """,
            person_id,
            [a.application_id for a in applications],
            [a.service for a in applications],
            [a.status for a in applications],
        )
        for row in rows:
            before, after = row["before"], row["status"]
            if before is None or before == after:
                continue  # first seen (the sub-select reads the snapshot before this statement)
            changed += 1
            title = f"办件进度更新：{row['service']}"
            body = (
                f"您的申请 {row['application_id']}（{row['service']}）状态已由"
                f"「{STATUS_ZH.get(before, before)}」变为「{STATUS_ZH.get(after, after)}」。"
            )
            await notify(
                connection,
                Recipient.person(person_id),
                "gov.application_status_changed",
                title,
                body,
                {"application_id": row["application_id"], "from": before, "to": after},
                dedupe_key=f"gov.application:{row['application_id']}:{before}->{after}",
            )
    return changed


async def poll_applications(
    pool: Pool,
    connectors: Connectors,
    id_number_of: Callable[[uuid.UUID], Awaitable[str | None]],
    *,
    concurrency: int = 8,
) -> tuple[int, int, int]:
    """Ask the upstream (not the cache) for every person with applications seen so far.
    Returns (people polled, changes notified, people whose upstream call failed)."""
    people = [
        r["person_id"]
        for r in await pool.fetch("SELECT DISTINCT person_id FROM integrations.application_statuses")
    ]
    gate = asyncio.Semaphore(concurrency)
    changes = failures = 0

    async def one(person_id: uuid.UUID) -> None:
        nonlocal changes, failures
        async with gate:
            id_number = await id_number_of(person_id)
            if id_number is None:
                return
            try:
                fetched = await connectors.gov_services.applications(id_number, cached=False)
            except UpstreamError as exc:
                failures += 1
                log.warning("application poll failed", extra={"error": str(exc)})
                return
            changes += await record_statuses(pool, person_id, fetched.value)

    await asyncio.gather(*(one(p) for p in people))
    return len(people), changes, failures
