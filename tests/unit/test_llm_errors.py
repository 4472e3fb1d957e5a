"""What the LLM chain makes of a failed attempt: the shared error.type, its fallback.reason family and the
status handed to LiteLLM's cooldown store. The exception chains are the ones LiteLLM 1.110 raises
(recorded against the local provider's faults; LiteLLM links them with ``__context__``)."""

from __future__ import annotations

import itertools

import httpx
import openai

from agent.llm.errors import ProviderAttemptError, classify_attempt

REQUEST = httpx.Request("POST", "http://127.0.0.1:1/v1/chat/completions")


def _wrapped(*layers: BaseException) -> BaseException:
    """``layers[0]`` raised while handling ``layers[1]``, raised while handling ``layers[2]``..."""
    for outer, inner in itertools.pairwise(layers):
        outer.__context__ = inner
    return layers[0]


def _status(status: int, headers: dict[str, str] | None = None) -> BaseException:
    response = httpx.Response(status, headers=headers, request=REQUEST)
    http = httpx.HTTPStatusError("x", request=REQUEST, response=response)
    sdk = openai.APIStatusError("Error code", response=response, body=None)
    return _wrapped(RuntimeError("litellm wrapper"), sdk, http)


def test_http_answers_keep_their_status_and_fall_back_by_family() -> None:
    failed = classify_attempt(_status(503))
    assert (failed.error_type, failed.reason, failed.status_code) == ("http_503", "http_5xx", 503)
    limited = classify_attempt(_status(429, {"Retry-After": "12"}))
    assert (limited.error_type, limited.reason, limited.retry_after_s) == ("http_429", "rate_limited", 12.0)
    assert classify_attempt(_status(401)).error_type == "http_401"
    assert classify_attempt(_status(400)).reason == "http_4xx"
    assert classify_attempt(_status(503, {"Retry-After": "5"})).retry_after_s is None  # only a 429's


def test_the_root_failure_decides_not_litellms_wrapper_status() -> None:
    # Connection refused: LiteLLM raises InternalServerError (status 500) around it.
    refused = _wrapped(
        openai.InternalServerError(
            "Connection error.", response=httpx.Response(500, request=REQUEST), body=None
        ),
        openai.APIConnectionError(request=REQUEST),
        httpx.ConnectError("All connection attempts failed"),
        ConnectionRefusedError(111, "Connect call failed"),
    )
    assert (classify_attempt(refused).error_type, classify_attempt(refused).status_code) == (
        "connect_error",
        503,
    )
    dropped = _wrapped(
        openai.APIConnectionError(request=REQUEST), httpx.ReadError("Response payload is not completed")
    )
    assert classify_attempt(dropped).reason == "stream_dropped"
    garbage = _wrapped(
        openai.APIConnectionError(request=REQUEST), UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid")
    )
    assert classify_attempt(garbage).reason == "malformed_response"
    slow = _wrapped(openai.APITimeoutError(request=REQUEST), httpx.ReadTimeout("read"), TimeoutError())
    assert (classify_attempt(slow).error_type, classify_attempt(slow).status_code) == ("timeout", 408)


def test_the_chains_own_verdicts() -> None:
    cut = classify_attempt(ProviderAttemptError("p", "first_token_timeout", "no token"))
    assert (cut.error_type, cut.reason, cut.status_code) == ("first_token_timeout", "timeout", 408)
    empty = classify_attempt(ProviderAttemptError("p", "empty_response", "nothing"))
    assert (empty.reason, empty.status_code) == ("malformed_response", 502)
    bug = classify_attempt(ValueError("?"))
    assert (bug.error_type, bug.reason, bug.status_code) == ("ValueError", "error", 500)


def test_litellm_cooldown_refusal_is_not_a_provider_429() -> None:
    from litellm.types.router import RouterRateLimitError

    refusal = RouterRateLimitError(
        model="primary", cooldown_time=30.0, enable_pre_call_checks=False, cooldown_list=[]
    )
    failed = classify_attempt(refusal)
    assert (failed.error_type, failed.reason) == ("cooldown", "cooldown")
    assert failed.retry_after_s is None  # no provider asked for a wait: the chain's cooldown logic decides
