"""Bad input to the commands: one line naming the variable/file/port and what was expected, exit 2.

Each case runs the real command in a subprocess and checks its stderr and exit status: no traceback,
nothing lost, and for the worker, nothing dialled the LiveKit server (a listening socket stands where
LiveKit would be and must see no connection).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_services.harness import free_port

REPO = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "SALES_AGENT_", "CRM_", "CALENDAR_", "LIVEKIT_", "DEPLOYMENT_"))
        and not k.endswith("_API_KEY")
    }
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", SALES_AGENT_LOG_LEVEL="WARNING", **extra)
    return env


def _run(*argv: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def _assert_one_line_error(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1, done.stderr[-3000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


@contextlib.contextmanager
def _taken_port() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as holder:  # listening: the port stays taken
        yield holder.getsockname()[1]


@contextlib.contextmanager
def _livekit_stand_in() -> Iterator[tuple[str, socket.socket]]:
    """A listening socket where the LiveKit server would be; ``accept`` tells whether anyone dialled."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.setblocking(False)
        yield f"ws://127.0.0.1:{server.getsockname()[1]}", server


def _nobody_connected(server: socket.socket) -> bool:
    try:
        server.accept()[0].close()
    except BlockingIOError:
        return True
    return False


# --- the worker: a configuration error fails at start, before it registers with LiveKit ----------------


def _worker_env(tmp_path: Path, livekit_url: str, **extra: str) -> dict[str, str]:
    chain = [{"name": "local", "kind": "local", "model": "m", "api_base": "http://127.0.0.1:9/v1"}]
    base = {
        "LIVEKIT_URL": livekit_url,
        "LIVEKIT_API_KEY": "devkey",
        "LIVEKIT_API_SECRET": "secret",
        "SALES_AGENT_LLM_CHAIN": json.dumps(chain),
        "OPENAI_API_KEY": "sk-test",  # the default STT and TTS chains' openai providers
        "CRM_OUTBOX_PATH": str(tmp_path / "outbox.sqlite3"),
    }
    return _env(**{**base, **extra})


def _broken_yaml(tmp_path: Path) -> str:
    path = tmp_path / "llm.yaml"
    path.write_text("chain: [unclosed\n")
    return str(path)


WORKER_CASES = {
    "llm config not YAML": (
        lambda tmp: {"SALES_AGENT_LLM_CONFIG": _broken_yaml(tmp)},
        ("SALES_AGENT_LLM_CONFIG=", "llm.yaml: not valid YAML"),
    ),
    "llm config missing": (
        lambda tmp: {"SALES_AGENT_LLM_CONFIG": str(tmp / "nope.yaml")},
        ("SALES_AGENT_LLM_CONFIG=", "does not exist; expected a YAML file"),
    ),
    "llm chain not JSON": (
        lambda tmp: {"SALES_AGENT_LLM_CHAIN": "openai,gemini"},
        ("SALES_AGENT_LLM_CHAIN: expected JSON", "not valid JSON"),
    ),
    "no provider has its key": (
        lambda tmp: {
            "SALES_AGENT_LLM_CHAIN": '[{"name": "oa", "kind": "openai", "model": "m"}]',
            "OPENAI_API_KEY": "",
        },
        ("No usable LLM provider", "OPENAI_API_KEY"),
    ),
    "redis url malformed": (
        lambda tmp: {"SALES_AGENT_LLM_REDIS_URL": "127.0.0.1:6379"},
        ("SALES_AGENT_LLM_REDIS_URL", "must be a redis://, rediss:// or unix:// URL"),
    ),
    "outbox database unreachable": (
        lambda tmp: {"CRM_OUTBOX_URL": f"postgresql://agent:hunter2@127.0.0.1:{free_port()}/crm"},
        ("cannot use the outbox database postgresql://agent@127.0.0.1:", "CRM_OUTBOX_URL", "refused"),
    ),
    "no STT provider has its key": (
        lambda tmp: {"OPENAI_API_KEY": ""},
        ("No usable STT provider", "(deepgram, openai) lacks its API key", "SALES_AGENT_STT_CHAIN"),
    ),
    "no TTS provider has its key": (
        lambda tmp: {"OPENAI_API_KEY": "", "DEEPGRAM_API_KEY": "dg-test"},
        ("No usable TTS provider", "(cartesia, openai) lacks its API key"),
    ),
    "stt chain not JSON": (
        lambda tmp: {"SALES_AGENT_STT_CHAIN": "deepgram,openai"},
        ("SALES_AGENT_STT_CHAIN: expected JSON", "not valid JSON"),
    ),
    "tts config missing": (
        lambda tmp: {"SALES_AGENT_TTS_CONFIG": str(tmp / "nope.yaml")},
        ("SALES_AGENT_TTS_CONFIG=", "does not exist; expected a YAML file of TTS settings"),
    ),
    "unknown retry override": (
        lambda tmp: {"CRM_RETRY_OVERRIDES": '{"book_meetin": {"retries": 1}}'},
        ("CRM_RETRY_OVERRIDES: unknown operation 'book_meetin'; expected one of",),
    ),
    "ill-typed retry override": (
        lambda tmp: {"CRM_RETRY_OVERRIDES": '{"book_meeting": {"retries": "two"}}'},
        ("CRM_RETRY_OVERRIDES: book_meeting.retries: Input should be a valid integer",),
    ),
    "outbox path is a directory": (
        lambda tmp: {"CRM_OUTBOX_PATH": str(tmp)},
        ("is a directory; expected the agent's outbox file", "CRM_OUTBOX_PATH"),
    ),
    "unknown default tenant": (
        lambda tmp: {"SALES_AGENT_DEFAULT_TENANT": "initech"},
        ("SALES_AGENT_DEFAULT_TENANT=initech: unknown tenant; expected one of acme, globex",),
    ),
}


