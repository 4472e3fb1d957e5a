"""Writes every registered board as JSON beside this file: ``uv run python -m dashboards.generate``.

The boards are Python (dashboards/boards/, built with grafana-foundation-sdk); the JSON is what
Grafana provisions (deploy/grafana/provisioning/dashboards loads dashboards/*.json) and is committed
so the stack needs no Python. tests/unit/test_dashboards_json.py fails when the committed JSON differs
from a fresh generation: edit the modules, never the JSON.
"""

from __future__ import annotations

from pathlib import Path

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards.boards import BOARDS, Board

OUT_DIR = Path(__file__).resolve().parent


def render(board: Board) -> str:
    built = board.build()
    if built.uid != board.UID:
        raise ValueError(f"{board.UID}: build() returned uid {built.uid!r}")
    return JSONEncoder(indent=2).encode(built) + "\n"


def main() -> None:
    for board in BOARDS:
        path = OUT_DIR / f"{board.UID}.json"
        path.write_text(render(board))
        print(f"wrote {path.relative_to(OUT_DIR.parent)}")


if __name__ == "__main__":
    main()
