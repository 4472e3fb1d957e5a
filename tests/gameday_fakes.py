"""Fakes for the game day's unit tests: a clock the run loop advances instead of sleeping, and a
``GameDay`` whose Prometheus and Alertmanager answers come from the test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from agent.gameday import run

SCRAPE_S = 15


class FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.001)


def fake_game_day(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    clock: FakeClock,
    notifications: Callable[[str], list[Any]],
    *,
    active: Callable[[object], list[dict[str, str]]] = lambda stack: [],
    firing: Callable[[object], dict[Any, dict[str, str]]] = lambda stack: {},
) -> tuple[run.GameDay, list[dict[str, Any]]]:
    """A game day on ``clock``: ``notifications`` stands for the webhook sink's log, ``active`` and
    ``firing`` for Prometheus's alerts; returns it with the keyword arguments of every promtool file it
    would have written (nothing is written)."""
    monkeypatch.setattr(run, "time", clock)
    monkeypatch.setattr(run, "_active_now", active)
    monkeypatch.setattr(run, "_firing_now", firing)
    monkeypatch.setattr(run, "notifications", notifications)
    recorded: list[dict[str, Any]] = []
    monkeypatch.setattr(run, "write_promtool_test", lambda url, **kw: recorded.append(kw) or kw["out"])
    stack = SimpleNamespace(
        prometheus_url="p", notifications_url="n", config=SimpleNamespace(scrape_interval_s=SCRAPE_S)
    )
    host = SimpleNamespace(busy=lambda start, end: None)
    day = run.GameDay(stack, host, record_dir=tmp_path, progress=lambda line: None)  # type: ignore[arg-type]
    return day, recorded
