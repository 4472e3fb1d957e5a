"""A speech provider chain: which providers are usable, in what order, and which ones to skip.

One ``SpeechChain`` per kind (STT, TTS) per process, shared by every call: a provider that fails
for one call is skipped by the next ones too. The policy is the LLM chain's: ``allowed_fails``
failures per ``cooldown_s`` window are tolerated, the next one (or a 429's ``Retry-After``) cools the
provider down; a cooled-down provider is skipped until its cooldown ends, unless every provider is
cooling down (then all are tried: a request beats certain failure). Speech defaults to
``allowed_fails=0``: a hung STT provider costs the caller a whole attempt timeout per utterance, so
one failure is enough to stop sending it audio for a while.

Hand-written rather than livekit's ``FallbackAdapter``: that hides each attempt's error and replays
failed requests on the side to detect recovery; here every attempt is a span with its ``error.type``
and a cooldown expiring is the recovery.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.speech.errors import NoUsableSpeechProvider
from agent.speech.settings import SpeechProviderConfig

log = logging.getLogger(__name__)

_MAX_RETRY_AFTER_S = 300.0


@dataclass(frozen=True)
class SpeechProvider:
    config: SpeechProviderConfig
    position: int  # 0-based place in the chain (after leaving out keyless ones)

    @property
    def name(self) -> str:
        return self.config.name


def usable_providers(chain: list[SpeechProviderConfig], what: str) -> list[SpeechProvider]:
    """The chain without providers whose API key is missing (one log line each)."""
    usable: list[SpeechProvider] = []
    for config in chain:
        if config.key() is None:
            log.warning(
                "%s provider %s left out of the chain: no API key (set %s)",
                what,
                config.name,
                " or ".join(config.key_env_names()),
            )
            continue
        usable.append(SpeechProvider(config, len(usable)))
    if not usable:
        names = ", ".join(p.name for p in chain)
        raise NoUsableSpeechProvider(
            f"No usable {what} provider: every provider of the chain ({names}) lacks its API key. "
            f"Set its key (DEEPGRAM_API_KEY / CARTESIA_API_KEY / OPENAI_API_KEY) or configure a chain "
            f"through SALES_AGENT_{what}_CHAIN or SALES_AGENT_{what}_CONFIG.",
            error_type="no_usable_speech_provider",
        )
    log.info("%s chain: %s", what, " -> ".join(p.name for p in usable))
    return usable


class ProviderHealth:
    """Failure counts and cooldowns of one chain's providers (thread-safe: job threads share it)."""

    def __init__(
        self,
        names: list[str],
        *,
        allowed_fails: int,
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._names = list(names)
        self._allowed_fails = allowed_fails
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, list[float]] = {name: [] for name in names}
        self._cool_until: dict[str, float] = {}

    def record_failure(self, name: str, retry_after_s: float | None = None) -> bool:
        """Count a failed attempt; True when it put the provider in cooldown."""
        now = self._clock()
        with self._lock:
            window = [t for t in self._failures.get(name, []) if now - t < self._cooldown_s]
            window.append(now)
            self._failures[name] = window
            if retry_after_s:
                cooldown = min(retry_after_s, _MAX_RETRY_AFTER_S)
            elif len(window) > self._allowed_fails:
                cooldown = self._cooldown_s
            else:
                return False
            self._cool_until[name] = now + cooldown
            self._failures[name] = []
        log.warning("speech provider %s cooling down for %.1f s", name, cooldown)
        return True

    def record_success(self, name: str) -> None:
        with self._lock:
            self._failures[name] = []

    def cooling_down(self, name: str) -> bool:
        with self._lock:
            return self._clock() < self._cool_until.get(name, 0.0)

    def status(self) -> dict[str, bool]:
        """Provider name -> usable (False while it cools down)."""
        now = self._clock()
        with self._lock:
            return {name: now >= self._cool_until.get(name, 0.0) for name in self._names}


class SpeechChain:
    """The providers of one kind (STT or TTS) and their shared health."""

    def __init__(
        self, what: str, configs: list[SpeechProviderConfig], *, allowed_fails: int, cooldown_s: float
    ) -> None:
        self.what = what
        self.providers = usable_providers(configs, what)
        self.health = ProviderHealth(
            [p.name for p in self.providers], allowed_fails=allowed_fails, cooldown_s=cooldown_s
        )

    def plan(self) -> list[tuple[SpeechProvider, bool]]:
        """Providers in order with ``skip`` (cooling down); nothing is skipped when all are."""
        status = self.health.status()
        if not any(status.values()):
            return [(p, False) for p in self.providers]
        return [(p, not status[p.name]) for p in self.providers]

    def status(self) -> dict[str, bool]:
        return self.health.status()
