"""The outbox's two stores as test targets: the same cases run on SQLite (a file in ``tmp_path``) and
on PostgreSQL (a fresh schema of one server per test session; integration tests only, since the server
is a process).

A case asks for the ``outbox_backend`` fixture and builds its settings with ``crm_settings``; rows are
counted in the store's own table, whichever it is. ``removals_held`` holds a store's removals of
delivered entries, as a slow disk would.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from agent.crm import CrmSettings


@dataclass(frozen=True)
class OutboxBackend:
    name: str  # sqlite | postgresql
    location: str  # a file path, or a postgresql:// URL

    @property
    def is_postgres(self) -> bool:
        return self.name == "postgresql"

    def settings_values(self) -> dict[str, Any]:
        return {"outbox_url": self.location} if self.is_postgres else {"outbox_path": self.location}

    def crm_settings(self, crm_url: str, **overrides: Any) -> CrmSettings:
        return CrmSettings(**{"crm_url": crm_url, **self.settings_values(), **overrides})

    def rows(self, status: str | None = None) -> int:
        """Entries in the store's table (with ``status``: only those)."""
        where = " WHERE status = 'pending'" if status == "pending" else ""
        where = " WHERE status = 'dead'" if status == "dead" else where
        if self.is_postgres:
            import psycopg

            with psycopg.connect(self.location) as conn:
                return int(conn.execute(f"SELECT COUNT(*) FROM outbox{where}").fetchone()[0])  # type: ignore[index]
        with contextlib.closing(sqlite3.connect(self.location)) as db:
            return int(db.execute(f"SELECT COUNT(*) FROM outbox{where}").fetchone()[0])


def sqlite_backend(tmp_path: Any) -> OutboxBackend:
    return OutboxBackend("sqlite", str(tmp_path / "outbox.sqlite3"))


def postgres_backend(server: Any) -> OutboxBackend:
    """A schema of its own on ``server`` (a ``local_services.databases.PostgresServer``)."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return OutboxBackend("postgresql", f"{server.url()}?options={quote(f'-csearch_path={schema}')}")


@contextlib.contextmanager
def removals_held(store: Any) -> Iterator[threading.Event]:
    """Until the yielded event is set (at the latest on exit), the store's removals (``complete``) wait in
    their thread, as behind a slow disk."""
    may_run = threading.Event()
    real_complete = store.complete

    def held_complete(entry_ids: Any) -> None:
        may_run.wait(10)
        real_complete(entry_ids)

    store.complete = held_complete
    try:
        yield may_run
    finally:
        may_run.set()
        store.complete = real_complete
