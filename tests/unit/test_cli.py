"""``sales-agent`` dispatches each stand-in of the registry to its module's ``main``."""

from __future__ import annotations

import pytest

from agent import cli
from local_services import STAND_INS


def test_help_lists_every_stand_in(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    usage = capsys.readouterr().out
    for name, stand_in in STAND_INS.items():
        assert f"  {name}" in usage and stand_in.summary in usage


@pytest.mark.parametrize("name", sorted(STAND_INS))
def test_each_stand_in_subcommand_reaches_its_own_parser(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main([name, "--help"])
    assert exited.value.code == 0
    help_text = capsys.readouterr().out
    assert help_text.startswith(f"usage: {name} ") and "--port" in help_text
