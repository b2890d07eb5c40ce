"""The real `knet` command against a live cluster where a request fails: a
17 MiB object (the server's 413 read back, exit 1, nothing stored), `create -f`
with an object that exists (kubectl's AlreadyExists line, the others still
created, exit 1), an unknown field under kubectl's Strict field validation,
an unknown kind, and then the same cluster stopped: every command one line
naming the unreachable API server, exit 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from knet.api.errors import ApiError
from knet.api.resources import by_kind
from knet.harness.cluster import Cluster
from knet.paths import state_dir

ROOT = Path(__file__).resolve().parents[2]
PODS, SVC = by_kind("Pod"), by_kind("Service")


def pod(name: str, **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9"}]}}


def svc(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}}


def stream(*objs: dict) -> str:
    return "---\n".join(json.dumps(o) + "\n" for o in objs)


@pytest.fixture(scope="module")
def cluster():
    with Cluster.up(workers=1) as c:
        yield c


def knet(c: Cluster, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    """The command as installed: python -I -S scripts/knet-launch."""
    return subprocess.run([sys.executable, "-I", "-S", str(ROOT / "scripts" / "knet-launch"),
                           "--cluster", c.name, *args], input=input, capture_output=True, text=True, timeout=120)


def stored(c: Cluster, res, name: str) -> dict | None:
    try:
        return c.client.get(res, "default", name)
    except ApiError as e:
        assert e.code == 404
        return None


def test_a_17_mib_object_is_refused_by_the_server_and_nothing_is_stored(cluster, tmp_path):
    big = svc("big")
    big["metadata"]["annotations"] = {"a": "x" * (17 << 20)}
    path = tmp_path / "big.yaml"
    path.write_text(json.dumps(big))
    out = knet(cluster, "apply", "-f", str(path))
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stderr.startswith("Error from server (RequestEntityTooLarge): error when applying service/big: "), \
        out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert stored(cluster, SVC, "big") is None


def test_create_creates_only_and_reports_what_exists_as_kubectl(cluster, tmp_path):
    first = knet(cluster, "create", "-f", "-", input=stream(pod("web", v="1")))
    assert (first.returncode, first.stdout, first.stderr) == (0, "pod/web created\n", "")
    path = tmp_path / "app.yaml"
    path.write_text(stream(pod("web", v="2"), svc("web"), pod("web2")))
    out = knet(cluster, "create", "-f", str(path))
    assert out.returncode == 1
    assert out.stderr == f'Error from server (AlreadyExists): error when creating "{path}": pods "web" already exists\n'
    assert out.stdout == "service/web created\npod/web2 created\n"
    assert stored(cluster, PODS, "web")["metadata"]["labels"] == {"v": "1"}  # created, never updated
    assert stored(cluster, SVC, "web") and stored(cluster, PODS, "web2")
    again = knet(cluster, "create", "-f", "-", input=stream(svc("web")))
    assert again.returncode == 1
    assert again.stderr == ('Error from server (AlreadyExists): error when creating "stdin": '
                            'services "web" already exists\n')


def test_unknown_fields_are_refused_under_strict_validation(cluster):
    typo = pod("typo")
    typo["spec"]["containers"][0]["prots"] = [{"containerPort": 80}]
    for verb in ("apply", "create"):
        out = knet(cluster, verb, "-f", "-", input=json.dumps(typo))
        assert out.returncode == 1, out.stdout + out.stderr
        assert 'strict decoding error: unknown field "spec.containers[0].prots"' in out.stderr
        assert out.stderr.startswith("Error from server (BadRequest): error when ")
        assert stored(cluster, PODS, "typo") is None


def test_an_unknown_kind_names_the_file(cluster, tmp_path):
    path = tmp_path / "widget.yaml"
    path.write_text("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n")
    for verb in ("apply", "create", "delete"):
        out = knet(cluster, verb, "-f", str(path))
        assert out.returncode == 1
        assert out.stderr == (f'error: unable to recognize "{path}": no matches for kind "Widget" in version '
                              '"example.com/v1"\n')


def test_exec_of_what_cannot_run(cluster, tmp_path):
    missing = knet(cluster, "exec", "ext", "--", "/no/such/program")
    assert (missing.returncode, missing.stderr) == (127, 'knet exec: "/no/such/program": executable file not found '
                                                         "in $PATH\n")
    text = tmp_path / "notes.txt"
    text.write_text("not a program\n")
    text.chmod(0o644)
    denied = knet(cluster, "exec", "ext", "--", str(text))
    assert (denied.returncode, denied.stderr) == (126, f'knet exec: "{text}": permission denied\n')


def test_output_into_a_closed_pipe_is_quiet(cluster):
    """`knet get nodes | head -0`: no "Exception ignored ... BrokenPipeError" at
    exit, and 141 as a process killed by SIGPIPE (kubectl's, too)."""
    read, write = os.pipe()
    os.close(read)
    try:
        out = subprocess.run([sys.executable, "-I", "-S", str(ROOT / "scripts" / "knet-launch"), "--cluster",
                              cluster.name, "get", "nodes"], stdout=write, stderr=subprocess.PIPE, text=True,
                             timeout=60)
    finally:
        os.close(write)
    assert (out.returncode, out.stderr) == (141, "")


def test_a_stopped_cluster_is_one_line_for_every_command(cluster, tmp_path):
    """Last in this module: it stops the cluster."""
    path = tmp_path / "pod.yaml"
    path.write_text(json.dumps(pod("late")))
    stop = knet(cluster, "stop")
    assert stop.returncode == 0, stop.stderr
    want = (f'error: the API server of cluster "{cluster.name}" is not reachable at {state_dir(cluster.name)}/'
            f"api.sock (connection refused): is the cluster running? Check with: knet status --cluster "
            f"{cluster.name}\n")
    for args in (["get", "pods"], ["apply", "-f", str(path)], ["create", "-f", str(path)],
                 ["describe", "pod", "web"], ["exec", "web", "--", "true"], ["logs", "web"],
                 ["delete", "pod", "web"], ["version"]):
        out = knet(cluster, *args)
        assert out.returncode == 1, (args, out.stdout, out.stderr)
        assert out.stderr.endswith(want) and "Traceback" not in out.stderr, (args, out.stderr)
