"""``sales-agent outbox``: what the durable outbox holds, and putting parked writes back in the queue.

The agent may be running: SQLite in WAL mode lets this process read and update the same file (a
PostgreSQL outbox is shared by design), and the agents' drainers pick requeued entries up on their
next pass (``CRM_OUTBOX_POLL_INTERVAL_S``).
Contact keys are e-mail addresses or phone numbers, so they are masked unless ``--reveal`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.crm.outbox import Outbox, is_database_url
from telemetry.config_errors import ConfigError, run_main
from telemetry.redaction import Redactor

DESCRIPTION = """\
Inspect the durable CRM outbox and requeue parked writes (dead letters).

A write is parked when the CRM rejected it (HTTP 4xx): retrying cannot help until its cause is fixed
(a missing contact or tenant in the CRM, a validation rule). Parked writes are kept, never dropped;
fix the cause, then `requeue` them. The OutboxDeadLetters alert fires while any are parked.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sales-agent outbox", description=DESCRIPTION, formatter_class=argparse.RawTextHelpFormatter
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--path", help="outbox file (default: CRM_OUTBOX_PATH, else data/crm_outbox.sqlite3)")
    where.add_argument(
        "--url", help="PostgreSQL outbox, postgresql://user:password@host/db (default: CRM_OUTBOX_URL)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="entries, oldest first (without their payloads)")
    listing.add_argument("--status", choices=("pending", "dead"), help="only pending or only parked entries")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.add_argument("--reveal", action="store_true", help="show contact keys (PII) unmasked")
    requeue = commands.add_parser("requeue", help="put parked entries back in the queue")
    which = requeue.add_mutually_exclusive_group(required=True)
    which.add_argument("ids", nargs="*", type=int, default=[], metavar="ID", help="entry ids from `list`")
    which.add_argument("--all", action="store_true", help="every parked entry")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("sales-agent outbox", lambda: _main(argv))


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "requeue" and not args.all and not args.ids:
        parser.error("requeue: give entry ids or --all")
    location = args.url or args.path or _configured_location()
    if is_database_url(location):
        # An unreachable database: OutboxDatabaseUnusable (a ConfigError naming the URL without its
        # password), exit 2.
        return asyncio.run(_run(args, Outbox(location)))
    path = Path(location)
    if not path.exists():  # opening would create an empty outbox and hide a wrong path
        raise ConfigError(
            f"no outbox at {path}; expected an existing outbox file (set --path, --url, CRM_OUTBOX_PATH "
            "or CRM_OUTBOX_URL)"
        )
    return asyncio.run(_run(args, Outbox(path)))  # an unusable file: OutboxUnusable, exit 2


def _configured_location() -> str:
    """The agent's own outbox: the settings root, built here (only when neither option is given)."""
    from agent.app_settings import AppSettings

    return AppSettings.from_env().crm.outbox_location


async def _run(args: argparse.Namespace, outbox: Outbox) -> int:
    try:
        if args.command == "list":
            entries = await outbox.entries(status=args.status)
            print(_render(entries, as_json=args.json, reveal=args.reveal, now=time.time()), end="")
            return 0
        moved = await outbox.requeue(None if args.all else args.ids)
        print(f"requeued {moved} parked entr{'y' if moved == 1 else 'ies'}")
        if args.ids and moved < len(set(args.ids)):
            skipped = "some ids were not parked entries (already delivered, pending, or unknown)"
            print(skipped, file=sys.stderr)
            return 1
        return 0
    finally:
        outbox.close()


def _render(entries: list[dict[str, Any]], *, as_json: bool, reveal: bool, now: float) -> str:
    redactor = Redactor()
    rows = []
    for entry in entries:
        row = dict(entry)
        if not reveal:
            row["contact_key"] = redactor.text(row["contact_key"])
        row["age_s"] = round(max(0.0, now - row.pop("created_at")), 1)
        rows.append(row)
    if as_json:
        return "".join(json.dumps(row) + "\n" for row in rows)
    if not rows:
        return "the outbox is empty\n"
    header = ("id", "status", "operation", "tenant", "contact", "attempts", "age", "last error")
    lines = [
        (
            str(r["id"]),
            r["status"],
            f"{r['dependency']}.{r['operation']}",
            r["tenant_id"],
            r["contact_key"],
            str(r["attempts"]),
            f"{r['age_s']:.0f}s",
            r["last_error"] or "",
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header[:-1])]
    out = []
    for line in (header, *lines):
        padded = (cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True))
        out.append("  ".join((*padded, line[-1])))
    return "\n".join(out) + "\n"
