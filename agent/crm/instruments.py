"""The CRM package's instruments: the durable outbox's depth, age, dead letters, traffic, claims,
lease take-overs and storage (the same on the SQLite and the PostgreSQL store).

Created from an injected meter (``telemetry.instruments``), never at import. The gauges read the
outboxes open in this process (``live_outboxes``), whichever provider they were created on.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from telemetry import names
from telemetry.instruments import InstrumentSet

if TYPE_CHECKING:
    from agent.crm.outbox import Outbox

# Every open outbox registers itself here (``observe_outbox``) until it is closed.
live_outboxes: weakref.WeakSet[Outbox] = weakref.WeakSet()


def observe_outbox(outbox: Outbox) -> None:
    """Report ``outbox`` on the gauges from now on; creates the gauges if nothing has yet (an outbox
    nothing was queued in still reports depth 0, which dashboards and alerts rely on)."""
    instruments()
    live_outboxes.add(outbox)


def _observe_depth(_options: CallbackOptions) -> Iterable[Observation]:
    for outbox in list(live_outboxes):
        for dependency, (depth, _age) in outbox.stats_by_dependency().items():
            yield Observation(depth, {names.DEPENDENCY: dependency})


def _observe_age(_options: CallbackOptions) -> Iterable[Observation]:
    for outbox in list(live_outboxes):
        for dependency, (_depth, age) in outbox.stats_by_dependency().items():
            yield Observation(age or 0.0, {names.DEPENDENCY: dependency})


def _observe_dead(_options: CallbackOptions) -> Iterable[Observation]:
    for outbox in list(live_outboxes):
        for dependency, count in outbox.dead_by_dependency().items():
            yield Observation(count, {names.DEPENDENCY: dependency})


class CrmInstruments:
    def __init__(self, meter: Meter) -> None:
        meter.create_observable_gauge(
            names.OUTBOX_DEPTH,
            callbacks=[_observe_depth],
            unit="{entry}",
            description="Outbox entries waiting",
        )
        meter.create_observable_gauge(
            names.OUTBOX_OLDEST_AGE,
            callbacks=[_observe_age],
            unit="s",
            description="Age of the oldest waiting entry",
        )
        meter.create_observable_gauge(
            names.OUTBOX_DEAD_LETTERS,
            callbacks=[_observe_dead],
            unit="{entry}",
            description=(
                "Parked (rejected) writes kept for an operator: list and requeue with `sales-agent outbox`"
            ),
        )
        self.enqueued = meter.create_counter(
            names.OUTBOX_ENQUEUED, unit="{entry}", description="Writes queued"
        )
        self.delivered = meter.create_counter(
            names.OUTBOX_DELIVERED, unit="{entry}", description="Queued writes delivered"
        )
        self.failed = meter.create_counter(
            names.OUTBOX_FAILED, unit="{entry}", description="Queued writes parked as dead letters (rejected)"
        )
        self.storage_errors = meter.create_counter(
            names.OUTBOX_STORAGE_ERRORS,
            unit="{error}",
            description="Outbox storage failures (disk full, I/O): new writes may not be durable",
        )
        self.claims = meter.create_counter(
            names.OUTBOX_CLAIMS, unit="{claim}", description="Outbox entries claimed for sending"
        )
        self.lease_takeovers = meter.create_counter(
            names.OUTBOX_LEASE_TAKEOVERS,
            unit="{claim}",
            description="Claims that took an entry over from another sender (its lease ran out, or its "
            "process is gone)",
        )


INSTRUMENTS = InstrumentSet(CrmInstruments)
instruments = INSTRUMENTS.get

TAKEOVER_REASONS = ("lease_expired", "owner_gone")


def count_claims(dependency: str, takeover: str | None) -> None:
    """One entry claimed (by a store); ``takeover``: why it was taken from another sender, if it was."""
    ins = instruments()
    ins.claims.add(1, {names.DEPENDENCY: dependency})
    if takeover is not None:
        ins.lease_takeovers.add(1, {names.DEPENDENCY: dependency, names.OUTBOX_TAKEOVER_REASON: takeover})


def zero_claims(dependency: str) -> None:
    """The claim series exist at 0 from the start (increase() then sees the first one)."""
    ins = instruments()
    ins.claims.add(0, {names.DEPENDENCY: dependency})
    for reason in TAKEOVER_REASONS:
        ins.lease_takeovers.add(0, {names.DEPENDENCY: dependency, names.OUTBOX_TAKEOVER_REASON: reason})
