"""``sales-agent gameday``: run the fault scenarios against a real Prometheus and Alertmanager.

Takes minutes (about two and a half hours for every scenario: the CPU soak alone holds 30): it is a
command for an operator or a release check, not a test. Its promtool recordings (``--record-dir``) are the
tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from agent.gameday.scenarios import SCENARIOS, by_name

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sales-agent gameday",
        description="Inject named faults into a local agent stack with a real Prometheus and Alertmanager "
        "and measure the alerts: expected, fired, time to notification and to resolution, unexpected.",
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--scenarios", default="", help="comma-separated scenario names (default: all)")
    parser.add_argument(
        "--scrape-interval", type=int, default=15, help="Prometheus scrape/evaluation, s (15)"
    )
    parser.add_argument("--warmup", type=float, default=300, help="healthy traffic before the first fault, s")
    parser.add_argument(
        "--cpu-soak-minutes",
        type=float,
        default=30,
        help="how long host-cpu-saturated holds the burners (30)",
    )
    parser.add_argument("--calls", type=int, default=3, help="calls per batch of each agent (3)")
    parser.add_argument("--concurrency", type=int, default=2, help="concurrent calls per agent (2)")
    parser.add_argument("--batch-interval", type=float, default=1.0, help="seconds between batches (1)")
    parser.add_argument(
        "--voice-concurrency",
        type=int,
        default=2,
        help="concurrent calls of the voice agent (2; 0: no voice agent, no speech scenarios)",
    )
    parser.add_argument("--voice-calls", type=int, default=4, help="calls per batch of the voice agent (4)")
    parser.add_argument(
        "--voice-interval", type=float, default=2.0, help="seconds between the voice agent's batches (2)"
    )
    parser.add_argument(
        "--voice-tenant",
        default="acme",
        help="the tenant of every voice call (acme; one of the tenants file's)",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="keep logs, bodies and data here")
    parser.add_argument(
        "--record-dir", type=Path, default=None, help="write each scenario's promtool test here"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    parser.add_argument("--markdown", type=Path, default=None, help="write the table as Markdown")
    return parser


def _validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    try:
        by_name(names)
    except ValueError as exc:
        parser.error(str(exc))
    for flag, value, minimum in (
        ("--scrape-interval", args.scrape_interval, 1),
        ("--calls", args.calls, 1),
        ("--concurrency", args.concurrency, 1),
        ("--voice-concurrency", args.voice_concurrency, 0),
        ("--voice-calls", args.voice_calls, 1),
    ):
        if value < minimum:
            parser.error(f"{flag} must be at least {minimum}")
    for flag, value in (("--warmup", args.warmup), ("--cpu-soak-minutes", args.cpu_soak_minutes),
                        ("--batch-interval", args.batch_interval),
                        ("--voice-interval", args.voice_interval)):  # fmt: skip
        if value < 0:
            parser.error(f"{flag} cannot be negative")
    if args.voice_concurrency == 0:
        speech = [s.name for s in by_name(names) if s.voice]
        if speech:
            parser.error(f"--voice-concurrency 0: no voice calls for {', '.join(speech)}")
    if args.record_dir is not None and not args.record_dir.is_dir():
        parser.error(f"--record-dir: {args.record_dir} is not a directory")
    if args.voice_concurrency > 0:
        # The voice agent would refuse it only once the stack is up; say so before hours of scenarios.
        from agent.errors import InvalidInput
        from agent.tenants import TenantRegistry, TenantSettings

        try:
            TenantRegistry.from_file(TenantSettings().file).get(args.voice_tenant)
        except InvalidInput as exc:
            parser.error(f"--voice-tenant: {exc.message}")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    names = _validate(parser, args)
    console = Console() if sys.stdout.isatty() else Console(width=200)
    if args.list:
        for s in SCENARIOS:
            console.print(
                f"{s.name:22} {s.severity:8} expects {', '.join(sorted(s.expected))}: {s.description}"
            )
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    scenarios = [
        dataclasses.replace(s, hold_s=args.cpu_soak_minutes * 60) if s.hold_s else s for s in by_name(names)
    ]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="sales-agent-gameday-"))
    try:
        return _run(args, scenarios, workdir, console)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


def _run(args: argparse.Namespace, scenarios: list, workdir: Path, console: Console) -> int:
    from agent.gameday.observe import HostCpu, prometheus_query
    from agent.gameday.report import markdown, table, write_json
    from agent.gameday.run import GameDay
    from agent.gameday.scan import scan_paths
    from agent.gameday.stack import CANARY_SECRET, GamedayStack, StackConfig

    config = StackConfig(
        workdir=workdir,
        scrape_interval_s=args.scrape_interval,
        calls_per_batch=args.calls,
        concurrency=args.concurrency,
        batch_interval_s=args.batch_interval,
        voice_concurrency=args.voice_concurrency,
        voice_calls_per_batch=args.voice_calls,
        voice_batch_interval_s=args.voice_interval,
        voice_tenant=args.voice_tenant,
        environ=dict(os.environ),
    )
    host = HostCpu().start()
    results = []
    started = time.monotonic()
    try:
        with GamedayStack(config) as stack:
            console.print(
                f"game day: Prometheus {stack.prometheus_url}, Alertmanager {stack.alertmanager_url}, "
                f"notifications {stack.notifications_url}, work directory {workdir}"
            )
            day = GameDay(stack, host, record_dir=args.record_dir, progress=console.print)
            day.warm_up(args.warmup)
            for scenario in scenarios:
                results.append(day.run(scenario))
                console.print(table(results[-1:]))
            # Every series Prometheus holds, for the scan (labels only: values are numbers).
            series = prometheus_query(stack.prometheus_url, '{__name__=~".+"}')
            (workdir / "prometheus-series.json").write_text(json.dumps([r["metric"] for r in series]))
    finally:
        host.stop()
    scanned = [*sorted(stack.bodies.glob("*.pb")), *sorted(stack.logs.glob("*.log")),
               workdir / "prometheus-series.json"]  # fmt: skip
    findings = scan_paths(scanned, secrets=[CANARY_SECRET])
    console.print(table(results))
    console.print(
        f"PII / secret scan: {len(scanned)} files (raw OTLP bodies, logs, Prometheus series): "
        f"{len(findings)} finding(s)"
    )
    for finding in findings[:20]:
        console.print(f"  {finding.kind} in {finding.source}: {finding.excerpt}")
    console.print(f"game day took {(time.monotonic() - started) / 60:.0f} min")
    if args.json:
        write_json(args.json, results, findings, len(scanned))
    if args.markdown:
        args.markdown.write_text(markdown(results, findings, len(scanned)))
    return 0 if all(r.goals_met for r in results) and not findings else 1


if __name__ == "__main__":
    sys.exit(main())
