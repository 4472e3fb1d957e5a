"""``agent/simulate/startup.py``: the loader thread and the bytecode note (in-process; no timing)."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import threading
from pathlib import Path

import pytest

from agent.background_imports import BackgroundImports
from agent.simulate.startup import bytecode_note


def _package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, *, compiled: bool) -> None:
    package = tmp_path / name
    package.mkdir()
    source = package / "__init__.py"
    source.write_text("IMPORTED_BY = __import__('threading').current_thread().name\n")
    if compiled:
        import py_compile

        py_compile.compile(str(source), cfile=importlib.util.cache_from_source(str(source)))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)


def test_no_note_when_the_bytecode_is_there(tmp_path, monkeypatch):
    _package(tmp_path, monkeypatch, "compiled_pkg", compiled=True)
    assert bytecode_note("compiled_pkg") == ""


def test_the_note_says_how_to_compile_once_when_python_may_not_write_bytecode(tmp_path, monkeypatch):
    _package(tmp_path, monkeypatch, "uncompiled_pkg", compiled=False)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    note = bytecode_note("uncompiled_pkg")
    assert "PYTHONDONTWRITEBYTECODE" in note and "uv sync --compile-bytecode" in note
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    assert "first start since install" in bytecode_note("uncompiled_pkg")
    assert "uncompiled_pkg" not in sys.modules  # finding it did not import it


def test_the_loader_imports_in_its_own_thread(tmp_path, monkeypatch):
    _package(tmp_path, monkeypatch, "loaded_pkg", compiled=False)
    loader = BackgroundImports(["loaded_pkg"]).start()
    seconds = asyncio.run(asyncio.wait_for(loader.wait(), 30))
    assert seconds >= 0
    assert sys.modules["loaded_pkg"].IMPORTED_BY == "sales-agent-imports"
    assert threading.current_thread().name != "sales-agent-imports"


def test_a_failed_import_is_raised_by_wait():
    loader = BackgroundImports(["no_such_module_for_the_loader"]).start()
    with pytest.raises(ModuleNotFoundError, match="no_such_module_for_the_loader"):
        asyncio.run(asyncio.wait_for(loader.wait(), 30))
