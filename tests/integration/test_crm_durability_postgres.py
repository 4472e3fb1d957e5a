"""The CRM write path's durability cases (``crm_durability_cases.py``) on the PostgreSQL outbox, plus
what only a database server can do: go away in the middle of a call."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from crm_durability_cases import *  # noqa: F403
from crm_durability_cases import lead, settings, stats

from agent.crm import build_crm


@pytest.fixture
def outbox_backend(pg_outbox: Any) -> Any:
    return pg_outbox


async def test_the_database_going_away_mid_call_loses_no_write(crm_service, pg_outbox, postgres) -> None:
    """PostgreSQL stops in the middle of a call: the write cannot be made durable, so it is sent live
    and reaches the CRM (the caller hears "saved" only because the CRM has it); with the CRM down as
    well the caller is told it was NOT saved. Once the database is back, writes queue again."""
    from agent.errors import DependencyError

    url, admin = crm_service
    crm = build_crm(settings(url, pg_outbox, retries=0))
    try:
        assert (await crm.upsert_contact("acme", lead(1))).status == "synced"
        postgres.stop("immediate")
        try:
            outcome = await asyncio.wait_for(crm.upsert_contact("acme", lead(2)), 30)
            assert outcome.status == "synced"
            assert (await stats(admin))["contacts"] == 2  # in the CRM: not lost
            await admin.post("/admin/fault", json={"mode": "down"})
            with pytest.raises(DependencyError, match="NOT saved"):
                await asyncio.wait_for(crm.upsert_contact("acme", lead(3)), 30)
        finally:
            postgres.start()
        # The store probes the database once a second and takes new writes again when it answers.
        for _ in range(100):
            try:
                outcome = await asyncio.wait_for(crm.upsert_contact("acme", lead(4)), 30)
            except DependencyError:  # not durable yet, the CRM is down: NOT saved, truthfully
                await asyncio.sleep(0.1)
                continue
            assert outcome.status == "queued"
            break
        # Durable again. (Lead 1's removal may be back too: marks commit without waiting for the WAL,
        # and the server was killed; its drainer would send it again, a replay at the CRM.)
        assert "lead4@acme.com" in {e.contact_key for e in await crm.outbox.pending()}
    finally:
        await crm.aclose()
