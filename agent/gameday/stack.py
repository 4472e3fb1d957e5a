"""The processes of a game day, on loopback with free ports and one work directory.

Two ``simulate --forever`` text agents (instances a and b) and one ``simulate --mode voice --forever``
agent (instance voice: real caller audio, Silero VAD, STT and TTS over HTTP) export OTLP to a Collector
stand-in (``sales-agent otlp-sink``, which keeps every body for the PII scan) and serve ``/metrics``;
they call two local LLM providers and the local CRM, the voice agent also a primary and a backup
local STT provider and TTS provider (``sales-agent stt-provider`` / ``tts-provider``). Prometheus (the
Debian binary) scrapes the agents and the stand-in and evaluates the repo's rules with the external
labels and alert relabelling of the repo's ``deploy/prometheus/prometheus.yml``; Alertmanager runs the
repo's template rendered with every receiver pointing at the local notification sink, which also
serves the runbooks the alerts link to.
Faults are switched through the services' admin endpoints, by killing processes, or by CPU burners.

The voice agent is light on purpose: voice calls run at real time and the VAD costs CPU on every
call, so a few concurrent calls in small batches (``StackConfig.voice_*``) keep the voice path's
metrics flowing (STT/TTS requests, fallbacks, the caller's wait) without loading the host the other
scenarios judge (bench/RESULTS.md, the game day, has the CPU it adds).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent.vocabulary.local_providers import DEFAULT_LOCAL_PROVIDERS
from local_services.harness import free_port

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "alert-rules"
RUNBOOKS_DIR = REPO / "docs" / "runbooks"
PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
ALERTMANAGER_DIR = REPO / "deploy" / "alertmanager"
# A secret the agents hold (the CRM API key); the scan fails the run if it appears in any export.
CANARY_SECRET = "sk-gameday-canary-9f8e7d6c5b4a39281706"
LLM_PROVIDERS = DEFAULT_LOCAL_PROVIDERS
# The speech chains, each a primary and a backup stand-in (in fallback order), as simulate starts them.
SPEECH_KINDS = ("stt", "tts")
SPEECH_PROVIDERS = DEFAULT_LOCAL_PROVIDERS
AGENTS = ("a", "b")
VOICE_AGENT = "agent-voice"


class StackError(RuntimeError):
    """A process of the stack did not start (its log's tail is in the message)."""


def http_json(url: str, payload: Any | None = None, timeout_s: float = 5.0) -> Any:
    """urllib on purpose: the game day observes; an instrumented client would add telemetry of its own."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        body = response.read()
    return json.loads(body) if body else None


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 200 <= response.status < 300
    except OSError:
        return False


@dataclass
class ManagedProcess:
    """One child process: started with its output in ``log_path``, ready when ``ready_url`` answers."""

    name: str
    argv: list[str]
    log_path: Path
    ready_url: str | None = None
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, ready_timeout_s: float = 120.0) -> None:
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=REPO,
                start_new_session=True,
            )
        if self.ready_url is None:
            return
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if _answers(self.ready_url):
                return
            time.sleep(0.5)
        tail = self.log_path.read_text(errors="replace")[-3000:]
        self.stop()
        raise StackError(f"{self.name} did not start ({self.argv[0]} ...):\n{tail}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would: no cleanup, no flush."""
        if self.running:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> None:
        if not self.running:
            return
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@dataclass
class StackConfig:
    workdir: Path
    scrape_interval_s: int = 15
    calls_per_batch: int = 3
    concurrency: int = 2
    batch_interval_s: float = 1.0
    # The voice agent: concurrent calls (0: no voice agent and no speech stand-ins), calls per batch,
    # seconds between batches, and the one tenant its calls are for. One tenant: the STT/TTS failure
    # ratios are per tenant with a floor of 10 utterances (sentences) in 2 minutes; with every STT
    # provider down each call ends at its first line, ~12 s in (measured: 4 calls, 2 at a time, took
    # 34 s), i.e. ~9 failed utterances a minute here, which two tenants' halves would not reach.
    voice_concurrency: int = 2
    voice_calls_per_batch: int = 4
    voice_batch_interval_s: float = 2.0
    voice_tenant: str = "acme"
    # The operator's environment (the entry point reads it): children inherit it, minus the telemetry,
    # agent and CRM settings the game day sets itself.
    environ: Mapping[str, str] = field(default_factory=dict)


# Variable prefixes the game day sets for its children: telemetry (every child), the agent and its CRM
# client (the agents).
_SERVICE_VARIABLES = ("OTEL_", "SALES_AGENT_", "DEPLOYMENT_ENVIRONMENT")
_AGENT_VARIABLES = (*_SERVICE_VARIABLES, "CRM_")


def _require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise StackError(f"{binary} is not installed (Debian packages prometheus, prometheus-alertmanager)")
    return path


class GamedayStack:
    """Starts, faults, recovers and stops every process of the game day."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.workdir = config.workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logs = self.workdir / "logs"
        self.logs.mkdir(exist_ok=True)
        self.bodies = self.workdir / "otlp-bodies"
        self.processes: dict[str, ManagedProcess] = {}
        self.burners: list[ManagedProcess] = []
        self.ports: dict[str, int] = {}
        self.llm_provider_names = LLM_PROVIDERS
        self.speech_provider_names = SPEECH_PROVIDERS if config.voice_concurrency > 0 else ()

    @property
    def voice(self) -> bool:
        """Does this stack carry voice calls (the speech scenarios need them)?"""
        return bool(self.speech_provider_names)

    # --- addresses ------------------------------------------------------------------------------
    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @property
    def prometheus_url(self) -> str:
        return self.url("prometheus")

    @property
    def alertmanager_url(self) -> str:
        return self.url("alertmanager")

    @property
    def notifications_url(self) -> str:
        return self.url("notifications")

    def agent_instance(self, index: int) -> str:
        return f"127.0.0.1:{self.ports[f'agent-{AGENTS[index]}']}"

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        prometheus_bin = _require("prometheus")
        alertmanager_bin = _require("prometheus-alertmanager")
        for name in ("prometheus", "alertmanager"):
            self.ports[name] = free_port()
        self.start_services()
        for index in range(len(AGENTS)):
            self._start_agent(index)
        if self.voice:
            self.start_voice_agent()
        self._spawn(
            "alertmanager",
            [alertmanager_bin, f"--config.file={self._alertmanager_config()}",
             f"--storage.path={self.workdir / 'am-data'}",
             f"--web.listen-address=127.0.0.1:{self.ports['alertmanager']}",
             "--cluster.listen-address=", "--log.level=warn"],
            f"{self.alertmanager_url}/-/ready",
        )  # fmt: skip
        self._spawn(
            "prometheus",
            [prometheus_bin, f"--config.file={self._prometheus_config()}",
             f"--storage.tsdb.path={self.workdir / 'prom-data'}",
             f"--web.listen-address=127.0.0.1:{self.ports['prometheus']}", "--log.level=warn"],
            f"{self.prometheus_url}/-/ready",
        )  # fmt: skip

    def start_services(self) -> None:
        """What the agents call and export to: the Collector stand-in, the LLM providers, the CRM, the
        notification sink and (with voice traffic) the STT and TTS stand-ins."""
        for name in (*LLM_PROVIDERS, "crm", "collector", "notifications"):
            self.ports[name] = free_port()
        for agent in AGENTS:
            self.ports[f"agent-{agent}"] = free_port()
        py = [sys.executable, "-m"]
        self.start_collector()
        for provider in LLM_PROVIDERS:
            self._spawn(
                f"llm-{provider}",
                [*py, "agent", "llm-provider", "--port", str(self.ports[provider]), "--name", provider],
                f"{self.url(provider)}/v1/models",
                env=self._service_env(f"llm-provider-{provider}"),
            )
        self._spawn(
            "crm",
            [*py, "agent", "crm-service", "--port", str(self.ports["crm"]),
             "--db", str(self.workdir / "crm.db")],
            f"{self.url('crm')}/healthz",
            env=self._service_env("crm-service"),
        )  # fmt: skip
        self._spawn(
            "notifications",
            [*py, "agent", "webhook-sink", "--port", str(self.ports["notifications"]),
             "--keep", "100000", "--runbooks", str(RUNBOOKS_DIR)],
            f"{self.notifications_url}/health",
        )  # fmt: skip
        self.start_speech_providers()

    def start_speech_providers(self) -> None:
        """The voice agent's STT and TTS stand-ins, primary and backup of each (none without voice)."""
        for kind, provider in self._speech_services():
            name = f"{kind}-{provider}"
            self.ports[name] = free_port()
            self._spawn(
                name,
                [sys.executable, "-m", "agent", f"{kind}-provider", "--port", str(self.ports[name]),
                 "--name", provider],
                f"{self.url(name)}/admin/stats",
                env=self._service_env(f"{kind}-provider-{provider}"),
            )  # fmt: skip

    def stop(self) -> None:
        self.stop_cpu_burners()
        # Reverse start order; agents get SIGINT (simulate's clean stop, telemetry flushed).
        for name in reversed(list(self.processes)):
            process = self.processes[name]
            process.stop(signal.SIGINT if name.startswith("agent-") else signal.SIGTERM)

    def __enter__(self) -> GamedayStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- faults ---------------------------------------------------------------------------------
    def set_llm_fault(self, provider: str, mode: str) -> None:
        http_json(f"{self.url(provider)}/admin/fault", {"mode": mode})

    def set_crm_fault(self, mode: str, **options: object) -> None:
        http_json(f"{self.url('crm')}/admin/fault", {"mode": mode, **options})

    def set_speech_fault(self, kind: str, provider: str, mode: str) -> None:
        """``kind`` stt or tts; every request of that stand-in answers ``mode`` until set back to ok."""
        if (kind, provider) not in self._speech_services():
            raise StackError(f"no {kind} provider {provider!r} in this stack (voice traffic is off?)")
        http_json(f"{self.url(f'{kind}-{provider}')}/admin/fault", {"mode": mode})

    def kill_agent(self, index: int) -> None:
        self.processes[f"agent-{AGENTS[index]}"].kill()

    def restart_agent(self, index: int) -> None:
        self._start_agent(index)

    def stop_collector(self) -> None:
        self.processes["collector"].kill()

    def start_collector(self) -> None:
        self._spawn(
            "collector",
            [sys.executable, "-m", "agent", "otlp-sink", "--port", str(self.ports["collector"]),
             "--keep-bodies", str(self.bodies)],
            f"{self.url('collector')}/metrics",
        )  # fmt: skip

    def start_cpu_burners(self, count: int | None = None) -> None:
        """One busy loop per logical CPU: the host is saturated whatever else runs on it."""
        for index in range(count or os.cpu_count() or 1):
            burner = ManagedProcess(
                f"cpu-burner-{index}", [sys.executable, "-c", "while True: pass"], self.logs / "burners.log"
            )
            burner.start()
            self.burners.append(burner)

    def stop_cpu_burners(self) -> None:
        for burner in self.burners:
            burner.kill()
        self.burners.clear()

    # --- internals ------------------------------------------------------------------------------
    def _spawn(
        self, name: str, argv: list[str], ready_url: str | None, env: dict[str, str] | None = None
    ) -> None:
        process = ManagedProcess(name, argv, self.logs / f"{name}.log", ready_url, env)
        process.start()
        self.processes[name] = process

    def _service_env(self, service_name: str) -> dict[str, str]:
        """The local services export to the Collector stand-in too: their spans are scanned as well."""
        env = {k: v for k, v in self.config.environ.items() if not k.startswith(_SERVICE_VARIABLES)}
        return {
            **env,
            "OTEL_SERVICE_NAME": service_name,
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.url("collector"),
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "SALES_AGENT_DEPLOYMENT_ENVIRONMENT": "gameday",
        }

    def _speech_services(self) -> list[tuple[str, str]]:
        return [(kind, provider) for kind in SPEECH_KINDS for provider in self.speech_provider_names]

    def _agent_env(self, index: int) -> dict[str, str]:
        return self._simulate_env(f"agent-{AGENTS[index]}")

    def _simulate_env(self, name: str) -> dict[str, str]:
        """A simulate agent's environment: its own instance id, /metrics port and outbox."""
        env = {k: v for k, v in self.config.environ.items() if not k.startswith(_AGENT_VARIABLES)}
        return {
            **env,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "OTEL_SERVICE_NAME": "sales-agent",
            "OTEL_RESOURCE_ATTRIBUTES": f"service.instance.id={name}",
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.url("collector"),
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_METRIC_EXPORT_INTERVAL": "10000",
            "SALES_AGENT_DEPLOYMENT_ENVIRONMENT": "gameday",
            "SALES_AGENT_LOG_LEVEL": "INFO",
            "SALES_AGENT_METRICS_PORT": str(self.ports[name]),
            "SALES_AGENT_HEALTH_PORT": "0",
            "CRM_OUTBOX_PATH": str(self.workdir / f"outbox-{name}.sqlite3"),
            "CRM_API_KEY": CANARY_SECRET,
        }

    def _dependency_args(self) -> list[str]:
        return [
            *[arg for provider in LLM_PROVIDERS for arg in ("--llm-url", f"{self.url(provider)}/v1")],
            "--crm-url", self.url("crm"),
        ]  # fmt: skip

    def _start_agent(self, index: int) -> None:
        agent = AGENTS[index]
        c = self.config
        argv = [
            sys.executable, "-m", "agent", "simulate", "--forever",
            "--calls", str(c.calls_per_batch), "--concurrency", str(c.concurrency),
            "--interval", str(c.batch_interval_s), *self._dependency_args(),
        ]  # fmt: skip
        metrics = f"http://127.0.0.1:{self.ports[f'agent-{agent}']}/metrics"
        self._spawn(f"agent-{agent}", argv, metrics, env=self._agent_env(index))

    def voice_agent_argv(self) -> list[str]:
        c = self.config
        return [
            sys.executable, "-m", "agent", "simulate", "--mode", "voice", "--forever",
            "--calls", str(c.voice_calls_per_batch), "--concurrency", str(c.voice_concurrency),
            "--interval", str(c.voice_batch_interval_s), "--tenants", c.voice_tenant,
            *self._dependency_args(),
            *[arg for p in self.speech_provider_names for arg in ("--stt-url", self.url(f"stt-{p}"))],
            *[arg for p in self.speech_provider_names for arg in ("--tts-url", self.url(f"tts-{p}"))],
        ]  # fmt: skip

    def start_voice_agent(self) -> None:
        """``simulate --mode voice --forever`` against the stack's services; ready once /metrics answers."""
        self.ports[VOICE_AGENT] = free_port()
        metrics = f"http://127.0.0.1:{self.ports[VOICE_AGENT]}/metrics"
        self._spawn(VOICE_AGENT, self.voice_agent_argv(), metrics, env=self._simulate_env(VOICE_AGENT))

    def _alertmanager_config(self) -> Path:
        out = self.workdir / "alertmanager.yml"
        hook = self.notifications_url
        env = {
            "PATH": self.config.environ.get("PATH", "/usr/bin:/bin"),
            "ALERTMANAGER_PAGER_WEBHOOK_URL": f"{hook}/pager",
            "ALERTMANAGER_CHAT_WEBHOOK_URL": f"{hook}/chat",
            "ALERTMANAGER_LOW_WEBHOOK_URL": f"{hook}/low",
        }
        subprocess.run(
            [
                "sh",
                str(ALERTMANAGER_DIR / "render.sh"),
                str(ALERTMANAGER_DIR / "alertmanager.yml.tmpl"),
                str(out),
            ],
            env=env,
            check=True,
            timeout=30,
        )
        return out

    def _prometheus_config(self) -> Path:
        """The repo's external labels and alert relabelling, the repo's rules, this stack's targets."""
        repo = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
        labels = dict(repo["global"].get("external_labels") or {})
        labels["runbook_base"] = f"{self.notifications_url}/runbooks/"
        interval = f"{self.config.scrape_interval_s}s"
        agents = [self.agent_instance(i) for i in range(len(AGENTS))]
        if self.voice:
            agents.append(f"127.0.0.1:{self.ports[VOICE_AGENT]}")
        config = {
            "global": {
                "scrape_interval": interval,
                "evaluation_interval": interval,
                "external_labels": labels,
            },
            "rule_files": [str(path) for path in sorted(RULES_DIR.glob("*.rules.yml"))],
            "alerting": {
                "alert_relabel_configs": repo["alerting"].get("alert_relabel_configs", []),
                "alertmanagers": [
                    {"static_configs": [{"targets": [f"127.0.0.1:{self.ports['alertmanager']}"]}]}
                ],
            },
            "scrape_configs": [
                {"job_name": "sales-agent", "static_configs": [{"targets": agents}]},
                {
                    "job_name": "otel-collector",
                    "static_configs": [{"targets": [f"127.0.0.1:{self.ports['collector']}"]}],
                },
            ],
        }
        out = self.workdir / "prometheus.yml"
        out.write_text(yaml.safe_dump(config, sort_keys=False))
        return out
