"""Atomic counters in Redis: one-time codes, failed-attempt lockout and send limits.

Every decision is taken inside one Lua script, so parallel requests cannot read a counter, both see
room, and both proceed (the ZITADEL lockout race, GHSA-7h8m-vrxx-vr4m). A code is compared and
consumed in the same script, so it can succeed once only even under concurrent submission.

Keys (a single Redis, not a cluster: one script touches several keys):
``identity:code:<purpose>:<subject>``  hash {h: code MAC, exp: unix expiry, used: unix time}
``identity:fail:<subject>``             failed attempts against one subject: ``m:<mobile index>`` for a
                                       mobile number, the account id for an account
``identity:fail-addr:<address>``        failed attempts from one client address
``identity:sends:<subject>`` / ``identity:sends-addr:<address>``  codes sent in the last hour
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence

import msgspec
import redis.asyncio as aioredis

from identity.errors import TooManyAttempts
from identity.settings import IdentitySettings

__all__ = ["AttemptLimiter", "CodeOutcome", "CodeStore", "IssuedCode"]

_GRACE = 3600  # a used or expired code is remembered this long, to say "expired" or "already used"
_SEND_WINDOW = 3600

_ISSUE = """
local m = tonumber(redis.call('GET', KEYS[2]) or '0')
if m >= tonumber(ARGV[4]) then return {0, redis.call('TTL', KEYS[2])} end
local a = tonumber(redis.call('GET', KEYS[3]) or '0')
if a >= tonumber(ARGV[5]) then return {0, redis.call('TTL', KEYS[3])} end
if redis.call('INCR', KEYS[2]) == 1 then redis.call('EXPIRE', KEYS[2], ARGV[6]) end
if redis.call('INCR', KEYS[3]) == 1 then redis.call('EXPIRE', KEYS[3], ARGV[6]) end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'h', ARGV[1], 'exp', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, 0}
"""

# KEYS[first .. #KEYS-1] are the subjects' failure counters (ARGV[1] is their limit), KEYS[#KEYS] the
# address's (ARGV[2]). An attempt may count against several subjects at once: a sign-in counts
# against the mobile number and, when it is registered, against its account too.
_LOCKED = """
local function locked(key, limit)
  local n = tonumber(redis.call('GET', key) or '0')
  if n >= tonumber(limit) then
    local ttl = redis.call('TTL', key)
    if ttl < 0 then ttl = 1 end
    return ttl
  end
  return false
