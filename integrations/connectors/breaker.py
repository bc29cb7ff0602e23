"""A circuit breaker whose state lives in Redis, shared by every worker and every instance.

One hash per connector, ``citizen:breaker:<name>``, changed only by one Lua script, so each
transition is atomic and uses Redis's clock (``TIME``), the same for every process:

- closed: calls pass. The breaker opens on ``threshold`` failures in a row (a success, from any
  worker, breaks the run; a run older than ``window`` starts again), or when, among at least
  ``min_calls`` calls in the current ``window``, ``failure_ratio`` or more failed (an upstream
  that fails every other call). A busy, healthy upstream with a few scattered errors among
  thousands of successes never opens: counting failures alone, summed over every worker, did;
- open: calls are refused without touching the upstream until ``cooldown`` has passed;
- half-open: exactly one call (the probe) is let through; its success closes the breaker, its
  failure opens it again for another ``cooldown``. A probe that never reports (its process died)
  frees the slot after ``probe_timeout``.

``state()`` only reads: an open breaker whose cooldown has passed is reported half-open (the
next call is the probe), and a read does not extend the hash's life.

If Redis itself fails, the breaker lets calls through (fails open) and says so in the log: a
Redis outage must not become an outage of every upstream.
"""

from __future__ import annotations

import enum
import logging
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

from integrations.connectors import metrics

__all__ = ["BreakerState", "CircuitBreaker"]

log = logging.getLogger("citizen.integrations.breaker")

_SCRIPT = """
local key = KEYS[1]
local op = ARGV[1]
local threshold = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local cooldown = tonumber(ARGV[4])
local probe = tonumber(ARGV[5])
local min_calls = tonumber(ARGV[6])
local ratio = tonumber(ARGV[7])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HGET', key, 'state') or 'closed'
local result = 'pass'
-- closed: this call's outcome counted in the window (calls, failed), then the failure run (streak)
local function count(failed)
  if now - tonumber(redis.call('HGET', key, 'window_start') or '0') >= window then
    redis.call('HSET', key, 'calls', 0, 'failed', 0, 'window_start', now)
  end
  local calls = redis.call('HINCRBY', key, 'calls', 1)
  if not failed then
    redis.call('HSET', key, 'streak', 0)
    return false
  end
  local failures = redis.call('HINCRBY', key, 'failed', 1)
  local streak = 1
  if now - tonumber(redis.call('HGET', key, 'streak_start') or '0') >= window
      or tonumber(redis.call('HGET', key, 'streak') or '0') == 0 then
    redis.call('HSET', key, 'streak', 1, 'streak_start', now)
  else
    streak = redis.call('HINCRBY', key, 'streak', 1)
  end
  return streak >= threshold or (calls >= min_calls and failures >= ratio * calls)
end
if op == 'state' then
  if state == 'open' and now >= tonumber(redis.call('HGET', key, 'open_until') or '0') then
    state = 'half_open'  -- the next call is the probe
  end
  return {state, result}
elseif op == 'acquire' then
  if state == 'open' then
    if now < tonumber(redis.call('HGET', key, 'open_until') or '0') then
      result = 'refuse'
    else
      state = 'half_open'
      redis.call('HSET', key, 'state', state, 'probe_until', now + probe)
      result = 'probe'
    end
  elseif state == 'half_open' then
    if now < tonumber(redis.call('HGET', key, 'probe_until') or '0') then
      result = 'refuse'
    else
      redis.call('HSET', key, 'probe_until', now + probe)
      result = 'probe'
    end
  end
elseif op == 'success' then
  if state == 'half_open' then
    state = 'closed'
    redis.call('HSET', key, 'state', state, 'calls', 0, 'failed', 0, 'streak', 0, 'window_start', now)
  elseif state == 'closed' then
    count(false)
  end
elseif op == 'failure' then
  if state == 'half_open' then
    state = 'open'
    redis.call('HSET', key, 'state', state, 'open_until', now + cooldown)
  elseif state == 'closed' and count(true) then
    state = 'open'
    redis.call('HSET', key, 'state', state, 'open_until', now + cooldown)
    redis.call('HSET', key, 'calls', 0, 'failed', 0, 'streak', 0)
    redis.call('HINCRBY', key, 'times_opened', 1)
  end
end
redis.call('PEXPIRE', key, 86400000)
return {state, result}
"""


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"


_GAUGE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class CircuitBreaker:
    def __init__(
        self,
        client: aioredis.Redis,
        name: str,
        *,
        threshold: int = 5,
        window: float = 30.0,
        cooldown: float = 15.0,
        probe_timeout: float = 10.0,
        min_calls: int = 20,
        failure_ratio: float = 0.5,
    ) -> None:
        self.name = name
        self.key = f"citizen:breaker:{name}"
        self._args = (
            threshold,
            int(window * 1000),
            int(cooldown * 1000),
            int(probe_timeout * 1000),
            min_calls,
            failure_ratio,
        )
        self._script = client.register_script(_SCRIPT)
        self._gauge = metrics.BREAKER_STATE.labels(name)

    async def _run(self, op: str) -> tuple[BreakerState, str]:
        try:
            raw: Any = await self._script(keys=[self.key], args=[op, *self._args])
        except (redis.exceptions.RedisError, OSError) as exc:
            log.warning(
                "circuit breaker state unavailable; letting the call through",
                extra={"connector": self.name, "error": exc.__class__.__name__},
            )
            return BreakerState.CLOSED, "pass"
        state = BreakerState(_text(raw[0]))
        self._gauge.set(_GAUGE[state])
        return state, _text(raw[1])

    async def acquire(self) -> str | None:
        """``None`` if the call may go ahead ("pass" or "probe"); otherwise the refusal reason."""
        state, result = await self._run("acquire")
        return f"circuit breaker {state.value}" if result == "refuse" else None

    async def record_success(self) -> BreakerState:
        return (await self._run("success"))[0]

    async def record_failure(self) -> BreakerState:
        return (await self._run("failure"))[0]

    async def state(self) -> BreakerState:
        return (await self._run("state"))[0]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
