"""The social security and health look-ups of a card, over integrations' connectors.

:class:`ConnectorDirectory` is card's :class:`~card.applications.ApplicationDirectory`: it asks
``SocialSecurityConnector.insured_record_of_person`` and ``HealthConnector.record_of_person`` by the
holder's resident ID number (in the request body, never in a URL) and maps every upstream failure
to a pending reason. The connectors' own cache, retries, budget and circuit breaker apply; a
last-known value served while the upstream is down is used like a fresh one.

The ID number: identity has no public "ID number of this account" function yet. The directory is
given a reader; :func:`identity_id_numbers` uses integrations' ``Subjects.id_number`` (the
entrance's and the poll job's reader, itself on ``IdentityCore``'s pool and ``open``), so the day
identity exposes one, only ``Subjects._load_id_number`` changes.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import quote

from card.applications import DirectoryUnavailable, HealthCardRecord, HolderDetails, InsuranceRecord

__all__ = ["ConnectorDirectory", "IdNumberReader", "identity_id_numbers"]

IdNumberReader = Callable[[uuid.UUID], Awaitable[str | None]]


def identity_id_numbers(identity: Callable[[], Any]) -> IdNumberReader:
    """The holder's verified resident ID number, from identity (``identity``: a callable giving
    ``identity.services.IdentityServices`` once identity's lifespan has run)."""
    from integrations.entrance.subjects import Subjects

    return Subjects(identity).id_number


class ConnectorDirectory:
    """``connectors``: a callable giving ``integrations.wiring.Connectors`` (open in the app's lifespan)."""

    def __init__(self, connectors: Callable[[], Any], id_number: IdNumberReader) -> None:
        self._connectors = connectors
        self._id_number = id_number

    async def _holder_id_number(self, holder: HolderDetails) -> str:
        number = await self._id_number(holder.person_id)
        if not number:
            raise DirectoryUnavailable("no_id_number")
        return number

    async def social_security(self, holder: HolderDetails) -> InsuranceRecord | None:
        number = await self._holder_id_number(holder)
        connector = self._connectors().social_security
        with _mapped_failures():
            record = (await connector.insured_record_of_person(number)).value
        if record is None:
            return None
        return InsuranceRecord(
            social_security_number=record.social_security_number, insurance_status=record.status
        )

    async def health_card(self, holder: HolderDetails) -> HealthCardRecord | None:
        number = await self._holder_id_number(holder)
        connector = self._connectors().health
        with _mapped_failures():
            record = (await connector.record_of_person(number)).value
        if record is None:
            return None
        card_id = record.health_card_id
        link = f"{connector.base_url.rstrip('/')}/v1/records/{quote(card_id, safe='')}"
        return HealthCardRecord(health_card_id=card_id, health_record_link=link)


@contextlib.contextmanager
def _mapped_failures() -> Iterator[None]:
    """Upstream failures as :class:`DirectoryUnavailable` with a pending reason."""
    from integrations.errors import NotConfigured, UpstreamError, UpstreamUnavailable

    try:
        yield
    except NotConfigured as exc:
        raise DirectoryUnavailable("upstream_not_configured", str(exc)) from exc
    except UpstreamUnavailable as exc:  # the breaker open, down, too slow
        raise DirectoryUnavailable("upstream_unavailable", str(exc)) from exc
    except UpstreamError as exc:  # malformed or unexpected answers
        raise DirectoryUnavailable("upstream_error", str(exc)) from exc
