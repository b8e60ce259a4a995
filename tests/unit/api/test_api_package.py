"""The shape of the HTTP layer (issue 14 item 4), held by tests so it does not drift back.

* No module of ``logfactory.api`` uses a private name (``_x``) of another module of the package:
  what several modules need is public in a shared module (context, auth, responses, metrics).
* Every module of ``logfactory.api.routes`` exposes ``router(ctx, state) -> APIRouter``,
  ``create_app`` includes each of them (none forgotten, none extra), the routers together hold
  every route of the app, and no route module imports another.
* Credential checks live in ``logfactory.api.auth``: a refused credential is answered there, in
  the API's error shape, for ingest and for reviews alike.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.routing import Mount
from tests.helpers.clients import TestClient

import logfactory.api
import logfactory.api.routes
from logfactory.api import NodeContext, create_app
from logfactory.api.app import ROUTE_MODULES
from logfactory.api.context import ApiState
from logfactory.bus.local import LocalBus
from logfactory.config import Config, parse_config
from logfactory.stats import StatsRegistry

PACKAGE = "logfactory.api"
ROUTES = "logfactory.api.routes"


def package_modules(package: ModuleType) -> dict[str, Path]:
    """Every module of ``package`` (the package itself and subpackages included) -> its file."""
    out = {package.__name__: Path(str(package.__file__))}
    for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
        spec = importlib.util.find_spec(info.name)
        assert spec is not None, info.name
        assert spec.origin is not None, info.name
        out[info.name] = Path(spec.origin)
    return out


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The module an ``import from`` names, relative imports resolved against ``module``."""
    if node.level == 0:
        return node.module or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


@dataclass(frozen=True)
class Use:
    user: str  # the module that uses the name
    owner: str  # the module the name belongs to
    name: str
    line: int


def foreign_private_uses(module: str, source: str, is_package: bool, within: str) -> list[Use]:
    """Private names of other modules of ``within`` that ``source`` imports or reads: both
    ``from within.x import _y`` and ``x._y`` where ``x`` was imported from ``within``."""
    tree = ast.parse(source)
    in_package = {within} | _imported_modules(tree, module, is_package, within)
    bound: dict[str, str] = {}  # local name -> module of the package it stands for
    uses: list[Use] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == within or alias.name.startswith(within + "."):
                    bound[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom):
            source_module = _absolute(module, is_package, node)
            if source_module != within and not source_module.startswith(within + "."):
                continue
            for alias in node.names:
                full = f"{source_module}.{alias.name}"
                if full in in_package:  # a submodule imported by name
                    bound[alias.asname or alias.name] = full
                elif _is_private(alias.name) and source_module != module:
                    uses.append(Use(module, source_module, alias.name, node.lineno))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            owner = _dotted(node.value, bound)
            if owner is not None and owner != module:
                uses.append(Use(module, owner, node.attr, node.lineno))
    return uses


