"""The repository's layout rules that keep the fast loop fast and the helpers single."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"


def test_every_test_module_is_either_unit_or_integration() -> None:
    misplaced = [
        str(path.relative_to(TESTS))
        for path in TESTS.rglob("test_*.py")
        if path.parent not in (TESTS / "unit", TESTS / "integration")
    ]
    assert misplaced == [], "put each in tests/unit (in-process) or tests/integration (starts processes)"


def test_free_ports_come_from_the_one_helper() -> None:
    """``local_services.harness.free_port`` is the only code that binds port 0 just to learn a port."""
    pattern = re.compile(r"\.bind\(\s*\(\s*[\"'][^\"']*[\"']\s*,\s*0\s*\)\s*\)")
    copies = [
        f"{path.relative_to(REPO)}:{number}"
        for folder in ("agent", "telemetry", "local_services", "bench", "tests", "deploy")
        for path in (REPO / folder).rglob("*.py")
        if path != REPO / "local_services" / "harness.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert copies == [], "use local_services.harness.free_port"
