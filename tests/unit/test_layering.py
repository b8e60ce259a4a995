"""The import-layering contract (pyproject.toml, ``[tool.importlinter]``) holds.

Why here as well as in ``make check``: the layers (config, record, event at the bottom; the bus
above them; collectors and factory never importing each other or the HTTP layer; the HTTP layer
and the CLI on top) are what let a component be added in one place, and an import that breaks
them is easy to write and hard to see in review. This makes ``make test`` fail on it even when
``make check`` is not run, holds the contract to "no exceptions listed", and proves that the
checker sees this tree's imports (a contract that cannot fail would pass here too).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

import logfactory

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
# The tree these tests import, so that the contract is checked on the code under test.
SRC = Path(logfactory.__file__).resolve().parents[1]
# `lint-imports`, run by the interpreter of the tests (its script may not be on PATH).
LINT_IMPORTS = "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"


def _lint_imports(config: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    env["COLUMNS"] = "200"  # one violation a line, not wrapped at 80 columns
    return subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, "--no-cache", "--no-logo", str(config)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _contracts() -> list[dict[str, Any]]:
    with PYPROJECT.open("rb") as f:
        contracts: list[dict[str, Any]] = tomllib.load(f)["tool"]["importlinter"]["contracts"]
    return contracts


@pytest.mark.timeout(180)
def test_the_layering_contract_holds() -> None:
    run = _lint_imports(PYPROJECT)
    assert run.returncode == 0, (
        "the import-layering contract is broken; move the code to the layer it belongs to "
        f"(see docs/architecture.md, Layers), never list an exception:\n{run.stdout}{run.stderr}"
    )
    assert "0 broken" in run.stdout, run.stdout


def test_the_contract_lists_no_exceptions_and_places_every_module() -> None:
    contracts = _contracts()
    assert {c["type"] for c in contracts} == {"layers", "independence", "forbidden"}
    for contract in contracts:
        assert "ignore_imports" not in contract, contract["name"]
        assert "exhaustive_ignores" not in contract, contract["name"]
    (layers,) = (c for c in contracts if c["type"] == "layers")
    # exhaustive: a module of logfactory that no layer names breaks the contract
    assert layers["containers"] == ["logfactory"]
    assert layers["exhaustive"] is True
    assert layers["layers"][-1] == "errors"


@pytest.mark.timeout(180)
def test_the_checker_sees_this_trees_imports(tmp_path: Path) -> None:
    """config imports errors, so a contract putting errors above config must break."""
    inverted = tmp_path / "inverted.toml"
    inverted.write_text(
        '[tool.importlinter]\nroot_package = "logfactory"\n\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "errors above config"\ntype = "layers"\n'
        f"layers = {json.dumps(['logfactory.errors', 'logfactory.config'])}\n",
        encoding="utf-8",
    )
    run = _lint_imports(inverted)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "logfactory.config is not allowed to import logfactory.errors" in run.stdout
