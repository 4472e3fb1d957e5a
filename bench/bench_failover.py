"""Time-to-first-token through RouterLLM under primary faults, and the Router's own overhead.

Scenarios (primary faulty, backup healthy, both local providers over real HTTP on 127.0.0.1):
healthy, refused (nothing listens), 500, hang (cut by the first-token deadline), cooldown (primary
skipped). Goals from issue 3: refused/500 add <= 50 ms, cooldown <= 5 ms over healthy, hang ~ deadline.
Overhead: one streamed call via RouterLLM vs ``Router.acompletion`` vs a direct httpx request.

    uv run python bench/bench_failover.py            # 30 turns per scenario, 2 s deadline
    uv run python bench/bench_failover.py --quick    # smoke: 2 turns, 0.3 s deadline

Figures only: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import psutil

from agent.percentiles import percentile
from local_services.llm_provider import run_llm_provider


def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def _refused_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


async def _ttft_router_llm(router_llm, chat_ctx) -> tuple[float, float]:
    """(time to first text, total) for one turn through RouterLLM."""
    start = time.perf_counter()
    first = None
    async with router_llm.chat(chat_ctx=chat_ctx) as stream:
        async for chunk in stream:
            if first is None and chunk.delta and chunk.delta.content:
                first = time.perf_counter() - start
    return (first if first is not None else float("nan")), time.perf_counter() - start


async def _ttft_router(router, model: str) -> tuple[float, float]:
    start = time.perf_counter()
    first = None
    stream = await router.acompletion(
        model=model, messages=[{"role": "user", "content": "hi"}], stream=True, num_retries=0
    )
    async for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - start
    return (first if first is not None else float("nan")), time.perf_counter() - start


async def _ttft_httpx(client: httpx.AsyncClient, url: str) -> tuple[float, float]:
    start = time.perf_counter()
    first = None
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with client.stream("POST", f"{url}/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if first is None and line.startswith("data: {"):
                choices = json.loads(line[6:]).get("choices") or [{}]
                if choices[0].get("delta", {}).get("content"):
                    first = time.perf_counter() - start
    return (first if first is not None else float("nan")), time.perf_counter() - start


async def _measure(n: int, fn: Callable[[], Awaitable[tuple[float, float]]]) -> dict[str, float]:
    await fn()  # warm this path once
    ttfts, totals = [], []
    for _ in range(n):
        ttft, total = await fn()
        ttfts.append(ttft)
        totals.append(total)
    ttfts.sort()
    return {
        "p50": statistics.median(ttfts),
        "p95": percentile(ttfts, 95),
        "mean": statistics.fmean(ttfts),
        "total_p50": statistics.median(totals),
    }


async def run(n: int, deadline_s: float) -> list[tuple[str, dict[str, float]]]:
    from livekit.agents import llm

    from agent.llm import LLMSettings, build_llm

    chat_ctx = llm.ChatContext.empty()
    chat_ctx.add_message(role="user", content="Hi, who is this?")
    rows: list[tuple[str, dict[str, float]]] = []

    def settings(primary_url: str, backup_url: str, **extra) -> LLMSettings:
        values = {"first_token_deadline_s": deadline_s, "allowed_fails": 10**6, "cooldown_s": 600.0, **extra}
        return LLMSettings.for_local([primary_url, backup_url], **values)

    async with run_llm_provider("primary") as primary, run_llm_provider("backup") as backup:
        rss_before = _rss_mb()
        healthy_llm = build_llm(settings(primary.url, backup.url))
        await healthy_llm.warm()
        rows.append(("memory: +RSS for litellm + Router (MB)", {"p50": _rss_mb() - rss_before}))

        rows.append(("healthy primary", await _measure(n, lambda: _ttft_router_llm(healthy_llm, chat_ctx))))

        refused_llm = build_llm(settings(_refused_url(), backup.url))
        await refused_llm.warm()
        rows.append(("primary refused", await _measure(n, lambda: _ttft_router_llm(refused_llm, chat_ctx))))

        primary.set_fault("500")
        rows.append(("primary 500", await _measure(n, lambda: _ttft_router_llm(healthy_llm, chat_ctx))))

        primary.set_fault("hang")
        hang_n = max(1, min(n, 5))  # each costs a full deadline
        rows.append(
            (
                "primary hang (deadline)",
                await _measure(hang_n, lambda: _ttft_router_llm(healthy_llm, chat_ctx)),
            )
        )

        primary.set_fault("500")
        cooldown_llm = build_llm(settings(primary.url, backup.url, allowed_fails=0))
        await cooldown_llm.warm()
        await _ttft_router_llm(cooldown_llm, chat_ctx)  # one failure trips the cooldown
        assert cooldown_llm.provider_status()["primary"] is False
        rows.append(
            ("primary in cooldown", await _measure(n, lambda: _ttft_router_llm(cooldown_llm, chat_ctx)))
        )

        primary.set_fault("ok")
        concurrent = max(2, min(n, 20))
        rss_before = _rss_mb()
        results = await asyncio.gather(*(_ttft_router_llm(healthy_llm, chat_ctx) for _ in range(concurrent)))
        ttfts = sorted(ttft for ttft, _ in results)
        rows.append(
            (
                f"healthy, {concurrent} turns at once",
                {
                    "p50": statistics.median(ttfts),
                    "p95": percentile(ttfts, 95),
                    "mean": statistics.fmean(ttfts),
                    "total_p50": statistics.median(total for _, total in results),
                },
            )
        )
        rows.append(
            (
                "memory: RSS growth per concurrent turn (KB)",
                {"p50": (_rss_mb() - rss_before) * 1024 / concurrent},
            )
        )

        router = healthy_llm.chain.router
        rows.append(
            ("overhead: Router.acompletion", await _measure(n, lambda: _ttft_router(router, "primary")))
        )
        async with httpx.AsyncClient() as client:
            rows.append(
                ("overhead: direct httpx", await _measure(n, lambda: _ttft_httpx(client, primary.url)))
            )
    return rows


def print_table(rows: list[tuple[str, dict[str, float]]], deadline_s: float) -> None:
    healthy = next(stats["p50"] for name, stats in rows if name == "healthy primary")
    print(f"\nTTFT through RouterLLM (first-token deadline {deadline_s * 1000:.0f} ms), milliseconds")
    print(f"{'scenario':42} {'p50':>9} {'p95':>9} {'mean':>9} {'+p50 vs healthy':>16} {'total p50':>10}")
    for name, stats in rows:
        if name.startswith("memory"):
            continue
        delta = stats["p50"] - healthy
        print(
            f"{name:42} {stats['p50'] * 1000:9.2f} {stats['p95'] * 1000:9.2f} {stats['mean'] * 1000:9.2f} "
            f"{delta * 1000:+16.2f} {stats['total_p50'] * 1000:10.2f}"
        )
    for name, stats in rows:
        if name.startswith("memory"):
            print(f"{name}: {stats['p50']:.0f}")
    print(f"process RSS now {_rss_mb():.0f} MB (python + livekit-agents + litellm + 2 local providers)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=30, help="turns per scenario")
    parser.add_argument("--deadline", type=float, default=2.0, help="first-token deadline, seconds")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 turns, 0.3 s deadline")
    args = parser.parse_args(argv)
    turns, deadline = (2, 0.3) if args.quick else (args.turns, args.deadline)
    rows = asyncio.run(run(turns, deadline))
    print_table(rows, deadline)


if __name__ == "__main__":
    main()
