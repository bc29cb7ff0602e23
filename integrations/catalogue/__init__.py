"""The service catalogue: every service the app offers, who it is for, the assurance it needs and
whether it is available now. The same rows drive the home's tiles (``integrations.entrance``)."""

from __future__ import annotations

from integrations.catalogue.store import (
    Audience,
    Availability,
    Catalogue,
    Service,
    ServiceView,
    availability_of,
    search,
)

__all__ = ["Audience", "Availability", "Catalogue", "Service", "ServiceView", "availability_of", "search"]
