"""Every CLI error path ends in one clear line and a non-zero exit, never a
traceback: the API client's failures (nothing listening, a connection dropped
while a request is sent, with or without an answer), the top-level backstop's
wording, and the real `knet` command run against a cluster whose API server
is down and on inputs that are not manifests."""

import json
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from knet.api.client import Client, ProtocolError, Unreachable, for_cluster, warning_text
from knet.api.errors import ApiError
from knet.api.resources import by_kind
from knet.cli.main import error_line

ROOT = Path(__file__).resolve().parents[2]
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
       "spec": {"containers": [{"name": "c", "image": "i"}]}}


# -- a server on a real unix socket, answering as each test scripts it ---------------------------


class ScriptedServer:
    """Accepts connections on a unix socket and hands each to `handle(conn,
    head)` once the request head is read. Records every request line."""

    def __init__(self, path: str, handle):
        self.path = path
        self.handle = handle
        self.requests: list[str] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                while True:
                    head = b""
                    while b"\r\n\r\n" not in head:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        head += chunk
                    if b"\r\n\r\n" not in head:
                        break
                    self.requests.append(head.split(b"\r\n", 1)[0].decode())
                    if not self.handle(conn, head):
                        break

    def close(self):
        self.sock.close()


def answer(conn, code: int, body: dict, extra: list[str] = (), close: bool = False) -> None:
    data = json.dumps(body).encode()
    head = [f"HTTP/1.1 {code} X", "Content-Type: application/json", f"Content-Length: {len(data)}", *extra]
    if close:
        head.append("Connection: close")
    conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + data)


def read_body(conn, head: bytes) -> bytes:
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    body = head.split(b"\r\n\r\n", 1)[1]
    while len(body) < length:
        body += conn.recv(65536)
    return body


@pytest.fixture
def sock_path(tmp_path):
    return str(tmp_path / "api.sock")


def test_a_refusal_sent_before_the_body_is_read_is_the_answer(sock_path):
    """A server that answers 413 and closes without reading an 8 MiB body: the
    client's send fails (broken pipe or reset) with the answer already there."""
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 413,
              "reason": "RequestEntityTooLarge", "message": "Request entity too large: limit is 3145728"}
    server = ScriptedServer(sock_path, lambda conn, head: answer(conn, 413, status, close=True))
    try:
        client = Client("t", unix_path=sock_path)
        big = {**POD, "metadata": {"name": "web", "annotations": {"a": "x" * (8 << 20)}}}
        with pytest.raises(ApiError) as e:
            client.create(by_kind("Pod"), "default", big)
        assert (e.value.code, e.value.reason) == (413, "RequestEntityTooLarge")
        assert len(server.requests) == 1  # refused once, not sent again
    finally:
        server.close()


def test_a_connection_dropped_while_sending_without_an_answer_is_an_error(sock_path):
    server = ScriptedServer(sock_path, lambda conn, head: False)  # read the head, then hang up
    try:
        client = Client("t", unix_path=sock_path)
        big = {**POD, "metadata": {"name": "web", "annotations": {"a": "x" * (8 << 20)}}}
        with pytest.raises(ProtocolError) as e:
            client.create(by_kind("Pod"), "default", big)
        assert str(e.value).startswith("the API server closed the connection while the request of ")
        assert str(e.value).endswith(" bytes was being sent (and gave no answer)")
        with pytest.raises(ProtocolError, match="closed the connection"):
            client.get(by_kind("Pod"), "default", "web")  # no body: the answer never came
    finally:
        server.close()


def test_a_kept_alive_connection_closed_while_idle_is_retried_once(sock_path):
    served = []

    def handle(conn, head):
        served.append(1)
        answer(conn, 200, {"kind": "Pod", "metadata": {"name": "web"}})
        return False  # keep-alive answered, then closed while the client holds it idle

    server = ScriptedServer(sock_path, handle)
    try:
        client = Client("t", unix_path=sock_path)
        assert client.get(by_kind("Pod"), "default", "web")["metadata"]["name"] == "web"
        assert client.get(by_kind("Pod"), "default", "web")["metadata"]["name"] == "web"
        assert len(served) == 2
    finally:
        server.close()


def test_strict_field_validation_on_writes_and_warning_headers(sock_path):
    def handle(conn, head):
        read_body(conn, head)
        answer(conn, 201, {"kind": "Pod", "metadata": {"name": "web", "resourceVersion": "5"}},
               extra=['Warning: 299 - "unknown field \\"spec.foo\\""', 'Warning: 299 - "second one"'])
        return True

    server = ScriptedServer(sock_path, handle)
    try:
        client = Client("t", unix_path=sock_path)
        warnings = []
        client.on_warning = warnings.append
        client.field_validation = "Strict"
        pods = by_kind("Pod")
        client.create(pods, "default", POD)
        client.update(pods, "default", "web", POD)
        client.patch(pods, "default", "web", {"metadata": {"labels": {"a": "b"}}})
        client.request("POST", pods.path("default"), POD, query={"dryRun": "All"})
        client.get(pods, "default", "web")
        methods = [r.split()[0] for r in server.requests]
        assert methods == ["POST", "PUT", "PATCH", "POST", "GET"]
        assert all("fieldValidation=Strict" in r for r in server.requests[:4])
        assert "dryRun=All" in server.requests[3] and "fieldValidation" not in server.requests[4]
        assert warnings[:2] == ['unknown field "spec.foo"', "second one"] and len(warnings) == 10
    finally:
        server.close()


