"""LLM cooldowns shared through a real ``redis-server``: the in-process semantics across processes, and
what happens when Redis dies or hangs (each worker goes on with its own cooldowns, says so, comes back).

The end-to-end case (two worker processes, the primary failing, counted at the provider) is in
``test_many_workers.py``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time

import pytest

from agent.health import HealthRegistry, callable_check
from agent.resilience import Cooldowns
from agent.resilience.shared_cooldowns import SharedCooldowns
from telemetry import names

KEY = "primary|local|m|http://127.0.0.1:1/v1"


def fail(
    cooldowns: SharedCooldowns | Cooldowns, *, window_s: float = 30.0, retry_after_s: float | None = None
):
    return cooldowns.record_failure(KEY, allowed_fails=2, window_s=window_s, retry_after_s=retry_after_s)


def test_one_workers_failures_cool_the_provider_down_for_another(redis) -> None:
    a, b = SharedCooldowns(redis.url), SharedCooldowns(redis.url)  # two workers' views
    try:
        assert fail(a) is None and fail(b) is None  # two failures tolerated, whoever saw them
        assert b.cooling_down([KEY]) == set()
        assert fail(a) == 30.0  # the third, across workers, starts the cooldown
        assert b.cooling_down([KEY]) == {KEY}
        assert 29 < b.remaining(KEY) <= 30
        b.record_success(KEY)  # a trial on b worked: usable again for everyone
        assert a.cooling_down([KEY]) == set()
        assert fail(b, retry_after_s=7) == 7.0  # a Retry-After cools it down at once
        assert 6 < a.remaining(KEY) <= 7
    finally:
        a.close()
        b.close()


def test_failures_older_than_the_window_do_not_count(redis) -> None:
    a = SharedCooldowns(redis.url)
    try:
        assert fail(a, window_s=0.3) is None and fail(a, window_s=0.3) is None
        time.sleep(0.4)  # both fall out of the sliding window
        assert fail(a, window_s=0.3) is None
        assert a.cooling_down([KEY]) == set()
    finally:
        a.close()


async def test_redis_dying_leaves_each_worker_its_own_cooldowns_and_says_so(redis, otel, caplog) -> None:
    shared = SharedCooldowns(redis.url)
    registry = HealthRegistry()
    registry.register(
        "llm.cooldowns", callable_check(lambda: (shared.available, shared.status())), critical=False
    )
    reads = {names.COOLDOWN_STEP: "read"}
    before = otel.metric_value(names.LLM_SHARED_COOLDOWNS_FALLBACKS, **reads)
    try:
        assert fail(shared) is None and fail(shared) is None and fail(shared) == 30.0
        assert otel.metric_value(names.LLM_SHARED_COOLDOWNS_AVAILABLE) == 1
        redis.kill()
        with caplog.at_level(logging.WARNING, logger="agent.resilience.shared_cooldowns"):
            for _ in range(5):  # what was known survives: the mirror answers
                assert shared.cooling_down([KEY]) == {KEY}
        assert not shared.available
        assert otel.metric_value(names.LLM_SHARED_COOLDOWNS_AVAILABLE) == 0
        assert otel.metric_value(names.LLM_SHARED_COOLDOWNS_FALLBACKS, **reads) - before == 5
        warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(warnings) == 1 and redis.url in warnings[0].getMessage()  # rate-limited: one line
        shared.record_success(KEY)  # and it keeps working alone
        assert shared.cooling_down([KEY]) == set()
        report = await registry.run(use_cache=False)
        assert report.status == "degraded" and report.ready  # degraded, not down
    finally:
        shared.close()


def test_a_hanging_redis_costs_one_bounded_wait_then_none(redis) -> None:
    shared = SharedCooldowns(redis.url, timeout_s=0.25)
    try:
        assert shared.cooling_down([KEY]) == set()  # connected
        redis.process.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            assert shared.cooling_down([KEY]) == set()  # answered by the fallback
            first = time.monotonic() - started

            def no_redis(*_args: object, **_kwargs: object) -> None:
                raise AssertionError("Redis was called while it is known to be away")

            shared._client.pipeline = no_redis  # type: ignore[method-assign]
            for _ in range(10):  # until the probe sees it back, no call waits on Redis again
                assert shared.cooling_down([KEY]) == set()
        finally:
            redis.process.send_signal(signal.SIGCONT)
        # The turn's first-token deadline is 2 s: a hanging Redis must cost far less than that, once.
        assert first < 1.5, first
        assert not shared.available
    finally:
        shared.close()


async def test_redis_coming_back_shares_again_and_gets_what_was_cooled_meanwhile(redis) -> None:
    from local_services.databases import redis_server

    a = SharedCooldowns(redis.url)
    redis.kill()
    assert a.cooling_down([KEY]) == set() and not a.available
    assert fail(a) is None and fail(a) is None and fail(a) == 30.0  # cooled down alone
    # The same port again (a Redis restarted by its supervisor), empty.
    port = redis.port
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("local_services.databases.free_port", lambda: port)
        with redis_server() as again:
            for _ in range(100):  # the probe runs every 2 s
                if a.available:
                    break
                await asyncio.sleep(0.1)
            assert a.available
            other = SharedCooldowns(again.url)
            try:
                assert other.cooling_down([KEY]) == {KEY}  # copied over for the other workers
            finally:
                other.close()
    a.close()
