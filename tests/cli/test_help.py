"""Issue 20 item 4: every option of every ``zsad`` command has a help text, and its default shows in ``--help``.

The walk starts at ``zsad.cli.main.build_parser`` and follows every sub-command (``adapters import-anomalyclip``
too), so a command or an option added later is checked without touching this test.
"""
from __future__ import annotations

import argparse

from zsad.cli.main import build_parser


def _parsers(parser: argparse.ArgumentParser, name: str = "zsad"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {command}")


def _shown(value) -> bool:
    """Whether a default says something (None, False and empty lists mean "not given")."""
    return value not in (None, False, argparse.SUPPRESS) and value != [] and value != ()


def test_every_option_of_every_command_has_help_and_shows_its_default():
    commands, missing, no_default = [], [], []
    for name, parser in _parsers(build_parser()):
        commands.append(name)
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
                continue
            where = f"{name} {'/'.join(action.option_strings) or action.dest}"
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(where)
                continue
            text = formatter._get_help_string(action) % {**vars(action), "prog": parser.prog}
            if action.option_strings and _shown(action.default) and "default" not in text:
                no_default.append(where)
    assert not missing, f"options without help: {missing}"
    assert not no_default, f"defaults not shown: {no_default}"
    for expected in ("zsad detect", "zsad eval", "zsad report", "zsad discover", "zsad train", "zsad demo",
                     "zsad synth", "zsad adapters", "zsad adapters import-anomalyclip", "zsad adapters show"):
        assert expected in commands, expected


def test_train_states_its_depth_relative_v_v_default(capsys):
    import pytest

    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "19/24 of the depth" in text and "(default: 15)" in text and "(default: 0.001)" in text
