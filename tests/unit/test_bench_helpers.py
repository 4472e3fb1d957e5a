"""The benchmarks' pure helpers: goal verdicts, import-chain analysis, run_all's argument checks."""

from __future__ import annotations

from typing import Any

import pytest

from bench import run_all
from bench.bench_density import vad_counted_silence_s
from bench.bench_failover import failover_verdicts
from bench.bench_startup import importers_of


def test_importers_follow_importtime_nesting() -> None:
    # importtime lists children before their importer, one indent level deeper.
    entries = [
        (1, "yaml", 5, 5),
        (0, "agent.tenants", 1, 6),
        (2, "litellm", 10, 4_000_000),
        (1, "agent.llm.chain", 5, 4_100_000),
        (0, "agent.llm", 1, 4_200_000),
        (0, "litellm.router", 3, 300),
    ]
    assert importers_of(entries, "litellm") == ["agent.llm", "litellm"]
    assert importers_of(entries, "numpy") == []


def test_failover_verdicts_compare_each_scenario_with_the_healthy_primary() -> None:
    p50_ms = {
        "healthy primary": 13.16,
        "primary refused": 34.70,  # +21.5: within 50 ms
        "primary 500": 94.86,  # +81.7: over 50 ms
        "primary in cooldown": 11.17,  # -2.0: within 5 ms
        "primary hang (deadline)": 330.21,  # 300 ms deadline + 13 healthy + 17: within 50 ms
    }
    verdicts = failover_verdicts(p50_ms, deadline_ms=300.0)
    assert [v.split()[0] for v in verdicts] == ["PASS", "MISS", "PASS", "PASS"]
    assert "primary 500" in verdicts[1] and "+81.7 ms" in verdicts[1]
    assert failover_verdicts({"primary 500": 90.0}, deadline_ms=300.0) == [], "no baseline, no verdict"


def test_run_all_rejects_unknown_items(capsys: pytest.CaptureFixture[str]) -> None:
    unknown = max(run_all.ITEMS) + 1
    with pytest.raises(SystemExit) as exited:
        run_all.main(["--only", str(unknown)])
    assert exited.value.code == 2
    assert f"unknown item(s) [{unknown}]" in capsys.readouterr().err


def _goal_rows(summary: run_all.Table) -> dict[str, list[tuple[str, str]]]:
    rows: dict[str, list[tuple[str, str]]] = {}
    for goal, result, measured in summary.rows:
        rows.setdefault(goal, []).append((result, measured))
    return rows


def test_goal_summary_names_every_goal_of_issues_8_and_13() -> None:
    from bench._common import Table, verdict

    throughput = Table("3. Throughput", ["x"])
    throughput.verdicts.append(
        verdict("telemetry on >= 0.95x off (calls/s), text mode", False, "worst 0.90x")
    )
    trace = Table("12a. Spans of one call", ["x"])
    trace.verdicts.append(verdict("span budget: no orphans", True, "108 -> 66 spans per call"))
    exit_table = Table("7. Exit", ["x"])
    exit_table.verdicts.append(verdict("bounded by one shutdown timeout", True, "1.2 s"))
    failed = Table("8. Against the peers: FAILED", [])
    summary = run_all.summary_table([throughput, trace, exit_table, failed], items=[3, 7, 8, 12])
    rows = _goal_rows(summary)

    issue_13 = [goal for goal in rows if goal.startswith("issue 13.")]
    assert {goal.split(":")[0] for goal in issue_13} == {f"issue 13.{n}" for n in range(1, 6)}
    assert {goal.split(":")[0] for goal in rows if goal.startswith("issue 8.")} == {
        f"issue 8.{n}" for n in range(1, 7)
    }
    # One measured line can decide two goals (issue 8 item 3 is issue 13 goal 1's text mode).
    assert rows["issue 8.3: throughput, telemetry on vs off"] == [
        ("MISS", "telemetry on >= 0.95x off (calls/s), text mode: worst 0.90x")
    ]
    assert rows["issue 13.1: telemetry on >= 0.95x off, text mode"][0][0] == "MISS"
    assert rows["issue 13.1: span budget: readable trace, no orphans"][0][0] == "PASS"
    # What nothing measures is said so, never PASS.
    assert rows["issue 13.5: voice density"][0][0] == "not run"  # item 13 was not in this run
    assert rows["issue 13.1: telemetry on >= 0.95x off, voice mode"] == [
        ("not measured", "item 3 printed no goal line for it")
    ]
    assert rows["issue 13.4: start-up in seconds"][0] == ("not run", "item 6 was not in this run (--only)")
    assert rows["issue 13.2: against the peers, in instructions"][0][0] == "FAILED"
    # Goal lines of other issues' items are kept, under their item.
    assert rows["item 7"] == [("PASS", "bounded by one shutdown timeout: 1.2 s")]


