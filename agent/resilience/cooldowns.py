"""Cooldowns: a dependency that keeps failing is skipped for a while (the LLM chain's providers).

Hand-written rather than LiteLLM's cooldown store: LiteLLM's Router refuses a deployment in its own
cooldown list locally (``RouterRateLimitError``, no request sent), even with ``disable_cooldowns``,
so a chain whose providers all cool down could not send the request that would show one has
recovered. Keeping the state here lets the chain decide when to try anyway. It is a few dicts
behind a lock, so every job of a worker process (each on its own event loop) shares one instance.

Semantics (the ones LiteLLM's allowed-fails policy had): ``allowed_fails`` failures are tolerated
within ``window_s``; the next one cools the key down for ``window_s``. A server's Retry-After cools
it down at once for that long (capped). A success ends an active cooldown.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

MAX_RETRY_AFTER_S = 300.0


class Cooldowns:
    remote = False  # answered from memory: callers need not leave the event loop

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}
        self._until: dict[str, float] = {}

    def record_failure(
        self, key: str, *, allowed_fails: int, window_s: float, retry_after_s: float | None = None
    ) -> float | None:
        """Count one failure; returns the cooldown it started (seconds), or None."""
        with self._lock:
            now = self._clock()
            if retry_after_s:
                cooldown = min(retry_after_s, MAX_RETRY_AFTER_S)
            else:
                failures = self._failures.setdefault(key, deque())
                failures.append(now)
                while failures and failures[0] <= now - window_s:
                    failures.popleft()
                if len(failures) <= allowed_fails:
                    return None
                cooldown = window_s
            self._failures.pop(key, None)
            self._until[key] = now + cooldown
            return cooldown

    def record_success(self, key: str) -> None:
        """The key answered: an active cooldown ends (a trial while everything cooled down worked)."""
        with self._lock:
            self._until.pop(key, None)

    def remaining(self, key: str) -> float:
        with self._lock:
            until = self._until.get(key)
            return max(0.0, until - self._clock()) if until is not None else 0.0

    def cooling_down(self, keys: Iterable[str]) -> set[str]:
        with self._lock:
            now = self._clock()
            return {key for key in keys if self._until.get(key, 0.0) > now}

    def hold(self, key: str, seconds: float) -> None:
        """Set the key's cooldown to ``seconds`` from now (0: none), as another source says it is."""
        with self._lock:
            if seconds > 0:
                self._until[key] = self._clock() + seconds
            else:
                self._until.pop(key, None)

    def active(self) -> dict[str, float]:
        """{key: seconds left} of every active cooldown."""
        with self._lock:
            now = self._clock()
            return {key: until - now for key, until in self._until.items() if until > now}
