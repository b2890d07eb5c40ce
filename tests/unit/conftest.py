"""Fixtures for the CLI's tests against knet's API server running in this
process (knet.harness.apiserver): no root, no cluster."""

from __future__ import annotations

import pytest

from knet.cli.common import prepare
from knet.cli.main import main
from knet.harness.apiserver import LocalApiServer


@pytest.fixture
def server(tmp_path):
    with LocalApiServer(tmp_path) as s:
        yield s


@pytest.fixture
def knet(server, capsys):
    """Run `knet ARGS...` against the server: (exit code, stdout, stderr)."""
    client = prepare(server.client())

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv), client=client)
        out = capsys.readouterr()
        return code, out.out, out.err
    return run
