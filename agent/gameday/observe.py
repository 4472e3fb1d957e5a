"""What the game day watches: Prometheus' alerts, the notifications that arrived, and the host's CPU.

The notification sink stamps each webhook with its arrival time; Prometheus says which alerts fire and
since when. ``HostCpu`` measures the host's CPU independently of the agents' telemetry (psutil, every
few seconds, in this process), so a CPU or latency alert can be checked against what really happened.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent.gameday.stack import http_json
from telemetry.system_metrics import system_cpu_seconds

# Labels that make an alert's identity (Prometheus adds alertstate; the rest is the rule's labels).
_IGNORED_LABELS = frozenset({"alertstate", "__name__"})


def alert_key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in labels.items() if k not in _IGNORED_LABELS))


def describe(key: tuple[tuple[str, str], ...]) -> str:
    """``AlertName{label=value,...}`` without the routing labels, for tables."""
    labels = dict(key)
    name = labels.pop("alertname", "?")
    for routing in ("severity", "component", "job"):
        labels.pop(routing, None)
    inner = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}" if inner else name


@dataclass(frozen=True)
class Notification:
    at: float  # unix seconds, when the sink received it
    receiver: str
    status: str  # of this alert: firing | resolved
    labels: dict[str, str]

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "?")


def notifications(sink_url: str) -> list[Notification]:
    """Every alert of every notification the sink kept, oldest first."""
    listing = http_json(f"{sink_url}/?limit=100000", timeout_s=10)
    out: list[Notification] = []
    for entry in reversed(listing.get("notifications", [])):
        payload = entry.get("payload") or {}
        at = datetime.fromisoformat(entry["received_at"]).timestamp()
        for alert in payload.get("alerts", []):
            out.append(
                Notification(at, payload.get("receiver", "?"), alert.get("status", "?"), alert["labels"])
            )
    return out


def prometheus_alerts(prom_url: str) -> list[dict[str, Any]]:
    """Pending and firing alerts now (labels, state, activeAt)."""
    return http_json(f"{prom_url}/api/v1/alerts", timeout_s=10)["data"]["alerts"]


def prometheus_query(prom_url: str, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    params = {"query": expr, **({"time": f"{at:.3f}"} if at is not None else {})}
    body = http_json(f"{prom_url}/api/v1/query?" + urllib.parse.urlencode(params), timeout_s=30)
    return body["data"]["result"]


class HostCpu:
    """Samples the host's busy share every ``interval_s`` in a daemon thread."""

    def __init__(self, interval_s: float = 5.0, keep: int = 20000) -> None:
        self.interval_s = interval_s
        self._samples: deque[tuple[float, float]] = deque(maxlen=keep)  # (unix time, busy share)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gameday-host-cpu", daemon=True)

    def _run(self) -> None:
        previous = system_cpu_seconds()
        while not self._stop.wait(self.interval_s):
            current = system_cpu_seconds()
            total = sum(current.values()) - sum(previous.values())
            idle = current["idle"] - previous["idle"]
            if total > 0:
                self._samples.append((time.time(), max(0.0, 1.0 - idle / total)))
            previous = current

    def start(self) -> HostCpu:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def busy(self, start: float, end: float) -> float | None:
        """Mean busy share between two unix times, None when nothing was sampled then."""
        values = [share for at, share in list(self._samples) if start <= at <= end]
        return sum(values) / len(values) if values else None
