"""A package's metric instruments, created from an injected MeterProvider and never at import time.

Each package that records metrics has one ``instruments.py``: a class whose ``__init__(meter)``
creates all of the package's instruments (names, units and descriptions in one place) and one
``InstrumentSet`` holding it. Code records through ``instruments().<instrument>``.

``install(meter_provider)`` creates the instruments from that provider, as OpenTelemetry-contrib's
instrumentors do with ``instrument(meter_provider=...)``; ``installed(provider)`` does it for the
length of a ``with`` block, which is how a test gets its own in-memory provider. Without an explicit
install the first ``instruments()`` call creates them from the global provider, which
``setup_telemetry`` sets, so entry points need nothing more. Instruments created at import time
would be bound to whatever provider was global at that moment, and nothing could give them another.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from opentelemetry import metrics
from opentelemetry.metrics import Meter, MeterProvider

METER_NAME = "sales_agent"

T = TypeVar("T")


class InstrumentSet(Generic[T]):
    """The current instruments of one package (``build(meter)`` creates them)."""

    def __init__(self, build: Callable[[Meter], T], meter_name: str = METER_NAME) -> None:
        self._build = build
        self._meter_name = meter_name
        self._current: T | None = None
        self._lock = threading.Lock()

    def install(self, meter_provider: MeterProvider | None = None) -> T:
        """Create the instruments from ``meter_provider`` (the global one when None) and use them."""
        created = self._build(metrics.get_meter(self._meter_name, meter_provider=meter_provider))
        with self._lock:
            self._current = created
        return created

    def get(self) -> T:
        """The current instruments, created from the global provider on first use."""
        current = self._current
        if current is not None:
            return current
        with self._lock:
            if self._current is None:
                self._current = self._build(metrics.get_meter(self._meter_name))
            return self._current

    @contextlib.contextmanager
    def installed(self, meter_provider: MeterProvider) -> Iterator[T]:
        """Record into ``meter_provider`` inside the block; the previous instruments come back after it."""
        with self._lock:
            previous = self._current
        try:
            yield self.install(meter_provider)
        finally:
            with self._lock:
                self._current = previous

    @property
    def created(self) -> bool:
        return self._current is not None
