"""Every ``--help`` a person reads: nothing cut off, every option explained, examples to copy.

Walks the whole command tree, so a command added later is held to the same rules.
"""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from logfactory.cli import cli


def _commands(
    group: click.Group, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


COMMANDS = dict(_commands(cli))
GROUPS = [(), *(path for path, cmd in COMMANDS.items() if isinstance(cmd, click.Group))]
LEAVES = [path for path, cmd in COMMANDS.items() if not isinstance(cmd, click.Group)]


def _help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(cli, [*path, "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("path", GROUPS, ids=lambda p: " ".join(p) or "logfactory")
def test_command_lists_show_whole_descriptions(path: tuple[str, ...]) -> None:
    text = _help(path)
    listing = text.split("Commands:", 1)[1]
    cut = [line for line in listing.splitlines() if line.rstrip().endswith("...")]
    assert not cut, cut
    assert all(len(line) <= 80 for line in text.splitlines()), text


@pytest.mark.parametrize("path", LEAVES, ids=" ".join)
def test_every_option_has_help_and_the_command_shows_examples(path: tuple[str, ...]) -> None:
    command = COMMANDS[path]
    silent = [
        p.name
        for p in command.params
        if isinstance(p, click.Option) and not p.help and p.name not in {"help", "version"}
    ]
    assert not silent, f"options without help: {silent}"
    text = _help(path)
    assert "Examples:" in text, text
    examples = text.split("Examples:", 1)[1].split("Options:", 1)[0]
    runnable = [line.strip() for line in examples.splitlines() if line.strip()]
    assert runnable, runnable
    assert all(line.startswith("logfactory ") for line in runnable), runnable
    assert f"logfactory {' '.join(path)}" in examples, examples