def test_warning_text_is_what_kubectl_prints():
    assert warning_text('299 - "unknown field \\"spec.x\\""') == 'unknown field "spec.x"'
    assert warning_text('299 knet "text" "Mon, 01 Jan 2024 00:00:00 GMT"') == "text"
    assert warning_text("not the usual shape") == "not the usual shape"


def test_nothing_listening_names_the_cluster_and_how_to_check(tmp_path, monkeypatch):
    state = tmp_path / "state"
    (state / "lab").mkdir(parents=True)
    (state / "lab" / "token").write_text("t\n")
    monkeypatch.setattr("knet.api.client.state_dir", lambda c: str(state / c))
    client = for_cluster("lab")
    with pytest.raises(Unreachable) as e:
        client.list(by_kind("Pod"))
    assert str(e.value) == (f'the API server of cluster "lab" is not reachable at {state}/lab/api.sock '
                            "(no such socket): is the cluster running? Check with: knet status --cluster lab")
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(state / "lab" / "api.sock"))
    dead.close()  # the socket file of a server that died
    with pytest.raises(Unreachable, match=r"\(connection refused\): is the cluster running\?"):
        client.list(by_kind("Pod"))
    assert isinstance(e.value, OSError)  # code polling for a starting server still catches it


# -- the backstop's wording ------------------------------------------------------------------


def test_error_line_is_one_line_with_a_hint_for_the_unexpected():
    assert error_line(Unreachable("the API server ... is not reachable")) == "error: the API server ... is not reachable"
    assert error_line(PermissionError(13, "Permission denied", "/run/netns/x")) == "error: permission denied: /run/netns/x"
    assert error_line(MemoryError()) == "error: out of memory"
    line = error_line(KeyError("metadata"))
    assert line == "error: unexpected KeyError: 'metadata' (a bug in knet: run again with -v or KNET_DEBUG=1 for the traceback)"
    long = error_line(RuntimeError("x\n" * 500))
    assert "\n" not in long and len(long) < 320


# -- the real command --------------------------------------------------------------------------


def knet(*args: str, state: Path, input: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """The command as installed: python -I -S scripts/knet-launch."""
    return subprocess.run([sys.executable, "-I", "-S", str(ROOT / "scripts" / "knet-launch"), *args],
                          input=input, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "KNET_STATE_ROOT": str(state), **(env or {})})


@pytest.fixture
def down_cluster(tmp_path):
    """A cluster whose API server is down: its state and token are there, its
    socket refuses (the server died, or the cluster is stopped)."""
    state = tmp_path / "state"
    (state / "lab").mkdir(parents=True)
    (state / "lab" / "token").write_text("t\n")
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(state / "lab" / "api.sock"))
    dead.close()
    pod = tmp_path / "pod.yaml"
    pod.write_text(json.dumps(POD))
    return state, pod


