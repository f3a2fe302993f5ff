"""The floors hold: import-linter checks the contracts of pyproject.toml ([tool.importlinter]) on
this checkout's packages. A broken contract fails here with import-linter's report of the import.

The check runs in a child Python started in the checkout, so it reads this tree's packages and not
whatever an editable install points at.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
RUN = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"


def test_import_contracts_are_kept() -> None:
    done = subprocess.run([sys.executable, "-c", RUN], cwd=CHECKOUT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_contracts_cover_every_floor_and_component() -> None:
    config = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())["tool"]["importlinter"]
    kinds = {contract["type"]: contract for contract in config["contracts"]}
    assert set(config["root_packages"]) == {"agentlog", "eventstore", "commands", "projections", "outbox"}
    assert kinds["layers"]["layers"][-1] == "eventstore"
    assert set(kinds["independence"]["modules"]) == {"commands", "projections", "outbox"}
