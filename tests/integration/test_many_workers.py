"""Many agent processes, one truth: LLM cooldowns shared through a real Redis, the CRM outbox shared in
a real PostgreSQL. Counted where it happens: at the fault-injecting LLM provider (``/admin/stats``) and
in the CRM's own database."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from asyncio.subprocess import PIPE
from pathlib import Path
from typing import Any

import httpx

from local_services.harness import REPO_ROOT as REPO
from local_services.harness import spawn

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SALES_AGENT_", "CRM_"))}


def worker_env(**extra: str) -> dict[str, str]:
    # The SDK stays on (no exporter is configured): simulate's summary counts fallbacks from it.
    return {**CLEAN_ENV, "LITELLM_LOCAL_MODEL_COST_MAP": "True", **extra}


def primary_requests(url: str) -> int:
    return int(httpx.get(f"{url}/admin/stats", timeout=10).json()["chat_requests"])  # streamed or not


def simulate(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """One worker process: ``sales-agent simulate`` against the given stack."""
    return subprocess.run(
        [sys.executable, "-m", "agent", "simulate", "--calls", "1", "--concurrency", "1", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip


def fallbacks(output: str) -> int:
    found = re.search(r"LLM fallbacks\s+│\s+(\d+)", output)
    assert found, output[-2000:]
    return int(found.group(1))


def test_one_workers_provider_failures_spare_the_next_worker_the_primary(redis, tmp_path) -> None:
    """Worker A meets the failing primary and cools it down in Redis; worker B then sends it nothing
    for the whole cooldown. Without Redis, a worker pays its own failures. Redis killed: calls go on."""
    with (
        spawn("llm-provider", "--name", "primary") as primary,
        spawn("llm-provider", "--name", "backup") as backup,
        spawn("crm-service", "--db", str(tmp_path / "crm.sqlite3")) as crm,
    ):
        stack = ["--llm-url", f"{primary.url}/v1", "--llm-url", f"{backup.url}/v1", "--crm-url", crm.url]
        httpx.post(f"{primary.url}/admin/fault", json={"mode": "500"}, timeout=10).raise_for_status()
        shared = worker_env(SALES_AGENT_LLM_REDIS_URL=redis.url, SALES_AGENT_LLM_COOLDOWN_S="600")

        a = simulate(shared, *stack)
        assert a.returncode == 0, a.stdout[-3000:] + a.stderr[-3000:]
        after_a = primary_requests(primary.url)
        assert after_a == 3  # allowed_fails (2) + the one that started the cooldown

        b = simulate(shared, *stack)
        assert b.returncode == 0, b.stdout[-3000:] + b.stderr[-3000:]
        assert primary_requests(primary.url) == after_a  # worker B: not one request to the primary
        assert fallbacks(b.stdout) > 0  # it went straight to the backup

        alone = simulate(worker_env(SALES_AGENT_LLM_COOLDOWN_S="600"), *stack)  # no Redis: its own cooldowns
        assert alone.returncode == 0, alone.stdout[-3000:]
        assert primary_requests(primary.url) >= after_a + 3

        redis.kill()
        gone = simulate(shared, *stack)  # Redis gone before a run: calls go on (killed mid-call: below)
        assert gone.returncode == 0, gone.stdout[-3000:] + gone.stderr[-3000:]
        assert re.search(r"calls\s+│\s+1 \(0 failed\)", gone.stdout), gone.stdout[-3000:]


DRAIN_WORKER = r"""
import asyncio, json, sys
from agent.crm import Contact, CrmSettings, build_crm

