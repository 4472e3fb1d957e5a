"""The caller's side of the stand-ins, for tests and benchmarks: a free port, a stand-in in its own
process (started with ``--port 0``, ready when it prints ``READY <port>``), an in-process stand-in
driven from synchronous code, and a stand-in's ``GET /admin/stats``.

This is the one free-port helper of the repository. A port found free here can be taken by someone
else before it is used; prefer ``--port 0`` / ``port=0`` and the bound port whenever the process that
listens is ours, and use ``free_port`` only for an address that must be known before start (another
program's config) or for a port where nothing should listen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

from local_services import STAND_INS
from local_services._serve import READY_PREFIX

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on at this moment."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class Spawned:
    """A stand-in running as a child process: its port (from the READY line), URL and output log."""

    name: str
    process: subprocess.Popen[str]
    port: int
    log_path: Path
    extra_ports: dict[str, int] = field(default_factory=dict)
    _final_output: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        """Its stderr (and stdout after READY) so far; after the block, everything it wrote."""
        if self._final_output is not None:
            return self._final_output
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def spawn(
    name: str,
    *args: str,
    env: Mapping[str, str] | None = None,
    ready_timeout_s: float = 60.0,
    stop_timeout_s: float = 20.0,
) -> Iterator[Spawned]:
    """Run stand-in ``name`` (a key of ``STAND_INS``) as ``python -m <module> --port 0 ARGS``.

    Yields once it printed its READY line; on exit sends SIGTERM (then SIGKILL after
    ``stop_timeout_s``). Its stderr and any further stdout go to a log file (``Spawned.output()``),
    quoted in the error when it exits or stays silent before it is ready.
    """
    module = STAND_INS[name].module
    argv = [sys.executable, "-m", module, *args]
    if "--port" not in args:
        argv += ["--port", "0"]
    with tempfile.TemporaryDirectory(prefix=f"{name}-") as tmp:
        log_path = Path(tmp) / "output.log"
        with log_path.open("w") as log_file:
            process = subprocess.Popen(
                argv,
                cwd=REPO_ROOT,
                env=dict(env) if env is not None else None,
                stdout=subprocess.PIPE,
                stderr=log_file,
                text=True,
            )
            spawned = None
            try:
                port, extra = _read_ready(process, ready_timeout_s, log_path, name)
                # Keep draining stdout so a chatty child can never block on a full pipe.
                drain = threading.Thread(target=_copy_lines, args=(process.stdout, log_file), daemon=True)
                drain.start()
                spawned = Spawned(name, process, port, log_path, extra)
                yield spawned
            finally:
                stop_process(process, stop_timeout_s)
                if spawned is not None:
                    log_file.flush()
                    spawned._final_output = log_path.read_text(errors="replace")


def _read_ready(
    process: subprocess.Popen[str], timeout_s: float, log_path: Path, name: str
) -> tuple[int, dict[str, int]]:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(timeout=0.2):
                line = process.stdout.readline()
                if line.startswith(READY_PREFIX + " "):
                    first, *rest = line.split()[1:]
                    return int(first), {k: int(v) for k, v in (item.split("=", 1) for item in rest)}
                if not line and process.poll() is not None:
                    break
            elif process.poll() is not None:
                break
    output = log_path.read_text(errors="replace")[-3000:]
    if process.poll() is not None:
        raise RuntimeError(f"{name} exited with {process.returncode} before it was ready:\n{output}")
    raise TimeoutError(f"{name} printed no READY line within {timeout_s} s:\n{output}")


def _copy_lines(source: IO[str] | None, sink: IO[str]) -> None:
    if source is None:
        return
    with contextlib.suppress(ValueError, OSError):  # the log file closes when the block ends
        for line in source:
            sink.write(line)


def stop_process(process: subprocess.Popen[str], timeout_s: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout_s``; reaps it either way."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def in_thread(start: Callable[[], AbstractAsyncContextManager[T]], *, timeout_s: float = 30.0) -> Iterator[T]:
    """Run an async stand-in (``lambda: run_webhook_sink()``) on an event loop of its own thread.

    For synchronous callers (tests driving real Prometheus/Alertmanager or a child process): yields
    what ``start()`` yields once it is serving; leaving the block stops it and joins the thread.
    Talk to it over HTTP; its Python objects belong to the other thread.
    """
    started: Future[T] = Future()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        try:
            async with start() as running:
                started.set_result(running)
                await stop.wait()
        except BaseException as exc:
            if started.done():
                raise
            started.set_exception(exc)  # a start-up failure is raised in the caller

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), name="stand-in", daemon=True)
    thread.start()
    try:
        yield started.result(timeout=timeout_s)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout_s)
        if not thread.is_alive():
            loop.close()


def admin_stats(base_url: str, timeout_s: float = 5.0, route: str = "stats") -> dict[str, Any]:
    """A stand-in's ``GET /admin/stats`` (or another admin ``route``, e.g. the LLM's ``requests``).
    urllib on purpose: an instrumented client (httpx) would add spans of its own to what a benchmark
    measures."""
    with urllib.request.urlopen(f"{base_url.rstrip('/')}/admin/{route}", timeout=timeout_s) as response:
        return json.loads(response.read())
