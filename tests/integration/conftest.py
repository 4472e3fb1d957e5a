"""Integration tests: everything that starts a process — the stand-ins and the agent as processes, real
Prometheus/Alertmanager, promtool/amtool, the benchmarks' smoke runs, ``sales-agent`` commands.

Every test here is marked ``integration``, so ``pytest -m "not integration"`` is the unit loop too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.integration)
