"""What ``simulate`` does with CRM writes still queued when it ends: deliver, within a bound, then keep.

Without ``CRM_OUTBOX_PATH`` a run's outbox lives in a temporary directory. Deleting it at exit
threw away whatever the CRM had not received yet, without a word. Now the run gives the drainer
``--drain-timeout`` seconds to deliver the backlog, removes the directory only when nothing is left,
and otherwise keeps the file and says where and how many.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape

if TYPE_CHECKING:
    from rich.console import Console

    from agent.crm import ResilientCrm


@dataclass
class Backlog:
    path: Path
    temporary: bool  # our own temporary outbox: removed at exit when empty
    left: int = 0
    database: bool = False  # the outbox is CRM_OUTBOX_URL's (shared; nothing here to keep or remove)

    @classmethod
    def at(cls, configured: str | None, *, database: bool = False) -> Backlog:
        """The configured outbox, or a new temporary one."""
        if database:
            return cls(Path(tempfile.gettempdir()) / "unused-outbox.sqlite3", temporary=False, database=True)
        if configured:
            return cls(Path(configured), temporary=False)
        return cls(Path(tempfile.mkdtemp(prefix="sales-agent-outbox-")) / "outbox.sqlite3", temporary=True)

    async def settle(self, crm: ResilientCrm, timeout_s: float, console: Console) -> None:
        """Deliver what is queued (at most ``timeout_s``); say what is left and where it is kept."""
        self.left = await crm.drainer.drain_until_empty(timeout_s)
        if not self.left:
            return
        if self.database:
            console.print(
                f"[yellow]outbox: {self.left} CRM write(s) not delivered within {timeout_s:g} s; kept in "
                f"{escape(crm.outbox.location)}, where any agent's drainer delivers them[/yellow]"
            )
            return
        where = escape(str(self.path))
        console.print(
            f"[yellow]outbox: {self.left} CRM write(s) not delivered within {timeout_s:g} s; kept in {where} "
            f"(see them with `sales-agent outbox --path {where} list`; a run or agent with "
            f"CRM_OUTBOX_PATH={where} delivers them)[/yellow]"
        )

    def cleanup(self) -> None:
        """Remove our temporary outbox, unless it still holds writes."""
        if self.temporary and not self.left:
            shutil.rmtree(self.path.parent, ignore_errors=True)
