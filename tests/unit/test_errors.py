"""One error tree: every exception logfactory defines is a LogfactoryError, the tree drawn in
``logfactory.errors``'s docstring is the real one, and the CLI turns one that escapes a command
into one ``Error:`` line with the documented exit status."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import click
import pytest
from click.testing import CliRunner, Result

import logfactory
from logfactory import errors
from logfactory.cli import cli
from logfactory.errors import ConfigError, LogfactoryError


def _defined_exceptions() -> set[type[BaseException]]:
    """Every exception class defined in a logfactory module (``__main__`` runs the CLI)."""
    found: set[type[BaseException]] = set()
    for info in pkgutil.walk_packages(logfactory.__path__, "logfactory."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__.startswith("logfactory"):
                found.add(obj)
    return found


def test_every_exception_is_a_logfactory_error() -> None:
    # the CLI's ClickException subclasses are click's way to print a message and pick an exit
    # status; they are raised from LogfactoryErrors, not alongside them
    outside = sorted(
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in _defined_exceptions()
        if not issubclass(cls, (LogfactoryError, click.ClickException))
    )
    assert outside == []


def _tree() -> dict[str, str | None]:
    """The docstring's tree as {class name: parent name (None for the root)}."""
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in (errors.__doc__ or "").splitlines():
        match = re.fullmatch(r"( *)\* (\w+)", line)
        if match is None:
            continue
        indent, name = len(match[1]), match[2]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parents[name] = stack[-1][1] if stack else None
        stack.append((indent, name))
    return parents


def _subclasses(cls: type[BaseException]) -> set[type[BaseException]]:
    found = {cls}
    for sub in cls.__subclasses__():
        found |= _subclasses(sub)
    return found


def test_docstring_tree_names_every_class_under_its_parent() -> None:
    _defined_exceptions()  # import every module, so that every subclass exists
    real = {
        cls.__name__: next(
            (base.__name__ for base in cls.__bases__ if issubclass(base, LogfactoryError)), None
        )
        for cls in _subclasses(LogfactoryError)
        if cls.__module__.startswith("logfactory")
    }
    assert _tree() == real


def test_errors_module_exports_the_whole_tree_and_the_package_the_public_part() -> None:
    assert sorted(errors.__all__) == errors.__all__
    assert set(errors.__all__) == set(_tree())
    for name in logfactory.__all__:
        obj = getattr(logfactory, name)
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            assert obj is getattr(errors, name)


def test_old_import_paths_still_name_the_same_classes() -> None:
    from logfactory.bus.base import BusError
    from logfactory.bus.local.db import DamagedBusError
    from logfactory.config import ConfigError as OldConfigError
    from logfactory.factory.model import DecodeError
    from logfactory.readers import NoNodeError

    assert OldConfigError is errors.ConfigError
    assert (BusError, DamagedBusError, DecodeError, NoNodeError) == (
        errors.BusError,
        errors.DamagedBusError,
        errors.DecodeError,
        errors.NoNodeError,
    )
    # the built-in bases they had before the tree still catch them
    assert issubclass(ConfigError, ValueError)
    assert issubclass(BusError, RuntimeError)


def _invoke_raising(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> Result:
    @click.command()
    def boom() -> None:
        raise exc

    monkeypatch.setitem(cli.commands, "boom", boom)
    return CliRunner().invoke(cli, ["boom"])


def test_cli_turns_an_unhandled_logfactory_error_into_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result = _invoke_raising(monkeypatch, errors.RepairRefused("pass --accept-loss to go on"))
    assert result.exit_code == 1
    assert result.output == "Error: pass --accept-loss to go on\n"
    assert "Traceback" not in result.output


def test_cli_turns_an_unhandled_config_error_into_exit_2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result = _invoke_raising(monkeypatch, ConfigError("x.yaml:3: no such key; write paths:"))
    assert result.exit_code == 2
    assert result.output == "Error: x.yaml:3: no such key; write paths:\n"


def test_cli_lets_a_bug_stay_a_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    result = _invoke_raising(monkeypatch, KeyError("a bug, not a message"))
    assert isinstance(result.exception, KeyError)
