"""Upstream's NetworkPolicy e2e suite on a live cluster, judged by `knet probe`.

The model (knet.harness.netpol_cases: namespaces x, y, z; pods a, b, c serving
TCP and UDP on 80 and 81 with named ports, placed alternately on two workers
so same-node and cross-node pairs both occur; one Service per pod) is applied
once, on one cluster for the module. Every case
of netpol_cases (upstream network_policy.go, cyclonus's extras and conflicts,
network-policy-api's ANP/BANP conformance: priority, Pass, BANP) then applies
its policies with `knet apply --wait` (which returns once every node agent,
its policy engine included, has acted on the revision), runs `knet probe
--expect` with the case's expected matrices on TCP/UDP 80/81 (written from
upstream's reachability edits, not computed), goes through its steps (policy
updates, label changes, a pod made again elsewhere) the same way, and puts the
cluster back to the model. Every case is probed through pod IPs; a subset
(SERVICE_CASES: one of each kind of rule, ipBlocks on pod IPs, ANP ports and
the ANP/NP/BANP steps) again through the ClusterIPs, where policy judges the
endpoint after the proxy's DNAT.

After each case, also when it fails midway, back_to_the_model() reads the
cluster and removes every policy, restores the model's labels and pods, so no
case depends on another's success or on the order.

The commands run in this process (knet.cli.main.main: the same parser and
code as the installed command, without a Python start-up per call), except
the first two tests, which run the real `knet probe` as a user would.

A probe is dropped or answered within milliseconds on this machine, so the
first probe of a state gives blocked pairs 0.5 s. On a loaded machine a
server could be slow to answer; a state whose probe differs is therefore
probed once more with 2 s, and the second probe decides. A pair seen
connected where the case expects it blocked fails at once: load cannot make
a dropped packet connect (and `knet probe` gives UDP probes source ports no
recent flow used, so conntrack cannot pass one as an earlier allowed flow).
"""

from __future__ import annotations

import contextlib
import io
import json
import time

import pytest

from knet.api.errors import ApiError
from knet.api.resources import by_kind
from knet.cli.apply import wait_synced
from knet.cli.main import main
from knet.harness import netpol_cases as cases
from knet.harness.cluster import Cluster, ready
from knet.policy.matrix import Matrix

pytestmark = [pytest.mark.root, pytest.mark.cluster]

FIRST_TIMEOUT, RETRY_TIMEOUT = 0.5, 2.0
WORKERS = ("worker-1", "worker-2")
HOME = {pod: WORKERS[i % 2] for i, pod in enumerate(cases.PODS)}  # x/a on worker-1, x/b on worker-2, ...
CASE_NAMES = [c.name for c in cases.all_cases(cases.default_ips())]
# Through ClusterIPs: deny-all both ways, a port rule, a named port, egress denied at the client though the
# server allows, ipBlock on a pod IP both ways (judged after DNAT), AdminNetworkPolicy ports, and ANP
# Deny -> Pass -> NetworkPolicy -> BANP with its steps.
SERVICE_CASES = ["default-deny-all", "ports", "ingress-from-namespace-one-named-port", "client-side-egress-deny",
                 "egress-to-cidr", "ingress-from-cidr", "anp-rule-order-and-ports", "anp-np-banp-integration"]


@pytest.fixture(scope="module")
def c():
    cluster = Cluster.up(workers=len(WORKERS))
    try:
        model = cases.model(nodes=HOME)
        docs = model.namespaces + model.pods + [cases.service(*p.split("/")) for p in cases.PODS]
        cluster.apply("\n---\n".join(json.dumps(d) for d in docs))
        cluster.wait_for("the 9 model pods ready",
                         lambda: sum(1 for ns in cases.NAMESPACES for p in cluster.list("Pod", ns) if ready(p)) == 9)
        yield cluster
    finally:
        cluster.down()


@pytest.fixture
def ips(c) -> dict[str, str]:
    """The pods' IPs now (a case may have made a pod again, with another IP)."""
    return {f"{ns}/{p['metadata']['name']}": p["status"]["podIP"] for ns in cases.NAMESPACES
            for p in c.list("Pod", ns)}


