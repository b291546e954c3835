"""Every (sub-)command's ``--help``: a description, an example epilog, each default shown once
and never ``(default: None)``."""

from __future__ import annotations

import argparse
import re

import pytest

from hdys_rt.cli import build_parser, main


def _parsers(parser, path=()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, path + (name,))


PARSERS = list(_parsers(build_parser()))


def test_the_walk_reaches_every_sub_command():
    names = {" ".join(p) for p, _ in PARSERS}
    assert {"bridge file", "bridge keypoints", "data build", "data info", "serve", "eval",
            "export", "keys"} <= names and len(names) >= 16


@pytest.mark.parametrize("path, parser", PARSERS, ids=[" ".join(p) or "hdys-rt" for p, _ in PARSERS])
def test_help_has_description_examples_and_each_default_once(path, parser, capsys):
    with pytest.raises(SystemExit) as ei:
        main([*path, "--help"])
    assert ei.value.code == 0
    text = capsys.readouterr().out
    assert parser.description and parser.description.strip(), path
    examples = text.split("examples:\n", 1)[1]
    assert all(line.strip().startswith("hdys-rt " + " ".join(path)) for line in
               examples.splitlines() if line.strip()), examples
    assert "(default: None)" not in text and "(default: False)" not in text
    for action in parser._actions:  # defaults said once per option
        said = len(re.findall(r"\bdefault\b", parser._get_formatter()._expand_help(action)
                              if action.help else ""))
        assert said <= 1, (path, action.option_strings, action.help)
