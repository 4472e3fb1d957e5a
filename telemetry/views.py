"""Metric Views: second-scale histogram buckets and bounded label sets.

The SDK's default histogram boundaries (0, 5, 10, ... 10000) are sized for milliseconds; every
latency histogram here (ours, livekit-agents' ``lk.agents.*`` and ``gen_ai.*``, httpx's
``http.client.*``) is recorded in seconds, so each gets explicit boundaries.

In the Python SDK every View that matches an instrument produces its own stream, so two matching
Views mean duplicate series. The rules below are therefore a *partition*: they are tried in order and
an instrument takes the first rule it satisfies (``_RuleView`` encodes "this rule and none before
it"); the last rule matches everything, so every instrument gets exactly one View and its label
filter.

Exemplars: a seconds histogram keeps the SDK's trace-based exemplars (a latency bucket links to the
trace that recorded it: the dashboards' latency panels show them). Every other stream (counts,
tokens, money, gauges) keeps none: no panel reads a counter's exemplar, and offering one to the SDK's
reservoir cost every measurement a lock, a random draw and a span lookup.

Labels: livekit-agents stamps its job attribution (``room_id``, ``job_id``, agent/simulation ids -
unbounded) on every measurement, so livekit's instruments get allow-lists of the labels they are
meant to carry. Everything else keeps its labels except ``names.METRIC_FORBIDDEN_ATTRIBUTES``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from opentelemetry.context import Context
from opentelemetry.sdk.metrics import Exemplar, ExemplarReservoir, Histogram
from opentelemetry.sdk.metrics._internal.instrument import _Instrument
from opentelemetry.sdk.metrics.view import (
    Aggregation,
    DropAggregation,
    ExplicitBucketHistogramAggregation,
    View,
)
from opentelemetry.semconv.attributes import server_attributes
from opentelemetry.util.types import Attributes

from telemetry import names

LATENCY = ExplicitBucketHistogramAggregation(boundaries=names.LATENCY_BUCKETS_S)
DURATION = ExplicitBucketHistogramAggregation(boundaries=names.DURATION_BUCKETS_S)
# GenAI semconv's advised boundaries for gen_ai.client.token.usage (tokens, not seconds).
TOKENS = ExplicitBucketHistogramAggregation(
    boundaries=(1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
)

# Long-running histograms (minutes); every other seconds histogram is a latency.
DURATION_HISTOGRAMS = frozenset({names.SESSION_DURATION, names.CALL_DURATION})

# The labels livekit-agents 1.8 puts on its instruments itself (see livekit/agents/telemetry/
# otel_metrics.py); its per-job attribution is everything else and is dropped.
LIVEKIT_ATTRIBUTES = frozenset({"model_name", "model_provider", "connection_reused", "severity"})
GEN_AI_ATTRIBUTES = frozenset(
    {
        names.GEN_AI_OPERATION_NAME,
        names.GEN_AI_PROVIDER_NAME,
        names.GEN_AI_REQUEST_MODEL,
        names.GEN_AI_RESPONSE_MODEL,
        names.GEN_AI_TOKEN_TYPE,
        "gen_ai.tool.name",
        "gen_ai.agent.name",
        server_attributes.SERVER_ADDRESS,
        server_attributes.SERVER_PORT,
        names.ERROR_TYPE,
        names.TENANT_ID,
    }
)


class AllExcept(frozenset[str]):
    """A label "allow-list" that allows every key but the given ones.

    The SDK only offers allow-lists (``View(attribute_keys=...)``) and filters with ``key in keys``;
    this set answers that question inverted, which gives the deny-list it lacks.
    """

    def __contains__(self, key: object) -> bool:
        return not super().__contains__(key)


class NoExemplarReservoir(ExemplarReservoir):
    """A reservoir that keeps nothing: the streams whose exemplars no panel shows.

    The SDK has a filter for the whole provider (trace-based, always on, always off) but no per-stream
    "none"; a View's reservoir factory is its per-stream hook, so this is the empty reservoir it takes.
    """

    def __init__(self, **_aggregation_params: object) -> None:
        pass

    def offer(self, value: float, time_unix_nano: int, attributes: Attributes, context: Context) -> None:
        return None

    def collect(self, point_attributes: Attributes) -> list[Exemplar]:
        return []


def _no_exemplars(_aggregation_type: type) -> Callable[..., ExemplarReservoir]:
    return NoExemplarReservoir


@dataclass(frozen=True)
class Rule:
    name: str
    matches: Callable[[_Instrument], bool]
    aggregation: Aggregation | None
    attribute_keys: frozenset[str]
    # Trace-based exemplars (the SDK's default reservoir) or none; only seconds histograms link to traces.
    exemplars: bool = False


def _histogram(unit: str | None = None) -> Callable[[_Instrument], bool]:
    def check(instrument: _Instrument) -> bool:
        return isinstance(instrument, Histogram) and (unit is None or instrument.unit == unit)

    return check


def _prefix(prefix: str) -> Callable[[_Instrument], bool]:
    return lambda instrument: instrument.name.startswith(prefix)


def _all(*checks: Callable[[_Instrument], bool]) -> Callable[[_Instrument], bool]:
    return lambda instrument: all(check(instrument) for check in checks)


# livekit-agents' instruments that measure what ours already measure, with more labels (provider in
# the chain, attempt outcome, tenant): each is recorded on every LLM attempt or tool call and read by
# no dashboard or alert, so by default they are not aggregated (``SALES_AGENT_METRICS_DETAIL=all``
# keeps them). The value names ours.
LIVEKIT_DUPLICATES: dict[str, str] = {
    "gen_ai.client.token.usage": names.LLM_TOKENS,
    "gen_ai.client.operation.duration": names.LLM_ATTEMPT_DURATION,
    "gen_ai.client.operation.time_to_first_chunk": names.LLM_TIME_TO_FIRST_TOKEN,
    "gen_ai.execute_tool.duration": names.TOOL_DURATION,
    "lk.agents.usage.llm_input_tokens": names.LLM_TOKENS,
    "lk.agents.usage.llm_output_tokens": names.LLM_TOKENS,
}

_ANY_LABEL = AllExcept(names.METRIC_FORBIDDEN_ATTRIBUTES)
_LIVEKIT = _prefix("lk.agents.")
_GEN_AI = _prefix("gen_ai.")
_SECONDS = _histogram("s")

# First when SALES_AGENT_METRICS_DETAIL=default: a dropped instrument still costs the SDK's call per
# measurement, but nothing is aggregated, kept or exported for it.
DROP_LIVEKIT_DUPLICATES = Rule(
    "livekit duplicates of ours",
    lambda instrument: instrument.name in LIVEKIT_DUPLICATES,
    DropAggregation(),
    frozenset(),
)

# Order matters: first match wins.
RULES: tuple[Rule, ...] = (
    Rule("livekit seconds histograms", _all(_LIVEKIT, _SECONDS), LATENCY, LIVEKIT_ATTRIBUTES, exemplars=True),
    Rule("livekit other instruments", _LIVEKIT, None, LIVEKIT_ATTRIBUTES),
    Rule("gen_ai seconds histograms", _all(_GEN_AI, _SECONDS), LATENCY, GEN_AI_ATTRIBUTES, exemplars=True),
    Rule("gen_ai token histograms", _all(_GEN_AI, _histogram("{token}")), TOKENS, GEN_AI_ATTRIBUTES),
    Rule("gen_ai other instruments", _GEN_AI, None, GEN_AI_ATTRIBUTES),
    Rule(
        "session/call durations",
        _all(lambda i: i.name in DURATION_HISTOGRAMS, _SECONDS),
        DURATION,
        _ANY_LABEL,
        exemplars=True,
    ),
    # Ours (sales_agent.*), http.client.* / http.server.* (new semconv) and anything else in seconds.
    Rule("seconds histograms", _SECONDS, LATENCY, _ANY_LABEL, exemplars=True),
    Rule("everything else", lambda _: True, None, _ANY_LABEL),
)


class _RuleView(View):
    """A View selected by ``RULES[index]`` and none of the rules before it.

    The SDK's View criteria (name wildcard, unit, type, meter) cannot say "not matched by an earlier
    View", so selection is done here by overriding the SDK's matching hook.
    """

    def __init__(self, rules: tuple[Rule, ...], index: int) -> None:
        rule = rules[index]
        super().__init__(
            instrument_name="*",
            aggregation=rule.aggregation,
            attribute_keys=rule.attribute_keys,  # type: ignore[arg-type]  # a set, possibly inverted
            exemplar_reservoir_factory=None if rule.exemplars else _no_exemplars,  # None: the SDK's default
        )
        self._rule = rule
        self._earlier = rules[:index]

    def _match(self, instrument: _Instrument) -> bool:
        return self._rule.matches(instrument) and not any(r.matches(instrument) for r in self._earlier)


def build_views(rules: Iterable[Rule] = RULES, *, detail: str = "default") -> list[View]:
    """One View per rule; with ``detail="default"`` livekit's duplicates of ours are dropped first."""
    rules = (DROP_LIVEKIT_DUPLICATES, *rules) if detail == "default" else tuple(rules)
    return [_RuleView(rules, index) for index in range(len(rules))]
