"""knet's own CLI against the real kubectl v1.37 on one live cluster: the same
command line through both must print the same bytes (jsonpath, custom-columns,
json, yaml, describe svc/deploy, get -w with its rows of changes and deletions)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from knet.api.resources import by_kind
from knet.harness.cluster import KUBECTL, Cluster

pytestmark = [pytest.mark.root, pytest.mark.cluster]

APP = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 4
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: busybox
        command: ["sh", "-c", "sleep 100000"]
        ports: [{containerPort: 8080, name: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web, annotations: {note: "a<b & c", long: "a long line that go-yaml folds for it is longer than eighty columns, yes: it is"}}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: http, name: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: heavy}
spec:
  nodeName: worker-1
  initContainers:
  - {name: init, image: busybox, command: ["true"], resources: {requests: {cpu: 300m, memory: 64Mi}}}
  containers:
  - name: a
    image: busybox
    command: ["sh", "-c", "sleep 100000"]
    resources: {requests: {cpu: 100m, memory: 70Mi}, limits: {memory: 170Mi, cpu: "1"}}
  - name: b
    image: busybox
    command: ["sh", "-c", "sleep 100000"]
    resources: {requests: {cpu: 50m, memory: 1Gi, ephemeral-storage: 1G}, limits: {memory: 1536Mi}}
"""


@pytest.fixture(scope="module")
def c():
    cluster = Cluster.up(workers=2)
    try:
        cluster.apply(APP)
        cluster.wait_for("4 ready endpoints of web", lambda: sum(
            1 for s in cluster.list("EndpointSlice", "default", label_selector="kubernetes.io/service-name=web")
            for e in s.get("endpoints") or [] if (e.get("conditions") or {}).get("ready")) == 4, timeout=60)
        yield cluster
    finally:
        cluster.down()


def knet_argv(c: Cluster, *args: str) -> list[str]:
    return [sys.executable, "-m", "knet.cli", "--cluster", c.name, *args]


def both(c: Cluster, *args: str) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    """kubectl's answer and knet's. An AGE or an event's age ticks by the second,
    so knet runs between two kubectl runs and the kubectl run it equals is kept;
    on a loaded machine a second can pass on both sides: then once more (up to
    five rounds: at load 20 a CLI run can take a second, and three were seen to tick)."""
    for _ in range(5):
        runs = [c.kubectl(*args, check=False), c.knet(*args, check=False), c.kubectl(*args, check=False)]
        before, mine, after = ((r.returncode, r.stdout, r.stderr) for r in runs)
        if mine in (before, after):
            break
    return (after if mine == after else before), mine


