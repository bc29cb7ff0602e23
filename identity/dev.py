"""Development-only routes: read what the development SMS gateway recorded. Not mounted in production."""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromQuery

from identity.errors import InvalidField
from identity.persons import validation
from identity.services import IdentityServices
from identity.sms import SentMessage, read_messages

__all__ = ["dev_sms"]


@get("/api/v1/identity/dev/sms", operation_id="DevReadSms", tags=["identity-dev"])
async def dev_sms(
    identity: NamedDependency[IdentityServices],
    mobile: FromQuery[str | None] = None,
    limit: FromQuery[int] = 20,
) -> list[SentMessage]:
    """The latest messages recorded by the development SMS gateway (newest first)."""
    if not 1 <= limit <= 200:
        raise InvalidField("limit", "range", "1 to 200")
    number = validation.mobile(mobile) if mobile else None
    # Codes are sent in the background (identity.sms.SmsOutbox): what this worker queued is in the
    # log before it is read.
    await identity.core.outbox.settle()
    return await read_messages(identity.core.redis, limit, number)
