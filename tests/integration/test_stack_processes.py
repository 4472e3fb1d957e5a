"""The compose file's app commands really start and turn healthy — run as local processes, no Docker.

Each service built from our Dockerfile is started with the command, entrypoint and environment
docker-compose.yml gives it; container ports are remapped to free loopback ports (two providers both
listen on 8100 in their containers) and service URLs are rewritten to those ports. Each then has to
pass the image's own healthcheck (deploy/docker/healthcheck.py with the service's HEALTHCHECK_URL).
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from local_services.harness import free_port

_spec = importlib.util.spec_from_file_location(
    "stackcheck", Path(__file__).parents[2] / "deploy/stackcheck.py"
)
stackcheck = importlib.util.module_from_spec(_spec)
sys.modules["stackcheck"] = stackcheck
_spec.loader.exec_module(stackcheck)

HEALTHCHECK = stackcheck.DEPLOY / "docker/healthcheck.py"
# Started in dependency order; the livekit-profile agent needs a LiveKit server and is not run here.
SERVICES = ("llm-primary", "llm-backup", "crm", "notification-sink", "simulate")
STARTUP_DEADLINE_S = 150.0  # all five start at once; a loaded 2-core machine is slow


def container_ports(service: dict) -> set[int]:
    return {int(port) for port in service.get("expose", [])}


def localize(value: str, ports: dict[tuple[str, int], int], own: str) -> str:
    """Rewrite http://svc:PORT and 127.0.0.1:PORT (inside ``own``) to the remapped loopback port."""

    def to_local(match: re.Match[str]) -> str:
        host, port = match.group("host"), int(match.group("port"))
        host = own if host in ("127.0.0.1", "0.0.0.0", "localhost") else host
        return f"127.0.0.1:{ports.get((host, port), port)}"

    return re.sub(r"(?P<host>[a-z0-9.-]+):(?P<port>\d{2,5})", to_local, value)


def process_spec(name: str, service: dict, ports: dict[tuple[str, int], int], tmp: Path):
    entrypoint = service.get("entrypoint") or ["sales-agent"]
    if entrypoint[0] == "python":
        entrypoint = [sys.executable, *entrypoint[1:]]
    else:  # the image's ENTRYPOINT is the console script
        entrypoint = [sys.executable, "-m", "agent", *entrypoint[1:]]
    # A bind mount (./docs/runbooks:/runbooks:ro) is read from the checkout, where it lives.
    mounts = {
        volume.split(":")[1]: str(stackcheck.REPO / volume.split(":")[0])
        for volume in service.get("volumes", [])
        if isinstance(volume, str) and volume.startswith("./")
    }
    argv = []
    command = service.get("command", [])
    for index, arg in enumerate(command):
        previous = command[index - 1] if index else ""
        if previous == "--port":
            arg = str(ports[(name, int(arg))])
        elif previous == "--host":
            arg = "127.0.0.1"
        elif previous == "--db" or arg.startswith("/data/"):
            arg = str(tmp / Path(arg).name)
        elif arg in mounts:
            arg = mounts[arg]
        argv.append(localize(arg, ports, name))
    env = {key: localize(str(value), ports, name) for key, value in service.get("environment", {}).items()}
    for variable in ("SALES_AGENT_HEALTH_PORT", "SALES_AGENT_METRICS_PORT"):
        if variable in env:
            env[variable] = str(ports[(name, int(service["environment"][variable]))])
    for variable, value in env.items():
        if value.startswith("/data/"):
            env[variable] = str(tmp / Path(value).name)
    env |= {"SALES_AGENT_HEALTH_HOST": "127.0.0.1", "SALES_AGENT_METRICS_HOST": "127.0.0.1"}
    # Exports go nowhere here: don't let shutdown wait out the default export/flush timeouts.
    env |= {"SALES_AGENT_EXPORT_TIMEOUT_S": "1", "SALES_AGENT_SHUTDOWN_TIMEOUT_S": "1"}
    return [*entrypoint, *argv], env


@pytest.fixture
def stack(tmp_path):
    services = stackcheck.load_compose(stackcheck.example_env(GRAFANA_ADMIN_PASSWORD="x"))["services"]
    ports = {(name, port): free_port() for name in services for port in container_ports(services[name])}
    # Telemetry goes to a port nothing listens on: exports fail fast, the apps must not care.
    ports[("otel-collector", 4318)] = free_port()
    processes: dict[str, subprocess.Popen] = {}
    logs: dict[str, Path] = {}
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SALES_AGENT_"))}
    try:
        for name in SERVICES:
            argv, env = process_spec(name, services[name], ports, tmp_path)
            logs[name] = tmp_path / f"{name}.log"
            with logs[name].open("wb") as log_file:
                processes[name] = subprocess.Popen(
                    argv,
                    env={**base_env, **env},
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    cwd=stackcheck.REPO,
                )
        yield services, ports, processes, logs
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def healthcheck(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK)],
        env={**os.environ, "HEALTHCHECK_URL": url},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_compose_app_services_start_and_pass_their_healthcheck(stack):
    services, ports, processes, logs = stack
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    for name in SERVICES:
        url = localize(services[name]["environment"]["HEALTHCHECK_URL"], ports, name)
        while True:
            process = processes[name]
            assert process.poll() is None, f"{name} exited:\n{logs[name].read_text()[-3000:]}"
            result = healthcheck(url)
            if result.returncode == 0:
                break
            assert time.monotonic() < deadline, (
                f"{name} never healthy at {url}:\n{logs[name].read_text()[-3000:]}"
            )
            time.sleep(0.5)
    # simulate's /metrics (scraped for liveness) answers on its metrics port too.
    metrics_port = ports[("simulate", int(services["simulate"]["environment"]["SALES_AGENT_METRICS_PORT"]))]
    response = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
    assert response.status_code == 200


def test_healthcheck_script_fails_on_an_unreachable_or_failing_url():
    result = healthcheck(f"http://127.0.0.1:{free_port()}/health")
    assert result.returncode == 1 and "unhealthy" in result.stderr