end
local function any_locked(first, subject_limit, address_limit)
  for i = first, #KEYS - 1 do
    local t = locked(KEYS[i], subject_limit)
    if t then return t end
  end
  return locked(KEYS[#KEYS], address_limit)
end
local function fail_all(first, window)
  for i = first, #KEYS do
    if redis.call('INCR', KEYS[i]) == 1 then redis.call('EXPIRE', KEYS[i], window) end
  end
end
"""

_VERIFY = (
    _LOCKED
    + """
local t = any_locked(2, ARGV[3], ARGV[4])
if t then return {'locked', t} end
local c = redis.call('HMGET', KEYS[1], 'h', 'exp', 'used')
local outcome
if not c[1] then outcome = 'not_issued'
elseif c[3] then
  if c[1] == ARGV[1] then outcome = 'already_used' else outcome = 'incorrect' end
elseif tonumber(c[2]) < tonumber(ARGV[2]) then outcome = 'expired'
elseif c[1] ~= ARGV[1] then outcome = 'incorrect'
else
  redis.call('HSET', KEYS[1], 'used', ARGV[2])
  return {'ok', 0}
end
fail_all(2, ARGV[5])
return {outcome, 0}
"""
)

_RESERVE = (
    _LOCKED
    + """
local t = any_locked(1, ARGV[1], ARGV[2])
if t then return {'locked', t} end
fail_all(1, ARGV[3])
return {'ok', 0}
"""
)

_RELEASE = """
for _, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') > 0 then redis.call('DECR', key) end
end
return 0
"""


class CodeOutcome(enum.StrEnum):
    OK = "ok"
    INCORRECT = "incorrect"
    EXPIRED = "expired"
    ALREADY_USED = "already_used"
    NOT_ISSUED = "not_issued"


class IssuedCode(msgspec.Struct, frozen=True):
    code: str
    expires_in: int


Subjects = str | Sequence[str]


def _fail_keys(subjects: Subjects, address: str) -> list[str]:
    """The subjects' failure counters, then the address's (the order the scripts expect)."""
    named = (subjects,) if isinstance(subjects, str) else tuple(subjects)
    assert named, "an attempt counts against at least one subject"
    return [*(f"identity:fail:{s}" for s in named), f"identity:fail-addr:{address}"]


class AttemptLimiter:
    """Reserve an attempt before evaluating a secret; release it when the secret was right."""

    def __init__(self, redis: aioredis.Redis, settings: IdentitySettings) -> None:
        self._redis = redis
        self._settings = settings
        self._reserve = redis.register_script(_RESERVE)
        self._release = redis.register_script(_RELEASE)

    async def reserve(self, subject: Subjects, address: str) -> None:
        """Count an attempt against every subject and the address; refused if any is locked."""
        s = self._settings
        outcome, ttl = await self._reserve(
            keys=_fail_keys(subject, address),
            args=[s.max_failed_attempts, s.address_failure_limit, s.failure_window],
        )
        if outcome != b"ok":
            raise TooManyAttempts("too many failed attempts; try again later", int(ttl))

    async def release(self, subject: Subjects, address: str) -> None:
        await self._release(keys=_fail_keys(subject, address))

    async def failures(self, subject: str) -> int:
        return int(await self._redis.get(_fail_keys(subject, "-")[0]) or 0)


class CodeStore:
    """Six-digit one-time codes, stored as HMACs (a Redis dump does not reveal them)."""

    def __init__(self, redis: aioredis.Redis, settings: IdentitySettings, key: bytes) -> None:
        self._redis = redis
        self._settings = settings
        self._key = key
        self._issue = redis.register_script(_ISSUE)
        self._verify = redis.register_script(_VERIFY)

    def _mac(self, purpose: str, subject: str, code: str) -> str:
        message = f"{purpose}\x00{subject}\x00{code}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    async def issue(self, purpose: str, subject: str, address: str) -> IssuedCode:
        s = self._settings
        code = f"{secrets.randbelow(10**6):06d}"
        expires = int(time.time()) + s.code_ttl
        allowed, ttl = await self._issue(
            keys=[
                f"identity:code:{purpose}:{subject}",
                f"identity:sends:{subject}",
                f"identity:sends-addr:{address}",
            ],
            args=[
                self._mac(purpose, subject, code),
                expires,
                s.code_ttl + _GRACE,
                s.code_sends_per_mobile,
                s.code_sends_per_address,
                _SEND_WINDOW,
            ],
        )
        if not allowed:
            raise TooManyAttempts("too many codes requested; try again later", int(ttl))
        return IssuedCode(code, s.code_ttl)

    async def verify(
        self, purpose: str, subject: str, code: str, *, lock_subject: Subjects, address: str
    ) -> CodeOutcome:
        """Compare and consume in one step. Failures count against ``lock_subject`` and ``address``."""
        s = self._settings
        outcome, ttl = await self._verify(
            keys=[f"identity:code:{purpose}:{subject}", *_fail_keys(lock_subject, address)],
            args=[
                self._mac(purpose, subject, code),
                int(time.time()),
                s.max_failed_attempts,
                s.address_failure_limit,
                s.failure_window,
            ],
        )
        if outcome == b"locked":
            raise TooManyAttempts("too many failed attempts; try again later", int(ttl))
        return CodeOutcome(outcome.decode())
