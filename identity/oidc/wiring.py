"""How the provider plugs into the shell: ``OidcRuntime(resources, identity)``, after identity.

Its lifespan (run after identity's) loads the signing keys (making the first ones on a new
database), builds the :class:`Provider`, and puts the access-token resolver in front of identity's
session resolver, so the API's bearer guard accepts the provider's access tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
from litestar import Router
from litestar.di import Provide
from litestar.types import ControllerRouterHandler

from identity.auth import APP_STATE_KEY, Authenticator
from identity.oidc.account import PersonOidcController
from identity.oidc.admin import ClientAdminController
from identity.oidc.authorize import authorize_get, authorize_post
from identity.oidc.clients import ClientStore
from identity.oidc.discovery import jwks, oauth_metadata, openid_configuration, public_preflight
from identity.oidc.endpoint import PROVIDER_STATE_KEY
from identity.oidc.errors import OAuthError, oauth_error_response
from identity.oidc.interaction import InteractionController
from identity.oidc.introspection import introspect, revoke
from identity.oidc.keys import KeyStore
from identity.oidc.logout import logout_get, logout_post
from identity.oidc.par import pushed_authorization_request
from identity.oidc.provider import Provider
from identity.oidc.resolver import AccessTokenResolver, DPoPPossession
from identity.oidc.settings import OidcSettings
from identity.oidc.token import token_endpoint
from identity.oidc.userinfo import userinfo_get, userinfo_options, userinfo_post
from identity.services import IdentityServices

__all__ = ["OidcRuntime", "api_audience_of", "issuer_of", "key_store"]

log = logging.getLogger("citizen.identity.oidc")


def issuer_of(settings: Any) -> str:
    oidc: OidcSettings = settings.oidc
    return (oidc.issuer or settings.public_url).rstrip("/")


def api_audience_of(settings: Any) -> str:
    """The audience the API's bearer guard requires (``CITIZEN_OIDC_API_AUDIENCE``, else <issuer>/api)."""
    oidc: OidcSettings = settings.oidc
    return oidc.api_audience or issuer_of(settings) + "/api"


def key_store(pool: Any, keyring: Any, oidc: OidcSettings) -> KeyStore:
    lifetime = max(oidc.access_token_ttl, oidc.id_token_ttl, 120)
    return KeyStore(
        pool,
        keyring.get("oidc-kek"),
        publish_delay=oidc.key_publish_delay,
        token_lifetime=lifetime,
        reload_every=oidc.key_reload_interval,
    )


class OidcRuntime:
    def __init__(self, resources: Any, identity: Callable[[], IdentityServices]) -> None:
        self._resources = resources
        self._identity = identity
        self._provider: Provider | None = None

    @property
    def provider(self) -> Provider:
        if self._provider is None:
            raise RuntimeError("the OpenID provider is not started (outside the app's lifespan)")
        return self._provider

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        r = self._resources
        settings: OidcSettings = r.settings.oidc
        issuer = issuer_of(r.settings)
        if not r.settings.is_development and not issuer.startswith("https://"):
            # Every endpoint derives from the issuer; a TLS-terminating proxy may still sit in front.
            log.warning("the OpenID issuer %s is not https:// (set CITIZEN_OIDC_ISSUER)", issuer)
        keys = key_store(r.pool, r.keyring, settings)
        await keys.ensure()
        kek = r.keyring.get("oidc-kek")
        async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as http:
            self._provider = Provider(
                settings=settings,
                issuer=issuer,
                api_audience=api_audience_of(r.settings),
                identity=self._identity(),
                redis=r.redis,
                keys=keys,
                clients=ClientStore(
                    r.pool,
                    cache_ttl=settings.client_cache_ttl,
                    development=r.settings.is_development,
                    api_audience=api_audience_of(r.settings),
                ),
                session_key=r.keyring.get("session"),
                pairwise_key=hmac.new(kek, b"citizen pairwise subject", hashlib.sha256).digest(),
                http=http,
            )
            app.state[PROVIDER_STATE_KEY] = self._provider
            sessions = self._provider.core.sessions
            sessions.revoke_all_hooks.append(self._provider.grants.revoke_account)
            sessions.grant_revokers.append(self._provider.grants.revoke)
            sessions.context_hooks.append(self._provider.org_tokens.revoke)
            listener = asyncio.create_task(self._provider.revocations.run(), name="oidc-invalidation")
            authenticator = app.state.get(APP_STATE_KEY)
            if isinstance(authenticator, Authenticator):
                resolver = AccessTokenResolver(self._provider.access, self._provider.api_audience)
                authenticator.resolvers.insert(0, resolver)
                origin = "{0.scheme}://{0.netloc}".format(urlsplit(self._provider.issuer))
                authenticator.possession = DPoPPossession(self._provider.dpop, origin)
            try:
                yield
            finally:
                sessions.revoke_all_hooks.remove(self._provider.grants.revoke_account)
                sessions.grant_revokers.remove(self._provider.grants.revoke)
                sessions.context_hooks.remove(self._provider.org_tokens.revoke)
                self._provider.grants.close()
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
                self._provider = None

    def route_handlers(self) -> list[ControllerRouterHandler]:
        protocol = Router(
            path="/",
            route_handlers=[
                # The CORS preflights first: Litestar adds its own OPTIONS handler to a path whose
                # first handler lacks one, and that one would then win over ours.
                public_preflight,
                userinfo_options,
                openid_configuration,
                oauth_metadata,
                jwks,
                authorize_get,
                authorize_post,
                InteractionController,
                pushed_authorization_request,
                token_endpoint,
                userinfo_get,
                userinfo_post,
                introspect,
                revoke,
                logout_get,
                logout_post,
            ],
            exception_handlers={OAuthError: oauth_error_response},
        )
        return [protocol, PersonOidcController, ClientAdminController]

    def dependencies(self) -> dict[str, Provide]:
        return {"oidc": Provide(lambda: self.provider, sync_to_thread=False)}
