"""`knet lab up/check/down LAB --context CTX`: a lab checked through a kubeconfig context's API alone.

One knet cluster for the module (the harness writes its kubeconfig, context knet-<name>); a
lab written here whose checks cover every kind (field, wait, probe pod to pod, to a Service
and from a node, DNS by name and an NXDOMAIN, a command, a container's log) and two that must
fail and say what to look at. The CLI runs as a user would, with KUBECONFIG naming the file:
nothing of the cluster's namespaces on this machine is used (objects by GET, the data plane by
pods/exec, the log by pods/log). Wrong context, unreachable server and bad credentials are
one clear error, exit 1.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from knet.harness.cluster import Cluster

pytestmark = [pytest.mark.root, pytest.mark.cluster]

LAB = """\
kind: Lab
name: ctx
title: Checked through a kubeconfig context
cluster:
  kind: Cluster
  apiVersion: kind.x-k8s.io/v1alpha4
  nodes: [{role: control-plane}, {role: worker}, {role: worker}]
manifests: [app.yaml]
exercises:
- title: Through the API
  text: Everything below is read through the context's API.
  checks:
  - field: {object: pod/web, jsonpath: .spec.nodeName, value: worker-2}
  - wait: {object: pod/web, for: condition=Ready, timeout: 30}
  - probe: {from: client, to: web, port: 80, expect: connected}
  - probe: {from: client, service: web, port: 80, expect: connected}
  - probe: {from: node/worker-1, to: web, port: 80, expect: connected}
  - dns: {from: client, name: web, answer: '{{ svc/web .spec.clusterIP }}'}
  - dns: {from: client, name: nothing-here.default.svc.cluster.local., rcode: NXDOMAIN}
  - exec: {pod: client, container: shell, command: [hostname], output: '^client$'}
  - logs: {pod: client, container: shell, output: '^client says hello$'}
- title: Two that must fail
  text: A closed port and a wrong node.
  checks:
  - probe: {from: client, to: web, port: 81, expect: connected}
  - field: {object: pod/web, jsonpath: .spec.nodeName, value: worker-1}
