"""The health server's protocol logger: malformed requests cost one rate-limited line, never a traceback.

aiohttp answers a request it cannot parse (bad Content-Length, a header line over 8 KB, TLS on a
plain port...) with 400, then logs ``Error handling request`` at ERROR with the parser's traceback on
its server logger. On the health port that is a log flood anyone who can reach the port can cause,
exported to Loki like every record. aiohttp takes the server logger as a parameter (``AppRunner(...,
logger=...)``), so this adapter replaces it: a parse error becomes at most one WARNING per interval
without a traceback (the rest are counted and reported with the next line); any other error, a bug in
a handler, is still logged in full.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, MutableMapping
from typing import Any

from aiohttp.http import HttpProcessingError


class ProtocolErrorLogger(logging.LoggerAdapter[logging.Logger]):
    def __init__(
        self,
        logger: logging.Logger,
        *,
        what: str,
        interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(logger, {})
        self._what = what
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last: float | None = None
        self._suppressed = 0

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        return msg, kwargs

    def _malformed(self, exc: HttpProcessingError) -> None:
        with self._lock:
            now = self._clock()
            if self._last is not None and now - self._last < self._interval_s:
                self._suppressed += 1
                return
            suppressed, self._suppressed, self._last = self._suppressed, 0, now
        first_line = (exc.message or "").strip().splitlines()[:1]
        also = f" ({suppressed} more since the last line)" if suppressed else ""
        self.logger.warning(
            "%s: answered %s to a malformed request: %s%s",
            self._what,
            exc.code,
            first_line[0] if first_line else type(exc).__name__,
            also,
        )

    def exception(self, msg: Any, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            self._malformed(exc_info)
            return
        super().exception(msg, *args, exc_info=exc_info, **kwargs)

    def debug(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        # aiohttp logs non-HTTP traffic (BadHttpMethod) at debug with the traceback: keep it one line.
        exc = kwargs.get("exc_info")
        if isinstance(exc, HttpProcessingError):
            kwargs["exc_info"] = None
            msg = f"{msg}: {type(exc).__name__}"
        super().debug(msg, *args, **kwargs)
