"""stdlib ``logging`` -> OTel logs, plus one human line per record on stderr.

Records emitted inside a span carry its trace and span id (the OTel handler takes them from the
current context). OTel's own diagnostics (``opentelemetry.*`` loggers) and anything logged while
the SDK is exporting are kept off the OTel pipeline: logging "export failed" through the failing
exporter would feed itself. They still reach stderr.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from typing import TextIO

from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler

from telemetry.redaction import Redactor

_MARK = "_sales_agent_telemetry"


class OTelBridgeHandler(LoggingHandler):
    """The SDK's LoggingHandler minus the records that must not be exported through OTel."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("opentelemetry") or not is_instrumentation_enabled():
            return
        super().emit(record)


class HumanFormatter(logging.Formatter):
    """``2026-11-29T03:40:01.123Z INFO  agent.crm trace=<32 hex> span=<16 hex> message`` - one line.

    Newlines (tracebacks, multi-line messages) are escaped so one record is one line for any log
    shipper; the full stack trace also travels as ``exception.stacktrace`` on the OTel record.
    """

    def __init__(self, redactor: Redactor | None) -> None:
        super().__init__()
        self._redactor = redactor

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        ctx = trace.get_current_span().get_span_context()
        ids = f"trace={trace.format_trace_id(ctx.trace_id)} span={trace.format_span_id(ctx.span_id)}"
        if not ctx.is_valid:
            ids = "trace=- span=-"
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        elif record.exc_text:
            message = f"{message}\n{record.exc_text}"
        if self._redactor is not None:
            message = self._redactor.text(message)
        line = f"{self.formatTime(record)} {record.levelname:<5} {record.name} {ids} {message}"
        return line.replace("\r", "\\r").replace("\n", "\\n")


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is *now* (test runners swap it), like logging.lastResort."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def setup_logging(
    *,
    level: str,
    logger_provider: LoggerProvider | None,
    redactor: Redactor | None,
    quiet_loggers: tuple[str, ...] = (),
    stderr: bool = True,
) -> list[logging.Handler]:
    """Attach the stderr handler (and the OTel bridge when a provider is given) to the root logger.

    Idempotent: handlers installed by an earlier call are replaced, not duplicated.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(handler)
    handlers: list[logging.Handler] = []
    if stderr:
        human = StderrHandler()
        human.setFormatter(HumanFormatter(redactor))
        handlers.append(human)
    if logger_provider is not None:
        with warnings.catch_warnings():
            # The SDK handler is deprecated in favour of opentelemetry-instrumentation-logging, which is
            # not a dependency here; the SDK one is what 1.45 ships and it works.
            warnings.simplefilter("ignore", DeprecationWarning)
            handlers.append(OTelBridgeHandler(logger_provider=logger_provider))
    for handler in handlers:
        setattr(handler, _MARK, True)
        root.addHandler(handler)
    root.setLevel(level.upper())
    for name in quiet_loggers:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handlers


def remove_logging(handlers: list[logging.Handler]) -> None:
    root = logging.getLogger()
    for handler in handlers:
        root.removeHandler(handler)
