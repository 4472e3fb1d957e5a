"""/ready against the real CRM facade and the local CRM service, which is stopped mid-test."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from agent.crm import CrmSettings, build_crm
from agent.health import (
    HealthRegistry,
    HealthServer,
    HealthSettings,
    dependency_check,
    event_loop_lag_check,
    outbox_backlog_check,
)
from local_services.crm_service import run_crm_service


async def _ready(http: aiohttp.ClientSession, url: str) -> tuple[int, dict]:
    async with http.get(f"{url}/ready", timeout=aiohttp.ClientTimeout(total=20)) as resp:
        return resp.status, await resp.json()


async def test_ready_with_the_crm_service_down(tmp_path: Path):
    service = run_crm_service(tmp_path / "crm.sqlite3")
    crm_url = await service.__aenter__()
    stopped = False
    settings = CrmSettings(CRM_URL=crm_url, CRM_OUTBOX_PATH=str(tmp_path / "outbox.sqlite3"))
    crm = build_crm(settings)
    try:
        registry = HealthRegistry(HealthSettings(cache_ttl_s=0, check_timeout_s=5))
        registry.register("crm", dependency_check(crm, "crm"))
        registry.register("calendar", dependency_check(crm, "calendar"))
        registry.register("outbox", outbox_backlog_check(crm, max_depth=100, max_age_s=300), critical=False)
        registry.register("event_loop", event_loop_lag_check(max_s=5.0))

        async with HealthServer(registry) as server, aiohttp.ClientSession() as http:
            status, body = await _ready(http, server.url)
            assert status == 200, body
            assert body["status"] == "ok"
            assert body["checks"]["outbox"]["details"]["depth"] == 0

            await service.__aexit__(None, None, None)
            stopped = True

            status, body = await _ready(http, server.url)
            assert status == 503
            assert body["checks"]["crm"]["healthy"] is False
            assert body["checks"]["crm"]["error"]
            assert body["checks"]["calendar"]["healthy"] is False
            assert body["checks"]["outbox"]["healthy"] is True
            async with http.get(f"{server.url}/health") as resp:
                assert resp.status == 200
    finally:
        await crm.aclose()
        if not stopped:
            await service.__aexit__(None, None, None)