def test_an_item_that_adds_goal_lines_plugs_into_its_goal() -> None:
    """Issue 13 goal 4 takes every goal line item 6 prints (its start-up rework adds them)."""
    from bench._common import Table, verdict

    startup = Table("6a. Start-up", ["x"])
    summary = run_all.summary_table([startup], items=[6])
    assert _goal_rows(summary)["issue 13.4: start-up in seconds"][0][0] == "not measured"
    startup.verdicts.append(verdict("simulate prints its first line within 1 s", True, "0.4 s"))
    summary = run_all.summary_table([startup], items=[6])
    assert _goal_rows(summary)["issue 13.4: start-up in seconds"] == [
        ("PASS", "simulate prints its first line within 1 s: 0.4 s")
    ]


def test_the_voice_mode_goal_is_decided_by_item_3s_voice_line_with_its_figures() -> None:
    from bench._common import Table, verdict

    text = Table("3. Throughput of one worker process: simulated text calls", ["x"])
    text.verdicts.append(verdict("telemetry on >= 0.95x off (calls/s), text mode", False, "worst 0.90x"))
    voice = Table("3c. Throughput of one agent process: simulated voice calls", ["x"])
    voice.verdicts.append(
        verdict("telemetry on >= 0.95x off (calls/s), voice mode", True, "worst level 0.98x (1.00x at 3)")
    )
    rows = _goal_rows(run_all.summary_table([text, voice], items=[3]))
    assert rows["issue 13.1: telemetry on >= 0.95x off, voice mode"] == [
        ("PASS", "telemetry on >= 0.95x off (calls/s), voice mode: worst level 0.98x (1.00x at 3)")
    ]
    # The text goals keep the text line only.
    for goal in (
        "issue 13.1: telemetry on >= 0.95x off, text mode",
        "issue 8.3: throughput, telemetry on vs off",
    ):
        assert rows[goal] == [("MISS", "telemetry on >= 0.95x off (calls/s), text mode: worst 0.90x")]
    assert not any(goal.startswith("item 3") for goal in rows), "every line of item 3 has its goal"


def _voice_level(calls_per_s: float, cpu_s_per_call: float, wait_s: float) -> dict[str, Any]:
    """One level's figures as ``bench_density.measure_batch`` reports them (15 calls)."""
    wall = 15 / calls_per_s
    return {
        "calls": 15, "total": 15, "completed": 15, "failed": 0, "wall_s": wall, "call_s": 300.0,
        "cpu_s": 15 * cpu_s_per_call, "threads_cpu_s": {"MainThread": 10 * cpu_s_per_call},
        "turns": [{"wait_s": wait_s, "stages": {}}] * 30, "heard_waits_s": [wait_s + 0.1],
        "designed_silence_s": 0.55, "provider_s": {"stt": 0.01, "llm": 0.02, "tts": 0.02},
        "rss_before_mb": 400.0, "rss_peak_mb": 410.0, "spans_per_call": 100.0,
    }  # fmt: skip


def test_the_voice_table_decides_on_calls_per_s_at_every_level_with_cpu_and_latency_beside() -> None:
    from bench._voice_throughput import voice_table

    results = {
        (3, "off"): [_voice_level(0.100, 1.00, 0.75), _voice_level(0.100, 1.00, 0.75)],
        (3, "off-again"): [_voice_level(0.101, 0.98, 0.75)],
        (3, "on"): [_voice_level(0.099, 1.10, 0.80)],
        (40, "off"): [_voice_level(1.000, 0.80, 1.65)],
        (40, "off-again"): [_voice_level(0.990, 0.81, 1.65)],
        (40, "on"): [_voice_level(0.900, 0.90, 2.15)],  # the CPU-limited level: 0.90x
    }
    table = voice_table(results, [3, 40], ["off", "off-again", "on"], [1.0, 1.2])
    [line] = table.verdicts
    assert line.startswith("MISS telemetry on >= 0.95x off (calls/s), voice mode: worst level 0.90x")
    assert "0.99x at 3, 0.90x at 40" in line and "CPU per call on/off 1.10-1.12x" in line
    rows = {(row[0], row[1].split(" ")[0]): row for row in table.rows}
    columns = table.columns
    on_40 = dict(zip(columns, rows[(40, "on")], strict=True))
    assert on_40["vs off: calls/s"] == "0.90x" and on_40["vs off: CPU/call"] == "1.12x"
    # added = 2.15 - 0.55 - 0.05 = 1.55 s against 1.65 - 0.55 - 0.05 = 1.05 s off
    assert on_40["added p95 ms"] == 1550 and on_40["vs off: added p95"] == "1.48x"
    assert on_40["spans/call"] == 100.0 and rows[(40, "off")][columns.index("spans/call")] == ""
    assert any(note.startswith("A/A control: off measured again lands at 0.99-1.01x") for note in table.notes)

    results[(40, "on")] = [_voice_level(0.960, 0.90, 2.15)]
    [line] = voice_table(results, [3, 40], ["off", "off-again", "on"], [1.0]).verdicts
    assert line.startswith("PASS") and "worst level 0.96x" in line


