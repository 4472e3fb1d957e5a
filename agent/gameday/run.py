"""One game day: warm up, then each scenario: wait for quiet, inject, watch, recover, watch, record.

Every wait polls Prometheus and the notification sink every few seconds and is bounded: a scenario
that never notifies ends at its deadline and is reported as a miss, it does not hang the run.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agent.gameday.observe import (
    HostCpu,
    Notification,
    alert_key,
    describe,
    notifications,
    prometheus_alerts,
)
from agent.gameday.record import write_promtool_test
from agent.gameday.scenarios import HOST_LOAD_ALERTS, LASTING_ALERTS, RESOLVE_GOAL_S, Scenario
from agent.gameday.stack import RULES_DIR, GamedayStack

log = logging.getLogger(__name__)

POLL_S = 5.0
HOST_BUSY = 0.80  # HighCpuUsage's threshold: above it, host-load alerts are true
QUIET_TIMEOUT_S = 15 * 60.0  # before a scenario: wait at most this long for the last one's alerts to clear
EXTRA_WAIT_S = 5 * 60.0  # after a goal: keep watching this long, so a late notification is measured
RESOLVE_TIMEOUT_S = 12 * 60.0  # after recovery: wait at most this long for the resolved notifications
RECORD_LEAD_S = 10 * 60.0  # healthy history recorded before each scenario's fault
# After the last resolved notification, keep watching (and recording) this many scrape intervals. A
# replay evaluates on the step with the value each series had at that step, i.e. up to one interval
# older than what the live Prometheus evaluated a few seconds later: without this tail the recording
# ends before the replay has resolved (measured: llm-primary-down, 2026-12-01, still firing one step
# before the end while the live run had been notified of the resolution). Three: the replay resolves up
# to one step after the live Prometheus, and the after-recovery checkpoint sits a step before the end,
# floored to the step (measured: tts-down, 2026-12-01, paged resolved 4 s after Prometheus resolved;
# with two steps its replay still fired at that checkpoint).
RECORD_TAIL_STEPS = 3


@dataclass
class ScenarioResult:
    scenario: Scenario
    injected_at: float = 0.0
    recovered_at: float = 0.0
    ended_at: float = 0.0
    carried_over: set[str] = field(default_factory=set)  # alerts already firing at the fault
    fired: dict[str, float] = field(default_factory=dict)  # alert -> first seen firing (Prometheus)
    notified: dict[str, float] = field(default_factory=dict)  # alertname -> first firing notification
    resolved: dict[str, float | None] = field(default_factory=dict)  # alertname -> all resolved notified
    host_busy_during: float | None = None
    unexpected: list[str] = field(default_factory=list)
    host_load: list[str] = field(default_factory=list)  # fired, and the measured host CPU explains it
    # Lasting alerts an earlier scenario of this run raised (LASTING_ALERTS): not this scenario's doing.
    lasting: frozenset[str] = frozenset()
    lingering: list[str] = field(default_factory=list)  # fired here, one of ``lasting``
    info: list[str] = field(default_factory=list)
    recorded: Path | None = None

    def time_to_notify(self, alertname: str) -> float | None:
        """Seconds from the fault to the first notification; negative: already firing before the fault
        (a true alert from before, e.g. HighCpuUsage on a host that was busy already)."""
        at = self.notified.get(alertname)
        if at is None and any(name.split("{", 1)[0] == alertname for name in self.carried_over):
            return -1.0
        return None if at is None else at - self.injected_at

    def time_to_resolve(self, alertname: str) -> float | None:
        at = self.resolved.get(alertname)
        return None if at is None else at - self.recovered_at

    @property
    def goals_met(self) -> bool:
        s = self.scenario
        notified = all(
            (t := self.time_to_notify(name)) is not None and t <= s.notify_goal_s for name in s.expected
        )
        resolved = s.severity != "critical" or all(
            (t := self.time_to_resolve(name)) is not None and t <= RESOLVE_GOAL_S for name in s.expected
        )
        return notified and resolved and not self.unexpected


@functools.cache
def severities() -> dict[str, str]:
    """Alert name -> severity label, from the repo's rule files."""
    import yaml

    found: dict[str, str] = {}
    for path in RULES_DIR.glob("*.rules.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    found[rule["alert"]] = str(rule["labels"]["severity"])
    return found


def _firing_now(stack: GamedayStack) -> dict[tuple[tuple[str, str], ...], dict[str, str]]:
    return {
        alert_key(a["labels"]): a["labels"]
        for a in prometheus_alerts(stack.prometheus_url)
        if a["state"] == "firing"
    }


def _active_now(stack: GamedayStack) -> list[dict[str, str]]:
    return [a["labels"] for a in prometheus_alerts(stack.prometheus_url)]


class GameDay:
    def __init__(
        self,
        stack: GamedayStack,
        host: HostCpu,
        *,
        record_dir: Path | None = None,
        progress: Callable[[str], None] = print,
    ) -> None:
        self.stack = stack
        self.host = host
        self.record_dir = record_dir
        self.progress = progress
        self.started_at = time.time()
        # When the last scenario ended (every alert of it resolved): the next one's recording checks
        # for unexpected alerts from here on. Its lead-in before this may hold that scenario's alerts.
        self.quiet_since = self.started_at
        # LASTING_ALERTS that a scenario of this run raised (pending or firing when it ended): the run
        # does not wait hours for them, and the scenarios after it do not count them as unexpected.
        self.lasting: set[str] = set()

    # --- waiting --------------------------------------------------------------------------------
    def _host_busy(self, start: float, end: float) -> bool:
        busy = self.host.busy(start, end)
        return busy is not None and busy >= HOST_BUSY

    def _explained_by_host(self, labels: dict[str, str], now: float) -> bool:
        # The rules look back 5 minutes (rate window) and hold 5-10 more (for:).
        return labels.get("alertname") in HOST_LOAD_ALERTS and self._host_busy(now - 15 * 60, now)

    def wait_for_quiet(self) -> set[str]:
        """Until no page or chat alert is pending or firing (host load aside); returns what stayed.

        A scenario ends when its expected alerts resolved; its tolerated ones may outlast it (measured
        2026-12-01: stt-down's STT fallback warning, on a 5-minute window, fired minutes after its page
        resolved). When this had to wait for them, the quiet (and the next recording's checks for
        unexpected alerts) begins only now, plus the replay's lag of up to a step, not at that end.
        """
        deadline = time.monotonic() + QUIET_TIMEOUT_S
        waited = False
        while True:
            now = time.time()
            active = [
                labels
                for labels in _active_now(self.stack)
                if labels.get("severity") != "info"
                and labels.get("alertname") not in self.lasting
                and not self._explained_by_host(labels, now)
            ]
            if not active or time.monotonic() > deadline:
                if waited:
                    lag = RECORD_TAIL_STEPS * self.stack.config.scrape_interval_s
                    self.quiet_since = time.time() + lag
                return {describe(alert_key(labels)) for labels in active}
            waited = True
            time.sleep(POLL_S)

    def warm_up(self, seconds: float) -> None:
        self.progress(f"warm-up: {seconds / 60:.0f} min of healthy traffic")
        time.sleep(seconds)

    # --- one scenario ---------------------------------------------------------------------------
    def run(self, scenario: Scenario) -> ScenarioResult:
        result = ScenarioResult(scenario, lasting=frozenset(self.lasting))
        leftover = self.wait_for_quiet()
        if leftover:
            self.progress(f"  still active before {scenario.name}: {', '.join(sorted(leftover))}")
        result.carried_over = {describe(k) for k in _firing_now(self.stack)}
        self.progress(f"{scenario.name}: {scenario.description}")
        result.injected_at = time.time()
        scenario.inject(self.stack)
        # Faulted phase: until every expected alert was notified (and the hold is over), or the deadline;
        # then the fault stays on RECORD_TAIL_STEPS more scrape intervals, so the recording's "fires at
        # recovery" checkpoint sees it in the replay too, which runs up to a step behind (measured
        # 2026-12-01: tts-primary-down's warning fired live 31 s before recovery, not yet in the replay).
        hold_until = result.injected_at + scenario.hold_s
        deadline = result.injected_at + max(scenario.notify_goal_s + EXTRA_WAIT_S, scenario.hold_s)
        lag = RECORD_TAIL_STEPS * self.stack.config.scrape_interval_s
        while True:
            self._observe(result)
            now = time.time()
            notified = [result.notified.get(name) for name in scenario.expected]
            done = None not in notified and now >= max([hold_until, *(t + lag for t in notified if t)])
            if done or now >= deadline:
                break
            time.sleep(POLL_S)
        result.host_busy_during = self.host.busy(result.injected_at, time.time())
        result.recovered_at = time.time()
        scenario.recover(self.stack)
        self.progress(f"  recovered; notified: {', '.join(sorted(result.notified)) or 'nothing'}")
        # Recovery phase: until every alert of the scenario that was notified got its resolved one.
        deadline = result.recovered_at + RESOLVE_TIMEOUT_S
        while True:
            self._observe(result)
            pending = [
                n for n in result.notified if n in scenario.expected and result.resolved.get(n) is None
            ]
            if not pending or time.time() >= deadline:
                break
            time.sleep(POLL_S)
        self._watch(RECORD_TAIL_STEPS * self.stack.config.scrape_interval_s, result)
        result.ended_at = time.time()
        self.lasting |= {
            labels["alertname"]
            for labels in _active_now(self.stack)
            if labels.get("alertname") in LASTING_ALERTS
        }
        self._classify(result)
        if self.record_dir is not None:
            result.recorded = self._record(result)
        self.quiet_since = result.ended_at
        return result

    def _watch(self, seconds: float, result: ScenarioResult) -> None:
        until = time.time() + seconds
        while time.time() < until:
            self._observe(result)
            time.sleep(min(POLL_S, max(0.0, until - time.time())))

    def _observe(self, result: ScenarioResult) -> None:
        now = time.time()
        for key, labels in _firing_now(self.stack).items():
            name = describe(key)
            if name in result.carried_over:
                continue
            if name not in result.fired:
                result.fired[name] = now
                unexpected = (
                    labels.get("severity") != "info" and labels["alertname"] not in result.scenario.expected
                )
                if unexpected and self._explained_by_host(labels, now):
                    result.host_load.append(name)
        sent = [n for n in notifications(self.stack.notifications_url) if n.at >= result.injected_at]
        for note in sent:
            if note.status == "firing":
                result.notified.setdefault(note.alertname, note.at)
        if result.recovered_at:
            self._resolutions(result, sent)

    @staticmethod
    def _resolutions(result: ScenarioResult, sent: list[Notification]) -> None:
        """An alertname is resolved when every label set of it that was notified got a resolved notice."""
        firing_keys: dict[str, set[tuple[tuple[str, str], ...]]] = {}
        resolved_at: dict[tuple[tuple[str, str], ...], float] = {}
        for note in sent:
            key = alert_key(note.labels)
            if note.status == "firing":
                firing_keys.setdefault(note.alertname, set()).add(key)
            elif note.at >= result.recovered_at:
                resolved_at.setdefault(key, note.at)
        for name, keys in firing_keys.items():
            times = [resolved_at.get(key) for key in keys]
            result.resolved[name] = None if None in times else max(t for t in times if t is not None)

    def _classify(self, result: ScenarioResult) -> None:
        allowed = result.scenario.expected | result.scenario.tolerated
        for name in sorted(result.fired):
            alertname = name.split("{", 1)[0]
            if name in result.host_load:
                continue
            if alertname in result.lasting:
                result.lingering.append(name)
                continue
            severity = self._severity(alertname)
            if severity == "info":
                result.info.append(name)
            elif alertname not in allowed:
                result.unexpected.append(name)

    @staticmethod
    def _severity(alertname: str) -> str:
        return severities().get(alertname, "unknown")

    def _record(self, result: ScenarioResult) -> Path:
        s = result.scenario
        assert self.record_dir is not None
        already_firing = {name.split("{", 1)[0] for name in result.carried_over}
        return write_promtool_test(
            self.stack.prometheus_url,
            scenario=s.name,
            description=s.description,
            start=max(self.started_at, result.injected_at - RECORD_LEAD_S),
            end=result.ended_at,
            step_s=self.stack.config.scrape_interval_s,
            injected_at=result.injected_at,
            recovered_at=result.recovered_at,
            quiet_from=self.quiet_since,
            expected=s.expected,
            already_firing=already_firing,
            # What was still firing at the fault (after the quiet timeout) is the run's, not this fault's.
            allowed=s.expected | s.tolerated | HOST_LOAD_ALERTS | result.lasting | already_firing,
            runbook_base="https://runbooks.example.com/",
            out=self.record_dir / f"gameday-{s.name}.test.yml",
        )
