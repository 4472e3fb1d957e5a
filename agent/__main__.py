"""``python -m agent COMMAND ...`` is the same as the ``sales-agent`` console script."""

from agent.cli import console_main

console_main()