@pytest.mark.parametrize(
    ("min_silence_s", "counted_s"),
    [(0.55, 0.576), (0.5, 0.512), (0.544, 0.544), (0.032, 0.032), (0.2, 0.224)],
)
def test_silero_reports_the_end_of_speech_after_whole_windows_of_silence(min_silence_s, counted_s) -> None:
    # livekit's default min_silence_duration (0.55 s) is 17.2 windows of 32 ms: Silero reports after 18.
    assert vad_counted_silence_s(min_silence_s) == pytest.approx(counted_s)


def test_a_level_is_shared_out_evenly_and_never_gives_a_process_no_call() -> None:
    from bench.bench_density import shares

    assert shares(35, 2) == [18, 17]
    assert shares(50, 2) == [25, 25]
    assert shares(1, 2) == [1]  # one call: one process
    assert shares(7, 1) == [7]


def test_the_processes_of_a_level_pool_their_turns_and_sum_what_they_use() -> None:
    from bench.bench_density import merge_results, summarise

    one, two = _voice_level(1.0, 0.2, 0.65), _voice_level(1.0, 0.3, 0.70)
    two["wall_s"] += 1.0
    two["threads_cpu_s"] = {"MainThread": 2.0, "asyncio_": 1.0}
    merged = merge_results([one, two])
    assert merged["calls"] == 30 and merged["failed"] == 0 and merged["processes"] == 2
    assert len(merged["turns"]) == 60 and len(merged["heard_waits_s"]) == 2
    assert merged["cpu_s"] == pytest.approx(15 * 0.2 + 15 * 0.3)
    assert merged["rss_peak_mb"] == 820.0 and merged["rss_before_mb"] == 800.0  # sum of the peaks
    assert merged["wall_s"] == two["wall_s"]
    assert merged["threads_cpu_s"] == {"MainThread": pytest.approx(4.0), "asyncio_": 1.0}
    merged["provider_s"] = one["provider_s"]
    figures = summarise(merged)
    assert figures["rss_per_call"] == pytest.approx(20.0 / 30)
    assert figures["wait_p95"] == pytest.approx(0.70)
    assert merge_results([one]) is one


def test_agent_processes_start_their_batch_together(tmp_path) -> None:
    import threading

    from bench.bench_density import wait_for_parties

    with pytest.raises(TimeoutError, match="2 agent processes were not ready"):
        wait_for_parties(tmp_path, 2, timeout_s=0.1)  # alone: its sibling never comes
    for ready in tmp_path.glob("ready-*"):  # the next level's processes: a fresh start
        ready.unlink()
    sibling = threading.Timer(0.05, lambda: (tmp_path / "ready-sibling").touch())
    sibling.start()
    wait_for_parties(tmp_path, 2, timeout_s=5.0)
    sibling.join()


def _llm_request(start: float, last_byte_s: float, label: str) -> dict[str, Any]:
    return {"start": start, "first_byte_s": 0.001, "last_byte_s": last_byte_s, "label": label}


