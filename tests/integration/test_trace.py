"""knet trace on a live cluster: real connection attempts traced by the
kernel and explained from knet's own rules, through the API the harness uses
(knet.trace.run) and the command (`knet trace ... -o json`); and no trace
rule left in any node's or pod's ruleset afterwards, also when the command
is interrupted (SIGINT, SIGTERM) or killed outright (the next run sweeps).

One cluster for the module (control plane + 2 workers): a client on
worker-1, a server on worker-2 behind the ClusterIP Service `web`, a Service
without endpoints, and namespace `shop` with a deny-all policy and a policy
allowing the client to `api` on 8080.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from knet.harness.cluster import Cluster, ready, running
from knet.net import ns
from knet.trace import run

pytestmark = [pytest.mark.root, pytest.mark.cluster]

APP = """
apiVersion: v1
kind: Pod
metadata: {name: client, labels: {app: client}}
spec:
  nodeName: worker-1
  containers: [{name: c, image: agnhost}]
---
apiVersion: v1
kind: Pod
metadata: {name: server, labels: {app: web}}
spec:
  nodeName: worker-2
  containers: [{name: s, image: agnhost, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: empty}
spec:
  selector: {app: nobody}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
spec:
  nodeName: worker-2
  containers: [{name: db, image: agnhost, ports: [{containerPort: 5432}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: shop, labels: {app: api}}
spec:
  nodeName: worker-2
  containers: [{name: api, image: agnhost, ports: [{containerPort: 8080}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Ingress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-frontend, namespace: shop}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: default}}
      podSelector: {matchLabels: {app: client}}
    ports: [{port: 8080}]
"""


@pytest.fixture(scope="module")
def c():
    with Cluster.up(workers=2) as cluster:
        cluster.apply(APP)
        for namespace, name in (("default", "client"), ("default", "server"), ("shop", "db"), ("shop", "api")):
            cluster.wait_pod(namespace, name, running)
        # The cluster DNS too, so no endpoint change rewrites a proxy table while rulesets are compared.
        cluster.wait_for("every pod ready", lambda: all(ready(p) for p in cluster.list("Pod")), timeout=60)
        yield cluster


def namespaces(c: Cluster) -> list[str]:
    """Every node's and pod's network namespace, and the outside host's."""
    out = [c.cfg.node_netns(n["metadata"]["name"]) for n in c.list("Node")] + [c.cfg.ext_netns]
    out += [c.cfg.pod_netns(p["metadata"]["uid"]) for p in c.list("Pod") if not p["spec"].get("hostNetwork")]
    return [n for n in out if os.path.exists(ns.netns_path(n))]


def rulesets(c: Cluster) -> dict[str, str]:
    return {n: subprocess.run(["ip", "netns", "exec", n, "nft", "list", "ruleset"], capture_output=True, text=True,
                              check=True).stdout for n in namespaces(c)}


def trace_tables(c: Cluster) -> list[str]:
    return [n for n, text in rulesets(c).items() if "knet-trace-" in text]


def test_clusterip_to_a_pod_on_another_node(c):
    server = c.get("Pod", "default", "server")["status"]["podIP"]
    t = run(c, "client", "web")
    (svc,) = t.steps("service")
    assert svc.text == f"Service default/web:80 -> endpoint {server}:8080, chosen 1 of 1"
    (overlay,) = [s for s in t.steps("out") if s.fields.get("overlay") == "vxlan"]
    assert overlay.fields["node"] == "worker-2" and overlay.text.startswith("out knet.1: VXLAN to worker-2 (")
    assert [h.place for h in t.hops] == ["default/client", "node/worker-1", "node/worker-2", "default/server"]
    assert t.verdict == "delivered" and t.result == "connected"
    assert t.reply == ["default/server", "node/worker-2", "node/worker-1", "default/client"]


def test_a_service_without_endpoints_is_rejected_by_name(c):
    t = run(c, "client", "empty")
    assert t.verdict == "rejected" and t.result == "refused"
    assert t.reason == "Service default/empty:80 has no endpoints (ICMP port unreachable sent back)"
    assert t.hops[-1].place == "node/worker-1"  # rejected on the client's node


def test_a_deny_all_policy_is_named(c):
    t = run(c, "client", "db.shop:5432", timeout=0.5)
    assert t.verdict == "dropped" and t.result == "timeout"
    assert t.reason == "pod shop/db isolated for ingress by shop/default-deny; no rule allowed it"
    assert t.hops[-1].place == "node/worker-2"


def test_an_allowing_policy_is_named_with_its_rule(c):
    t = run(c, "client", "api.shop", 8080)
    assert "allowed by shop/allow-frontend, ingress rule 0" in [s.text for s in t.steps("policy")]
    assert t.verdict == "delivered"
    blocked = run(c, "client", "api.shop", 8081, timeout=0.5)
    assert blocked.reason == ("pod shop/api isolated for ingress by shop/allow-frontend, shop/default-deny; "
                              "no rule allowed it")


def test_the_command_prints_records(c):
    out = c.knet("trace", "client", "--to", "web:80", "-o", "json")
    records = json.loads(out.stdout)
    assert records[0] == {**records[0], "record": "trace", "source": "default/client", "protocol": "TCP", "port": 80}
    services = [r for r in records if r.get("kind") == "service"]
    assert [r["service"] for r in services] == ["default/web:80/tcp"] and services[0]["place"] == "node/worker-1"
    assert records[-1]["record"] == "result" and records[-1]["verdict"] == "delivered"
    text = c.knet("trace", "client", "--to", "web").stdout
    assert "Service default/web:80 -> endpoint" in text and "VXLAN to worker-2" in text
    bad = c.knet("trace", "client", "--to", "nosuch", check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("error: --to: 'nosuch' is neither a Service nor a pod")


def test_no_trace_rule_stays_behind(c):
    before = rulesets(c)
    assert not any("knet-trace-" in text for text in before.values())
    run(c, "client", "web")
    run(c, "client", "db.shop:5432", timeout=0.3)
    assert rulesets(c) == before


def _interrupted(c: Cluster, sig: int) -> subprocess.Popen:
    """A trace that waits (a dropped path, a long timeout), signalled once its rules are in place."""
    proc = subprocess.Popen([sys.executable, "-m", "knet.cli", "--cluster", c.name, "trace", "client", "--to",
                             "db.shop:5432", "--timeout", "30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        c.wait_for("the trace rules", lambda: trace_tables(c), timeout=20, interval=0.05)
        proc.send_signal(sig)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_trace_takes_its_rules_away(c, sig):
    before = rulesets(c)
    proc = _interrupted(c, sig)
    assert proc.returncode == 130
    assert rulesets(c) == before


def test_a_killed_trace_is_cleaned_up_by_the_next(c):
    before = rulesets(c)
    proc = _interrupted(c, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    assert trace_tables(c)  # killed outright: nothing could clean up...
    run(c, "client", "web")  # ...until the next trace sweeps it
    assert rulesets(c) == before
