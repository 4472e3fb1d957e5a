"""Helpers for the tests of alert rules, dashboards and the Prometheus end-to-end run (no tests here).

Real Prometheus 2.42 / Alertmanager 0.25 processes (Debian packages) on loopback with free ports and
temp storage, the local webhook sink standing in for the pager/chat/email endpoints, bounded polling,
and the PromQL helpers that pull metric names out of rules and dashboards.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from local_services.harness import free_port, in_thread
from local_services.webhook_sink import RunningSink, run_webhook_sink

REPO = Path(__file__).resolve().parents[1]
RULES_DIR = REPO / "alert-rules"
RULE_FILES = sorted(RULES_DIR.glob("*.rules.yml"))
RULE_TESTS = sorted((RULES_DIR / "tests").glob("*.test.yml"))
AM_DIR = REPO / "deploy" / "alertmanager"
DASHBOARDS_DIR = REPO / "dashboards"
RUNBOOKS_DIR = REPO / "docs" / "runbooks"
# Every rule's runbook link: the base comes from Prometheus's external label `runbook_base`
# (deploy/prometheus/prometheus.yml), so a deployment points all links at its own copy in one place.
RUNBOOK_BASE = "{{ $externalLabels.runbook_base }}"

T = TypeVar("T")


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (Debian packages prometheus / prometheus-alertmanager)")
    return path


def wait_until(check: Callable[[], T | None], *, timeout_s: float, interval_s: float = 0.5, what: str) -> T:
    """Poll ``check`` until it returns something truthy; bounded in time."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except (OSError, ValueError) as exc:  # endpoint not up yet
            last_error = exc
            result = None
        if result:
            return result
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last error: {last_error})")


def http_json(url: str, payload: Any | None = None, timeout_s: float = 5.0) -> Any:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        body = response.read()
    return json.loads(body) if body else None


def _ready(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.status == 200


@contextlib.contextmanager
def run_process(
    argv: list[str],
    log_path: Path,
    ready_url: str,
    what: str,
    *,
    env: dict[str, str] | None = None,
    ready_timeout_s: float = 30,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``argv`` (output to ``log_path``), wait until ``ready_url`` answers 200, stop it afterwards."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        try:
            wait_until(
                lambda: proc.poll() is None and _ready(ready_url),
                timeout_s=ready_timeout_s,
                what=f"{what} ready",
            )
        except AssertionError:
            raise AssertionError(f"{what} did not start:\n{log_path.read_text()[-3000:]}") from None
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextlib.contextmanager
def run_alertmanager(config: Path, workdir: Path) -> Iterator[str]:
    """A real Alertmanager on 127.0.0.1 (no clustering); yields its base URL."""
    binary = require_binary("prometheus-alertmanager")
    port = free_port()
    storage = workdir / "am-data"
    storage.mkdir(parents=True, exist_ok=True)
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.path={storage}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=warn",
    ]
    url = f"http://127.0.0.1:{port}"
    with run_process(argv, workdir / "alertmanager.log", f"{url}/-/ready", "alertmanager"):
        yield url


@contextlib.contextmanager
def run_prometheus(config: Path, workdir: Path) -> Iterator[str]:
    """A real Prometheus on 127.0.0.1 with temp TSDB; yields its base URL."""
    binary = require_binary("prometheus")
    port = free_port()
    storage = workdir / "prom-data"
    storage.mkdir(parents=True, exist_ok=True)
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={storage}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    url = f"http://127.0.0.1:{port}"
    with run_process(argv, workdir / "prometheus.log", f"{url}/-/ready", "prometheus"):
        yield url


def render_alertmanager_config(out: Path, env: dict[str, str]) -> Path:
    """Run deploy/alertmanager/render.sh with exactly ``env`` (plus PATH)."""
    subprocess.run(
        ["sh", str(AM_DIR / "render.sh"), str(AM_DIR / "alertmanager.yml.tmpl"), str(out)],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        check=True,
        timeout=30,
    )
    return out


class WebhookReceiver:
    """The local webhook sink (``local_services.webhook_sink``) on a free loopback port, served from a
    thread so synchronous tests can hand its URL to a real Alertmanager."""

    def __init__(self) -> None:
        self._serving = in_thread(run_webhook_sink)
        self.url = ""

    def __enter__(self) -> WebhookReceiver:
        running: RunningSink = self._serving.__enter__()
        self.url = running.url
        return self

    def __exit__(self, *exc: object) -> None:
        self._serving.__exit__(None, None, None)

    def alerts(self, path: str) -> list[dict[str, Any]]:
        """Every alert delivered on ``path`` so far, oldest first (flattened over notifications)."""
        notifications = http_json(f"{self.url}/")["notifications"]
        return [
            alert
            for entry in reversed(notifications)
            if entry["path"] == path and "payload" in entry
            for alert in entry["payload"].get("alerts", [])
        ]


def prom_query(base_url: str, expr: str) -> list[dict[str, Any]]:
    url = f"{base_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    body = http_json(url)
    assert body["status"] == "success", body
    return body["data"]["result"]


# --- PromQL: which metric names does an expression read? ----------------------------------------
_PROMQL_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset",
    "bool", "inf", "nan", "le",
}  # fmt: skip
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPINGS = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")


def promql_metric_names(expr: str) -> set[str]:
    """Metric (and recording rule) names an expression selects. Grafana variables ($x) are ignored."""
    text = _STRINGS.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGES.sub("", text)
    text = _GROUPINGS.sub("", text)
    text = re.sub(r"\$\{?\w+\}?", "", text)
    text = re.sub(r"\b\d+(\.\d+)?([eE][-+]?\d+)?[smhdwy]?\b", "", text)
    return {name for name in _IDENT.findall(text) if name.lower() not in _PROMQL_KEYWORDS}