def knet(c: Cluster, *argv: str) -> tuple[int, str, str]:
    """`knet ARGV` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([argv[0], "--cluster", c.name, *argv[1:]])
    return code, out.getvalue(), err.getvalue()


def check(c: Cluster, tmp_path, expected: dict[tuple[int, str], Matrix], what: str, *,
          to_service: bool = False) -> None:
    """Probe every (port, protocol) of `expected` and compare, as described above."""
    ports = sorted({port for port, _ in expected})
    protocols = sorted({proto for _, proto in expected})
    text = []
    for proto in protocols:
        for port in ports:
            m = expected.get((port, proto), Matrix(cases.PODS, default=None))  # "?": not judged
            text.append(f"{proto}/{port}\n{m.format()}\n")
    path = tmp_path / "expected.txt"
    path.write_text("\n".join(text))
    argv = ["probe", "-n", ",".join(cases.NAMESPACES), "--port", ",".join(map(str, ports)),
            "--protocol", ",".join(protocols), "--expect", str(path)] + (["--to-service"] if to_service else [])
    code, out, err = knet(c, *argv, "--timeout", str(FIRST_TIMEOUT))
    if code == 0:
        return
    assert "expected X, observed ." not in err, f"{what}: connected where the case expects blocked:\n{err}\n{out}"
    code, out, err = knet(c, *argv, "--timeout", str(RETRY_TIMEOUT))
    assert code == 0, f"{what}: the probe differs from the expectation:\n{err}\n{out}"
    print(f"{what}: passed on the second probe")


def apply_change(c: Cluster, tmp_path, change: cases.Change, moved: dict) -> None:
    """One step's change, awaited as `knet apply --wait` awaits it."""
    if change.op == "label":
        if "/" in change.target:
            res, (namespace, name) = by_kind("Pod"), change.target.split("/")
        else:
            res, namespace, name = by_kind("Namespace"), None, change.target
        out = c.client.patch(res, namespace, name, {"metadata": {"labels": change.labels}})
        wait_synced(c.client, int(out["metadata"]["resourceVersion"]), 30)
        return
    assert change.op in ("apply", "delete"), change
    obj = json.loads(json.dumps(change.obj))
    key = (obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])
    if obj["kind"] == "Pod":
        # The case's pod carries a made-up IP and node for pure tests: here the cluster gives the IP, and
        # a pod made again goes to the other worker than the one it was deleted from.
        obj.pop("status", None)
        obj["spec"].pop("nodeName", None)
        if change.op == "delete":
            moved[key] = c.get("Pod", key[1], key[2])["spec"]["nodeName"]
        elif key in moved:
            was = moved.pop(key)
            obj["spec"]["nodeName"] = next(n for n in WORKERS if n != was)
    path = tmp_path / "change.json"
    path.write_text(json.dumps(obj))
    code, out, err = knet(c, change.op, "-f", str(path), "--wait", "--timeout", "30")
    assert code == 0, f"knet {change.op} {obj['kind']} {obj['metadata']['name']}: {err}"
    if obj["kind"] == "Pod" and change.op == "apply":
        pod_running(c, key[1], key[2])


def pod_running(c: Cluster, namespace: str, name: str) -> None:
    """Wait for a pod's IP, then for every agent to have seen it (its IP is in the sets from then on)."""
    c.wait_pod(namespace, name, lambda p: ready(p) and p["status"].get("podIP"))
    wait_synced(c.client, int(c.client.request("GET", "/knet/v1/progress")["revision"]), 30)


def back_to_the_model(c: Cluster) -> None:
    """Whatever a case did or left half done: every policy deleted, the model's
    labels exactly, its pods there (made again if a case deleted one) and no
    others, then every agent caught up. Read from the cluster, not from what
    the case meant to do, so a case failing midway leaves nothing behind. All
    is tried; the first error is raised at the end."""
    errors: list[BaseException] = []

    def attempt(fn, *args) -> None:
        try:
            fn(*args)
        except ApiError as e:
            if e.code != 404:
                errors.append(e)
        except Exception as e:  # noqa: BLE001 (go on putting the rest back, raise after)
            errors.append(e)

    for kind in ("NetworkPolicy", "AdminNetworkPolicy", "BaselineAdminNetworkPolicy"):
        res = by_kind(kind)
        for namespace in (cases.NAMESPACES if res.namespaced else (None,)):
            for obj in c.client.list(res, namespace)["items"]:
                attempt(c.client.delete, res, namespace, obj["metadata"]["name"])
    model = cases.model(nodes=HOME)
    for want in model.namespaces + model.pods:
        res, name = by_kind(want["kind"]), want["metadata"]["name"]
        namespace = want["metadata"].get("namespace")
        now = c.get(want["kind"], namespace, name)
        if now is None or now["metadata"].get("deletionTimestamp"):
            if now is not None:
                attempt(c.wait_gone, "Pod", namespace, name)
            attempt(c.client.create, res, namespace, want)
            attempt(pod_running, c, namespace, name)
            continue
        labels, have = want["metadata"]["labels"], now["metadata"].get("labels") or {}
        if have != labels:
            attempt(c.client.patch, res, namespace, name,
                    {"metadata": {"labels": {**{k: None for k in have if k not in labels}, **labels}}})
    for namespace in cases.NAMESPACES:
        for p in c.list("Pod", namespace):
            if p["metadata"]["name"] not in cases.POD_NAMES:
                attempt(c.client.delete, by_kind("Pod"), namespace, p["metadata"]["name"])
    attempt(lambda: wait_synced(c.client, int(c.client.request("GET", "/knet/v1/progress")["revision"]), 30))
    if errors:
        raise errors[0]


