"""The ``oidc`` section of the settings (``CITIZEN_OIDC_*``, named in ``backend/settings.py``)."""

from __future__ import annotations

import msgspec

__all__ = ["ALGORITHMS", "OidcSettings"]

ALGORITHMS: tuple[str, ...] = ("ES256", "RS256", "EdDSA")


class OidcSettings(msgspec.Struct, frozen=True, kw_only=True):
    # The issuer; empty: the public URL (``Settings.public_url``).
    issuer: str = ""
    # Audience the API's own bearer guard requires; empty: ``<issuer>/api``.
    api_audience: str = ""
    access_token_ttl: int = 600
    id_token_ttl: int = 600
    # Absolute lifetime of a grant and of every refresh token rotated from it (ASVS 10.4.8).
    refresh_token_ttl: int = 30 * 86400
    code_ttl: int = 60  # authorization codes (ASVS 10.4.3 at L3: at most a minute)
    par_ttl: int = 60  # pushed authorization requests
    interaction_ttl: int = 900  # a login or consent page in progress
    sso_session_ttl: int = 8 * 3600
    # The default signing algorithm; access tokens always use it (the API guard pins it).
    signing_alg: str = "ES256"
    # A new signing key is published this long before it signs (clients cache JWKS).
    key_publish_delay: int = 3600
    # How often a worker re-reads the keys (a rotation made elsewhere shows up within this).
    key_reload_interval: float = 5.0
    # Client registry cache per worker (seconds); the admin API clears the local copy at once.
    client_cache_ttl: float = 5.0
    # How long a worker trusts a remembered "token not revoked, grant live" (only while it is
    # subscribed to the invalidation channel, see ``revocation.py``); 0: ask Redis every time.
    revocation_cache_ttl: float = 30.0
    # private_key_jwt: an assertion may live at most this long (exp - now).
    assertion_max_age: int = 300
    backchannel_timeout: float = 3.0

    def __post_init__(self) -> None:
        if self.signing_alg not in ALGORITHMS:
            raise ValueError(f"signing_alg must be one of {', '.join(ALGORITHMS)}")
        if not 1 <= self.code_ttl <= 60:
            raise ValueError("code_ttl must be between 1 and 60 seconds")
        if not 1 <= self.par_ttl <= 600:
            raise ValueError("par_ttl must be between 1 and 600 seconds")
