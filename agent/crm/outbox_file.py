"""Opening the outbox's SQLite file, refusing any path that cannot hold this agent's outbox.

Without these checks a directory or a non-SQLite file fails deep inside sqlite3 with a traceback, and
a path pointing at another application's SQLite database (the CRM's own file, say) silently gets an
``outbox`` table created inside it. The entry points open the outbox before doing anything else, so
``OutboxUnusable`` (a ``ConfigError``: one line, exit status 2) is what the operator sees.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from pathlib import Path

from telemetry.config_errors import ConfigError

EXPECTED = "the agent's outbox file, or a path where one can be created (CRM_OUTBOX_PATH)"


class OutboxUnusable(ConfigError):
    """The outbox path is a directory, not SQLite, another application's database, or unreadable."""


def _unusable(path: Path, reason: str) -> OutboxUnusable:
    return OutboxUnusable(f"outbox file {path}: {reason}; expected {EXPECTED}")


def _tables(db: sqlite3.Connection) -> dict[str, set[str]]:
    names = [
        row[0]
        for row in db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
    ]
    return {name: {row[1] for row in db.execute(f'PRAGMA table_info("{name}")')} for name in names}


def open_outbox_db(path: Path, schema: str, *, optional_columns: Collection[str] = ()) -> sqlite3.Connection:
    """A connection to ``path`` (WAL, ``synchronous=FULL``) with ``schema`` applied, or ``OutboxUnusable``.

    ``optional_columns``: columns an outbox written by an older version lacks (the caller adds them);
    any other missing column means another schema.
    """
    if path.is_dir():
        raise _unusable(path, "is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unusable(path, f"cannot create its directory ({exc.strerror or exc})") from None
    reference = sqlite3.connect(":memory:")  # the tables and columns ``schema`` creates
    try:
        reference.executescript(schema)
        expected = _tables(reference)
    finally:
        reference.close()
    db: sqlite3.Connection | None = None
    try:
        db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        found = _tables(db)
        foreign = sorted(set(found) - set(expected))
        if foreign:
            raise _unusable(
                path, f"it is another application's SQLite database (tables {', '.join(foreign)})"
            )
        for table, columns in found.items():
            missing = sorted(expected[table] - columns - set(optional_columns))
            if missing:
                raise _unusable(
                    path, f"its {table} table lacks columns {', '.join(missing)} (another schema)"
                )
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(schema)
    except sqlite3.DatabaseError as exc:  # "file is not a database", "unable to open database file"...
        if db is not None:
            db.close()
        reason = "not an SQLite database" if "not a database" in str(exc) else f"SQLite says: {exc}"
        raise _unusable(path, reason) from None
    except OutboxUnusable:
        if db is not None:
            db.close()
        raise
    return db
