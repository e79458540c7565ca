"""`shootout --help` and every command's --help: examples a user can copy, and a help text for every argument."""

from __future__ import annotations

import argparse
import shlex

import pytest


def test_every_argument_of_every_command_says_what_it_is_for() -> None:
    from flows.cli import parser

    root = parser()
    (commands,) = [action for action in root._actions if isinstance(action, argparse._SubParsersAction)]
    assert set(commands.choices) == {"run", "validate", "plan", "verify", "report", "setup", "watch", "runs"}
    listed = {action.dest: action.help for action in commands._choices_actions}  # the commands' one-liners
    assert all(listed.get(name) for name in commands.choices), listed
    missing = []
    for name, command in [("shootout", root), *commands.choices.items()]:
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_the_help_shows_examples_that_parse(capsys) -> None:
    from flows.cli import EXAMPLES, main, parser

    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    commands = [command for command, _ in EXAMPLES]
    assert any(c.startswith("shootout run jobspecs/demo.yaml") for c in commands)
    assert any("infrastructure.gpu=auto" in c and c.startswith("shootout run ") for c in commands)
    assert any(c.startswith("shootout plan ") and "--offers" in c for c in commands)
    for command, what in EXAMPLES:
        assert f"  {command}\n      {what}" in out  # as written: the raw epilog keeps each on its own line
        argv = shlex.split(command)[1:]
        parser().parse_args(argv)  # each example is a command the CLI takes (argparse exits 2 otherwise)
