"""The local OpenAI-compatible provider: script, SSE, tool calls, faults, admin."""

from __future__ import annotations

import json

import httpx
import pytest

from local_services.llm_provider import CANNED_REPLIES, run_llm_provider, script_reply


def test_script_rules():
    tool = script_reply([{"role": "user", "content": 'ok\n/tool log_note {"note": "x"}\n/tool end_call {}'}])
    assert tool.tool_calls == [("log_note", '{"note": "x"}'), ("end_call", "{}")]
    ack = script_reply([{"role": "tool", "content": "Meeting booked for Monday. Confirmation sent."}])
    assert ack.text == "Got it: Meeting booked for Monday."
    assert script_reply([{"role": "user", "content": "hello"}]).text == CANNED_REPLIES[0]


def test_a_tool_round_is_acknowledged_by_the_first_scripted_tool_whatever_finished_last():
    # Tools of one round run concurrently: the reply (and so its speech's length) must not depend on
    # which result came back last.
    user = {"role": "user", "content": "/tool qualify_lead {}\n/tool check_availability {}"}
    assistant = {
        "role": "assistant",
        "tool_calls": [
            {"id": "b", "type": "function", "function": {"name": "check_availability", "arguments": "{}"}},
            {"id": "a", "type": "function", "function": {"name": "qualify_lead", "arguments": "{}"}},
        ],
    }
    score = {"role": "tool", "tool_call_id": "a", "content": "Lead scored 100/100 (hot). Saved."}
    slots = {"role": "tool", "tool_call_id": "b", "content": "Free slots (UTC): 10:30, 11:00."}
    for results in ([score, slots], [slots, score]):
        assert script_reply([user, assistant, *results]).text == "Got it: Lead scored 100/100 (hot)."
    # No script naming the tools (a real caller): the last result, as before.
    unscripted = [{"role": "user", "content": "book me in"}, assistant, score, slots]
    assert script_reply(unscripted).text == "Got it: Free slots (UTC): 10:30, 11:00."