def load_rule_groups() -> list[dict[str, Any]]:
    import yaml

    groups: list[dict[str, Any]] = []
    for path in RULE_FILES:
        groups.extend(yaml.safe_load(path.read_text())["groups"])
    return groups


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_rule_groups() for rule in group["rules"] if "alert" in rule]


# --- Metric catalog: which Prometheus names can the agent export? -------------------------------
# Series the agent exports that are not in telemetry/names.py: psutil metrics under OTel semconv names
# (telemetry/system_metrics.py) and the exporter's target_info.
NON_CATALOG_METRICS = {
    "target_info",
    "up",  # Prometheus's own scrape health
    "process_cpu_time_seconds_total",
    "system_cpu_time_seconds_total",
    "process_cpu_utilization",
    "process_memory_usage_bytes",
    "process_memory_virtual_bytes",
    "process_unix_file_descriptor_count",
    "process_thread_count",
    "system_cpu_utilization",
    "system_cpu_load_average_1m",
    "system_cpu_load_average_5m",
    "system_memory_usage_bytes",
    "system_memory_utilization",
    "system_filesystem_utilization",
    "system_network_io_bytes_total",
    "cpython_gc_collections_total",  # the interpreter's own count (telemetry/system_metrics.py)
}
# Suffixes the Prometheus exporter may add to a catalog name (unit, counter, histogram parts).
_SUFFIXES = ("", "_total", "_seconds", "_seconds_total", "_seconds_bucket", "_seconds_sum", "_seconds_count",
             "_bucket", "_sum", "_count", "_bytes")  # fmt: skip


def catalog_prometheus_bases() -> set[str]:
    from telemetry import names

    return {
        value.replace(".", "_")
        for key, value in vars(names).items()
        if key.isupper() and isinstance(value, str) and value.startswith("sales_agent.")
    }


def in_catalog(metric: str) -> bool:
    bases = catalog_prometheus_bases()
    return any(metric == base + suffix for base in bases for suffix in _SUFFIXES)


# --- Dashboards: every query, by datasource ------------------------------------------------------
def load_dashboards() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(DASHBOARDS_DIR.glob("*.json"))}


def dashboard_queries() -> list[tuple[str, str, str, str]]:
    """(dashboard uid, panel title, datasource type, query) for every panel target and query variable."""
    found: list[tuple[str, str, str, str]] = []
    for uid, board in load_dashboards().items():
        for p in board["panels"]:
            for t in p.get("targets", []):
                kind = (t.get("datasource") or p.get("datasource") or {}).get("type", "")
                query = t.get("expr") or t.get("query") or ""
                found.append((uid, p["title"], kind, query))
        for var in board["templating"]["list"]:
            if var["type"] == "query":
                kind = var["datasource"]["type"]
                found.append((uid, f"variable {var['name']}", kind, var["query"]["query"]))
    return found


# What the e2e test substitutes for Grafana's variables (every tenant, instance and environment).
GRAFANA_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "10m",
    "environment": ".*",
    "instance": ".*",
    "tenant": ".*",
    "call_id": ".*",
    "trace_id": ".*",
}


def substitute_variables(query: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in GRAFANA_VARIABLES:
            raise KeyError(f"unknown Grafana variable ${name} in {query!r}")
        return GRAFANA_VARIABLES[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", replace, query)


def label_values_to_promql(query: str) -> str:
    """``label_values(selector, label)`` (Grafana variable query) -> the selector as PromQL."""
    match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query.strip())
    assert match, f"unsupported variable query {query!r}"
    return match.group(1)


# --- LogQL / TraceQL: a structural syntax check (no Loki or Tempo binary here) ---------------------
_MATCHER = r'\s*[A-Za-z_][\w.]*\s*(=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*'


def check_logql(query: str) -> None:
    """A LogQL log query: a stream selector, then pipeline stages (| filter, |= text, | json ...)."""
    match = re.match(r"\{(" + _MATCHER + r"(," + _MATCHER + r")*)\}", query)
    assert match, f"LogQL must start with a stream selector: {query!r}"
    rest = query[match.end() :].strip()
    for stage in filter(None, (s.strip() for s in re.split(r"\|(?=[\s=~!])", rest))):
        ok = re.fullmatch(_MATCHER, stage) or re.fullmatch(r'(=|~|!=|!~)\s*"(?:[^"\\]|\\.)*"', stage)
        ok = ok or re.fullmatch(r"(json|logfmt|unpack)(\s.*)?", stage)
        assert ok, f"unrecognised LogQL stage {stage!r} in {query!r}"


_TRACEQL_CONDITION = (
    r'\s*(resource|span|\.)\.?[A-Za-z_][\w.]*\s*(=~|!~|!=|=|>=|<=|>|<)\s*("(?:[^"\\]|\\.)*"|[\w.]+)\s*'
)


def check_traceql(query: str) -> None:
    """A TraceQL spanset filter: { cond (&& | ||) cond ... } with scoped attributes."""
    match = re.fullmatch(r"\{(.*)\}", query.strip())
    assert match, f"TraceQL must be a spanset filter: {query!r}"
    for cond in re.split(r"&&|\|\|", match.group(1)):
        assert re.fullmatch(_TRACEQL_CONDITION, cond), f"unrecognised TraceQL condition {cond!r} in {query!r}"
