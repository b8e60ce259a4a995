"""The test tree's layout holds: test modules never import each other, and nothing imports a
conftest. What two test modules share lives in tests/helpers/, one copy each (issue 14 item 7);
importing a test module instead runs its module-level code twice under two names and lets pytest
collect its tests where they do not belong, and helpers hidden in test modules or conftest files
get copied rather than found."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    """``tests/unit/test_x.py`` -> ``tests.unit.test_x`` (``__init__.py`` -> its package)."""
    parts = list(path.relative_to(TESTS.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str) -> set[str]:
    """Every module the code ``source`` of ``module`` imports, relative imports resolved; for
    ``from PKG import NAME`` both ``PKG`` and ``PKG.NAME`` (NAME may be a module)."""
    package = module.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{node.module}" if node.module else parent
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def is_test_module(module: str) -> bool:
    return module.startswith("tests.") and module.rsplit(".", 1)[-1].startswith("test_")


def is_conftest(module: str) -> bool:
    return module.startswith("tests") and module.rsplit(".", 1)[-1] == "conftest"


def offences(wanted: Callable[[str], bool]) -> list[str]:
    return sorted(
        f"{path.relative_to(TESTS.parent)} imports {imported}"
        for path in TESTS.rglob("*.py")
        for imported in imported_modules(path.read_text(), module_name(path))
        if wanted(imported)
    )


def test_the_scan_sees_every_form_of_import() -> None:
    """The scanner itself: absolute, from-package, relative and dotted-relative imports are all
    seen (a scanner that saw none would pass the checks below vacuously)."""
    source = (
        "import tests.unit.api.test_a\n"
        "from tests.unit.collect import test_b\n"
        "from .test_c import x\n"
        "from ..api.test_d import y\n"
        "from . import conftest\n"
        "from tests.helpers.agent import Reader\n"
    )
    found = imported_modules(source, "tests.unit.collect.test_probe")
    assert {m for m in found if is_test_module(m)} == {
        "tests.unit.api.test_a",
        "tests.unit.collect.test_b",
        "tests.unit.collect.test_c",
        "tests.unit.api.test_d",
    }
    assert {m for m in found if is_conftest(m)} == {"tests.unit.collect.conftest"}


def test_no_module_imports_a_test_module() -> None:
    assert offences(is_test_module) == [], "move what is shared into tests/helpers/"


def test_no_module_imports_a_conftest() -> None:
    assert offences(is_conftest) == [], "conftest files hold fixtures; helpers go in tests/helpers/"
