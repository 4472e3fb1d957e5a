"""``python -m agent COMMAND ...`` is the same as the ``sales-agent`` console script."""

import sys

from agent.cli import main

sys.exit(main())