@pytest.mark.parametrize("args", [
    ("get", "pods", "-o", "jsonpath={.items[*].metadata.name}"),
    ("get", "pods", "-o", 'jsonpath={range .items[*]}{.metadata.name}{"\\t"}{.status.podIP}{"\\n"}{end}'),
    ("get", "pods", "-o", 'jsonpath={.items[0].status.conditions[?(@.type=="Ready")].status}'),
    ("get", "svc", "web", "-o", "jsonpath={.spec.ports[0].nodePort} {.spec.clusterIP}"),
    ("get", "svc", "-o", "jsonpath={.kind} {.apiVersion} {.metadata}"),
    ("get", "svc", "web", "-o", "jsonpath={.metadata.annotations}"),
    ("get", "svc", "web", "-o", "jsonpath={.nope}", "--allow-missing-template-keys=false"),
    ("get", "svc", "web", "-o", "jsonpath={.items[}"),
    ("get", "pods", "-o", "jsonpath-as-json={.items[*].metadata.name}"),
    ("get", "pods", "-o", "custom-columns=NAME:.metadata.name,IP:.status.podIP,NODE:.spec.nodeName,X:.nope"),
    ("get", "pods", "-o", "custom-columns=NAME:metadata.name,PORTS:.spec.containers[*].ports[*].containerPort,"
                          "LABELS:.metadata.labels"),
    ("get", "pods", "-o", "custom-columns=NAME:.metadata.name", "--no-headers"),
    ("get", "deploy", "-n", "nothing-here", "-o", "custom-columns=NAME:.metadata.name"),
    ("get", "pods", "-o", "custom-columns=NAME"),
    ("get", "svc", "web", "-o", "json"),
    ("get", "svc,deploy", "-o", "json"),
    ("get", "svc", "-o", "yaml"),
    ("get", "deploy", "web", "-o", "yaml"),
    ("get", "pods", "-o", "yaml"),
    ("get", "endpointslices", "-o", "json"),
    ("get", "pods", "--sort-by=.status.podIP"),
    ("get", "pods", "--sort-by=.metadata.name", "-o", "name"),
    ("get", "pods", "--sort-by={.spec.nodeName}", "-o", "custom-columns=NAME:.metadata.name,NODE:.spec.nodeName"),
    ("get", "svc", "-A", "--sort-by=.spec.clusterIP"),
    ("get", "pods", "-A", "--sort-by=.status.containerStatuses[0].restartCount", "-o", "jsonpath={.items[*].metadata.name}"),
    ("get", "pods", "--sort-by=.nope"),
    ("get", "pods", "--sort-by=.nope", "-o", "json"),
    ("get", "deploy", "-A", "-l", "none=here"),
    ("get", "nodes", "-l", "none=here"),
    ("get", "pods,nodes", "-l", "none=here"),
    ("get", "pods,svc", "-l", "app=web"),
    ("get", "pods", "--show-labels"),
    ("get", "pods", "-L", "app,pod-template-hash", "-L", "app.kubernetes.io/name"),  # (-o wide adds knet's columns)
    ("get", "svc", "--show-kind", "--show-labels"),
    ("get", "svc", "web", "nope", "kubernetes"),
    ("get", "svc", "web", "nope", "-o", "json"),
    ("get", "svc", "nope", "-o", "json"),
    ("get", "svc", "nope", "--ignore-not-found"),
    ("get", "svc", "web", "nope", "--ignore-not-found", "-o", "name"),
    ("get", "svc", "-l", "none=here", "--ignore-not-found"),
    ("get", "svc", "--show-labels", "-o", "json"),
    ("get", "all"),
    ("get", "all", "-A", "-o", "name"),
    ("get", "all", "-n", "kube-system"),
    ("describe", "svc", "nope"),
    ("describe", "deploy", "-n", "nothing-here"),
    ("get", "pod", "nope", "-w"),
])
def test_output_is_kubectls(c, args):
    same(*both(c, *args))


@pytest.mark.parametrize("what", [("svc", "web"), ("deploy", "web"), ("svc",), ("deploy",), ("rs",),
                                  ("endpointslices",), ("ns", "default"), ("svc", "-n", "kube-system"), ("svc", "we"),
                                  ("svc", "--show-events"), ("deploy", "web", "--show-events=false"),
                                  ("deploy", "-n", "kube-system"), ("rs", "-n", "kube-system"),
                                  ("endpointslices", "-n", "kube-system"),
                                  ("node", "worker-1")])  # Lease; pods' requests and limits against allocatable
def test_describe_is_kubectls(c, what):
    kubectl, knet = both(c, "describe", *what)
    same(kubectl, knet)
    mine = knet[1]
    if what == ("svc", "web"):
        assert "Endpoints:" in mine and " + 1 more..." in mine  # four endpoints: three shown
    elif what == ("deploy", "web"):
        assert "NewReplicaSet:   web-" in mine and "(4/4 replicas created)" in mine
    elif what == ("node", "worker-1"):
        assert "  default  heavy  " in " ".join(mine.split("\n")) or "heavy" in mine
        assert "Lease:\n  HolderIdentity:  worker-1\n" in mine


