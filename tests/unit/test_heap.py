"""The start-up heap leaves the garbage collector's full passes (agent/heap.py), once per process."""

from __future__ import annotations

import gc
import importlib
import uuid
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

import agent.runtime as runtime_module
from agent import heap
from agent.app_settings import AppSettings
from agent.background_imports import BackgroundImports
from agent.llm import ProviderConfig
from agent.runtime import start_runtime
from agent.tenants import TenantRegistry
from local_services.crm_service import run_crm_service
from local_services.llm_provider import run_llm_provider


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


@pytest.fixture
def fresh_heap(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This test process as if it had not frozen yet; unfrozen again afterwards."""
    monkeypatch.setattr(heap, "_frozen", None)
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()


def test_the_heap_is_frozen_once_and_what_comes_later_is_still_collected(fresh_heap: None) -> None:
    before = _Node()
    kept = weakref.ref(before)
    del before  # garbage already: the collection before the freeze frees it, it is not kept forever

    frozen = heap.freeze_startup_heap()

    assert frozen is not None and frozen.objects > 1000 and gc.get_freeze_count() > 1000
    assert kept() is None
    assert heap.frozen_heap() == frozen
    assert heap.freeze_startup_heap() is None  # the second runtime of the process: nothing to do
    after = _Node()
    collectable = weakref.ref(after)
    del after
    gc.collect()
    assert collectable() is None  # calls' garbage is collected as before


async def test_the_first_runtime_freezes_unless_told_not_to(tmp_path: Path, monkeypatch) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(runtime_module, "freeze_startup_heap", lambda: calls.append(True))
    async with (
        run_llm_provider("primary") as primary,
        run_crm_service(tmp_path / "crm.sqlite3") as crm_url,
    ):
        chain = [ProviderConfig(name="primary", kind="local", model="primary-model", api_base=primary.url)]
        for freeze in (False, True):
            settings = AppSettings.from_env(
                llm={"chain": chain},
                crm={"crm_url": crm_url, "outbox_path": str(tmp_path / f"outbox-{freeze}.sqlite3")},
                worker={"gc_freeze": freeze},
            )
            tenants = TenantRegistry.from_mapping({"tenants": {"acme": {"display_name": "Acme"}}})
            runtime = await start_runtime(settings, tenants=tenants)
            await runtime.aclose()
            assert calls == ([True] if freeze else [])


def test_the_background_imports_run_without_the_collector(tmp_path: Path, monkeypatch) -> None:
    name = f"gc_probe_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("import gc\nCOLLECTING = gc.isenabled()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert gc.isenabled()

    loader = BackgroundImports([name]).start()
    loader._result.result(timeout=30)  # the loader thread's own future: no event loop needed here

    assert importlib.import_module(name).COLLECTING is False
    assert gc.isenabled()  # and back on once they are loaded
