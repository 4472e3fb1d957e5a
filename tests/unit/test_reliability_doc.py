"""docs/reliability.md is the product's own reliability description: linked from the README, nothing in
the repository points outside it, and every name it cites exists."""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from telemetry import names

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "reliability.md"


def _project_files() -> list[Path]:
    """The repository's text sources (hidden folders, .venv and caches are not walked)."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("__pycache__", "dist", "build")]
        found.extend(Path(folder) / f for f in files if f.endswith((".md", ".py", ".yml", ".yaml", ".toml")))
    return found


def test_readme_links_the_reliability_description_and_nothing_points_outside_the_repo() -> None:
    assert "(docs/reliability.md)" in (REPO / "README.md").read_text(encoding="utf-8")
    outside = [
        path.relative_to(REPO).as_posix()
        for path in _project_files()
        if path != Path(__file__).resolve()  # this check itself
        and "../shared" in path.read_text(encoding="utf-8", errors="replace")
    ]
    assert outside == []


def test_every_metric_alert_and_link_the_doc_cites_exists() -> None:
    text = DOC.read_text(encoding="utf-8")
    catalog = {v for k, v in vars(names).items() if k.isupper() and isinstance(v, str)}
    cited = set(re.findall(r"`(sales_agent\.[a-z_.]+)`", text))
    assert cited, "the doc cites metric names"
    assert cited - catalog == set()
    alerts = {
        rule["alert"]
        for path in (REPO / "alert-rules").glob("*.rules.yml")
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    bold = re.findall(r"\*\*([A-Za-z]+)\*\*", text)
    cited_alerts = {word for word in bold if sum(c.isupper() for c in word) >= 2}  # not **Defaults**
    assert cited_alerts, "the doc cites alerts"
    assert cited_alerts - alerts == set()
    for link in re.findall(r"\]\(([^)#]+)\)", text):
        if not link.startswith("http"):
            assert (DOC.parent / link).exists(), link
