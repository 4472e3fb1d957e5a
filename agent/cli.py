"""``sales-agent``: the LiveKit worker modes, the project's own commands and the local stand-ins.

Each command imports only what it needs (livekit-agents ~1.5 s, litellm ~4 s), so the stand-ins
(``local_services.STAND_INS``: ``llm-provider``, ``crm-service`` ...) start fast and ``--help`` is
instant.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

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

Local stand-ins for the dependencies (--port 0 picks a free port, announced as "READY <port>"):
{stand_ins}
Run `sales-agent COMMAND --help` for a command's options.
"""
USAGE = _USAGE.format(
    stand_ins="".join(f"  {name:<16} {stand_in.summary}\n" for name, stand_in in STAND_INS.items())
)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    command, rest = args[0], args[1:]
    if command == "simulate":
        from agent.simulate.command import main as simulate_main

        return simulate_main(rest)
    if command in STAND_INS:
        import importlib

        return importlib.import_module(STAND_INS[command].module).main(rest)
    if command == "outbox":
        from agent.crm.outbox_command import main as outbox_main

        return outbox_main(rest)
    if command in WORKER_MODES:
        from agent.worker import run_worker

        run_worker([command, *rest])
        return 0
    print(f"sales-agent: unknown command {command!r}\n", file=sys.stderr)
    print(USAGE, end="", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
