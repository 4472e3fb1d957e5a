"""``sales-agent simulate``: offline runs as a subprocess, plus its pure helpers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from agent.simulate.report import percentile
from agent.simulate.scripts import SCRIPT_ROTATION, ScriptState, render_turn, script_for
from agent.simulate.stack import FaultSpec, parse_faults
from local_services.harness import free_port

REPO = Path(__file__).resolve().parents[2]
TRACE_ID = re.compile(r"\b[0-9a-f]{32}\b")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SALES_AGENT_", "CRM_"))}
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", **extra)
    return env


def _simulate(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", "simulate", *args],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_no_contact_data_or_secret_leaves_simulate_in_any_export(tmp_path: Path) -> None:
    """Every OTLP body simulate sent (spans, logs, metrics) and its stderr, searched for the scripts'
    e-mail addresses and phone numbers in every encoding (plain, %40 / %2B, JSON-escaped, spelled out
    "x at y", any case) and for the CRM API key. The CRM fails a share of requests, so retries log."""
    from agent.gameday.scan import scan_bytes, scan_paths
    from local_services.harness import spawn

    secret = "sk-test-canary-0123456789abcdef"
    bodies = tmp_path / "bodies"
    with spawn("otlp-sink", "--keep-bodies", str(bodies)) as sink:
        url = sink.url
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "agent",
                "simulate",
                "--calls",
                "10",
                "--faults",
                "crm=500",
                "--fault-after",
                "3",
            ],
            cwd=REPO,
            env=_env(
                OTEL_EXPORTER_OTLP_ENDPOINT=url,
                OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                SALES_AGENT_LOG_LEVEL="INFO",
                SALES_AGENT_REDACT_PII="true",
                CRM_API_KEY=secret,
                CRM_OUTBOX_PATH=str(tmp_path / "outbox.sqlite3"),
            ),
            capture_output=True,
            timeout=300,
        )
    assert done.returncode in (0, 1), done.stderr[-3000:]
    files = sorted(bodies.glob("*.pb"))
    everything = b"".join(path.read_bytes() for path in files)
    # Not vacuous: calls, CRM client spans with their URLs, retry logs and metrics all arrived.
    for needle in (b"sales_call", b"url.full", b"/v1/contacts", b"stamina", b"sales_agent.calls"):
        assert needle in everything, needle
    findings = scan_paths(files, secrets=[secret]) + scan_bytes("stderr", done.stderr, [secret])
    assert findings == [], findings[:5]


def test_simulate_five_calls_offline_prints_summary_and_trace_ids() -> None:
    done = _simulate("--calls", "5", "--show-trace")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "simulate: summary" in out
    assert re.search(r"calls\s+│\s+5 \(0 failed\)", out)
    for row in (
        "turns",
        "time to first token p50",
        "time to first token p95",
        "LLM fallbacks",
        "tool errors",
    ):
        assert row in out
    # Measured by each call's turn recorder (LiveKit's llm_node spans that carried it are not recorded).
    assert re.search(r"time to first token p50\s+│\s+\d+ ms", out)
    assert re.search(r"leads captured\s+│\s+5\b", out)
    assert re.search(r"meetings booked\s+│\s+2\b", out)  # two "converted" scripts in the rotation of five
    assert re.search(r"outbox backlog\s+│\s+0\b", out)
    calls_table = out.split("simulate: calls", 1)[1].split("\ntrace ", 1)[0]
    assert len(set(TRACE_ID.findall(calls_table))) == 5
    for outcome in ("converted", "not_interested", "callback", "dropped"):
        assert outcome in calls_table
    # --show-trace: the first call's span tree, from the call root down to the CRM server span.
    tree = out.split("simulate: calls", 1)[1]
    for name in (
        "sales_call",
        "agent_turn",
        "chat primary-model",
        "capture_basic_info",
        "crm.upsert_contact",
    ):
        assert name in tree
    assert "POST /v1/contacts" in tree


def test_simulate_with_primary_llm_down_falls_back() -> None:
    done = _simulate("--calls", "2", "--faults", "llm-primary=500", "--fault-after", "0")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "faults on: llm-primary=500" in done.stdout
    fallbacks = re.search(r"LLM fallbacks\s+│\s+(\d+)", done.stdout)
    assert fallbacks and int(fallbacks.group(1)) > 0
    assert re.search(r"calls\s+│\s+2 \(0 failed\)", done.stdout)


def test_simulate_rejects_bad_arguments() -> None:
    done = _simulate("--faults", "llm-primary", timeout=60)
    assert done.returncode == 2
    assert "expected TARGET=MODE" in done.stderr
    done = _simulate("--calls", "1", "--faults", "crm=melted", timeout=120)
    assert done.returncode == 2
    assert "fault mode 'melted' for crm" in done.stderr


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def test_simulate_forever_serves_health_and_metrics_while_running() -> None:
    health_port, metrics_port = free_port(), free_port()
    env = _env(SALES_AGENT_HEALTH_PORT=str(health_port), SALES_AGENT_METRICS_PORT=str(metrics_port))
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "simulate", "--calls", "2", "--forever", "--interval", "0.5"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = metrics = ""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (ready and metrics):
            if proc.poll() is not None:
                break
            status, body = _get(f"http://127.0.0.1:{health_port}/ready")
            if status == 200:
                ready = body
            status, body = _get(f"http://127.0.0.1:{metrics_port}/metrics")
            if status == 200 and "sales_agent_calls_total" in body:
                metrics = body
            time.sleep(0.5)
        assert ready, "simulate never served /ready"
        assert '"ready": true' in ready
        assert 'call_outcome="converted"' in metrics
        assert "sales_agent_leads_captured_total" in metrics
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def test_parse_faults() -> None:
    assert parse_faults("llm-primary=500, crm=down") == [
        FaultSpec("llm-primary", "500"),
        FaultSpec("crm", "down"),
    ]
    assert parse_faults("") == []
    with pytest.raises(ValueError, match="TARGET=MODE"):
        parse_faults("crm")


def test_scripts_cover_every_outcome_and_bad_input() -> None:
    scripts = [script_for(i, "run") for i in range(len(SCRIPT_ROTATION))]
    assert {s.expected_outcome for s in scripts} == {"converted", "not_interested", "callback", None}
    bad = next(s for s in scripts if s.name == "bad_input")
    assert any(" at " in turn and "capture_basic_info" in turn for turn in bad.turns)  # malformed email
    # Each call gets its own prospect, so concurrent calls never share a CRM record.
    assert script_for(0, "run").turns[1] != script_for(5, "run").turns[1]
    # The first five cover every outcome; a whole rotation drops one call in ten.
    assert {s.expected_outcome for s in scripts[:5]} == {"converted", "not_interested", "callback", None}
    assert sum(s.expected_outcome is None for s in scripts) / len(scripts) == 0.1


def test_render_turn_uses_offered_slots_and_booking() -> None:
    state = ScriptState(slots=["2030-01-07T10:00+00:00", "2030-01-07T10:30+00:00"])
    assert render_turn('{"slot_start": "{slot}"}', state, 3) == '{"slot_start": "2030-01-07T10:30+00:00"}'
    assert render_turn('{"outcome": "{won}"}', state, 0) == '{"outcome": "callback"}'
    state.meeting_booked = True
    assert render_turn('{"outcome": "{won}"}', state, 0) == '{"outcome": "converted"}'


def test_percentile() -> None:
    assert percentile([], 50) is None
    assert percentile([0.2], 95) == 0.2
    values = [i / 100 for i in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(0.505, abs=0.01)
    assert percentile(values, 95) == pytest.approx(0.95, abs=0.01)


def test_simulate_keeps_an_undelivered_backlog_and_says_where() -> None:
    """The CRM stays down to the end: the queued writes are kept (not deleted with the temporary
    outbox), and the run says how many and where."""
    import shutil
    import sqlite3

    done = _simulate("--calls", "1", "--faults", "crm=down", "--fault-after", "0", "--drain-timeout", "0.5")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    found = re.search(r"outbox: (\d+) CRM write\(s\) not delivered within 0\.5 s; kept in (\S+)", done.stdout)
    assert found, done.stdout[-3000:]
    left, path = int(found.group(1)), Path(found.group(2))
    try:
        assert left > 0
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT COUNT(*) FROM outbox WHERE status='pending'").fetchone()[0] == left
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)
