"""Where the domain packages are plugged into the shell.

``create_app`` calls ``domain_parts`` once per app. Each domain contributes route handlers,
named dependencies (Litestar DI) and lifespan hooks; everything a domain needs (pool, Redis,
settings, keyring, connectors) is handed to it here, so the domain never reaches for globals.
Add a domain by adding one block below.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import msgspec
from litestar.di import Provide
from litestar.types import ControllerRouterHandler

from integrations.wiring import IntegrationsRuntime

if TYPE_CHECKING:
    from backend.app import Resources

__all__ = ["DomainParts", "domain_parts"]


class DomainParts(msgspec.Struct):
    route_handlers: list[ControllerRouterHandler] = msgspec.field(default_factory=list)
    dependencies: dict[str, Provide] = msgspec.field(default_factory=dict)
    lifespans: list[Callable[[Any], AbstractAsyncContextManager[None]]] = msgspec.field(default_factory=list)
    # Prometheus registries of a domain's own metrics, rendered by /metrics with the shell's.
    metric_registries: list[Any] = msgspec.field(default_factory=list)


def domain_parts(resources: Resources) -> DomainParts:
    parts = DomainParts()
    # identity, payments, card and integrations register here as they land.

    # integrations: the upstream connectors, opened after the shell's Redis (lifespans run in
    # order); other blocks reach them lazily through `integrations.connectors`.
    integrations = IntegrationsRuntime(resources)
    parts.lifespans.append(integrations.lifespan)
    parts.dependencies.update(integrations.dependencies())

    # identity: persons, organisations, sessions, audit; the registries come from integrations.
    from backend.observability import current_request_id
    from identity.wiring import IdentityRuntime

    identity = IdentityRuntime(
        resources, registries=lambda: integrations.connectors, request_id=current_request_id
    )
    parts.lifespans.append(identity.lifespan)
    parts.dependencies.update(identity.dependencies())
    parts.route_handlers.extend(identity.route_handlers())

    # identity.oidc: the OpenID provider and SSO (after identity: it uses identity's services and
    # adds its access-token resolver to identity's authenticator).
    from identity.oidc.wiring import OidcRuntime

    oidc = OidcRuntime(resources, identity=lambda: identity.services)
    parts.lifespans.append(oidc.lifespan)
    parts.dependencies.update(oidc.dependencies())
    parts.route_handlers.extend(oidc.route_handlers())

    # card: the citizen card, its key store, devices and blacklist (after identity: it audits there,
    # and reads the ID number its social security and health look-ups take, through integrations).
    from backend.observability import current_request_id as card_request_id
    from card.wiring import CardRuntime

    card = CardRuntime(
        resources,
        request_id=card_request_id,
        connectors=lambda: integrations.connectors,
        identity=lambda: identity.services,
    )
    parts.lifespans.append(card.lifespan)
    parts.dependencies.update(card.dependencies())
    parts.route_handlers.extend(card.route_handlers())

    # card.terminal: the terminal registry's admin API (the gateway is its own process/server).
    from card.terminal.admin import TerminalAdminController
    from card.terminal.host.registry import TerminalRegistry

    # With the sessions' Redis: disable and re-key end the terminal's session at once.
    parts.dependencies["terminal_registry"] = Provide(
        lambda: TerminalRegistry(resources.pool, resources.keyring.get("card-kek"), redis=resources.redis),
        sync_to_thread=False,
    )
    parts.route_handlers.append(TerminalAdminController)

    # payments: top-ups through the channels (integrations upstreams), notifications; audits via identity.
    from payments.wiring import PaymentsRuntime

    payments = PaymentsRuntime(resources)
    parts.lifespans.append(payments.lifespan)
    parts.dependencies.update(payments.dependencies())
    parts.route_handlers.extend(payments.route_handlers())

    # integrations' entrance: the service catalogue, the home and the inbox (after identity and
    # card: it reads the person's ID number, the card and its e-purse balance through them).
    from integrations.connectors import metrics as connector_metrics
    from integrations.entrance.wiring import EntranceRuntime

    entrance = EntranceRuntime(
        resources,
        connectors=lambda: integrations.connectors,
        identity=lambda: identity.services,
    )
    parts.lifespans.append(entrance.lifespan)
    parts.dependencies.update(entrance.dependencies())
    parts.route_handlers.extend(entrance.route_handlers())
    parts.metric_registries.append(connector_metrics.REGISTRY)

    # web: the citizen's card page (/web/) and the operators' console (/console/), served by the app
    # itself; they call the API in-process, so their lifespan comes after every domain's.
    from backend.web.pages import WebRuntime

    web = WebRuntime(resources)
    parts.lifespans.append(web.lifespan)
    parts.dependencies.update(web.dependencies())
    parts.route_handlers.extend(web.route_handlers())
    return parts
