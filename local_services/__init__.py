"""Local stand-ins for the agent's dependencies, one shape for all (the contract: ``README.md`` here).

``STAND_INS`` is the registry: the ``sales-agent`` subcommand of each stand-in, the module whose
``main(argv)`` runs it and a one-line summary for ``sales-agent --help``. The CLI dispatches from it,
the tests run every entry as a process, and a new stand-in is one line here plus its module. This
module imports nothing, so the CLI stays fast.
"""

from __future__ import annotations

from typing import NamedTuple


class StandIn(NamedTuple):
    module: str
    summary: str


STAND_INS: dict[str, StandIn] = {
    "llm-provider": StandIn(
        "local_services.llm_provider", "local OpenAI-compatible LLM provider with fault injection"
    ),
    "stt-provider": StandIn(
        "local_services.stt_provider", "local OpenAI-compatible speech-to-text provider with fault injection"
    ),
    "tts-provider": StandIn(
        "local_services.tts_provider", "local OpenAI-compatible text-to-speech provider with fault injection"
    ),
    "crm-service": StandIn("local_services.crm_service", "local CRM + calendar service"),
    "webhook-sink": StandIn("local_services.webhook_sink", "local Alertmanager notification sink"),
    "otlp-sink": StandIn(
        "local_services.otlp_sink", "local OTLP receiver (HTTP and gRPC) that decodes and counts"
    ),
}
