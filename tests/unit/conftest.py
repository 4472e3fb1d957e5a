"""The unit loop: ``uv run pytest tests/unit -n auto`` (pytest-xdist; about 45 s on 2 cores).

The rule: a unit test runs inside the pytest process. It may start in-process servers on loopback
(the stand-ins of ``local_services`` with ``port=0``, aiohttp apps) and read files of the repository,
but it starts no process: no subprocess, no ``python -m``, no promtool/amtool/Prometheus/Alertmanager.
A test that needs one belongs in ``tests/integration``; the fixture below fails it with that message.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _no_child_processes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(self: subprocess.Popen[Any], args: Any, *_args: Any, **_kwargs: Any) -> None:
        raise AssertionError(
            f"a unit test started a process ({args!r}); a test that does belongs in tests/integration"
        )

    # asyncio's create_subprocess_* goes through subprocess.Popen too.
    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
    yield