def test_describe_orders_events_of_one_second_as_kubectl(c):
    """kubectl sorts events with Go's sort.Sort, which is not stable: 20 events
    of the same second come out in an order of its own, which knet reproduces."""
    svc = c.get("Service", "default", "web")
    for i in range(20):
        stamp = f"2026-01-02T03:04:0{i % 3}Z"  # three seconds, taking turns in the listed (name) order
        c.client.create(by_kind("Event"), "default", {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"web.parity{i:02d}", "namespace": "default"},
            "involvedObject": {"kind": "Service", "namespace": "default", "name": "web", "uid": svc["metadata"]["uid"],
                               "apiVersion": "v1"},
            "reason": f"Reason{i:02d}", "message": f"message {i}", "type": "Normal", "count": 1,
            "firstTimestamp": stamp, "lastTimestamp": stamp, "source": {"component": "parity-test"}})
    kubectl, knet = both(c, "describe", "svc", "web")
    same(kubectl, knet)
    mine = knet[1]
    shown = [line.split()[1] for line in mine.splitlines() if "parity-test" in line]
    listed = sorted((e for e in c.list("Event", "default") if e["source"].get("component") == "parity-test"),
                    key=lambda e: e["metadata"]["name"])  # the server lists by name
    stable = [e["reason"] for e in sorted(listed, key=lambda e: e["lastTimestamp"])]
    assert sorted(shown) == sorted(stable) and shown != stable  # Go's sort.Sort is not a stable sort


def same(kubectl: tuple[int, str, str], knet: tuple[int, str, str]) -> None:
    """Equal answers, or a failure that shows where they differ."""
    if knet != kubectl:
        import difflib

        diff = "".join(difflib.unified_diff(kubectl[1].splitlines(True), knet[1].splitlines(True), "kubectl", "knet"))
        raise AssertionError(f"exit codes {kubectl[0]} / {knet[0]}; stderr {kubectl[2]!r} / {knet[2]!r}\n{diff}")


def _start(argv: list[str], env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_watch_prints_what_kubectl_prints(c):
    env = {**os.environ, "KUBECONFIG": c.kubeconfig}
    watches = {
        "table": ("get", "pods", "-w"),
        "events": ("get", "deploy", "--watch-only", "--output-watch-events"),
        "columns": ("get", "svc", "-w", "-o", "custom-columns=NAME:.metadata.name,TOUCHED:.metadata.labels.touched"),
        "json": ("get", "svc", "web", "-w", "-o", "json", "--output-watch-events"),
    }
    procs = {}
    try:
        for key, args in watches.items():
            procs[key] = (_start([KUBECTL, *args], env), _start(knet_argv(c, *args)))
        time.sleep(2)  # both listed and watching
        c.kubectl("label", "svc", "web", "touched=yes")
        c.kubectl("scale", "deploy", "web", "--replicas=3")
        c.wait_for("3 web pods", lambda: len(c.list("Pod", "default", label_selector="app=web")) == 3, timeout=60)
        time.sleep(2)
    finally:
        for pair in procs.values():
            for p in pair:
                p.send_signal(signal.SIGINT)
        outputs = {key: tuple(p.communicate(timeout=30) + (p.returncode,) for p in pair)
                   for key, pair in procs.items()}
    for key, ((k_out, _k_err, _k_rc), (n_out, n_err, n_rc)) in outputs.items():
        assert (n_rc, n_err) == (0, ""), key  # Ctrl-C ends the watch quietly
        if key in ("table", "events") and n_out != k_out:
            # The two started apart: a row's AGE (its last cell, never padded) may have ticked between.
            k_out, n_out = (re.sub(r"\S+$", "", text, flags=re.M) for text in (k_out, n_out))
        assert n_out == k_out, f"{key}: kubectl:\n{k_out}\nknet:\n{n_out}"
    assert "Terminating" in outputs["table"][1][0]  # the deleted pod's rows, as kubectl prints them
    assert outputs["events"][1][0].startswith("EVENT ")