@pytest.mark.parametrize("case", list(WORKER_CASES))
def test_the_worker_refuses_a_bad_configuration_before_dialling_livekit(tmp_path, case):
    extra, fragments = WORKER_CASES[case]
    with _livekit_stand_in() as (url, livekit):
        done = _run("-m", "agent", "start", env=_worker_env(tmp_path, url, **extra(tmp_path)), timeout=120)
        _assert_one_line_error(done, "sales-agent start: error: ", *fragments)
        assert _nobody_connected(livekit)


@pytest.mark.parametrize("variable", ["SALES_AGENT_HEALTH_PORT", "SALES_AGENT_METRICS_PORT"])
def test_the_worker_refuses_a_taken_port_before_dialling_livekit(tmp_path, variable):
    with _livekit_stand_in() as (url, livekit), _taken_port() as port:
        done = _run(
            "-m", "agent", "start", env=_worker_env(tmp_path, url, **{variable: str(port)}), timeout=120
        )
        _assert_one_line_error(
            done,
            f"{variable}: cannot listen on 127.0.0.1:{port}: the port is already in use",
            "expected a free port",
        )
        assert _nobody_connected(livekit)


def test_the_worker_never_downloads_litellms_cost_map(tmp_path):
    """Outside Docker nothing set LITELLM_LOCAL_MODEL_COST_MAP: litellm fetched its map at import."""
    probe = """
import json, os, sys
import httpx
fetches = []
def no_network(url, *args, **kwargs):
    fetches.append(str(url))
    raise httpx.ConnectError("no network here")
httpx.get = no_network
import livekit.agents.cli as livekit_cli
livekit_cli.run_app = lambda server: None  # stop where the worker would dial LiveKit
from agent.cli import main
status = main(["start"])
from litellm.litellm_core_utils.get_model_cost_map import get_model_cost_map_source_info
info = get_model_cost_map_source_info()
result = {"status": status, "fetches": fetches, "source": info["source"], "forced": info["is_env_forced"]}
print(json.dumps(result))
"""
    env = _worker_env(tmp_path, "ws://127.0.0.1:9")
    env.pop("LITELLM_LOCAL_MODEL_COST_MAP")
    done = _run("-c", probe, env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"status": 0, "fetches": [], "source": "local", "forced": True}


# --- the outbox file -------------------------------------------------------------------------------------


def _foreign_sqlite(path: Path) -> Path:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE contacts (email TEXT, name TEXT)")
        db.execute("INSERT INTO contacts VALUES ('a@example.com', 'Ada')")
        db.commit()
    return path


def _other_outbox(path: Path) -> Path:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE outbox (id INTEGER PRIMARY KEY, body TEXT)")
        db.commit()
    return path


OUTBOX_CASES = {
    "a directory": (lambda tmp: tmp, "is a directory"),
    "not SQLite": (
        lambda tmp: (tmp / "notes.txt", (tmp / "notes.txt").write_text("hello"))[0],
        "not an SQLite database",
    ),
    "another application's database": (
        lambda tmp: _foreign_sqlite(tmp / "crm.sqlite3"),
        "it is another application's SQLite database (tables contacts)",
    ),
    "another outbox schema": (
        lambda tmp: _other_outbox(tmp / "old.sqlite3"),
        "its outbox table lacks columns",
    ),
}


