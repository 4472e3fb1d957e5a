"""Import layering: telemetry/ depends on nothing of the agent; the vocabularies are standard library only,
so local_services/ (which may import them, and only them, from agent/) stays light."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _imports(folder: str) -> Iterator[tuple[str, str]]:
    for path in sorted((REPO / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                yield path.relative_to(REPO).as_posix(), node.module
            elif isinstance(node, ast.Import):
                yield from ((path.relative_to(REPO).as_posix(), alias.name) for alias in node.names)


def test_telemetry_imports_nothing_of_the_agent() -> None:
    assert [(f, m) for f, m in _imports("telemetry") if m.split(".")[0] == "agent"] == []


def test_vocabularies_import_only_the_standard_library() -> None:
    outside = [
        (f, m)
        for f, m in _imports("agent/vocabulary")
        if m.split(".")[0] not in sys.stdlib_module_names and m != "__future__"
    ]
    assert outside == []


def test_local_services_take_only_the_vocabularies_from_the_agent() -> None:
    taken = {m for _f, m in _imports("local_services") if m.split(".")[0] == "agent"}
    assert taken and all(m.startswith("agent.vocabulary.") for m in taken), taken