def one_line_error(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1, out.stderr
    return out.stderr.strip()


@pytest.mark.parametrize("args", [
    ["get", "pods"], ["get", "pods", "-o", "yaml"], ["describe", "pod", "web"], ["apply", "-f", "POD"],
    ["create", "-f", "POD"], ["delete", "pod", "web"], ["delete", "-f", "POD"], ["logs", "web"],
    ["scale", "deploy/web", "--replicas", "2"], ["rollout", "status", "deploy/web"], ["cordon", "worker-1"],
    ["taint", "worker-1", "a=b:NoSchedule"], ["drain", "worker-1"], ["version"],
], ids=lambda a: " ".join(a))
def test_api_server_down(down_cluster, args):
    state, pod = down_cluster
    out = knet("--cluster", "lab", *[str(pod) if a == "POD" else a for a in args], state=state)
    line = out.stderr.strip().splitlines()[-1]
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert line == (f'error: the API server of cluster "lab" is not reachable at {state}/lab/api.sock '
                    "(connection refused): is the cluster running? Check with: knet status --cluster lab")


def test_verbose_or_knet_debug_shows_the_traceback(down_cluster):
    state, _ = down_cluster
    for out in (knet("--cluster", "lab", "get", "pods", "-v", state=state),
                knet("--cluster", "lab", "get", "pods", state=state, env={"KNET_DEBUG": "1"})):
        assert out.returncode == 1
        assert "Traceback (most recent call last)" in out.stderr
        assert out.stderr.strip().splitlines()[-1].startswith('error: the API server of cluster "lab" is not reachable')


def test_no_cluster_of_that_name(tmp_path):
    line = one_line_error(knet("--cluster", "nosuch", "get", "pods", state=tmp_path))
    assert line == (f'error: cluster "nosuch" is not running (no {tmp_path}/nosuch); '
                    "start it with: knet up --cluster nosuch")


@pytest.mark.parametrize("verb", ["apply", "create"])
def test_inputs_that_are_not_manifests(tmp_path, verb):
    """Each refused in one line before the cluster is asked anything (there is none here)."""
    cases = {
        "binary.yaml": (b"\x7fELF\x02\x01\x01\x00\xff\xfe", "error parsing {p}: not UTF-8 text (byte 0xff at offset 8): "
                                                           "is it a manifest?"),
        "items.yaml": (b"apiVersion: v1\nkind: List\nitems: [a, b]\n",
                       'error validating "{p}": error validating data: items[0]: got string, expected object'),
        "podlist.yaml": (b"apiVersion: v1\nkind: PodList\nitems: [[1]]\n",
                         'error validating "{p}": error validating data: items[0]: got array, expected object'),
        "deep.yaml": (b"apiVersion: v1\nkind: ConfigMap\ndata: " + b"[" * 100000,
                      # column 506 where our count stops it; libyaml's own flow limit (PyYAML's wheels) stops earlier in the scan
                      "error parsing {p}: yaml: line 3, column ###: exceeded max depth of 500"),
        "deep.json": (b'{"apiVersion": "v1", "kind": "ConfigMap", "data": ' + b'{"a": ' * 100000,
                      "error parsing {p}: exceeded max depth of 500"),
        "empty.yaml": (b"", f"no objects passed to {verb}"),
        "bad.yaml": (b"apiVersion: v1\nkind: Pod\n  metadata: {name: a}\n",
                     "error parsing {p}: yaml: line 3, column 11: mapping values are not allowed in this context"),
        "scalar.yaml": (b"just some words\n", 'error validating "{p}": error validating data: the document is a '
                                              "string, not an object with apiVersion and kind"),
        "list.yaml": (b"- 1\n- 2\n", 'error validating "{p}": error validating data: the document is an '
                                     "array, not an object with apiVersion and kind"),
        "nokind.yaml": (b"apiVersion: v1\nmetadata: {name: a}\n",
                        'error validating "{p}": error validating data: kind not set'),
        "neither.yaml": (b"metadata: {name: a}\n",
                         'error validating "{p}": error validating data: [apiVersion not set, kind not set]'),
    }
    for name, (data, want) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        line = one_line_error(knet(verb, "-f", str(path), state=tmp_path / "state"))
        if "###" in want:
            line = re.sub(r"column (506|1006):", "column ###:", line)
        assert line == "error: " + want.format(p=path), name
    directory = tmp_path / "dir"
    directory.mkdir()
    assert one_line_error(knet(verb, "-f", str(directory), state=tmp_path / "state")) == \
        f"error: no objects passed to {verb}"
    assert one_line_error(knet(verb, "-f", str(tmp_path / "missing.yaml"), state=tmp_path / "state")) == \
        f'error: the path "{tmp_path}/missing.yaml" does not exist'
    line = one_line_error(knet(verb, "-f", "-", state=tmp_path / "state", input="a: [1,\n"))
    assert line.startswith("error: error parsing stdin: yaml: line 2, column 1: ")


@pytest.mark.root
def test_a_cluster_file_is_bounded_and_refused_in_one_line(tmp_path):
    bomb = "a: &a [" + ",".join(["x"] * 10) + "]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 10) + "]\n" for i in range(8))
    cases = {"bomb.yaml": (bomb.encode(), "yaml: document contains excessive aliasing"),
             "bin.yaml": (b"\x00\xff", "not UTF-8 text (byte 0xff at offset 1)"),
             "bad.yaml": (b"kind: Cluster\nnodes: [\n", "yaml: line 3, column 1: did not find expected node content"),
             "deep.yaml": (b"kind: Cluster\nnodes: " + b"[" * 100000, "exceeded max depth of 500")}
    for name, (data, want) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        line = one_line_error(knet("--cluster", "filetest", "up", "-f", str(path), state=tmp_path / "state"))
        assert line.startswith(f"error: error parsing {path}: ") and want in line, line
    assert not (tmp_path / "state" / "filetest").exists()


def test_server_warnings_are_printed_once_each(capsys):
    from knet.cli.common import warning_printer

    warn = warning_printer()
    for text in ("unknown field \"spec.x\"", "another", "unknown field \"spec.x\""):
        warn(text)
    assert capsys.readouterr().err == 'Warning: unknown field "spec.x"\nWarning: another\n'
