"""Consent: asked once per person, client and set of scopes; listed and revoked by the person.

A request for scopes already granted needs no new consent; a request for more asks for the new set
(``prompt=consent`` always asks). Revoking consent deletes the row and revokes every grant of that
client for the person, so its refresh and access tokens stop working at once.
"""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec

from identity._db import Pool

__all__ = ["ConsentStore", "ConsentView"]


class ConsentView(msgspec.Struct, frozen=True, kw_only=True):
    client_id: str
    client_name: str
    logo_uri: str | None
    scopes: list[str]
    granted_at: dt.datetime
    updated_at: dt.datetime


class ConsentStore:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def covers(self, account_id: uuid.UUID, client_id: str, scopes: tuple[str, ...]) -> bool:
        granted = await self.pool.fetchval(
            "SELECT scopes FROM identity.oidc_consents WHERE account_id = $1 AND client_id = $2",
            account_id,
            client_id,
        )
        return granted is not None and set(scopes) <= set(granted)

    async def grant(self, account_id: uuid.UUID, client_id: str, scopes: tuple[str, ...]) -> None:
        await self.pool.execute(
            """
            INSERT INTO identity.oidc_consents (account_id, client_id, scopes) VALUES ($1, $2, $3)
            ON CONFLICT (account_id, client_id) DO UPDATE
            SET scopes = (SELECT array_agg(DISTINCT s ORDER BY s)
                          FROM unnest(identity.oidc_consents.scopes || excluded.scopes) AS s),
                updated_at = now()
            """,
            account_id,
            client_id,
            sorted(set(scopes)),
        )

    async def list(self, account_id: uuid.UUID) -> list[ConsentView]:
        rows = await self.pool.fetch(
            """
            SELECT c.client_id, k.name, k.logo_uri, c.scopes, c.granted_at, c.updated_at
            FROM identity.oidc_consents c JOIN identity.oidc_clients k ON k.client_id = c.client_id
            WHERE c.account_id = $1 ORDER BY c.granted_at
            """,
            account_id,
        )
        return [
            ConsentView(
                client_id=r["client_id"],
                client_name=r["name"],
                logo_uri=r["logo_uri"],
                scopes=list(r["scopes"]),
                granted_at=r["granted_at"],
                updated_at=r["updated_at"],
            )
            for r in rows
        ]

    async def revoke(self, account_id: uuid.UUID, client_id: str) -> bool:
        done = await self.pool.execute(
            "DELETE FROM identity.oidc_consents WHERE account_id = $1 AND client_id = $2",
            account_id,
            client_id,
        )
        return done == "DELETE 1"
