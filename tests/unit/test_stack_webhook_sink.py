"""The compose stack's local notification sink: keeps, logs and serves Alertmanager notifications."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from local_services.webhook_sink import NotificationSink, run_webhook_sink

ALERTMANAGER_PAYLOAD = {
    "version": "4",
    "receiver": "pager",
    "status": "firing",
    "groupLabels": {"alertname": "LLMAllProvidersFailing"},
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "LLMAllProvidersFailing", "severity": "critical"},
            "annotations": {"summary": "Every LLM provider is failing"},
            "startsAt": "2026-11-29T04:00:00Z",
        }
    ],
}


async def test_sink_keeps_and_serves_notifications_newest_first(caplog):
    caplog.set_level(logging.INFO, logger="local_services.webhook_sink")
    async with run_webhook_sink() as running, httpx.AsyncClient(base_url=running.url) as client:
        assert (await client.post("/pager", json=ALERTMANAGER_PAYLOAD)).status_code == 200
        resolved = {**ALERTMANAGER_PAYLOAD, "receiver": "chat", "status": "resolved"}
        assert (await client.post("/chat", json=resolved)).status_code == 200

        listing = (await client.get("/")).json()
        assert listing["received_total"] == 2
        first, second = listing["notifications"]
        assert (first["path"], first["receiver"], first["status"]) == ("/chat", "chat", "resolved")
        assert (second["path"], second["receiver"]) == ("/pager", "pager")
        assert second["alerts"] == [
            {
                "alertname": "LLMAllProvidersFailing",
                "severity": "critical",
                "status": "firing",
                "summary": "Every LLM provider is failing",
                "starts_at": "2026-11-29T04:00:00Z",
            }
        ]
        assert second["payload"] == ALERTMANAGER_PAYLOAD
        assert len((await client.get("/", params={"limit": 1})).json()["notifications"]) == 1
        assert (await client.get("/health")).json() == {"status": "ok"}
    assert "receiver=pager status=firing alerts=[LLMAllProvidersFailing(critical,firing)]" in caplog.text


async def test_sink_rejects_a_non_json_body_with_the_reason_and_keeps_it():
    async with run_webhook_sink() as running, httpx.AsyncClient(base_url=running.url) as client:
        response = await client.post("/pager", content=b"not json")
        assert response.status_code == 400
        assert "not an Alertmanager webhook payload" in response.json()["error"]
        response = await client.post("/pager", content=b"[1, 2]")
        assert response.status_code == 400
        assert "expected a JSON object, got list" in response.json()["error"]
        kept = (await client.get("/")).json()["notifications"]
        assert [entry["raw"] for entry in kept] == ["[1, 2]", "not json"]
        assert (await client.get("/", params={"limit": "x"})).status_code == 400


async def test_sink_keeps_only_the_last_n():
    async with run_webhook_sink(keep=3) as running, httpx.AsyncClient(base_url=running.url) as client:
        for index in range(5):
            await client.post(f"/n{index}", json=ALERTMANAGER_PAYLOAD)
        listing = (await client.get("/")).json()
    assert listing["received_total"] == 5
    assert [entry["path"] for entry in listing["notifications"]] == ["/n4", "/n3", "/n2"]


def test_keep_must_be_positive():
    with pytest.raises(ValueError, match="keep must be at least 1"):
        NotificationSink(keep=0)


RUNBOOKS = Path(__file__).resolve().parents[2] / "docs" / "runbooks"


async def test_sink_serves_the_runbooks_the_alerts_link_to():
    async with (
        run_webhook_sink(runbooks=RUNBOOKS) as running,
        httpx.AsyncClient(base_url=running.url) as client,
    ):
        page = await client.get("/runbooks/DependencyCircuitOpen.md")
        assert page.status_code == 200 and page.text.startswith("# DependencyCircuitOpen")
        assert (await client.get("/runbooks/NoSuchAlert.md")).status_code == 404
        assert (await client.get("/runbooks/..%2F..%2Fpyproject.toml")).status_code == 404


async def test_admin_fault_stats_and_reset():
    async with run_webhook_sink() as running, httpx.AsyncClient(base_url=running.url) as client:
        assert (await client.post("/pager", json=ALERTMANAGER_PAYLOAD)).status_code == 200
        assert (await client.post("/admin/fault", json={"mode": "500"})).json() == {"fault": "500"}
        # Failing on purpose: Alertmanager sees a 500 and retries; nothing is kept.
        assert (await client.post("/chat", json=ALERTMANAGER_PAYLOAD)).status_code == 500
        assert (await client.post("/low", content=b"not json")).status_code == 500
        bad = await client.post("/admin/fault", json={"mode": "explode"})
        assert bad.status_code == 400 and "ok, 500" in bad.json()["error"]
        stats = (await client.get("/admin/stats")).json()
        assert stats == {
            "fault": "500",
            "received_total": 3,
            "rejected_total": 0,
            "failed_total": 2,
            "kept": 1,
            "kept_by_path": {"/pager": 1},
        }
        assert (await client.post("/admin/reset")).json() == {"reset": True}
        stats = (await client.get("/admin/stats")).json()
        assert stats["fault"] == "ok" and stats["received_total"] == 0 and stats["kept"] == 0
        assert (await client.get("/")).json()["notifications"] == []
