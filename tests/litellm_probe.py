"""Which LiteLLM calls reached LiteLLM's success callbacks: its end-of-stream bookkeeping ran."""

from __future__ import annotations

from typing import Any

import litellm
from litellm.integrations.custom_logger import CustomLogger

MARK = "[stream-tail test]"  # in the user's message: the probe ignores other calls (the warm-up's)


class SuccessProbe(CustomLogger):
    def __init__(self) -> None:
        super().__init__()
        self.completion_tokens: list[int] = []

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:  # LiteLLM passes these by name
        if MARK in str(kwargs.get("messages")):
            self.completion_tokens.append(response_obj.usage.completion_tokens)


_PROBE = SuccessProbe()


def registered_probe() -> SuccessProbe:
    """The probe, registered and emptied. One probe for the process: LiteLLM copies its callbacks
    into lists of its own (one instance per class), so a removed probe would still be called."""
    if _PROBE not in litellm.callbacks:
        litellm.callbacks.append(_PROBE)
    _PROBE.completion_tokens.clear()
    return _PROBE