@pytest.mark.parametrize("case", list(OUTBOX_CASES))
def test_the_outbox_command_refuses_an_unusable_outbox_file(tmp_path, case):
    make, fragment = OUTBOX_CASES[case]
    path = make(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    done = _run("-m", "agent", "outbox", "list", env=_env(CRM_OUTBOX_PATH=str(path)), timeout=120)
    _assert_one_line_error(done, f"outbox file {path}: {fragment}", "CRM_OUTBOX_PATH")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing created beside it
    if case == "another application's database":  # and nothing created inside it
        with contextlib.closing(sqlite3.connect(path)) as db:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        assert tables == ["contacts"]


def test_simulate_refuses_an_unusable_outbox_file_before_starting(tmp_path):
    done = _run(
        "-m", "agent", "simulate", "--calls", "1", env=_env(CRM_OUTBOX_PATH=str(tmp_path)), timeout=120
    )
    _assert_one_line_error(done, "sales-agent simulate: error: ", f"outbox file {tmp_path}: is a directory")
    assert "simulate: LLM chain" not in done.stdout


# --- simulate -------------------------------------------------------------------------------------------


def test_markup_in_an_error_is_printed_not_interpreted():
    """``--tenants '[/x]'`` crashed rich's markup parser with a traceback instead of saying what was wrong."""
    done = _run("-m", "agent", "simulate", "--tenants", "[/x]", env=_env(), timeout=120)
    _assert_one_line_error(done, "--tenants: malformed tenant id '[/x]': expected")


@pytest.mark.parametrize("variable", ["SALES_AGENT_HEALTH_PORT", "SALES_AGENT_METRICS_PORT"])
def test_simulate_refuses_a_taken_port(variable):
    with _taken_port() as port:
        done = _run("-m", "agent", "simulate", "--calls", "1", env=_env(**{variable: str(port)}), timeout=180)
    _assert_one_line_error(done, f"{variable}: cannot listen on 127.0.0.1:{port}: the port is already in use")


def test_simulate_llm_flags_that_disagree_are_refused():
    done = _run(
        "-m",
        "agent",
        "simulate",
        "--llm-url",
        "http://127.0.0.1:9",
        "--llm-config",
        "x.yaml",
        env=_env(),
        timeout=60,
    )
    assert done.returncode == 2 and "--llm-url and --llm-config both choose the LLM chain" in done.stderr


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_simulate_uses_the_chain_of_sales_agent_llm_config(tmp_path):
    """It used to start its own two providers whatever SALES_AGENT_LLM_CONFIG said."""
    provider = subprocess.Popen(
        [sys.executable, "-m", "local_services.llm_provider", "--port", "0", "--name", "configured"],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert provider.stderr is not None
        port = None
        for _ in range(200):  # its log line names the bound port
            line = provider.stderr.readline()
            if "/v1" in line:
                port = int(line.rsplit(":", 1)[1].split("/")[0])
                break
        assert port, "llm-provider did not start"
        config = tmp_path / "llm.yaml"
        config.write_text(
            "chain:\n"
            f"  - {{name: configured, kind: local, model: configured-model, api_base: 'http://127.0.0.1:{port}/v1'}}\n"
        )
        done = _run(
            "-m",
            "agent",
            "simulate",
            "--calls",
            "1",
            env=_env(SALES_AGENT_LLM_CONFIG=str(config)),
            timeout=300,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert f"LLM chain configured (SALES_AGENT_LLM_CONFIG={config})" in done.stdout
        assert _get_json(f"http://127.0.0.1:{port}/admin/stats")["chat_requests"] > 0
    finally:
        provider.terminate()
        provider.wait(timeout=30)


# --- the local services -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "prog"),
    [
        (["-m", "agent", "llm-provider"], "llm-provider"),
        (["-m", "agent", "crm-service", "--db", "{tmp}/crm.sqlite3"], "crm-service"),
        (["-m", "local_services.webhook_sink"], "webhook-sink"),
    ],
)
def test_a_local_service_refuses_a_taken_port(tmp_path, argv, prog):
    with _taken_port() as port:
        args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
        done = _run(*args, "--port", str(port), env=_env(OTEL_SDK_DISABLED="true"), timeout=120)
    _assert_one_line_error(
        done, f"{prog}: error: --port: cannot listen on 127.0.0.1:{port}: the port is already in use"
    )
