"""The boards, one module each, and the registry ``dashboards.generate`` writes.

A board module has ``UID`` (also the JSON file's name and the ``/d/<uid>`` URL) and ``build()``,
which returns the typed dashboard (``kit.board(...)`` ... ``kit.finish(...)``). Adding a board is a
new module here plus one entry in ``BOARDS``; see dashboards/README.md.
"""

from __future__ import annotations

from typing import Protocol

from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards.boards import calls, dependencies, llm, overview, sessions, system, voice


class Board(Protocol):
    UID: str

    def build(self) -> Dashboard: ...


BOARDS: tuple[Board, ...] = (overview, llm, dependencies, sessions, system, calls, voice)
