"""The bus package's seams (issue 14, item 3), held by the import graph and the source.

Why: the embedded and Kafka buses are subpackages whose parts depend on narrow protocols, not
on the bus classes. That only stays true if nothing quietly brings back what it replaced: an
import cycle (type-only imports count: they are the first step back to a tangle), a module
reaching for another module's private ``_name``, or code outside ``bus/`` naming a concrete
bus class instead of asking :func:`logfactory.bus.open_bus` and the capability protocols of
:mod:`logfactory.bus.base`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest

import logfactory

SRC = Path(logfactory.__file__).resolve().parent
BUS = SRC / "bus"
CONCRETE = {"LocalBus", "KafkaBus", "HttpShipBus"}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    """The import graph of ``logfactory``, TYPE_CHECKING imports included."""
    return grimp.build_graph("logfactory", cache_dir=None)


@pytest.fixture(scope="module")
def bus_graph(graph: grimp.ImportGraph) -> dict[str, set[str]]:
    """Direct imports between modules of ``logfactory.bus``."""
    modules = {m for m in graph.modules if m == "logfactory.bus" or m.startswith("logfactory.bus.")}
    return {
        m: {i for i in graph.find_modules_directly_imported_by(m) if i in modules} for m in modules
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, or importing themselves."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert _cycles(graph) == [["a", "b", "c"], ["e"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_holds_the_bus_parts_and_their_type_only_imports(
    graph: grimp.ImportGraph, bus_graph: dict[str, set[str]]
) -> None:
    """The graph the next test checks is the real one: every part, and type-only edges."""
    assert "logfactory.bus.local.append" in bus_graph["logfactory.bus.local.bus"]
    assert "logfactory.bus.kafka.consumer" in bus_graph["logfactory.bus.kafka.transaction"]
    assert "logfactory.bus.local.writer_process" in bus_graph
    # the Kafka bus module imports BusConfig under TYPE_CHECKING only
    kafka_bus = graph.find_modules_directly_imported_by("logfactory.bus.kafka.bus")
    assert "logfactory.config" in kafka_bus


def test_the_bus_package_has_no_import_cycle(bus_graph: dict[str, set[str]]) -> None:
    assert _cycles(bus_graph) == []


def _python_files(root: Path) -> Iterator[Path]:
    yield from sorted(root.rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _private_imports(path: Path) -> list[str]:
    """``from logfactory... import _name``, and ``module._name`` on an imported logfactory
    module, in one file."""
    tree = ast.parse(path.read_text(), str(path))
    modules: set[str] = set()  # local names bound to logfactory modules
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("logfactory"):
            for alias in node.names:
                if alias.name.startswith("_"):
                    found.append(f"{path.name}:{node.lineno} imports {node.module}.{alias.name}")
                elif alias.name.islower():  # maybe a submodule: ``from pkg import module``
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("logfactory"):
                    modules.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
        ):
            found.append(f"{path.name}:{node.lineno} uses {node.value.id}.{node.attr}")
    return found


def test_the_private_import_scan_sees_both_forms(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from logfactory.bus.local.db import _SHIFT, Db\n"
        "from logfactory.bus.local import append\n"
        "import logfactory.bus.base as base\n"
        "x = append._insert_rows\n"
        "y = base.__name__\n"
        "z = Db\n"
    )
    assert _private_imports(sample) == [
        "sample.py:1 imports logfactory.bus.local.db._SHIFT",
        "sample.py:4 uses append._insert_rows",
    ]


def test_no_bus_module_uses_another_modules_private_names() -> None:
    found = [hit for path in _python_files(BUS) for hit in _private_imports(path)]
    assert found == []


def test_nothing_outside_the_bus_package_names_a_concrete_bus_class() -> None:
    """Outside ``bus/``, code opens buses with ``open_bus`` and asks for capabilities with
    the protocols of ``bus/base.py``; ``bus/opener.py`` is the one place that names them."""
    found: list[str] = []
    for path in _python_files(SRC):
        if BUS in path.parents:
            continue
        tree = ast.parse(path.read_text(), str(path))
        where = _module_name(path)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                found += [
                    f"{where}:{node.lineno} imports {a.name}"
                    for a in node.names
                    if a.name in CONCRETE
                ]
            elif isinstance(node, ast.Name) and node.id in CONCRETE:
                found.append(f"{where}:{node.lineno} names {node.id}")
            elif isinstance(node, ast.Attribute) and node.attr in CONCRETE:
                found.append(f"{where}:{node.lineno} names {node.attr}")
    assert found == []


def test_the_sdk_hands_out_the_bus_packages_open_bus() -> None:
    """``open_bus`` lives in ``logfactory.bus``; the SDK re-exports that very function (its
    ``tail`` takes a bus, so SDK users need a way to open one)."""
    import logfactory.bus
    import logfactory.subscribe

    assert logfactory.subscribe.open_bus is logfactory.bus.open_bus
    assert "open_bus" in logfactory.subscribe.__all__
    assert logfactory.bus.open_bus.__module__ == "logfactory.bus.opener"