async def main() -> None:
    crm_url, outbox_url, first, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    crm = build_crm(CrmSettings(
        crm_url=crm_url, outbox_url=outbox_url, retries=0, outbox_poll_interval_s=0.05,
        breaker_recovery_s=0.0, breaker_failure_threshold=1000,
    ))
    statuses = []
    for i in range(first, first + count):
        key = f"lead{i}@acme.com"
        statuses.append((await crm.upsert_contact("acme", Contact(name=f"Lead {i}", email=key))).status)
        for text in ("first", "second"):
            statuses.append((await crm.add_note("acme", key, text)).status)
    print("CAPTURED", json.dumps(statuses), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "drain"
    await crm.start()
    print("DRAINING", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def _line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    return (await asyncio.wait_for(process.stdout.readline(), timeout=120)).decode().strip()


def _crm_contents(db: Path) -> tuple[list[str], dict[str, list[str]]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        contacts = [row[0] for row in conn.execute("SELECT contact_key FROM contacts ORDER BY contact_key")]
        notes: dict[str, list[str]] = {}
        for key, text in conn.execute("SELECT contact_key, text FROM notes ORDER BY id"):
            notes.setdefault(key, []).append(text)
    return contacts, notes


async def test_three_workers_drain_one_postgres_outbox_through_a_sigkill(
    crm_service, pg_outbox: Any, tmp_path
) -> None:
    """CRM down: three workers capture N leads (a contact and two notes each) into one PostgreSQL
    outbox. The CRM returns, slowly; one worker is SIGKILLed mid-drain. The other two take its claims
    over: exactly N contacts, no duplicate, each contact's notes in order."""
    url, admin = crm_service
    per_worker, workers = 4, 3
    n = per_worker * workers
    await admin.post("/admin/fault", json={"mode": "down"})
    processes: list[asyncio.subprocess.Process] = []
    try:
        for w in range(workers):
            argv = [url, pg_outbox.location, str(w * per_worker), str(per_worker)]
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-c", DRAIN_WORKER, *argv, cwd=REPO, env=worker_env(),
                stdin=PIPE, stdout=PIPE, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            processes.append(process)
        for process in processes:
            line = await _line(process)
            assert line.startswith("CAPTURED"), line
            assert set(json.loads(line.split(" ", 1)[1])) == {"queued"}
        assert pg_outbox.rows("pending") == 3 * n
        assert (await admin.get("/admin/stats")).json()["contacts"] == 0

        # The CRM is back, slowly enough that the drain takes a while; every worker drains.
        await admin.post("/admin/fault", json={"mode": "slow", "delay_s": 0.15})
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(b"drain\n")
            await process.stdin.drain()
            assert await _line(process) == "DRAINING"
        for _ in range(600):  # mid-drain: some delivered, most not
            if (await admin.get("/admin/stats")).json()["writes_applied"] >= 4:
                break
            await asyncio.sleep(0.02)
        victim = processes[0]
        victim.send_signal(signal.SIGKILL)
        await victim.wait()
        assert pg_outbox.rows("pending") > 0, "killed too late to be mid-drain"
        await admin.post("/admin/fault", json={"mode": "ok"})

        for _ in range(1200):  # the survivors take the killed worker's claims over and finish
            if pg_outbox.rows() == 0:
                break
            await asyncio.sleep(0.05)
        assert pg_outbox.rows() == 0
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()

    contacts, notes = _crm_contents(tmp_path / "crm.sqlite3")
    expected = sorted(f"lead{i}@acme.com" for i in range(n))
    assert contacts == expected  # exactly N contacts, none twice
    assert notes == {key: ["first", "second"] for key in expected}  # per-contact order, no duplicate
    stats = (await admin.get("/admin/stats")).json()
    assert stats["writes_applied"] == 3 * n


def test_simulate_workers_run_as_processes_each_with_its_own_instance_id() -> None:
    """``simulate --workers 2``: two agent processes against one stack, each exporting under its own
    ``service.instance.id`` (what the dashboards' instance variable and per-instance alerts use)."""
    import socket

    from local_services.harness import in_thread
    from local_services.otlp_sink import run_otlp_sink

    with in_thread(run_otlp_sink) as sink:
        env = worker_env(OTEL_EXPORTER_OTLP_ENDPOINT=sink.url, OTEL_RESOURCE_ATTRIBUTES="team=sales")
        done = subprocess.run(
            [sys.executable, "-m", "agent", "simulate", "--workers", "2", "--calls", "1"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        instances: set[str] = set()
        for request in list(sink.received.metrics):
            for resource_metrics in request.resource_metrics:
                attrs = {kv.key: kv.value.string_value for kv in resource_metrics.resource.attributes}
                if attrs.get("service.name") == "sales-agent":
                    assert attrs.get("team") == "sales"  # the operator's own attributes are kept
                    instances.add(attrs["service.instance.id"])
    host = socket.gethostname()
    assert instances == {f"{host}-simulate-1", f"{host}-simulate-2"}
    for index in (1, 2):  # each worker's summary, prefixed with its number
        assert re.search(rf"^w{index} .*calls\s+│\s+1 \(0 failed\)", done.stdout, re.MULTILINE), done.stdout
    assert "simulate: 2 workers done" in done.stdout


def _stand_in_requests(url: str) -> int:
    from local_services.harness import admin_stats

    return int(admin_stats(url)["chat_requests"])


def _workers_connected_to(parent_pid: int, port: int) -> set[int]:
    """The pids of ``simulate --workers``' worker processes with a TCP connection open to ``port``."""
    import psutil

    connected: set[int] = set()
    for child in psutil.Process(parent_pid).children():
        with contextlib.suppress(psutil.Error):
            if any(c.raddr and c.raddr.port == port for c in child.net_connections(kind="tcp")):
                connected.add(child.pid)
    return connected


def _last_points(sink: Any, metric_name: str) -> dict[str, float]:
    """{service.instance.id: the metric's value in that worker's last export} (summed over labels)."""
    last: dict[str, float] = {}
    for request in list(sink.received.metrics):
        for resource_metrics in request.resource_metrics:
            attrs = {kv.key: kv.value.string_value for kv in resource_metrics.resource.attributes}
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name != metric_name:
                        continue
                    data = metric.gauge if metric.HasField("gauge") else metric.sum
                    values = [p.as_double if p.HasField("as_double") else p.as_int for p in data.data_points]
                    last[attrs.get("service.instance.id", "")] = float(sum(values))
    return last


def test_redis_killed_while_two_workers_are_mid_call_the_calls_go_on(redis, tmp_path) -> None:
    """``simulate --workers 2`` sharing cooldowns in Redis; every LLM turn is slow at the primary, so
    calls are in flight when ``redis-server`` is SIGKILLed (after a number of requests served, not a
    sleep). Then the primary fails: each worker cools it down on its own. Every call completes with an
    outcome, simulate exits 0, and each worker says Redis is gone: one log line, the metrics."""
    import socket

    from local_services.harness import in_thread
    from local_services.otlp_sink import run_otlp_sink
    from telemetry import names

    workers, calls, concurrency = 2, 8, 2
    with (
        spawn("llm-provider", "--name", "primary") as primary,
        spawn("llm-provider", "--name", "backup") as backup,
        spawn("crm-service", "--db", str(tmp_path / "crm.sqlite3")) as crm,
        in_thread(run_otlp_sink) as sink,
    ):
        # Slow, not failing: each turn holds a call open well past its Redis reads.
        httpx.post(
            f"{primary.url}/admin/fault", json={"mode": "slow_first_token", "delay_s": 0.3}, timeout=10
        ).raise_for_status()
        env = worker_env(
            SALES_AGENT_LLM_REDIS_URL=redis.url,
            SALES_AGENT_LLM_COOLDOWN_S="600",
            OTEL_EXPORTER_OTLP_ENDPOINT=sink.url,
            SALES_AGENT_LOG_LEVEL="WARNING",  # simulate's default (ERROR) hides the line asserted on
            # However loaded the machine, the slow primary must not miss its first-token deadline.
            SALES_AGENT_LLM_FIRST_TOKEN_DEADLINE_S="10",
        )
        argv = [
            sys.executable, "-m", "agent", "simulate", "--workers", str(workers), "--calls", str(calls),
            "--concurrency", str(concurrency), "--llm-url", f"{primary.url}/v1",
            "--llm-url", f"{backup.url}/v1", "--crm-url", crm.url,
        ]  # fmt: skip
        log_path = tmp_path / "simulate.log"
        with log_path.open("w") as log_file:
            process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT)
            try:
                for _ in range(1200):  # bounded: 1200 polls of at most 10 s each
                    # Mid-call: every worker holds a connection to Redis (opened by its first turn's
                    # read), and the primary has served some turns.
                    connected = _workers_connected_to(process.pid, redis.port)
                    if len(connected) == workers and _stand_in_requests(primary.url) >= 2 * workers:
                        break
                    assert process.poll() is None, "simulate finished before Redis was killed"
                    time.sleep(0.05)
                assert len(connected) == workers, connected

                redis.kill()  # mid-call: turns are waiting on the primary's first token
                at_kill = _stand_in_requests(primary.url)
                httpx.post(f"{primary.url}/admin/fault", json={"mode": "500"}, timeout=10).raise_for_status()
                at_failing = _stand_in_requests(primary.url)
                backup_at_failing = _stand_in_requests(backup.url)
                assert process.poll() is None, "simulate finished before the calls met Redis gone"

                process.wait(timeout=300)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        output = log_path.read_text(errors="replace")
        assert process.returncode == 0, output[-4000:]
        primary_after = _stand_in_requests(primary.url) - at_failing
        backup_after = _stand_in_requests(backup.url) - backup_at_failing
        available = _last_points(sink, names.LLM_SHARED_COOLDOWNS_AVAILABLE)
        fallbacks_counted = _last_points(sink, names.LLM_SHARED_COOLDOWNS_FALLBACKS)

    assert at_kill >= 2 * workers
    host = socket.gethostname()
    for index in range(1, workers + 1):
        # Every call completed with an outcome (none failed).
        assert re.search(rf"^w{index} .*calls\s+│\s+{calls} \(0 failed\)", output, re.MULTILINE), output[
            -4000:
        ]
        outcomes = re.search(rf"^w{index} .*outcomes\s+│\s+(\S.*?)\s+│", output, re.MULTILINE)
        assert outcomes and sum(int(n) for n in re.findall(r"=(\d+)", outcomes.group(1))) == calls, output
        # It said so, once (rate-limited), and went on with its own cooldowns.
        gone = re.findall(
            rf"^w{index} .*Redis at {re.escape(redis.url)} is unreachable.*this process's own",
            output,
            re.MULTILINE,
        )
        assert len(gone) == 1, output[-4000:]
        instance = f"{host}-simulate-{index}"
        assert available.get(instance) == 0, available
        assert fallbacks_counted.get(instance, 0) > 0, fallbacks_counted
    assert "simulate: 2 workers done" in output
    # The primary failing after Redis died: each worker pays at most its own allowed failures (2) plus
    # the one that cools the primary down, and one more per other call in flight, then skips it
    # alone, while far more requests than that go on to the backup.
    bound = workers * (3 + concurrency - 1)
    assert 0 < primary_after <= bound, primary_after
    assert backup_after > bound, backup_after
