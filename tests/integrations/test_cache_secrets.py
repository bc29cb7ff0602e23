"""The connectors' cache in Redis gives away neither whom it is about nor what: keys are HMACs
under the keyring's ``connectors`` key (required outside development), and the entries of the
personal upstreams are sealed with the PII cipher, bound to their key."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from backend.settings import Settings
from identity.crypto import PiiCipher
from integrations.connectors import social_security
from integrations.connectors.cache import CachePolicy, ResponseCache
from integrations.simulators.seed import PEOPLE
from integrations.wiring import ConfigurationError, build_connectors

ZHANG = PEOPLE[0]
POLICY = CachePolicy(ttl=60.0)


def test_production_refuses_connectors_without_a_cache_key() -> None:
    settings = Settings.from_env()
    with pytest.raises(ConfigurationError, match="CITIZEN_KEY_CONNECTORS"):
        build_connectors(
            settings.integrations, aioredis.Redis(), simulator_key=None, development=False, pii_key=b"k" * 32
        )


async def test_cache_keys_are_keyed_by_the_connectors_key() -> None:
    settings = Settings.from_env()
    lookup = social_security.record_by_id_number(ZHANG.id_number)

    async def key_under(connectors_key: bytes) -> str | None:
        connectors = build_connectors(
            settings.integrations,
            aioredis.Redis(),  # never connected: construction only
            simulator_key=None,
            development=False,
            pii_key=b"k" * 32,
            connectors_key=connectors_key,
        )
        try:
            return connectors.social_security.key_of(lookup)
        finally:
            await connectors.aclose()

    key = await key_under(b"c" * 32)
    message = f"insured_record_of_person\x00{ZHANG.id_number}".encode()
    unkeyed = hmac.new(b"", message, hashlib.sha256).hexdigest()[:40]
    assert key is not None
    assert key.startswith("citizen:cache:social_security:insured_record_of_person:")
    assert unkeyed not in key
    assert await key_under(b"c" * 32) == key  # every worker finds the same entry
    assert await key_under(b"d" * 32) != key  # and without the key nobody does


async def test_a_personal_entry_is_sealed_and_bound_to_its_key(redis_client: aioredis.Redis) -> None:
    cache = ResponseCache(redis_client, "health", b"c" * 32, personal=True, cipher=PiiCipher(b"p" * 32))
    key, other = cache.key("record", "HC1"), cache.key("record", "HC2")
    await cache.put(key, '{"chronic_conditions":["高血压"]}'.encode(), POLICY)
    raw = await redis_client.get(key)
    assert raw is not None
    assert "高血压".encode() not in raw
    entry = cache.decode(raw, key)
    assert entry is not None
    assert "高血压".encode() in entry.body
    assert cache.decode(raw, other) is None  # copied under another person's key: a miss
    stranger = ResponseCache(redis_client, "health", b"c" * 32, personal=True, cipher=PiiCipher(b"q" * 32))
    assert stranger.decode(raw, key) is None  # another key: a miss, never an error


async def test_a_personal_connector_without_a_cipher_caches_nothing(redis_client: aioredis.Redis) -> None:
    cache = ResponseCache(redis_client, "health", b"c" * 32, personal=True)
    key = cache.key("record", "HC1")
    await cache.put(key, b'{"blood_type":"O"}', POLICY)
    assert await redis_client.get(key) is None
    # and an entry someone left there in the clear is not believed either
    public = ResponseCache(redis_client, "health", b"c" * 32)
    await public.put(key, b'{"blood_type":"O"}', POLICY)
    assert cache.decode(await redis_client.get(key), key) is None


async def test_the_social_security_record_in_redis_is_sealed(
    connect: Callable[..., Any], redis_client: aioredis.Redis
) -> None:
    insured = connect("social_security")
    lookup = social_security.record_by_id_number(ZHANG.id_number)
    first = await insured.insured_record_of_person(ZHANG.id_number)
    assert first.source == "upstream"
    assert first.value is not None
    key = insured.key_of(lookup)
    raw = await redis_client.get(key)
    assert raw is not None
    assert first.value.social_security_number.encode() not in raw
    assert b"contributing" not in raw and b"receiving" not in raw
    # Another worker with the same keys reads it back.
    again = await connect("social_security").insured_record_of_person(ZHANG.id_number)
    assert again.source == "cache"
    assert again.value == first.value
