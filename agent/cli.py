"""``sales-agent``: the LiveKit worker modes plus the project's own commands.

Each command imports only what it needs (livekit-agents ~1.5 s, litellm ~4 s), so the local
providers and ``crm-service`` start fast and ``--help`` is instant.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

# Delegated to livekit's CLI (``cli.run_app``) with our worker options.
WORKER_MODES = ("dev", "start", "console", "connect", "download-files")

USAGE = """\
usage: sales-agent COMMAND [ARGS...]

LiveKit worker (needs LIVEKIT_URL / LIVEKIT_API_KEY / LIVEKIT_API_SECRET, except console):
  dev              run the worker in development mode (hot reload, debug logs)
  start            run the worker in production mode
  console          talk to the agent in this terminal (--text for text mode)
  connect          connect the worker to one room (--room NAME)
  download-files   download the plugins' model files (e.g. silero VAD)

Project commands:
  simulate         scripted text or voice calls through the real agent, offline (see simulate --help)
  llm-provider     local OpenAI-compatible LLM provider with fault injection
  stt-provider     local OpenAI-compatible speech-to-text provider with fault injection
  tts-provider     local OpenAI-compatible text-to-speech provider with fault injection
  crm-service      local CRM + calendar service
  outbox           list queued CRM writes; requeue parked ones (dead letters)

Run `sales-agent COMMAND --help` for a command's options.
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    command, rest = args[0], args[1:]
    if command == "simulate":
        from agent.simulate.command import main as simulate_main

        return simulate_main(rest)
    if command == "llm-provider":
        from local_services.llm_provider import main as llm_provider_main

        llm_provider_main(rest)
        return 0
    if command == "stt-provider":
        from local_services.stt_provider import main as stt_provider_main

        return stt_provider_main(rest)
    if command == "tts-provider":
        from local_services.tts_provider import main as tts_provider_main

        return tts_provider_main(rest)
    if command == "crm-service":
        from local_services.crm_service import main as crm_service_main

        return crm_service_main(rest) or 0
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
