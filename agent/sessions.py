"""Session expiry, idle cleanup and capacity (the spec's SessionManager).

Each open session has two deadlines:

- **idle**: ``last_activity + inactivity`` (default 5 min). ``touch`` (any user or agent activity)
  pushes it forward, which is how activity extends a session.
- **expiry**: ``started_at + expiry`` (default 30 min): a hard lifetime, so a call stuck in a loop
  that keeps producing "activity" still ends and frees its resources.

A sweep (every ``cleanup_interval``, default 5 min) closes overdue sessions. Closing removes the
session from every structure *first*, then awaits its ``on_close(outcome)`` callback with a timeout:
the callback is the owner's hook to say goodbye politely and release its resources (for a
``completed`` session it just releases). The manager keeps no reference to a closed session.

Hand-written because no library tracks per-session deadlines with these metrics and a polite,
awaited close; ``cachetools.TTLCache`` evicts silently and cannot await a callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from agent.errors import InvalidInput, SalesAgentError
from agent.instruments import instruments
from agent.session_settings import SessionLimits, SessionSettings
from agent.tenants import TenantRegistry
from telemetry import names

SessionOutcome = Literal["completed", "expired", "idle", "evicted", "error"]
OnClose = Callable[[SessionOutcome], Awaitable[None]]
Clock = Callable[[], float]

log = logging.getLogger(__name__)


class CapacityExceeded(SalesAgentError):
    """No room for another session (process-wide or the tenant's share)."""

    def __init__(self, message: str, *, reason: Literal["capacity", "tenant_capacity"]) -> None:
        super().__init__(message, error_type=reason)
        self.reason = reason


@dataclass(slots=True, weakref_slot=True, eq=False)
class SessionHandle:
    session_id: str
    tenant_id: str
    started_at: float
    last_activity: float
    limits: SessionLimits
    _on_close: OnClose | None = field(repr=False)
    closed: bool = False

    @property
    def expires_at(self) -> float:
        return self.started_at + self.limits.expiry_s

    @property
    def idle_deadline(self) -> float:
        return self.last_activity + self.limits.inactivity_s

    def overdue(self, now: float) -> SessionOutcome | None:
        """Why this session must close at ``now`` (expiry wins over idle), or None."""
        if now >= self.expires_at:
            return "expired"
        if now >= self.idle_deadline:
            return "idle"
        return None


class SessionManager:
    def __init__(
        self, settings: SessionSettings, tenants: TenantRegistry, clock: Clock = time.monotonic
    ) -> None:
        self._settings = settings
        self._tenants = tenants
        self._clock = clock
        self._sessions: dict[str, SessionHandle] = {}
        self._per_tenant: dict[str, int] = {}  # open sessions per tenant; keys removed at zero
        # With livekit's thread job executor, calls open/touch/close from their own threads and
        # loops: the structures change only under this lock (never held across an await).
        self._lock = threading.Lock()
        self._cleanup_task: asyncio.Task[None] | None = None

    # --- queries ------------------------------------------------------------------------------
    @property
    def settings(self) -> SessionSettings:
        return self._settings

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._sessions

    def get(self, session_id: str) -> SessionHandle | None:
        return self._sessions.get(session_id)

    def count(self, tenant_id: str | None = None) -> int:
        return len(self._sessions) if tenant_id is None else self._per_tenant.get(tenant_id, 0)

    def limits_for(self, tenant_id: str) -> SessionLimits:
        return SessionLimits.resolve(self._settings, self._tenants.get(tenant_id).sessions)

    def load(self) -> float:
        """Fraction of capacity in use (0..1), for livekit ``WorkerOptions(load_fnc=manager.load)``."""
        return min(1.0, len(self._sessions) / self._settings.max_sessions)

    # --- lifecycle of one session ---------------------------------------------------------------
    def open(self, session_id: str, tenant_id: str, on_close: OnClose) -> SessionHandle:
        """Register a new session; ``InvalidInput`` (bad tenant / duplicate id) or ``CapacityExceeded``."""
        limits = self.limits_for(tenant_id)  # validates the tenant id
        with self._lock:
            if session_id in self._sessions:
                raise InvalidInput(f"session {session_id!r} is already open", field="session_id")
            if len(self._sessions) >= self._settings.max_sessions:
                cap = self._settings.max_sessions
                self._reject(tenant_id, "capacity", f"worker at capacity ({cap} sessions)")
            if self._per_tenant.get(tenant_id, 0) >= limits.max_sessions:
                self._reject(
                    tenant_id,
                    "tenant_capacity",
                    f"tenant {tenant_id!r} at its session limit ({limits.max_sessions})",
                )
            now = self._clock()
            handle = SessionHandle(session_id, tenant_id, now, now, limits, on_close)
            self._sessions[session_id] = handle
            self._per_tenant[tenant_id] = self._per_tenant.get(tenant_id, 0) + 1
        attrs = {names.TENANT_ID: tenant_id}
        ins = instruments()
        ins.sessions_started.add(1, attrs)
        ins.sessions_active.add(1, attrs)
        return handle

    def touch(self, session_id: str) -> bool:
        """Record activity (extends the idle deadline); False if the session is not open."""
        handle = self._sessions.get(session_id)
        if handle is None:
            return False
        handle.last_activity = self._clock()
        return True

    async def close(self, session_id: str, outcome: SessionOutcome = "completed") -> bool:
        """Close and forget a session, then await its ``on_close``; False if it was not open."""
        handle = self._detach(session_id, outcome)
        if handle is None:
            return False
        callback, handle._on_close = handle._on_close, None
        if callback is not None:
            await self._run_on_close(handle, callback, outcome)
        return True

    # --- cleanup -------------------------------------------------------------------------------
    async def sweep(self) -> dict[str, SessionOutcome]:
        """Close every expired or idle session now; returns {session_id: outcome}."""
        now = self._clock()
        with self._lock:
            snapshot = list(self._sessions.items())
        due = {sid: why for sid, h in snapshot if (why := h.overdue(now)) is not None}
        if due:
            await asyncio.gather(*(self.close(sid, why) for sid, why in due.items()))
            log.info("session sweep closed %d sessions", len(due))
        return due

    def start(self) -> None:
        """Start the periodic cleanup loop (idempotent)."""
        if self._cleanup_task is None or self._cleanup_task.done():
            self._cleanup_task = asyncio.get_running_loop().create_task(
                self._cleanup_loop(), name="session-cleanup"
            )

    async def stop(self, *, close_open: bool = True) -> None:
        """Stop the cleanup loop and (by default) close every open session as ``evicted``."""
        task, self._cleanup_task = self._cleanup_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if close_open and self._sessions:
            with self._lock:
                open_ids = list(self._sessions)
            await asyncio.gather(*(self.close(sid, "evicted") for sid in open_ids))

    async def _cleanup_loop(self) -> None:
        interval = self._settings.cleanup_interval_minutes * 60.0
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except Exception:  # the loop must survive one bad sweep
                log.exception("session sweep failed")

    # --- internals -----------------------------------------------------------------------------
    def _reject(self, tenant_id: str, reason: Literal["capacity", "tenant_capacity"], message: str) -> None:
        instruments().sessions_rejected.add(
            1, {names.TENANT_ID: tenant_id, names.SESSION_REJECT_REASON: reason}
        )
        log.warning("session refused: %s", message, extra={names.TENANT_ID: tenant_id})
        raise CapacityExceeded(message, reason=reason)

    def _detach(self, session_id: str, outcome: SessionOutcome) -> SessionHandle | None:
        with self._lock:
            handle = self._sessions.pop(session_id, None)
            if handle is None:
                return None
            handle.closed = True
            remaining = self._per_tenant.get(handle.tenant_id, 1) - 1
            if remaining > 0:
                self._per_tenant[handle.tenant_id] = remaining
            else:
                self._per_tenant.pop(handle.tenant_id, None)
        attrs = {names.TENANT_ID: handle.tenant_id}
        ins = instruments()
        ins.sessions_active.add(-1, attrs)
        ended = {**attrs, names.SESSION_OUTCOME: outcome}
        ins.sessions_ended.add(1, ended)
        ins.session_duration.record(max(0.0, self._clock() - handle.started_at), ended)
        return handle

    async def _run_on_close(self, handle: SessionHandle, callback: OnClose, outcome: SessionOutcome) -> None:
        extra = {
            names.TENANT_ID: handle.tenant_id,
            names.SESSION_ID: handle.session_id,
            names.SESSION_OUTCOME: outcome,
        }
        try:
            async with asyncio.timeout(self._settings.close_timeout_s):
                await callback(outcome)
        except TimeoutError:
            log.error(
                "session on_close did not finish within %.1fs", self._settings.close_timeout_s, extra=extra
            )
        except Exception:
            log.exception("session on_close failed", extra=extra)
