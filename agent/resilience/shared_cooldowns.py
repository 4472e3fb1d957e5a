"""Cooldowns in Redis: one worker's provider failures cool the provider down for every worker.

``SharedCooldowns`` has ``Cooldowns``' interface and semantics (``allowed_fails`` failures tolerated
within ``window_s``, the next one cools the key down for ``window_s``; a Retry-After cools it down at
once for that long, capped; a success ends a cooldown), with the state in Redis
(``SALES_AGENT_LLM_REDIS_URL``):

- ``{prefix}:{<key>}:fails``: a sorted set of failure times, ``{prefix}:{<key>}:until``: a key whose
  TTL is the cooldown left (``SET PX``; Redis expires it, nobody has to clear it).
- ``record_failure`` is one Lua script: add the failure, drop those older than the window, count,
  and start the cooldown when the count passes ``allowed_fails`` — atomically, on Redis's own clock.
  INCR+EXPIRE would count in fixed windows started by the first failure (not the sliding window the
  in-process cooldowns keep), and a count read and a cooldown set in two round trips would let two
  workers both decide, or a reset slip between them. The script also reads the time from Redis
  (``TIME``), so workers whose clocks differ agree on the window.

Redis unreachable (refused, timed out, a hanging server): each call is bounded by ``timeout_s``
(default 0.25 s; the client never retries), the first failure switches this process to its own
in-process cooldowns, counts ``sales_agent.llm.shared_cooldowns.fallbacks``, logs one WARNING a
minute at most, and sets ``sales_agent.llm.shared_cooldowns.available`` to 0 (``/ready`` reports it
degraded, not down). A background probe pings every ``PROBE_INTERVAL_S``; when Redis answers, the
cooldowns this process started meanwhile are copied over and Redis is used again. While Redis works,
what it answers is mirrored into the in-process cooldowns, so a failover keeps what was known.

The sync ``redis`` client (redis-py) rather than ``redis.asyncio``: the state is process-wide and used
from every job's event loop (LiveKit runs each call on its own loop in a thread) and from the metric
reader's thread; an asyncio client's connections belong to one loop, the sync pool to none. The LLM
stream calls it through ``asyncio.to_thread`` (``ProviderChain``), so no loop waits on Redis.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from agent.resilience.cooldowns import MAX_RETRY_AFTER_S, Cooldowns
from agent.resilience.instruments import instruments, observe_shared_cooldowns
from telemetry import names

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 2.0
LOG_INTERVAL_S = 60.0
DEFAULT_PREFIX = "sales_agent:llm_cooldown"
STEPS = ("read", "record_failure", "record_success")

_RECORD_FAILURE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cooldown = tonumber(ARGV[3])
if cooldown <= 0 then
  local window = tonumber(ARGV[2])
  redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[4])
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
  redis.call('PEXPIRE', KEYS[1], window)
  if redis.call('ZCARD', KEYS[1]) <= tonumber(ARGV[1]) then
    return 0
  end
  cooldown = window
end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], '1', 'PX', cooldown)
return cooldown
"""


