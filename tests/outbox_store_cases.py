"""The outbox storage semantics every ``OutboxStore`` keeps (claims, heads, leases, parking).

Cases, not a test module: ``tests/unit/test_outbox_store.py`` runs them on SQLite and
``tests/integration/test_outbox_store_postgres.py`` on PostgreSQL (``FOR UPDATE SKIP LOCKED``), each
with its own ``store`` fixture over a ``Clock``; what only one store can do is tested in its own file.
"""

from __future__ import annotations

from typing import Any

import pytest

from agent.crm.outbox_sqlite import lease_owner
from agent.crm.outbox_store import ClaimState, Lease, NewEntry
from telemetry import names


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def entry(contact: str, n: int) -> NewEntry:
    return NewEntry("crm", "add_note", "acme", contact, {"text": str(n)}, f"{contact}-{n}", None, 0.0)


def test_a_write_may_go_only_as_its_contacts_head(store: Any) -> None:
    live, other = Lease(lease_owner(), 30), Lease(lease_owner(), 30)
    first, state = store.add(entry("ann", 1), live)
    assert state is ClaimState.CLAIMED
    second, state = store.add(entry("ann", 2), other)
    assert state is ClaimState.WAIT  # the first is being sent
    assert store.add(entry("bob", 1), other)[1] is ClaimState.CLAIMED  # another contact goes at once
    store.release(first, live.owner, "HTTP 503")  # the first failed: it waits in the queue now
    assert store.claim(second, other) == (ClaimState.QUEUED, None)
    store.complete([first])
    assert store.claim(second, other) == (ClaimState.CLAIMED, None)
    store.complete([second])
    assert store.claim(second, other) == (ClaimState.DONE, None)


def test_drainers_claim_heads_only_and_never_the_same_entry(store: Any) -> None:
    for contact in ("ann", "bob"):
        for n in (1, 2):
            store.add(entry(contact, n), None)
    one, two = Lease(lease_owner(), 30), Lease(lease_owner(), 30)
    first = store.claim_heads(one, 10, set())
    assert [(e.contact_key, e.payload["text"]) for e in first] == [("ann", "1"), ("bob", "1")]
    assert store.claim_heads(two, 10, set()) == []  # the heads are held; the seconds wait behind them
    store.complete([first[0].id])
    assert [(e.contact_key, e.payload["text"]) for e in store.claim_heads(two, 10, set())] == [("ann", "2")]


def test_a_lease_runs_out(store: Any, clock: Clock, otel: Any) -> None:
    expired = {names.DEPENDENCY: "crm", names.OUTBOX_TAKEOVER_REASON: "lease_expired"}
    before = otel.metric_value(names.OUTBOX_LEASE_TAKEOVERS, **expired)
    entry_id, _ = store.add(entry("ann", 1), Lease(lease_owner(), 30))
    drainer = Lease(lease_owner(), 30)
    assert store.claim_heads(drainer, 10, set()) == []
    clock.now += 31
    assert [e.id for e in store.claim_heads(drainer, 10, set())] == [entry_id]
    assert otel.metric_value(names.OUTBOX_LEASE_TAKEOVERS, **expired) - before == 1


def test_claims_are_counted(store: Any, otel: Any) -> None:
    before = otel.metric_value(names.OUTBOX_CLAIMS, dependency="crm")
    store.add(entry("ann", 1), Lease(lease_owner(), 30))  # claimed by the live write
    store.add(entry("bob", 1), None)
    assert len(store.claim_heads(Lease(lease_owner(), 30), 10, set())) == 1  # bob's, by a drainer
    assert otel.metric_value(names.OUTBOX_CLAIMS, dependency="crm") - before == 2


def test_parked_entries_leave_the_queue_and_requeue_with_a_new_key(store: Any) -> None:
    entry_id, _ = store.add(entry("ann", 1), None)
    later, _ = store.add(entry("ann", 2), None)
    store.park(entry_id, "HTTP 404: no such contact")
    assert store.claim(entry_id, Lease(lease_owner(), 30)) == (ClaimState.PARKED, "HTTP 404: no such contact")
    assert [e.id for e in store.claim_heads(Lease(lease_owner(), 30), 10, set())] == [later]
    assert store.requeue([entry_id]) == 1
    (back,) = [e for e in store.pending(10) if e.id == entry_id]
    assert back.idempotency_key != "ann-1" and back.idempotency_key.startswith("ann-1.r")