def _imported_modules(tree: ast.Module, module: str, is_package: bool, within: str) -> set[str]:
    """Names ``from a.b import c`` could mean as the module ``a.b.c`` (if it is one)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source_module = _absolute(module, is_package, node)
            for alias in node.names:
                full = f"{source_module}.{alias.name}"
                if full.startswith(within + ".") and _is_module(full):
                    out.add(full)
    return out


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # a name inside a module (its parent is no package)
        return False


def _dotted(node: ast.expr, bound: dict[str, str]) -> str | None:
    """The package module an expression like ``routes.ingest`` names, or None."""
    if isinstance(node, ast.Name):
        return bound.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, bound)
        return f"{base}.{node.attr}" if base is not None else None
    return None


def test_the_scan_finds_every_way_of_reaching_a_private_name() -> None:
    """The scanner itself: each form below is a violation it must report (else the test of the
    package below would pass for the wrong reason)."""
    sample = (
        "from logfactory.api.auth import _hidden\n"
        "from ..auth import _relative\n"
        "from logfactory.api.routes import ingest\n"
        "import logfactory.api.metrics as m\n"
        "x = ingest._through_module\n"
        "y = m._through_alias\n"
        "from logfactory.api.routes.patterns import _own_module_is_fine\n"
        "from logfactory.stats import _other_package_is_not_ours\n"
        "from logfactory.api.auth import __all__\n"
    )
    uses = foreign_private_uses(
        "logfactory.api.routes.patterns", sample, is_package=False, within=PACKAGE
    )
    assert sorted((u.owner, u.name) for u in uses) == [
        ("logfactory.api.auth", "_hidden"),
        ("logfactory.api.auth", "_relative"),
        ("logfactory.api.metrics", "_through_alias"),
        ("logfactory.api.routes.ingest", "_through_module"),
    ]


def test_no_module_of_the_api_uses_another_modules_private_names() -> None:
    modules = package_modules(logfactory.api)
    assert {"logfactory.api.auth", "logfactory.api.context", ROUTES} <= set(modules)
    uses: list[Use] = []
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        uses += foreign_private_uses(name, path.read_text(), is_package, PACKAGE)
    assert uses == [], "\n".join(f"{u.user}:{u.line} uses {u.owner}.{u.name}" for u in uses)


def route_modules() -> list[ModuleType]:
    names = sorted(package_modules(logfactory.api.routes))
    return [importlib.import_module(n) for n in names if n != ROUTES]


def test_create_app_includes_every_route_module_and_no_other() -> None:
    assert {m.__name__ for m in ROUTE_MODULES} == {m.__name__ for m in route_modules()}
    assert len(ROUTE_MODULES) == len(set(ROUTE_MODULES))


def test_no_route_module_imports_another() -> None:
    """Routes share through the package's shared modules, never through each other."""
    for module in route_modules():
        tree = ast.parse(Path(str(module.__file__)).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _absolute(module.__name__, False, node)
                names = {f"{target}.{a.name}" for a in node.names} | {target}
            elif isinstance(node, ast.Import):
                names = {a.name for a in node.names}
            else:
                continue
            others = {n for n in names if n.startswith(ROUTES + ".") and n != module.__name__}
            assert not others, f"{module.__name__}:{node.lineno} imports {sorted(others)}"


@pytest.fixture
def ctx(tmp_path: Path, local_bus: LocalBus) -> Iterator[NodeContext]:
    config = parse_config(
        "sources:\n  - {type: http, name: edge, tag: syslog, token: s3cret}\n", "c.yaml"
    )
    context = NodeContext(
        config=config,
        bus=local_bus,
        producer=local_bus.producer(),
        registry=StatsRegistry("node"),
        stats_dir=tmp_path / "stats",
        started=time.time(),
    )
    yield context
    context.producer.close()


def _paths(router: APIRouter) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for route in router.routes:
        if isinstance(route, APIRoute):
            out |= {(method, route.path) for method in route.methods or ()}
        elif isinstance(route, Mount):
            out.add(("MOUNT", route.path))
    return out


def test_every_route_module_exposes_a_router_and_together_they_are_the_app(
    ctx: NodeContext,
) -> None:
    state = ApiState(ctx.registry)
    served: set[tuple[str, str]] = set()
    for module in route_modules():
        assert callable(getattr(module, "router", None)), f"{module.__name__} has no router()"
        assert "router" in module.__all__, module.__name__
        router = module.router(ctx, state)
        assert isinstance(router, APIRouter), module.__name__
        paths = _paths(router)
        assert paths, f"{module.__name__}'s router has no route"
        assert not paths & served, f"{module.__name__} repeats {sorted(paths & served)}"
        served |= paths
    spec = create_app(ctx).openapi()
    operations = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert operations <= served  # every documented operation comes from a route module
    assert {("GET", "/"), ("GET", "/docs"), ("GET", "/redoc"), ("MOUNT", "/docs/static")} <= served
    assert ("POST", "/api/v1/ingest") in operations


def test_refused_credentials_are_answered_by_the_auth_module_alike(ctx: NodeContext) -> None:
    """Ingest and reviews refuse the same way (401, the API's error shape, the scheme to use);
    routes without a check still answer anonymously (issue 15 changes that, in one place)."""
    with TestClient(create_app(ctx)) as client:
        refusals = [
            client.post("/api/v1/ingest", content=b"a line\n"),
            client.post("/api/v1/ingest", content=b"a line\n", headers={"Authorization": "x"}),
            client.post("/api/v1/patterns/p1/review", json={"status": "normal"}),
            client.post(
                "/api/v1/patterns/p1/review",
                json={"status": "normal"},
                headers={"Authorization": "Bearer wrong"},
            ),
        ]
        for r in refusals:
            assert r.status_code == 401
            assert r.json() == {"error": "missing or wrong bearer token"}
            assert r.headers["www-authenticate"] == "Bearer"
        good = {"Authorization": "Bearer s3cret"}
        accepted = client.post("/api/v1/ingest", content=b"a line\n", headers=good)
        assert accepted.status_code == 200
        assert accepted.json()["accepted"] == 1
        # the token lets the review through to the library, which has no such pattern
        unknown = client.post("/api/v1/patterns/p1/review", json={"status": "normal"}, headers=good)
        assert unknown.status_code == 404
        assert client.get("/api/v1/stats").status_code == 200


def test_without_tokens_every_route_is_open(tmp_path: Path, local_bus: LocalBus) -> None:
    ctx = NodeContext(
        config=Config(),
        bus=local_bus,
        producer=local_bus.producer(),
        registry=StatsRegistry("node"),
        stats_dir=tmp_path / "stats",
        started=time.time(),
    )
    try:
        with TestClient(create_app(ctx)) as client:
            assert client.post("/api/v1/ingest", content=b"a line\n").status_code == 200
            review = client.post("/api/v1/patterns/p1/review", json={"status": "normal"})
            assert review.status_code == 404  # past the check, to the library
    finally:
        ctx.producer.close()
