"""``sales-agent``: the LiveKit worker modes, the project's own commands and the local stand-ins.

Each command imports only what it needs (livekit-agents ~1.5 s, litellm ~4 s), so the stand-ins
(``local_services.STAND_INS``: ``llm-provider``, ``crm-service`` ...) start fast and ``--help`` is
instant. Every command builds its own settings from the environment; a configuration problem
(``ConfigError``: a bad variable, an unusable file, a taken port) is one line on stderr and exit
status 2.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable, Sequence

from local_services import STAND_INS

# Delegated to livekit's CLI (``cli.run_app``) with our worker options.
WORKER_MODES = ("dev", "start", "console", "connect", "download-files")

_USAGE = """\
usage: sales-agent COMMAND [ARGS...]

LiveKit worker (needs LIVEKIT_URL / LIVEKIT_API_KEY / LIVEKIT_API_SECRET, except console):
  dev              run the worker in development mode (hot reload, debug logs)
  start            run the worker in production mode
  console          talk to the agent in this terminal (--text for text mode)
  connect          connect the worker to one room (--room NAME)
  download-files   download the plugins' model files (e.g. silero VAD)

Project commands:
  simulate         scripted text or voice calls through the real agent, offline (see simulate --help)
  outbox           list queued CRM writes; requeue parked ones (dead letters)
  gameday          fault scenarios against a real Prometheus + Alertmanager, measured (minutes long)

Local stand-ins for the dependencies (--port 0 picks a free port, announced as "READY <port>"):
{stand_ins}
Run `sales-agent COMMAND --help` for a command's options.
"""
USAGE = _USAGE.format(
    stand_ins="".join(f"  {name:<16} {stand_in.summary}\n" for name, stand_in in STAND_INS.items())
)


def prepare_process_environment() -> None:
    """Before anything imports litellm: use its bundled model cost map, never a download at import.

    litellm fetches the map from GitHub when it is imported unless ``LITELLM_LOCAL_MODEL_COST_MAP`` is
    set (a network call at every start, and a warning when offline). An operator's own value wins.
    Job processes (livekit's ``process`` executor) inherit the variable.
    """
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def main(argv: Sequence[str] | None = None) -> int:
    from telemetry.config_errors import run_main

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    prepare_process_environment()
    command, rest = args[0], args[1:]
    run = _command(command, rest)
    if run is None:
        print(f"sales-agent: unknown command {command!r}\n", file=sys.stderr)
        print(USAGE, end="", file=sys.stderr)
        return 2
    return run_main(f"sales-agent {command}", run)


def console_main() -> None:
    """The ``sales-agent`` console script and ``python -m agent``: ``main``, then exit quickly.

    Everything is closed and flushed when ``main`` returns; freezing the heap spares the interpreter's
    last garbage collections a walk over the ~300 MB of modules a command loads (litellm, livekit),
    about 1 s of the exit time (``bench/bench_exit.py``).
    """
    status = main()
    gc.freeze()
    sys.exit(status)


def _command(command: str, rest: list[str]) -> Callable[[], int | None] | None:
    if command == "simulate":
        from agent.simulate.command import main as simulate_main

        return lambda: simulate_main(rest)
    if command in STAND_INS:
        import importlib

        stand_in = importlib.import_module(STAND_INS[command].module)
        return lambda: stand_in.main(rest)
    if command == "outbox":
        from agent.crm.outbox_command import main as outbox_main

        return lambda: outbox_main(rest)
    if command == "gameday":
        from agent.gameday.command import main as gameday_main

        return lambda: gameday_main(rest)
    if command in WORKER_MODES:
        from agent.worker import run_worker

        return lambda: run_worker([command, *rest])
    return None


if __name__ == "__main__":
    console_main()
