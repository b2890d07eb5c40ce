"""The CLI builds only the parser of the command it runs (knet.cli.main:
a start-up cost of every call): it must parse and explain that command
exactly as the whole parser does."""

from __future__ import annotations

import argparse

import pytest

from knet.cli.main import build_parser, command_named, main


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices


FULL = build_parser()


@pytest.mark.parametrize("name", sorted(_subparsers(FULL)))
def test_each_command_alone_has_the_same_options_and_help(name):
    only = build_parser(name)
    assert list(_subparsers(only)) == [name]
    assert _subparsers(only)[name].format_help() == _subparsers(FULL)[name].format_help()


@pytest.mark.parametrize("argv", [
    ["--cluster", "c1", "apply", "-f", "x.yaml", "--wait"],
    ["get", "pods", "-n", "kube-system", "-o", "wide"],
    ["-v", "exec", "web-0", "ip", "addr"],
    ["--cluster=c2", "link", "set", "node/worker-1", "--loss", "5%"],
    ["rollout", "status", "deploy/web", "--timeout", "10"],
])
def test_a_command_line_parses_the_same(argv):
    assert vars(build_parser(command_named(argv)).parse_args(argv)) == vars(FULL.parse_args(argv))


def test_the_command_word_is_found_after_the_global_options():
    assert command_named(["--cluster", "apply", "get", "pods"]) == "get"
    assert command_named(["--cluster=x", "-v", "apply"]) == "apply"
    assert command_named(["-h"]) is None and command_named([]) is None


def test_an_unknown_command_is_refused_naming_every_choice(capsys):
    with pytest.raises(SystemExit):
        main(["nosuch"])
    err = capsys.readouterr().err
    assert "invalid choice: 'nosuch'" in err and "'apply'" in err and "'kubeconfig'" in err
