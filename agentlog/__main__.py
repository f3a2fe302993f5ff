"""`python -m agentlog`: the `agentlog` command."""

import sys

from agentlog.cli.main import main

sys.exit(main())
