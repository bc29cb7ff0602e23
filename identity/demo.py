"""`citizen demo` for identity (idempotent): a demo operator, the demo citizen (L2), his company."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import uuid
from typing import Any

import msgspec
import redis.asyncio as aioredis

from identity._db import Pool
from identity.admin.operators import create_operator
from identity.audit import AuditEvent, record
from identity.auth import OPERATOR_ROLES, ORG_ROLES
from identity.checks import mask_mobile, mask_resident_id
from identity.crypto import BlindIndex, PiiCipher
from identity.passwords import PasswordHasher
from integrations.simulators.seed import DEMO_CITIZEN, ENTERPRISES

__all__ = ["DEMO_OPERATOR", "load_identity_demo"]

DEMO_OPERATOR = "demo-admin"


def _demo_password(keyring: Any, purpose: str) -> str:
    """Stable across runs (derived from this installation's key), so the demo output can repeat it."""
    digest = hmac.new(keyring.get("otp"), f"demo password {purpose}".encode(), hashlib.sha256).digest()
    return "demo-" + base64.urlsafe_b64encode(digest[:12]).decode()


async def load_identity_demo(pool: Pool, _redis: aioredis.Redis, settings: Any, keyring: Any) -> list[str]:
    if not settings.is_development:
        return ["skipped: demo accounts are only made outside production"]
    hasher = PasswordHasher(settings.identity)
    cipher = PiiCipher(keyring.get("pii-encryption"))
    index = BlindIndex(keyring.get("pii-index"))
    lines: list[str] = []
    operator_password = _demo_password(keyring, "operator")
    citizen_password = _demo_password(keyring, "citizen")
    async with pool.acquire() as conn:
        if (
            await conn.fetchval("SELECT id FROM identity.operators WHERE username = $1", DEMO_OPERATOR)
            is None
        ):
            operator_id = await create_operator(
                conn,
                hasher,
                username=DEMO_OPERATOR,
                display_name="Demo operator",
                roles=list(OPERATOR_ROLES),
                password=operator_password,
            )
            await record(
                conn,
                AuditEvent(
                    action="identity.operator.create",
                    actor_kind="system",
                    target_kind="operator",
                    target_id=str(operator_id),
                    client_id="citizen-demo",
                    details={"roles": list(OPERATOR_ROLES)},
                ),
            )
        lines.append(f"operator {DEMO_OPERATOR} / {operator_password} (roles {', '.join(OPERATOR_ROLES)})")

        person = DEMO_CITIZEN
        account_id = await conn.fetchval(
            "SELECT id FROM identity.accounts WHERE id_number_index = $1 AND status <> 'deactivated'",
            index.id_number(person.id_number),
        )
        if account_id is None:
            account_id = uuid.uuid4()
            n = person.id_number
            attributes = msgspec.json.encode(
                {
                    "birth_date": dt.date(int(n[6:10]), int(n[10:12]), int(n[12:14])),
                    "gender": person.gender,
                    "region_code": n[:6],
                }
            )
            async with conn.transaction():
                await conn.execute(
                    """
                    INSERT INTO identity.accounts
                        (id, level, mobile_enc, mobile_index, name_enc, id_number_enc, id_number_index,
                         attributes_enc, verified_at, password_hash, password_changed_at)
                    VALUES ($1, 2, $2, $3, $4, $5, $6, $7, now(), $8, now())
                    """,
                    account_id,
                    cipher.encrypt(person.mobile, f"mobile:{account_id}"),
                    index.mobile(person.mobile),
                    cipher.encrypt(person.name, f"name:{account_id}"),
                    cipher.encrypt(n, f"id_number:{account_id}"),
                    index.id_number(n),
                    cipher.encrypt(attributes, f"attributes:{account_id}"),
                    await hasher.hash(citizen_password),
                )
                await record(
                    conn,
                    AuditEvent(
                        action="identity.person.register",
                        actor_kind="system",
                        target_kind="account",
                        target_id=str(account_id),
                        client_id="citizen-demo",
                        details={"level": 2, "seeded": True},
                    ),
                )
        lines.append(
            f"citizen {person.name} {mask_resident_id(person.id_number)} mobile {person.mobile} "
            f"({mask_mobile(person.mobile)}) / {citizen_password}, level 2; "
            "sign in by password or with a code from `citizen sms tail`"
        )

        company = ENTERPRISES[0]
        if (
            await conn.fetchval(
                "SELECT id FROM identity.organisations WHERE credit_code = $1", company.credit_code
            )
            is None
        ):
            org_id = uuid.uuid4()
            async with conn.transaction():
                await conn.execute(
                    """
                    INSERT INTO identity.organisations
                        (id, credit_code, name, kind, registry_status, registered_on, legal_representative_id)
                    VALUES ($1, $2, $3, $4, $5, $6, $7)
                    """,
                    org_id,
                    company.credit_code,
                    company.name,
                    company.kind,
                    company.status,
                    company.registered_on,
                    account_id,
                )
                await conn.execute(
                    """
                    INSERT INTO identity.agents
                        (id, organisation_id, account_id, roles, is_legal_representative)
                    VALUES ($1, $2, $3, $4, true)
                    """,
                    uuid.uuid4(),
                    org_id,
                    account_id,
                    list(ORG_ROLES),
                )
                await record(
                    conn,
                    AuditEvent(
                        action="identity.organisation.register",
                        actor_kind="system",
                        acting_for=str(org_id),
                        target_kind="organisation",
                        target_id=str(org_id),
                        client_id="citizen-demo",
                        details={"credit_code": company.credit_code, "seeded": True},
                    ),
                )
        lines.append(f"organisation {company.name} {company.credit_code}, legal representative {person.name}")
    return lines