def redact_redis_url(url: str) -> str:
    """The URL without its password (``redis://user@host:port/db``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username + '@' if parts.username else ''}{host}{f':{parts.port}' if parts.port else ''}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class SharedCooldowns:
    """``Cooldowns`` kept in Redis, with this process's own as the fallback (see the module docstring)."""

    remote = True  # ProviderChain calls it off the event loop

    def __init__(
        self,
        url: str,
        *,
        local: Cooldowns | None = None,
        timeout_s: float = 0.25,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = redact_redis_url(url)
        self.local = local if local is not None else Cooldowns()
        self._prefix = prefix
        self._clock = clock
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),  # one bounded attempt: the fallback is the retry
            retry_on_timeout=False,
            health_check_interval=0,
            client_name="sales-agent-llm-cooldowns",
        )
        self._script = self._client.register_script(_RECORD_FAILURE)
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._logged_at = -LOG_INTERVAL_S
        self._probe: threading.Thread | None = None
        self._closed = threading.Event()
        observe_shared_cooldowns(self)
        for step in STEPS:  # at 0 from the start: increase() then sees the first fallback
            instruments().shared_cooldown_fallbacks.add(0, {names.COOLDOWN_STEP: step})

    # --- state --------------------------------------------------------------------------------
    @property
    def available(self) -> bool:
        """Is Redis in use (False: this process runs on its own cooldowns until it answers)?"""
        return self._down_since is None

    def status(self) -> dict[str, object]:
        down = self._down_since
        details: dict[str, object] = {"redis": self.url, "shared": down is None}
        if down is not None:
            details["unreachable_for_s"] = round(self._clock() - down, 1)
        return details

    def close(self) -> None:
        self._closed.set()
        self._client.close()

    def _keys(self, key: str) -> tuple[str, str]:
        # The hash tag keeps both keys of a provider in one slot (Redis Cluster).
        return f"{self._prefix}:{{{key}}}:fails", f"{self._prefix}:{{{key}}}:until"

    def _fallback(self, step: str, exc: BaseException | None) -> None:
        """Count a call answered from the in-process cooldowns; on a fresh failure, say so and probe."""
        instruments().shared_cooldown_fallbacks.add(1, {names.COOLDOWN_STEP: step})
        if exc is None:
            return
        now = self._clock()
        with self._lock:
            fresh = self._down_since is None
            if fresh:
                self._down_since = now
            should_log = now - self._logged_at >= LOG_INTERVAL_S
            if should_log:
                self._logged_at = now
            if self._probe is None or not self._probe.is_alive():
                self._probe = threading.Thread(
                    target=self._probe_loop, name="llm-cooldowns-probe", daemon=True
                )
                self._probe.start()
        if should_log:
            log.warning(
                "Redis at %s is unreachable (%s: %s): LLM cooldowns are this process's own until it "
                "answers (probed every %g s); calls go on",
                self.url,
                type(exc).__name__,
                exc,
                PROBE_INTERVAL_S,
            )

    def _probe_loop(self) -> None:
        while not self._closed.wait(PROBE_INTERVAL_S):
            try:
                self._client.ping()
                self._copy_local_cooldowns()
            except (redis.RedisError, OSError):
                continue
            with self._lock:
                since, self._down_since = self._down_since, None
            log.info(
                "Redis at %s answers again after %.0f s: LLM cooldowns are shared again",
                self.url,
                self._clock() - (since or self._clock()),
            )
            return

    def _copy_local_cooldowns(self) -> None:
        """What this process cooled down while Redis was away, so the other workers skip it too."""
        pipe = self._client.pipeline(transaction=False)
        for key, left in self.local.active().items():
            pipe.set(self._keys(key)[1], "1", px=max(1, int(left * 1000)), nx=True)
        pipe.execute()

    # --- the Cooldowns interface ----------------------------------------------------------------
    def record_failure(
        self, key: str, *, allowed_fails: int, window_s: float, retry_after_s: float | None = None
    ) -> float | None:
        if self.available:
            retry_ms = int(min(retry_after_s, MAX_RETRY_AFTER_S) * 1000) if retry_after_s else 0
            try:
                result = self._script(
                    keys=list(self._keys(key)),
                    args=[allowed_fails, int(window_s * 1000), retry_ms, uuid.uuid4().hex[:8]],
                )
            except (redis.RedisError, OSError) as exc:
                self._fallback("record_failure", exc)
            else:
                cooldown = int(result) / 1000 if result else None
                if cooldown:
                    self.local.hold(key, cooldown)
                return cooldown
        else:
            self._fallback("record_failure", None)
        return self.local.record_failure(
            key, allowed_fails=allowed_fails, window_s=window_s, retry_after_s=retry_after_s
        )

    def record_success(self, key: str) -> None:
        self.local.record_success(key)
        if not self.available:
            self._fallback("record_success", None)
            return
        try:
            self._client.delete(self._keys(key)[1])
        except (redis.RedisError, OSError) as exc:
            self._fallback("record_success", exc)

    def _remaining_many(self, keys: list[str]) -> dict[str, float] | None:
        """{key: seconds left} from Redis (and mirrored locally), or None when it cannot answer."""
        if not self.available:
            self._fallback("read", None)
            return None
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.pttl(self._keys(key)[1])
        try:
            ttls = pipe.execute()
        except (redis.RedisError, OSError) as exc:
            self._fallback("read", exc)
            return None
        left = {key: max(0, int(ttl)) / 1000 for key, ttl in zip(keys, ttls, strict=True)}
        for key, seconds in left.items():
            self.local.hold(key, seconds)
        return left

    def remaining(self, key: str) -> float:
        left = self._remaining_many([key])
        return left[key] if left is not None else self.local.remaining(key)

    def cooling_down(self, keys: Iterable[str]) -> set[str]:
        wanted = list(keys)
        left = self._remaining_many(wanted)
        if left is None:
            return self.local.cooling_down(wanted)
        return {key for key, seconds in left.items() if seconds > 0}


_registry_lock = threading.Lock()
_registry: weakref.WeakValueDictionary[tuple[str, int], SharedCooldowns] = weakref.WeakValueDictionary()


def shared_cooldowns(url: str, *, local: Cooldowns, timeout_s: float) -> SharedCooldowns:
    """One ``SharedCooldowns`` per Redis URL and local fallback (the process's): every job's chain
    shares its connection pool and its view of whether Redis answers."""
    with _registry_lock:
        key = (url, id(local))
        found = _registry.get(key)
        if found is None:
            found = SharedCooldowns(url, local=local, timeout_s=timeout_s)
            _registry[key] = found
        return found
