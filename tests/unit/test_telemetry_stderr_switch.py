"""The human stderr handler can be switched off (LiveKit worker modes print records themselves)."""

import logging

from telemetry.logs import StderrHandler, remove_logging, setup_logging


def test_stderr_handler_off_keeps_only_the_otel_bridge(otel):
    provider = otel.telemetry.logger_provider
    root = logging.getLogger()
    original = list(root.handlers)
    handlers = setup_logging(level="INFO", logger_provider=provider, redactor=None, stderr=False)
    try:
        assert handlers and not any(isinstance(h, StderrHandler) for h in handlers)
        assert not any(isinstance(h, StderrHandler) for h in logging.getLogger().handlers)
        logging.getLogger("stderr-switch").warning("still exported")
        assert any("still exported" in str(r.log_record.body) for r in otel.logs())
    finally:
        # Back to the process-wide handlers the other tests expect (setup_logging replaced them).
        remove_logging(handlers)
        for handler in original:
            if handler not in root.handlers:
                root.addHandler(handler)
