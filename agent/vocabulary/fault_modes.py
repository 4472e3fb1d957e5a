"""The faults the local stand-ins can inject (``POST /admin/fault {"mode": ...}``, ``simulate --faults``).

LLM provider (``local_services/llm_provider.py``): ``ok``; ``500``; ``429`` (with Retry-After);
``hang`` (never answers); ``slow_first_token`` (headers at once, the first chunk late);
``drop_mid_stream`` (the connection is cut after some chunks); ``garbage`` (a 200 that is not JSON).

CRM + calendar (``local_services/crm_service.py``): ``ok``; ``down`` (503, or a dropped connection);
``slow`` (answers late); ``500``; ``429`` (with Retry-After).

TTS provider (``local_services/tts_provider.py``): ``ok``; ``500``; ``429`` (with Retry-After); ``hang``;
``slow_first_byte`` (the answer late); ``drop_mid_stream`` (part of the audio, then the connection is
cut); ``garbage`` (a 200 that is not audio). STT provider (``local_services/stt_provider.py``): the
same, ``garbage`` being a 200 that is not JSON, plus ``empty`` (a valid answer with no words).

OTLP sink (``local_services/otlp_sink.py``): ``ok``; ``hang`` (accepts and never answers).
Notification sink (``local_services/webhook_sink.py``): ``ok``; ``500``.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

LlmFaultMode = Literal["ok", "500", "429", "hang", "slow_first_token", "drop_mid_stream", "garbage"]
CrmFaultMode = Literal["ok", "down", "slow", "500", "429"]
TtsFaultMode = Literal["ok", "500", "429", "hang", "slow_first_byte", "drop_mid_stream", "garbage"]
SttFaultMode = Literal[TtsFaultMode, "empty"]
OtlpSinkFaultMode = Literal["ok", "hang"]
WebhookSinkFaultMode = Literal["ok", "500"]

LLM_FAULT_MODES: Final[tuple[str, ...]] = get_args(LlmFaultMode)
CRM_FAULT_MODES: Final[tuple[str, ...]] = get_args(CrmFaultMode)
TTS_FAULT_MODES: Final[tuple[str, ...]] = get_args(TtsFaultMode)
STT_FAULT_MODES: Final[tuple[str, ...]] = (*TTS_FAULT_MODES, "empty")
OTLP_SINK_FAULT_MODES: Final[tuple[str, ...]] = get_args(OtlpSinkFaultMode)
WEBHOOK_SINK_FAULT_MODES: Final[tuple[str, ...]] = get_args(WebhookSinkFaultMode)
