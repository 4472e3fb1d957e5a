"""A really full disk under the outbox (a tiny tmpfs, mounted as root, as the trial ran): queued
writes are still delivered, once each, and the file catches up when space is back."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.crm import Contact, CrmSettings, build_crm
from telemetry import names

pytestmark = pytest.mark.usefixtures("fast_retries")


def pending_in_file(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        with contextlib.suppress(OSError):
            for _ in range(10_000):  # bounded: 40 MB at most on a 1 MB disk
                os.write(fd, b"x" * 4096)
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    return filler


async def test_a_full_disk_does_not_livelock_the_drainer(crm_service, tiny_disk, otel) -> None:
    """The trial: mark_delivered failed, entry 1 was re-sent every pass, entries 2-8 never went out."""
    url, admin = crm_service
    outbox = tiny_disk / "outbox.sqlite3"
    crm = build_crm(CrmSettings(crm_url=url, outbox_path=str(outbox), retries=0, breaker_recovery_s=0.0))
    try:
        await admin.post("/admin/fault", json={"mode": "down"})
        for i in range(8):
            lead = Contact(name=f"Lead {i}", email=f"lead{i}@acme.com")
            assert (await crm.upsert_contact("acme", lead)).status == "queued"
        filler = fill(tiny_disk)
        await admin.post("/admin/fault", json={"mode": "ok"})
        before = (await admin.get("/admin/stats")).json()["requests"]
        for _ in range(5):
            with contextlib.suppress(Exception):  # today's code raises out of the pass
                await crm.drainer.drain_once()
        s = (await admin.get("/admin/stats")).json()
        assert s["contacts"] == 8
        assert s["requests"] - before == 8 and s["idempotent_replays"] == 0
        assert otel.metric_value(names.OUTBOX_STORAGE_ERRORS) > 0

        filler.unlink()  # space again: the file catches up, nothing is sent twice
        await crm.drainer.drain_once()
        assert pending_in_file(outbox) == 0
        assert (await admin.get("/admin/stats")).json()["requests"] - before == 8
    finally:
        await crm.aclose()
