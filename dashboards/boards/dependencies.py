"""Dependencies & resilience: CRM and calendar latency, errors, retries, breakers, the durable outbox."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards import kit
from dashboards.alert_thresholds import alert_threshold
from dashboards.kit import prom
from dashboards.metrics import counter, gauge, histogram, label
from dashboards.promql import APP, or_zero, quantile, selector, sum_increase, sum_rate
from telemetry import names

UID = "sales-agent-dependencies"


def build() -> Dashboard:
    duration = histogram(names.DEPENDENCY_DURATION)
    dependency, operation, outcome = label(names.DEPENDENCY), label(names.OPERATION), label(names.OUTCOME)
    to_state, step = label(names.BREAKER_TO), label(names.OUTBOX_STEP)
    takeover = label(names.OUTBOX_TAKEOVER_REASON)
    slow = alert_threshold("SlowDependencyResponse")
    stale = alert_threshold("OutboxBacklogStale")
    # The alert fires above 0 parked entries; entries are whole, so the line sits at the first one.
    parked = alert_threshold("OutboxDeadLetters") + 1
    none = {dependency: "none"}
    crm_or_calendar = selector(APP, f'{dependency}=~"crm|calendar"')
    breakers = f"{gauge(names.BREAKER_STATE_GAUGE)}{{{crm_or_calendar}}}"
    board = (
        kit.board(
            UID,
            "Sales agent / Dependencies & resilience",
            "CRM and calendar latency, errors and retries, circuit breakers, the durable outbox.",
        )
        .with_row(dashboard.Row("CRM and calendar"))
        .with_panel(
            kit.timeseries_panel(
                "Latency by dependency and operation (p95)",
                [
                    prom(
                        quantile(0.95, duration, APP, [dependency, operation]),
                        kit.legend(dependency, operation),
                        exemplar=True,
                    )
                ],
                unit="s",
                thresholds=kit.above(slow),
                description=f"Whole call including retries. SlowDependencyResponse warns when a "
                f"dependency's p95 stays above {slow:g} s (dashed line). Exemplars open the trace.",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Calls by outcome",
                [prom(sum_rate(duration.count, APP, [dependency, outcome]), kit.legend(dependency, outcome))],
                unit="ops",
                description="ok | error (after retries) | circuit_open (failed fast) | rejected (4xx).",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Retries",
                [
                    prom(
                        or_zero(
                            sum_rate(
                                counter(names.DEPENDENCY_RETRIES), APP, [dependency, operation, outcome]
                            ),
                            none,
                        ),
                        kit.legend(dependency, operation, outcome),
                    )
                ],
                unit="ops",
                description="0 (none) while every first attempt succeeds.",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Breaker transitions",
                [
                    prom(
                        or_zero(
                            sum_increase(counter(names.BREAKER_TRANSITIONS), APP, [dependency, to_state]),
                            {dependency: "none", to_state: "none"},
                        ),
                        kit.legend(dependency, to_state, sep=" -> "),
                    )
                ],
                description="Over the time range; 0 (none -> none) while every breaker stays closed.",
            )
        )
        .with_panel(
            kit.state_timeline_panel(
                "Circuit breaker state",
                prom(f"max by ({dependency}) ({breakers})", kit.legend(dependency)),
                states={"0": ("closed", "green"), "1": ("half-open", "yellow"), "2": ("open", "red")},
                thresholds=kit.steps("green", kit.Step(1, "yellow"), kit.Step(2, "red")),
            )
        )
        .with_row(dashboard.Row("Durable outbox (CRM writes that could not be delivered yet)"))
        .with_panel(
            kit.timeseries_panel(
                "Outbox depth",
                [
                    prom(
                        f"max by ({dependency}) ({gauge(names.OUTBOX_DEPTH)}{{{APP}}})",
                        kit.legend(dependency),
                    )
                ],
                description="The deepest outbox of the selected instances: every worker on a shared "
                "PostgreSQL outbox (CRM_OUTBOX_URL) reports the whole queue; with SQLite each instance "
                "reports its own file (pick one instance to see it).",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Oldest outbox entry age",
                [
                    prom(
                        f"max by ({dependency}) ({gauge(names.OUTBOX_OLDEST_AGE, 's')}{{{APP}}})",
                        kit.legend(dependency),
                    )
                ],
                unit="s",
                thresholds=kit.above(stale),
                description=f"OutboxBacklogStale warns above {stale:g} s.",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Outbox flow",
                [
                    prom(
                        or_zero(sum_rate(counter(names.OUTBOX_ENQUEUED), APP, [dependency]), none),
                        kit.legend(dependency) + " enqueued",
                    ),
                    prom(
                        or_zero(sum_rate(counter(names.OUTBOX_DELIVERED), APP, [dependency]), none),
                        kit.legend(dependency) + " delivered",
                    ),
                ],
                unit="ops",
                description="Writes queued because the CRM could not take them, and their later delivery; "
                "0 (none) while every write goes straight through.",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Parked writes (dead letters)",
                [
                    prom(
                        f"max by ({dependency}) ({gauge(names.OUTBOX_DEAD_LETTERS)}{{{APP}}})",
                        kit.legend(dependency),
                    )
                ],
                thresholds=kit.above(parked),
                description="Queued writes the dependency rejected (4xx), kept for an operator: "
                "`sales-agent outbox list --status dead`, then `requeue`. OutboxDeadLetters warns above 0.",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Outbox storage failures",
                [
                    prom(
                        or_zero(sum_rate(counter(names.OUTBOX_STORAGE_ERRORS), APP, [step]), {step: "none"}),
                        kit.legend(step),
                    )
                ],
                unit="ops",
                description="The outbox file could not be written (disk full, I/O error), by step; "
                "OutboxStorageFailing pages on any. Queued writes are still delivered; new ones are "
                "not durable until it can write again.",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Outbox claims and lease take-overs",
                [
                    prom(
                        or_zero(sum_rate(counter(names.OUTBOX_CLAIMS), APP, [dependency]), none),
                        kit.legend(dependency) + " claims",
                    ),
                    prom(
                        or_zero(
                            sum_rate(counter(names.OUTBOX_LEASE_TAKEOVERS), APP, [dependency, takeover]),
                            {dependency: "none", takeover: "none"},
                        ),
                        kit.legend(dependency, takeover) + " take-overs",
                    ),
                ],
                unit="ops",
                description="Entries claimed for sending (live writes and drainers, every instance), and "
                "claims that took an entry from a sender whose lease ran out or whose process is gone "
                "(a worker killed mid-send; OutboxLeaseTakeovers). Each is delivered once: the CRM "
                "replays a repeated idempotency key.",
            )
        )
    )
    return kit.finish(board)