def run_case(c: Cluster, tmp_path, case: cases.Case, *, to_service: bool = False) -> None:
    moved: dict = {}  # (kind, namespace, name) of a pod the case deleted -> its node then
    try:
        for description, changes, expected in case.states():
            for change in changes:
                apply_change(c, tmp_path, change, moved)
            check(c, tmp_path, expected, f"{case.name} ({description})", to_service=to_service)
    finally:
        back_to_the_model(c)


def test_the_model_answers_everywhere_without_policies(c):
    """The real command, as a user runs it: 81 pairs per port and protocol,
    all connected, and the answers name the pod asked for (UDP: an answer
    from another pod counts as not connected)."""
    placed = {f"{ns}/{p['metadata']['name']}": p["spec"]["nodeName"] for ns in cases.NAMESPACES
              for p in c.list("Pod", ns)}
    assert placed == HOME  # same-node and cross-node pairs both occur
    started = time.monotonic()
    out = c.knet("probe", "-n", "x,y,z", "--port", "80,81", "--protocol", "TCP,UDP", "-o", "json")
    seconds = time.monotonic() - started
    records = json.loads(out.stdout)
    assert len(records) == 4 * 81
    assert all(r["connected"] for r in records), [r for r in records if not r["connected"]]
    assert {(r["port"], r["protocol"]) for r in records} == set(cases.PROBES)
    assert {(r["from"], r["to"]) for r in records} == {(a, b) for a in cases.PODS for b in cases.PODS}
    print(f"knet probe: 324 pairs (4 x 81) in {seconds:.2f}s, start-up included")
    started = time.monotonic()
    out = c.knet("probe", "-n", "x,y,z")
    seconds = time.monotonic() - started
    assert Matrix.parse(out.stdout) == Matrix(cases.PODS)
    assert "TCP/80: 81 probed, 81 connected, 0 blocked" in out.stdout
    print(f"knet probe: the 9x9 matrix in {seconds:.2f}s, start-up included ({out.stdout.splitlines()[-1]})")


def test_the_real_command_finds_a_difference_and_exits_1(c, tmp_path):
    """--expect as a user runs it: deny-all in x against the all-connected
    matrix names the pairs and exits 1; against the case's matrix exits 0."""
    case = cases.case("default-deny-ingress")
    try:
        c.apply(json.dumps(case.policies[0]))
        path = tmp_path / "expected.txt"
        path.write_text(Matrix(cases.PODS).format())
        out = c.knet("probe", "-n", "x,y,z", "--expect", str(path), check=False)
        assert out.returncode == 1
        wrong = [line for line in out.stderr.splitlines() if "expected ., observed X" in line]
        assert sorted(wrong) == sorted(f"TCP/80 {a} -> {b}: expected ., observed X"
                                       for a in cases.PODS for b in cases.PODS if b.startswith("x/") and a != b)
        path.write_text(case.expected[cases.TCP80].format())
        c.knet("probe", "-n", "x,y,z", "--expect", str(path))
    finally:
        back_to_the_model(c)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_upstream_case_through_pod_ips(c, ips, tmp_path, name):
    run_case(c, tmp_path, cases.case(name, ips))


@pytest.mark.parametrize("name", SERVICE_CASES)
def test_upstream_case_through_cluster_ips(c, ips, tmp_path, name):
    run_case(c, tmp_path, cases.case(name, ips), to_service=True)
