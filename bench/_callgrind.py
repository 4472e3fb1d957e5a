"""Instruction counts with ``valgrind --tool=callgrind``: repeatable on a machine whose CPU is shared.

Seconds measured here move with the other processes' load (the same loop measured 27-47 ms per call in
different processes); the number of instructions a piece of code executes does not. So the figures of
``bench_peers`` and ``bench_llm_path`` are callgrind's ``Ir`` (instructions executed), all threads
included (LiteLLM's logging thread pool, the Rust router core, the OTel span processors).

How one child is measured: it runs under ``--instr-atstart=no`` (imports and set-up at valgrind's
cheapest speed, nothing counted), warms up, then brackets each block of calls with callgrind client
requests: start instrumentation + zero the counters, run K calls, dump ("k"), run N calls, dump ("n").
A dump holds exactly the instructions executed between two markers, so block "n" divided by N is the
per-call figure with start-up and warm-up excluded (the "difference of two totals" of a K-call and a
K+N-call run, measured in one process); block "k" divided by K is a second estimate of the same figure
from the same run, and their distance is reported as the within-run spread.

Python cannot issue a client request (it is a magic instruction sequence the C macros in
``valgrind/callgrind.h`` expand to), and no maintained Python package wraps them, so a five-line C file
is compiled once per run with the system C compiler and loaded with ctypes. Outside valgrind the
requests are no-ops, so the same child runs natively (for cProfile).
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._common import REPO_ROOT

HELPER_ENV = "BENCH_CALLGRIND_HELPER"
_HEADER = Path("/usr/include/valgrind/callgrind.h")
_HELPER_SOURCE = """\
#include <valgrind/callgrind.h>
void cg_start(void) { CALLGRIND_START_INSTRUMENTATION; }
void cg_stop(void) { CALLGRIND_STOP_INSTRUMENTATION; }
void cg_zero(void) { CALLGRIND_ZERO_STATS; }
void cg_dump(const char *label) { CALLGRIND_DUMP_STATS_AT(label); }
"""


def unavailable_reason() -> str | None:
    """Why instruction counts cannot be taken on this machine, or None when they can."""
    if shutil.which("valgrind") is None:
        return "valgrind is not installed (Debian package valgrind)"
    if not _HEADER.exists():
        return f"{_HEADER} is missing (it ships with Debian's valgrind package)"
    if shutil.which("cc") is None:
        return "no C compiler (cc) to build the callgrind client-request helper"
    return None


def build_helper(directory: Path) -> Path:
    """Compile the client-request helper into ``directory``; returns the shared library's path."""
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / "cg_markers.c"
    library = directory / "libcg_markers.so"
    source.write_text(_HELPER_SOURCE)
    subprocess.run(
        ["cc", "-shared", "-fPIC", "-O1", "-o", str(library), str(source)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return library


class Markers:
    """The child's side: callgrind client requests, or no-ops when not run by ``run_counted``."""

    def __init__(self) -> None:
        path = os.environ.get(HELPER_ENV)
        self._lib: Any = ctypes.CDLL(path) if path else None

    def start(self) -> None:
        if self._lib is not None:
            self._lib.cg_start()
            self._lib.cg_zero()

    def dump(self, label: str) -> None:
        if self._lib is not None:
            self._lib.cg_dump(label.encode())

    def stop(self) -> None:
        if self._lib is not None:
            self._lib.cg_stop()


@dataclass
class Part:
    """One callgrind dump: the instructions executed between two markers."""

    label: str
    instructions: int
    path: Path


_TRIGGER = re.compile(r"^desc: Trigger: Client Request: (?P<label>.*)$", re.M)
_SUMMARY = re.compile(r"^summary: (?P<ir>\d+)$", re.M)


def read_parts(out_prefix: Path) -> list[Part]:
    """The labelled dumps ``<prefix>.<n>`` a child wrote, in order (the end-of-program dump is skipped)."""
    parts = []
    for path in sorted(out_prefix.parent.glob(out_prefix.name + ".*"), key=lambda p: int(p.suffix[1:])):
        text = path.read_text(errors="replace")
        trigger, summary = _TRIGGER.search(text), _SUMMARY.search(text)
        if trigger and summary:
            parts.append(Part(trigger["label"].strip(), int(summary["ir"]), path))
    return parts


def run_counted(
    module: str,
    args: Sequence[str],
    *,
    env: dict[str, str],
    helper: Path,
    workdir: Path,
    timeout_s: float,
    valgrind: bool = True,
) -> tuple[dict[str, Any], list[Part]]:
    """Run ``python -m module args --result-out F`` under callgrind; returns (F's JSON, the dumps).

    ``valgrind=False`` runs the same child natively (no counts; for profiles and smoke runs).
    """
    import json

    workdir.mkdir(parents=True, exist_ok=True)
    result_path = workdir / "result.json"
    out_prefix = workdir / "callgrind.out"
    cmd = [sys.executable, "-m", module, *args, "--result-out", str(result_path)]
    if valgrind:
        cmd = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out_prefix}",
            # Python's own allocator and Rust/tokio threads need no special handling; keep valgrind quiet.
            "--quiet",
            *cmd,
        ]
    log_path = workdir / "output.log"
    with log_path.open("w") as log_file:
        proc = subprocess.run(
            cmd,
            env={**env, HELPER_ENV: str(helper)},
            cwd=REPO_ROOT,
            timeout=timeout_s,
            stdout=log_file,
            stderr=log_file,
        )
    if proc.returncode != 0 or not result_path.exists():
        tail = log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(cmd[-8:])} exited {proc.returncode}:\n{tail}")
    return json.loads(result_path.read_text()), read_parts(out_prefix) if valgrind else []


def by_object(path: Path) -> dict[str, int]:
    """Self instructions of one dump per shared object (libpython, pydantic-core, the Rust router core,
    libc, ...), read from the callgrind file itself: each cost line counts for the object named by the
    last ``ob=``, except the line after ``calls=``, which is a call's inclusive cost."""
    names: dict[str, str] = {}
    current, skip_next = "?", False
    totals: dict[str, int] = {}
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(("ob=", "cob=")):  # a name is defined once, at its first use in either
            ref, _, name = line.partition("=")[2].partition(" ")
            if name:
                names[ref] = object_label(name)
            if line.startswith("ob="):
                current = ref
        elif line.startswith("calls="):
            skip_next = True
        elif line[:1].isdigit() or line[:1] in "+-*":
            if skip_next:
                skip_next = False
                continue
            fields = line.split()
            if len(fields) >= 2:
                totals[current] = totals.get(current, 0) + int(fields[1])
    labelled: dict[str, int] = {}
    for ref, count in totals.items():
        label = names.get(ref, ref)
        labelled[label] = labelled.get(label, 0) + count
    return dict(sorted(labelled.items(), key=lambda kv: kv[1], reverse=True))


def object_label(path: str) -> str:
    """``/x/site-packages/pydantic_core/_pydantic_core.cpython-311-x86_64-linux-gnu.so`` ->
    ``pydantic_core/_pydantic_core``; ``/usr/lib/x86_64-linux-gnu/libc.so.6`` -> ``libc``."""
    file = Path(path)
    base = re.sub(r"\.cpython-\d+-[\w-]+\.so$|\.abi3\.so$|\.so(\.[\d.]+)?$", "", file.name)
    if "site-packages" in file.parts:
        return f"{file.parent.name}/{base}"
    return base
