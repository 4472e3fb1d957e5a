"""Integration tests: everything that starts a process — the stand-ins and the agent as processes, real
Prometheus/Alertmanager, promtool/amtool, the benchmarks' smoke runs, ``sales-agent`` commands.

Every test here is marked ``integration``, so ``pytest -m "not integration"`` is the unit loop too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """One real PostgreSQL server for the session (initdb in a temporary directory, a free loopback
    port; ``local_services.databases``); each test takes a fresh schema of it (``postgres_backend``)."""
    from local_services.databases import postgres_available, postgres_server

    if not postgres_available():
        pytest.fail("PostgreSQL 15 is not installed: apt-get install postgresql (.ci/run does it)")
    with postgres_server() as server:
        yield server


@pytest.fixture
def pg_outbox(postgres: Any) -> Any:
    """A fresh outbox schema on the session's PostgreSQL server."""
    from outbox_backends import postgres_backend

    return postgres_backend(postgres)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_outbox(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """Both stores: the test runs once on SQLite and once on PostgreSQL."""
    from outbox_backends import sqlite_backend

    if request.param == "sqlite":
        return sqlite_backend(tmp_path)
    return request.getfixturevalue("pg_outbox")


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[Any]:
    """A real redis-server on a free loopback port (no persistence), stopped after the test."""
    from local_services.databases import redis_server

    with redis_server() as server:
        yield server