def test_each_turn_subtracts_its_own_calls_llm_time_inside_its_wait() -> None:
    from bench.bench_density import llm_time_per_turn, summarise

    ana = ['/tool capture_basic_info {"email": "ana.p0.0@x.example.com"}']
    bo = ['/tool capture_basic_info {"phone": "+1 415 555 1201"}']
    turns = [
        {"wait_s": 1.0, "stages": {}, "ended_at": 100.0, "call_key": ana},  # two streams in its wait
        {"wait_s": 0.8, "stages": {}, "ended_at": 100.2, "call_key": bo},  # overlaps ana's in time
        {"wait_s": 0.7, "stages": {}, "ended_at": 300.0, "call_key": ["/tool never_asked {}"]},
    ]
    records = [
        _llm_request(95.0, 2.0, "Hi.\n" + ana[0]),  # the greeting, before the turn: not its time
        _llm_request(100.3, 0.1, "Hi.\n" + ana[0]),
        _llm_request(100.6, 0.3, "Hi.\n" + ana[0] + "\nWe have budget."),
        _llm_request(100.9, 0.5, "Hi.\n" + ana[0]),  # runs past the reply's first audio: cut at 101.0
        _llm_request(100.4, 0.25, "Sorry.\n" + bo[0]),
    ]
    assert llm_time_per_turn(turns, records) == 1  # the third turn's call made no request
    assert [t["llm_provider_s"] for t in turns] == pytest.approx([0.1 + 0.3 + 0.1, 0.25, 0.0])

    result = {
        "turns": turns, "designed_silence_s": 0.5, "provider_s": {"stt": 0.01, "llm": 0.3, "tts": 0.02},
        "heard_waits_s": [1.0], "calls": 3, "rss_peak_mb": 1.0, "rss_before_mb": 1.0, "cpu_s": 1.0,
        "wall_s": 1.0, "call_s": 1.0,
    }  # fmt: skip
    added = sorted([1.0 - 0.5 - 0.03 - 0.5, 0.8 - 0.5 - 0.03 - 0.25, 0.7 - 0.5 - 0.03 - 0.0])
    assert summarise(result)["added_p50"] == pytest.approx(added[1])
    del turns[0]["llm_provider_s"]  # a turn without its own figure: the level's mean
    added = sorted([1.0 - 0.5 - 0.03 - 0.3, 0.8 - 0.5 - 0.03 - 0.25, 0.7 - 0.5 - 0.03 - 0.0])
    assert summarise(result)["added_p50"] == pytest.approx(added[1])


def test_text_throughput_ratios_pair_each_repeat_with_its_own_off_run() -> None:
    from bench.bench_throughput import paired_ratios

    # The host slowed down by a third between the repeats; telemetry cost 5 % in both.
    offs = [{"calls_per_s": 6.0, "cpu_ms_per_call": 150.0}, {"calls_per_s": 4.0, "cpu_ms_per_call": 225.0}]
    ons = [{"calls_per_s": 5.7, "cpu_ms_per_call": 157.5}, {"calls_per_s": 3.8, "cpu_ms_per_call": 236.25}]
    rate, cpu = paired_ratios(ons, offs)
    assert rate == pytest.approx(0.95) and cpu == pytest.approx(1 / 1.05)
    # Paired across the rotations instead, the host's drift would read as telemetry's cost or gain.
    assert paired_ratios(ons, offs[::-1])[0] == pytest.approx((5.7 / 4.0 + 3.8 / 6.0) / 2)


def test_item_8b_runs_each_simulated_call_child_against_its_own_crm_and_sink(tmp_path, monkeypatch) -> None:
    """Two children running the same call scripts side by side against one CRM raced for the same
    meeting slots: the slower one's call took the "slot no longer available" path with extra turns."""
    import contextlib
    from collections.abc import Iterator

    from bench import _callgrind, _llm_variants
    from bench.bench_peers import SIM_ROWS

    started = iter(range(10))
    running: set[int] = set()
    seen: list[tuple[str, str]] = []

    @contextlib.contextmanager
    def services() -> Iterator[tuple[str, str]]:
        index = next(started)
        running.add(index)
        try:
            yield f"http://crm-{index}", f"http://sink-{index}"
        finally:
            running.discard(index)

    def counted(module: str, args: list[str], *, workdir: Any, **_: Any) -> tuple[dict[str, Any], list[Any]]:
        crm, sink = args[args.index("--crm-url") + 1], args[args.index("--otlp-url") + 1]
        assert int(crm.rsplit("-", 1)[1]) in running  # the child runs while its own services are up
        seen.append((crm, sink))
        parts = [_callgrind.Part("k", 10, workdir / "k"), _callgrind.Part("n", 30, workdir / "n")]
        return {"wall_s": {"n": 1.0}, "emitted": {}}, parts

    monkeypatch.setattr(_callgrind, "build_helper", lambda directory: directory / "helper.so")
    monkeypatch.setattr(_callgrind, "run_counted", counted)
    variants = [SIM_ROWS["sim-off"], SIM_ROWS["sim-ours-otlp"]]
    measured = _llm_variants.run_variants(
        variants, llm_urls=["http://llm/v1"], child_services=services, warmup=0, k=1, n=3, jobs=2,
        workdir=tmp_path,
    )  # fmt: skip

    assert sorted(seen) == [("http://crm-0", "http://sink-0"), ("http://crm-1", "http://sink-1")]
    assert not running  # each child's services stopped with it
    assert measured[variants[1].label].per_call == 10
