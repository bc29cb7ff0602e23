"""A client's web origins (identity/oidc/registration.py): what registration accepts, how they are
stored with the client, and the origins derived from redirect URIs when none are registered."""

from __future__ import annotations

from typing import Any

import pytest

from identity.errors import InvalidField
from identity.oidc.clients import ClientRegistration, validate_registration
from identity.oidc.registration import allowed_origins, origin_of
from tests.identity.conftest import API, bearer
from tests.oidc.conftest import Kit

CLIENTS = f"{API}/admin/oidc-clients"


@pytest.mark.parametrize(
    ("uri", "origin"),
    [
        ("https://App.Example/callback?x=1", "https://app.example"),
        ("https://app.example:443/cb", "https://app.example"),
        ("https://app.example:8443/cb", "https://app.example:8443"),
        ("http://127.0.0.1:8765/callback", "http://127.0.0.1:8765"),
        ("http://localhost:80/", "http://localhost"),
        ("https://[2001:DB8::1]:8443/cb", "https://[2001:db8::1]:8443"),
        ("cn.gov.city.app:/oauth/callback", None),  # a native app's private-use scheme
        ("https://app.example:99999/cb", None),
        ("https:///cb", None),
    ],
)
def test_origin_of_a_uri_is_what_browsers_send(uri: str, origin: str | None) -> None:
    assert origin_of(uri) == origin


def test_registered_web_origins_replace_the_redirect_uris_origins() -> None:
    redirects = [
        "https://a.example/cb",
        "https://a.example/other",
        "cn.gov.city.app:/cb",
        "https://b.example/x",
    ]
    assert allowed_origins((), redirects) == {"https://a.example", "https://b.example"}
    assert allowed_origins(("https://spa.example",), redirects) == {"https://spa.example"}


async def test_web_origins_are_registered_and_shown(kit: Kit) -> None:
    origins = ["https://spa.example", "http://localhost:3000", "https://[2001:db8::1]:8443"]
    created = await kit.register(client_type="public", auth_method="none", web_origins=[*origins, origins[0]])
    assert created["web_origins"] == sorted(origins)  # once each
    headers = bearer(await kit.operator())
    shown = (await kit.client.get(f"{CLIENTS}/{created['client_id']}", headers=headers)).json()
    assert shown["web_origins"] == sorted(origins)
    listed = (await kit.client.get(CLIENTS, headers=headers)).json()
    assert [c["web_origins"] for c in listed if c["client_id"] == created["client_id"]] == [sorted(origins)]
    plain = await kit.register(name="Partner B")
    assert plain["web_origins"] == []


@pytest.mark.parametrize(
    ("origin", "rule"),
    [
        ("https://spa.example/", "origin"),  # a trailing slash is a path
        ("https://spa.example/app", "origin"),
        ("https://SPA.example", "origin"),
        ("https://spa.example:443", "origin"),
        ("https://user@spa.example", "origin"),
        ("https://spa.example?x", "origin"),
        ("https://*.example", "exact"),
        ("*", "exact"),
        ("null", "exact"),
        ("spa.example", "scheme"),
        ("ftp://spa.example", "scheme"),
        ("http://spa.example", "https"),
        ("https://bücher.example", "format"),
    ],
)
async def test_registration_refuses_what_is_not_an_origin(kit: Kit, origin: str, rule: str) -> None:
    response = await kit.client.post(
        CLIENTS,
        json={"name": "SPA", "redirect_uris": ["https://spa.example/cb"], "web_origins": [origin]},
        headers=bearer(await kit.operator()),
    )
    assert response.status_code == 422, response.text
    errors: list[dict[str, Any]] = response.json()["errors"]
    assert [(e["field"], e["rule"]) for e in errors] == [("web_origins", rule)]


def test_plain_http_loopback_origins_only_for_public_clients_in_production() -> None:
    def registration(client_type: Any, auth_method: Any) -> ClientRegistration:
        return ClientRegistration(
            name="SPA",
            client_type=client_type,
            auth_method=auth_method,
            redirect_uris=["https://spa.example/cb"],
            web_origins=["http://localhost:3000"],
        )

    validate_registration(registration("public", "none"), development=False)
    validate_registration(registration("confidential", "client_secret_basic"), development=True)
    with pytest.raises(InvalidField) as refused:
        validate_registration(registration("confidential", "client_secret_basic"), development=False)
    assert (refused.value.field, refused.value.rule) == ("web_origins", "https")
    too_many = ClientRegistration(
        name="SPA",
        redirect_uris=["https://spa.example/cb"],
        web_origins=[f"https://s{i}.example" for i in range(21)],
    )
    with pytest.raises(InvalidField) as refused:
        validate_registration(too_many, development=True)
    assert refused.value.rule == "count"


async def test_a_refused_registration_stores_no_origins(kit: Kit) -> None:
    """The client and its origins are written in one transaction, so a duplicate client id
    leaves the existing client's origins alone."""
    first = await kit.register(client_id="spa-client", web_origins=["https://one.example"])
    again = await kit.client.post(
        CLIENTS,
        json={
            "client_id": "spa-client",
            "name": "SPA again",
            "redirect_uris": ["https://spa.example/cb"],
            "web_origins": ["https://two.example"],
        },
        headers=bearer(await kit.operator()),
    )
    assert again.status_code == 409, again.text
    rows = await kit.db.fetch(
        "SELECT client_id, origin FROM identity.oidc_client_web_origins ORDER BY origin"
    )
    assert [(r["client_id"], r["origin"]) for r in rows] == [(first["client_id"], "https://one.example")]
