"""knet token's pure parts (TTL, kubeadm token list's rows, cluster-info's signatures) and
remote exec's (the pods/exec path, the exit code from the error channel's Status)."""

from __future__ import annotations

import base64
import datetime
from urllib.parse import parse_qsl, urlsplit

import pytest

from knet.api import bootstraptoken as bt
from knet.cli.common import CliError
from knet.cli.execremote import build_path, exit_code
from knet.cli.token import parse_ttl, signed_cluster_info, token_rows
from knet.node import wschannel as wc

NOW = datetime.datetime(2026, 12, 7, 22, 0, tzinfo=datetime.UTC)
TOKEN = "abcdef.0123456789abcdef"


def test_ttl_reads_go_durations_and_zero_is_never():
    assert parse_ttl("24h") == datetime.timedelta(hours=24)
    assert parse_ttl("1h30m") == datetime.timedelta(minutes=90)
    assert parse_ttl("90s") == datetime.timedelta(seconds=90)
    assert parse_ttl("0") is None
    for bad in ("", "1d", "h", "10", "1h-3m", "-1h"):
        with pytest.raises(CliError, match="--ttl: Invalid value"):
            parse_ttl(bad)


def test_rows_are_kubeadms_columns_for_bootstrap_secrets_only():
    secret = bt.token_secret(TOKEN, now=NOW, ttl=datetime.timedelta(hours=5), description="for w3")
    forever = bt.token_secret("zzzzzz.0123456789abcdef", now=NOW)
    del forever["data"]["expiration"]
    other = {"type": "Opaque", "data": {"token-id": base64.b64encode(b"abcdef").decode()}}
    rows = token_rows([forever, other, secret], NOW)
    assert rows == [
        [TOKEN, "5h", "2026-12-08T03:00:00Z", "authentication,signing", "for w3", bt.DEFAULT_GROUP],
        ["zzzzzz.0123456789abcdef", "<forever>", "<never>", "authentication,signing", "<none>", bt.DEFAULT_GROUP],
    ]
    later = NOW + datetime.timedelta(hours=4, minutes=59)
    assert token_rows([secret], later)[0][1] == "60s"


def test_cluster_info_gets_and_loses_a_tokens_signature():
    info = bt.cluster_info("https://192.168.77.11:6443", b"-----BEGIN CERTIFICATE-----\n", "first0.0123456789abcdef")
    signed = signed_cluster_info(info, TOKEN)
    bt.verify_cluster_info(signed, TOKEN)  # join would accept it
    bt.verify_cluster_info(signed, "first0.0123456789abcdef")  # the others' stay
    assert "jws-kubeconfig-abcdef" not in info["data"]  # not changed in place
    dropped = signed_cluster_info(signed, drop_id="abcdef")
    with pytest.raises(bt.BootstrapError, match="no signature for token id 'abcdef'"):
        bt.verify_cluster_info(dropped, TOKEN)
    bt.verify_cluster_info(dropped, "first0.0123456789abcdef")


def test_exec_path_has_one_command_per_argument():
    path = build_path("team a", "web-0", "srv", ["sh", "-c", "echo a&b"])
    url = urlsplit(path)
    assert url.path == "/api/v1/namespaces/team%20a/pods/web-0/exec"
    assert parse_qsl(url.query) == [("command", "sh"), ("command", "-c"), ("command", "echo a&b"),
                                    ("container", "srv"), ("stdin", "true"), ("stdout", "true"), ("stderr", "true")]


def test_exit_code_comes_from_the_error_channels_status():
    ok = wc.error_message(wc.exit_status(0, ["true"]), wc.V5)
    three = wc.error_message(wc.exit_status(3, ["sh", "-c", "exit 3"]), wc.V5)
    failed = wc.error_message(wc.error_status('"nope": executable file not found'), wc.V4)
    assert exit_code(ok, wc.V5) == (0, "")
    assert exit_code(b"", wc.V5) == (0, "")
    assert exit_code(three, wc.V5) == (3, "")
    assert exit_code(failed, wc.V4) == (1, '"nope": executable file not found')
    assert exit_code(b"boom", wc.V2) == (1, "boom")


def test_the_in_pod_probe_program_connects_and_is_refused_on_loopback():
    """The program viaexec runs inside a remote pod, run here against a 127.0.0.1 listener."""
    import socket
    import subprocess

    from knet.lab import viaexec

    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        out = subprocess.run(viaexec.connect_argv("127.0.0.1", port, "TCP", None, 2.0), capture_output=True, text=True)
        assert viaexec.read_connect(out.returncode, out.stdout) == (True, "connected")
    out = subprocess.run(viaexec.connect_argv("127.0.0.1", port, "TCP", None, 2.0), capture_output=True, text=True)
    assert viaexec.read_connect(out.returncode, out.stdout) == (False, "refused")


def test_a_failed_exec_reads_as_not_connected_and_no_answer_with_why():
    from knet.lab import viaexec

    assert viaexec.read_connect(1, 'error: pod "a" not found\n') == (
        False, 'exec in the pod failed (exit 1): error: pod "a" not found')
    got = viaexec.read_dns(0, 'noise\n{"rcode": "NOERROR", "records": ["10.96.0.10"], "qname": "web.default."}\n',
                           "web")
    assert (got.rcode, got.records, got.qname) == ("NOERROR", ("10.96.0.10",), "web.default.")
    assert viaexec.read_dns(127, "", "web").rcode.startswith("NO ANSWER (exec in the pod failed, exit 127")
