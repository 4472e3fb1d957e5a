"""docs/private-apis.md lists every private OpenTelemetry/LiveKit name the code uses, and each still exists.

The scan finds: imports of private modules or names, private logger-module names in strings, reads of
``_attributes`` that no module of ours defines, and methods of our classes that override a private
method of a third-party base class (found at run time through the MRO).
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import inspect
import pkgutil
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SCANNED = ("agent", "telemetry", "local_services", "bench")
OURS = {*SCANNED, "tests", "deploy", "dashboards"}
DOC = REPO / "docs" / "private-apis.md"
# Underscore names the standard library documents as public.
DOCUMENTED_STDLIB = {"_exit", "_asdict"}  # os._exit, namedtuple._asdict


def _private(segment: str) -> bool:
    return segment.startswith("_") and not segment.startswith("__")


def _defined_here(tree: ast.AST) -> set[str]:
    """Names a module of ours defines: functions, classes, variables, fields, self/cls attributes."""
    defined: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("self", "cls")
        ):
            defined.add(node.attr)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
    return defined


def _static_uses(tree: ast.AST) -> Iterator[str]:
    defined = _defined_here(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in OURS:
                continue
            if any(_private(s) for s in node.module.split(".")):
                yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names if _private(a.name))
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if any(_private(s) for s in a.name.split(".")))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if re.fullmatch(r"(opentelemetry|livekit)(\.\w+)+", node.value) and any(
                _private(s) for s in node.value.split(".")
            ):
                yield node.value  # a logger (module) name
        elif (
            isinstance(node, ast.Attribute)
            and _private(node.attr)
            and node.attr not in defined | DOCUMENTED_STDLIB
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            yield f".{node.attr}"  # read on an object of a library


def _overrides() -> Iterator[str]:
    """``base_module.Base._method`` for every private third-party method a class of ours overrides."""
    for package in ("agent", "telemetry", "local_services"):
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            if info.name.endswith("__main__"):
                continue
            module = importlib.import_module(info.name)
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if cls.__module__ != module.__name__:
                    continue
                for name, value in vars(cls).items():
                    if not _private(name) or not callable(value):
                        continue
                    for base in cls.__mro__[1:]:
                        top = base.__module__.split(".")[0]
                        if top in OURS or top in sys.stdlib_module_names or top == "builtins":
                            continue
                        if name in vars(base):
                            yield f"{base.__module__}.{base.__qualname__}.{name}"
                            break


def _found() -> set[str]:
    found = set(_overrides())
    for folder in SCANNED:
        for path in sorted((REPO / folder).rglob("*.py")):
            found.update(_static_uses(ast.parse(path.read_text(encoding="utf-8"))))
    return found


def _listed() -> list[str]:
    return re.findall(r"^\| `([^`]+)` \|", DOC.read_text(encoding="utf-8"), flags=re.M)


def test_every_private_use_is_listed_and_every_listed_one_is_used() -> None:
    listed = _listed()
    assert len(listed) == len(set(listed)), "a private API is listed twice"
    found = _found()
    attributes = {f for f in found if f.startswith(".")}
    unlisted = {f for f in found - attributes if f not in listed}
    unlisted |= {a for a in attributes if not any(entry.endswith(a) for entry in listed)}
    assert unlisted == set(), f"list these in {DOC.name}"
    unused = {e for e in listed if e not in found and not any(e.endswith(a) for a in attributes)}
    assert unused == set(), f"no longer used: remove from {DOC.name}"


def _instances() -> dict[type, Any]:
    """Live SDK objects whose instance attributes the list names."""
    from opentelemetry.sdk.metrics.export import MetricExporter
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    class Exporter(MetricExporter):
        def export(self, *_a: Any, **_k: Any) -> Any: ...
        def force_flush(self, *_a: Any, **_k: Any) -> bool:
            return True

        def shutdown(self, *_a: Any, **_k: Any) -> None: ...

    provider = TracerProvider()
    batch = BatchSpanProcessor(InMemorySpanExporter())
    objects = [Exporter(), provider, provider._active_span_processor, batch, batch._batch_processor]
    objects.append(ReadableSpan(name="finished"))
    return {type(o): o for o in objects}


def _resolve(dotted: str) -> tuple[object, str | None]:
    """The deepest importable module of ``dotted`` and the attribute path left after it."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            module = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        return module, ".".join(parts[cut:]) or None
    raise ImportError(dotted)


def test_listed_private_apis_still_exist() -> None:
    instances = _instances()
    for entry in _listed():
        owner, rest = _resolve(entry)
        if rest is None:
            continue  # a module: imported
        *path, name = rest.split(".")
        for part in path:
            owner = getattr(owner, part)
        if isinstance(owner, type) and name not in vars(owner) and not hasattr(owner, name):
            live = next((o for cls, o in instances.items() if issubclass(cls, owner)), None)
            assert live is not None and hasattr(live, name), f"{entry} is gone"
        else:
            assert hasattr(owner, name), f"{entry} is gone"
    for obj in instances.values():
        if hasattr(obj, "shutdown") and not inspect.isclass(obj):
            obj.shutdown()


async def test_livekit_prewarm_runs_our_warm_up() -> None:
    """LiveKit's LLM.prewarm() calls the _prewarm_impl hook RouterLLM overrides."""
    from agent.llm.router_llm import RouterLLM

    warmed = asyncio.Event()

    class Chain:
        async def warm(self) -> None:
            warmed.set()

    router_llm = RouterLLM(Chain())  # type: ignore[arg-type]
    router_llm.prewarm()
    await asyncio.wait_for(warmed.wait(), timeout=10)


@pytest.mark.parametrize("entry", _listed())
def test_each_listed_api_names_a_test_that_exists(entry: str) -> None:
    row = next(
        line for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith(f"| `{entry}` |")
    )
    tests = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", row.rsplit("|", 2)[-2])
    assert tests, f"{entry}: no pinning test named"
    for file, name in tests:
        assert re.search(rf"^(async )?def {name}\(", (REPO / file).read_text(encoding="utf-8"), re.M), (
            file,
            name,
        )
