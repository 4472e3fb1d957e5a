"""Classification of provider failures into bounded error.type / fallback.reason codes."""

from __future__ import annotations

import json

import httpx

from agent.llm.errors import ProviderAttemptError, classify


class _StatusError(Exception):
    def __init__(self, status_code: int, message: str = "boom", headers: dict | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.litellm_response_headers = httpx.Headers(headers or {})


def _chained(outer: Exception, inner: BaseException) -> Exception:
    outer.__cause__ = inner
    return outer


def test_codes_and_reasons():
    assert classify(_StatusError(503)).error_type == "http_5xx"
    limited = classify(_StatusError(429, headers={"Retry-After": "12"}))
    assert (limited.error_type, limited.reason, limited.retry_after_s) == ("http_429", "rate_limited", 12.0)
    assert (
        classify(_StatusError(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})).retry_after_s
        is None
    )
    assert classify(_StatusError(401)).error_type == "http_401"
    assert classify(_StatusError(400)).reason == "http_4xx"
    assert classify(_StatusError(500, "Connection error.")).error_type == "connect_error"
    refused = _chained(RuntimeError("x"), httpx.ConnectError("refused"))
    assert classify(refused).error_type == "connect_error"
    dropped = _chained(RuntimeError("x"), httpx.RemoteProtocolError("incomplete chunked read"))
    assert classify(dropped).error_type == "stream_dropped"
    garbage = _chained(RuntimeError("x"), json.JSONDecodeError("Expecting value", "<html>", 0))
    assert classify(garbage).reason == "malformed_response"
    cut = classify(ProviderAttemptError("p", "first_token_timeout", "no token"))
    assert (cut.error_type, cut.reason, cut.status_code) == ("first_token_timeout", "timeout", 408)
    assert classify(ValueError("?")).error_type == "error"