async def _sse(client: httpx.AsyncClient, url: str, content: str) -> list[dict]:
    body = {"model": "m", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": content}]}  # fmt: skip
    response = await client.post(f"{url}/chat/completions", json=body)
    assert response.status_code == 200
    lines = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


async def test_streaming_text_with_usage_last():
    async with run_llm_provider("p1") as server, httpx.AsyncClient() as client:
        chunks = await _sse(client, server.url, "hi")
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == CANNED_REPLIES[0]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    assert chunks[0]["model"] == "p1-model"


async def test_streaming_tool_calls_and_plain_completion():
    async with run_llm_provider("p1") as server, httpx.AsyncClient() as client:
        chunks = await _sse(client, server.url, '/tool book_meeting {"slot_start": "2026-12-01T10:00"}')
        plain = await client.post(
            f"{server.url}/chat/completions",
            json={"messages": [{"role": "user", "content": "/tool end_call {}"}]},
        )
    calls = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls", [])]
    assert calls[0]["function"]["name"] == "book_meeting" and calls[0]["id"]
    assert json.loads("".join(tc["function"]["arguments"] for tc in calls)) == {
        "slot_start": "2026-12-01T10:00"
    }
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finish[-1] == "tool_calls"
    message = plain.json()["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["name"] == "end_call"


async def test_admin_fault_stats_reset():
    async with run_llm_provider("p1") as server, httpx.AsyncClient() as client:
        bad = await client.post(server.url.removesuffix("/v1") + "/admin/fault", json={"mode": "nope"})
        assert bad.status_code == 400 and "unknown fault mode" in bad.json()["error"]
        admin = server.url.removesuffix("/v1") + "/admin"
        assert (
            await client.post(f"{admin}/fault", json={"mode": "429", "retry_after": 3})
        ).status_code == 200
        limited = await client.post(f"{server.url}/chat/completions", json={"messages": []})
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
        await client.post(f"{admin}/fault", json={"mode": "garbage"})
        garbage = await client.post(f"{server.url}/chat/completions", json={"messages": []})
        with pytest.raises(ValueError):  # JSONDecodeError or UnicodeDecodeError
            json.loads(garbage.content)
        stats = (await client.get(f"{admin}/stats")).json()
        assert stats["chat_requests"] == 2 and stats["by_mode"] == {"429": 1, "garbage": 1}
        await client.post(f"{admin}/reset")
        stats = (await client.get(f"{admin}/stats")).json()
        assert stats["chat_requests"] == 0 and stats["fault"] == "ok"
        models = (await client.get(f"{server.url}/models")).json()
        assert models["data"][0]["id"] == "p1-model"


async def test_first_byte_of_each_chat_request_is_timed_in_the_stats():
    """Benchmarks subtract the provider's own time to first byte from the agent's measures (item 12)."""
    async with run_llm_provider("p1") as server, httpx.AsyncClient() as client:
        await _sse(client, server.url, "hi")
        await _sse(client, server.url, "hello")
        stats = (await client.get(f"{server.url.removesuffix('/v1')}/admin/stats")).json()
        assert stats["first_byte_count"] == 2
        assert 0 < stats["first_byte_s_max"] <= stats["first_byte_s_total"]
        await client.post(f"{server.url.removesuffix('/v1')}/admin/reset")
        stats = (await client.get(f"{server.url.removesuffix('/v1')}/admin/stats")).json()
        assert stats["first_byte_count"] == 0
        assert stats["last_byte_s_total"] == 0.0


async def test_token_delay_paces_the_content_chunks_only(monkeypatch: pytest.MonkeyPatch):
    """A model's decoding gap falls between tokens; the finish and usage chunks and [DONE] follow the
    last token at once (density benchmarks subtract the time to the stream's end as the provider's)."""
    async with run_llm_provider("p1", token_delay_s=0.05) as server, httpx.AsyncClient() as client:
        pauses: list[float] = []

        async def recorded(seconds: float) -> None:
            pauses.append(seconds)

        monkeypatch.setattr(server.provider, "_pause", recorded)
        chunks = await _sse(client, server.url, "hi")
    words = len(CANNED_REPLIES[0].split(" "))
    assert sum(1 for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")) == words
    assert pauses == [0.05] * (words - 1)


async def test_the_time_to_a_streams_last_byte_includes_its_pacing():
    async with run_llm_provider("p1", token_delay_s=0.02) as server, httpx.AsyncClient() as client:
        await _sse(client, server.url, "hi")
        stats = (await client.get(f"{server.url.removesuffix('/v1')}/admin/stats")).json()
    gaps = len(CANNED_REPLIES[0].split(" ")) - 1
    # A lower bound the sleeps guarantee (not a speed check): the end comes after every paced gap.
    assert stats["last_byte_s_total"] >= stats["first_byte_s_total"] + 0.9 * 0.02 * gaps


async def test_each_chat_request_is_recorded_with_its_conversations_first_user_message():
    """What bench_density joins to the call and turn a request served (``llm_time_per_turn``)."""
    async with run_llm_provider("p1", token_delay_s=0.01) as server, httpx.AsyncClient() as client:
        admin = server.url.removesuffix("/v1")
        await _sse(client, server.url, "first line")
        body = {"model": "m", "stream": True, "messages": [
            {"role": "system", "content": "be brief"}, {"role": "user", "content": "first line"},
            {"role": "assistant", "content": "ok"}, {"role": "user", "content": "second line"}]}  # fmt: skip
        assert (await client.post(f"{server.url}/chat/completions", json=body)).status_code == 200
        await client.get(f"{admin}/admin/stats")  # admin routes are not recorded
        [one, two] = (await client.get(f"{admin}/admin/requests")).json()["requests"]
        assert one["label"] == two["label"] == "first line"
        assert two["start"] >= one["start"] and 0 < two["first_byte_s"] <= two["last_byte_s"]
        await client.post(f"{admin}/admin/reset")
        assert (await client.get(f"{admin}/admin/requests")).json()["requests"] == []
