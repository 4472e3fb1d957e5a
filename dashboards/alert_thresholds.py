"""Threshold lines read from the alert rules, so a panel and its alert never disagree.

The rules in ``alert-rules/*.rules.yml`` are the single source: a panel asks for the threshold of an
alert by name, this module parses that alert's PromQL (with promql-parser, not regexes) and returns
the constant the alert compares with ``>`` or ``<``. By the rules' convention (alert-rules/README.md)
``>=`` / ``<=`` compare with minimum-traffic guards, which are not thresholds, and ``bool``
comparisons are arithmetic. Changing a number in a rule makes the committed dashboards stale until
they are regenerated (tests/unit/test_dashboards_json.py), and reshaping an alert so that its threshold
is no longer one clear constant fails generation with the alert's name.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from pathlib import Path

import promql_parser
import yaml

RULES_DIR = Path(__file__).resolve().parent.parent / "alert-rules"

_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "^": operator.pow,
}


@functools.cache
def _alert_expressions(rules_dir: Path = RULES_DIR) -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted(rules_dir.glob("*.rules.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    found[rule["alert"]] = rule["expr"]
    return found


def _constant(node: promql_parser.Expr) -> float | None:
    """The value of a constant sub-expression (``0.8``, ``(14.4 * 0.001)``, ``-1``), else None."""
    if isinstance(node, promql_parser.NumberLiteral):
        return float(node.val)
    if isinstance(node, promql_parser.ParenExpr):
        return _constant(node.expr)
    if isinstance(node, promql_parser.UnaryExpr):
        inner = _constant(node.expr)
        return None if inner is None else -inner
    if isinstance(node, promql_parser.BinaryExpr) and str(node.op) in _ARITHMETIC:
        lhs, rhs = _constant(node.lhs), _constant(node.rhs)
        if lhs is not None and rhs is not None:
            return _ARITHMETIC[str(node.op)](lhs, rhs)
    return None


def thresholds_in(expr: str) -> list[float]:
    """Every distinct constant ``expr`` compares with ``>`` or ``<`` (not ``bool``), ascending."""
    found: set[float] = set()

    def visit(node: promql_parser.Expr) -> None:
        if not isinstance(node, promql_parser.BinaryExpr) or str(node.op) not in {">", "<"}:
            return
        if node.modifier is not None and node.modifier.return_bool:
            return
        for side in (node.lhs, node.rhs):
            value = _constant(side)
            if value is not None:
                found.add(round(value, 12))  # 14.4 * 0.001 -> 0.0144, not 0.014400000000000001

    promql_parser.walk(promql_parser.parse(expr), visit)
    return sorted(found)


def alert_thresholds(alert: str) -> list[float]:
    """Every threshold of one alert (a multi-window alert has several), ascending."""
    expressions = _alert_expressions()
    if alert not in expressions:
        raise KeyError(f"no alert named {alert!r} in {RULES_DIR}/*.rules.yml")
    values = thresholds_in(expressions[alert])
    if not values:
        raise ValueError(f"alert {alert} compares with no constant (> N or < N): no threshold to draw")
    return values


def alert_threshold(alert: str) -> float:
    """The one threshold of ``alert``; an alert with several must be read with alert_thresholds()."""
    values = alert_thresholds(alert)
    if len(values) != 1:
        raise ValueError(f"alert {alert} has {len(values)} thresholds {values}: pick one explicitly")
    return values[0]