"""

APP = """\
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  nodeName: worker-2
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: registry.k8s.io/e2e-test-images/agnhost:2.52
    ports: [{containerPort: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  nodeName: worker-1
  terminationGracePeriodSeconds: 1
  containers:
  - name: shell
    image: busybox
    command: [sh, -c, 'echo client says hello; exec sleep 3600']
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lab-ctx")
    (folder / "lab.yaml").write_text(LAB)
    (folder / "app.yaml").write_text(APP)
    with Cluster.up(workers=2) as c:
        yield c, str(folder)


def knet(c: Cluster, *args: str, kubeconfig: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """The CLI as a user types it: KUBECONFIG names the file; no --cluster, no KNET_CLUSTER."""
    environ = {k: v for k, v in os.environ.items() if k != "KNET_CLUSTER"}
    environ["KUBECONFIG"] = kubeconfig or c.kubeconfig
    return subprocess.run([sys.executable, "-m", "knet.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=environ, stdin=subprocess.DEVNULL, cwd="/")


def verdicts(out: str) -> dict[str, str]:
    """Each check's line (PASS/FAIL and what it is) by what it is."""
    seen = {}
    for line in out.splitlines():
        m = re.match(r"\s+(PASS|FAIL) (.+?)(: .*)?$", line)
        if m:
            seen[m.group(2)] = m.group(1)
    return seen


def test_lab_up_check_down_through_the_context(env):
    c, folder = env
    ctx = f"knet-{c.name}"
    up = knet(c, "lab", "up", folder, "--context", ctx)
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"knet lab check ctx --context {ctx} --exercise 1" in up.stdout

    first = knet(c, "lab", "check", folder, "--context", ctx, "--exercise", "1")
    assert first.returncode == 0, first.stdout + first.stderr
    got = verdicts(first.stdout)
    assert got == {
        "field pod/web .spec.nodeName": "PASS",
        "wait pod/web for condition=Ready": "PASS",
        "probe default/client -> default/web TCP/80": "PASS",
        "probe default/client -> service default/web TCP/80": "PASS",
        "probe node/worker-1 -> default/web TCP/80": "PASS",
        "dns A web from default/client": "PASS",
        "dns A nothing-here.default.svc.cluster.local. from default/client": "PASS",
        "exec in default/client": "PASS",  # (its command after ": ")
        "logs of default/client (shell)": "PASS",
    }, first.stdout
    assert "9 of 9 checks passed" in first.stdout

    both = knet(c, "lab", "check", folder, "--context", ctx)
    assert both.returncode == 1, both.stdout + both.stderr
    got = verdicts(both.stdout)
    assert got["probe default/client -> default/web TCP/81"] == "FAIL"
    assert got["field pod/web .spec.nodeName"] == "FAIL"  # exercise 2's (the same words as exercise 1's)
    assert "9 of 11 checks passed, 2 failed" in both.stdout
    text = both.stdout
    assert re.search(r"FAIL probe default/client -> default/web TCP/81\n\s+expected: connected\n"
                     r"\s+seen:\s+blocked \(refused, dialled [0-9.]+:81\)\n"
                     rf"\s+look at: knet --cluster {c.name} trace client --to web:81", text), text
    assert re.search(r"FAIL field pod/web .spec.nodeName\n\s+expected: 'worker-1'\n\s+seen:\s+'worker-2'\n"
                     rf"\s+look at: knet describe --context {ctx} -n default pod web", text), text

    # The node probe's hostNetwork pod is gone again; down takes the lab's objects, not the cluster.
    pods = json.loads(c.kubectl("get", "pods", "-o", "json").stdout)["items"]
    assert not [p for p in pods if p["metadata"]["name"].startswith("knet-lab-node-")
                and not p["metadata"].get("deletionTimestamp")]
    down = knet(c, "lab", "down", folder, "--context", ctx)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "3 objects deleted" in down.stdout
    for name in ("web", "client"):  # gone or going (their grace period runs)
        pod = c.get("Pod", "default", name)
        assert pod is None or pod["metadata"].get("deletionTimestamp"), pod
    assert c.get("Service", "default", "web") is None
    assert json.loads(c.kubectl("get", "nodes", "-o", "json").stdout)["items"]  # the cluster stays


def test_exec_through_the_context(env):
    c, _ = env
    c.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: sh}\nspec:\n  nodeName: worker-1\n  containers:\n"
            "  - {name: sh, image: busybox, command: [sleep, '3600']}\n", wait=True)
    c.wait_pod("default", "sh", lambda p: p["status"].get("phase") == "Running", timeout=60)
    out = knet(c, "exec", "--context", f"knet-{c.name}", "sh", "--", "sh", "-c", "hostname; exit 3")
    assert (out.returncode, out.stdout.strip()) == (3, "sh"), out.stderr
    node = knet(c, "exec", "--context", f"knet-{c.name}", "node/worker-1", "--", "true")
    assert node.returncode == 1 and "only pods are reached" in node.stderr


def test_clear_errors(env, tmp_path):
    c, folder = env
    out = knet(c, "lab", "check", folder, "--context", "knet-nowhere")
    assert out.returncode == 1
    assert f'error: context "knet-nowhere" does not exist in the kubeconfig ({c.kubeconfig}; ' \
           f"contexts: knet-{c.name})" in out.stderr

    doc = json.loads(c.kubectl("config", "view", "--raw", "-o", "json").stdout)
    import socket

    with socket.socket() as s:  # a port nothing listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
        unreachable = json.loads(json.dumps(doc))
        unreachable["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{closed}"
        (tmp_path / "unreachable").write_text(json.dumps(unreachable))
        out = knet(c, "lab", "check", folder, "--kubeconfig", str(tmp_path / "unreachable"))
    assert out.returncode == 1
    assert f'the API server of context "knet-{c.name}" is not reachable at 127.0.0.1:{closed} ' \
           "(connection refused)" in out.stderr, out.stderr

    bogus = json.loads(json.dumps(doc))
    bogus["users"][0]["user"] = {"token": "not-a-token-of-this-cluster"}
    (tmp_path / "bogus").write_text(json.dumps(bogus))
    out = knet(c, "lab", "check", folder, "--kubeconfig", str(tmp_path / "bogus"))
    assert out.returncode == 1
    assert "the API server refused the credentials (401 Unauthorized)" in out.stderr, out.stderr

    other_ca = json.loads(json.dumps(doc))
    other_ca["clusters"][0]["cluster"]["certificate-authority-data"] = \
        doc["users"][0]["user"]["client-certificate-data"]  # a certificate, but not the cluster's CA
    (tmp_path / "other-ca").write_text(json.dumps(other_ca))
    out = knet(c, "get", "nodes", "--kubeconfig", str(tmp_path / "other-ca"))
    assert out.returncode == 1
    assert re.search(rf'error: TLS with the API server of context "knet-{c.name}" at 127.0.0.1:\d+ failed '
                     r"\(.*certificate.*\): check the certificate-authority", out.stderr), out.stderr
