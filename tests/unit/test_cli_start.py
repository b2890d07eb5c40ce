"""`knet get` starts lean (knet/cli/main.py): every call is a new process, and while a rollout keeps
the machine busy its start is most of what a user waits for. What the command's path imports is
checked here, in a fresh interpreter started as scripts/knet-launch starts it (-S: no site)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Not needed to get and print an object: each costs milliseconds of every call (typing 4 ms, shutil with
# bz2 and lzma 3 ms), the rest tens.
HEAVY = ("typing", "shutil", "yaml", "trio", "pyroute2", "ssl", "nftables", "fractions", "subprocess")

PROBE = """
import sys
sys.argv = ["knet", "--cluster", "knet-no-such-cluster", "get", "pod", "x"]
from knet.cli.main import main
try:
    code = main()
except SystemExit as e:
    code = e.code
import knet.cli.output, knet.printers, knet.api.tables  # what a successful get goes on to print with
print(repr((code, sorted(m for m in HEAVY if m in sys.modules))))
"""


def test_knet_get_imports_nothing_heavy():
    env = {k: v for k, v in os.environ.items() if k != "KNET_CLUSTER"}
    out = subprocess.run([sys.executable, "-S", "-c", f"HEAVY = {HEAVY!r}\n{PROBE}"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True)
    code, heavy = ast.literal_eval(out.stdout.strip().splitlines()[-1])
    assert code == 1, out.stderr  # no such cluster: the command ran its whole path up to connecting
    assert "knet-no-such-cluster" in out.stderr
    assert heavy == []


HELP = """
import argparse, sys
from knet.cli import main
ours = main.build_parser("get")._subparsers._group_actions[0].choices["get"].format_help()
main._Parser._get_formatter = argparse.ArgumentParser._get_formatter  # argparse's own, through shutil
theirs = main.build_parser("get")._subparsers._group_actions[0].choices["get"].format_help()
print(repr((ours, theirs)))
"""


def test_help_is_laid_out_as_argparse_would_for_the_terminal_s_width():
    for columns in ("50", "200"):
        out = subprocess.run([sys.executable, "-S", "-c", HELP], cwd=ROOT, env={**os.environ, "COLUMNS": columns},
                             capture_output=True, text=True, check=True)
        ours, theirs = ast.literal_eval(out.stdout.strip())
        assert ours == theirs and "--field-selector" in ours
    narrow, wide = (subprocess.run([sys.executable, "-S", "-c", HELP], cwd=ROOT, env={**os.environ, "COLUMNS": c},
                                   capture_output=True, text=True, check=True).stdout for c in ("50", "200"))
    assert narrow != wide
