"""`knet cordon`, `uncordon`, `taint`, `drain`, `scale` and `rollout status`
against knet's API server running in this process (no root, no cluster):
what each prints, its exit code, and what it changed in the stored objects."""

from __future__ import annotations

import pytest

from knet.api.resources import by_kind

PODS, NODES, DEPLOYMENTS = by_kind("Pod"), by_kind("Node"), by_kind("Deployment")


@pytest.fixture
def client(server):
    c = server.client()
    for name in ("worker-1", "worker-2"):
        c.create(NODES, None, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    return c


def node_spec(client, name: str) -> dict:
    return client.get(NODES, None, name).get("spec", {})


def test_cordon_and_uncordon(knet, client):
    assert knet("cordon", "worker-1") == (0, "node/worker-1 cordoned\n", "")
    assert node_spec(client, "worker-1")["unschedulable"] is True
    assert knet("cordon", "worker-1", "worker-2") == (0, "node/worker-1 already cordoned\nnode/worker-2 cordoned\n", "")
    assert knet("uncordon", "worker-1") == (0, "node/worker-1 uncordoned\n", "")
    assert "unschedulable" not in node_spec(client, "worker-1")  # removed, as kubectl's patch to null
    assert knet("uncordon", "worker-1") == (0, "node/worker-1 already uncordoned\n", "")
    assert knet("cordon", "worker-9") == (1, "", 'Error from server (NotFound): nodes "worker-9" not found\n')


def test_taint_adds_replaces_and_removes(knet, client):
    assert knet("taint", "worker-1", "dedicated=db:NoSchedule", "spot:PreferNoSchedule") == \
        (0, "node/worker-1 tainted\n", "")
    assert node_spec(client, "worker-1")["taints"] == [
        {"key": "dedicated", "value": "db", "effect": "NoSchedule"}, {"key": "spot", "effect": "PreferNoSchedule"}]
    assert knet("taint", "worker-1", "dedicated=web:NoSchedule")[0] == 0  # same key and effect: replaced
    assert node_spec(client, "worker-1")["taints"] == [
        {"key": "spot", "effect": "PreferNoSchedule"}, {"key": "dedicated", "value": "web", "effect": "NoSchedule"}]
    assert knet("taint", "worker-1", "gone=now:NoExecute")[0] == 0
    assert node_spec(client, "worker-1")["taints"][-1]["timeAdded"]  # NoExecute taints carry when
    assert knet("taint", "worker-1", "dedicated:NoSchedule-", "spot-", "gone-") == (0, "node/worker-1 untainted\n", "")
    assert "taints" not in node_spec(client, "worker-1")
    assert knet("taint", "worker-1", "spot-") == (1, "", "error: taint 'spot' not found\n")
    assert knet("taint", "worker-1", "key=value") == (
        1, "", "error: invalid taint spec: 'key=value' (want key[=value]:NoSchedule|PreferNoSchedule|NoExecute, "
               "or key[:Effect]- to remove)\n")
    assert knet("taint", "worker-9", "a=b:NoSchedule") == (1, "", 'Error from server (NotFound): nodes "worker-9" not found\n')


def pod(name: str, node: str, owner: dict | None = None) -> dict:
    meta = {"name": name, "namespace": "default"}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "controller": True, "uid": f"uid-{owner['name']}", **owner}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "agnhost"}]}}


def test_drain_cordons_evicts_and_waits(knet, client):
    client.create(PODS, "default", pod("lone", "worker-1"))
    client.create(PODS, "default", pod("web-1", "worker-1", {"kind": "ReplicaSet", "name": "web"}))
    client.create(PODS, "default", pod("agent-1", "worker-1", {"kind": "DaemonSet", "name": "agent"}))
    client.create(PODS, "default", pod("web-2", "worker-2", {"kind": "ReplicaSet", "name": "web"}))
    assert knet("drain", "worker-1") == (
        1, "node/worker-1 cordoned\n", "error: unable to drain node 'worker-1': cannot delete Pods that declare no "
                                       "controller (use --force to override): default/lone\n")
    assert node_spec(client, "worker-1")["unschedulable"] is True  # cordoned before anything else
    # With no agent to stop them, a pod on a node is only gone at once with grace period 0.
    code, out, err = knet("drain", "worker-1", "--force", "--grace-period", "0", "--timeout", "10")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "node/worker-1 already cordoned",
        "Warning: ignoring DaemonSet-managed Pods: default/agent-1",
        "evicting pod default/lone", "evicting pod default/web-1",
        "pod/lone evicted", "pod/web-1 evicted",
        "node/worker-1 drained"]
    assert sorted(p["metadata"]["name"] for p in client.list(PODS, "default")["items"]) == ["agent-1", "web-2"]


def test_drain_times_out_on_a_pod_that_stays(knet, client):
    client.create(PODS, "default", pod("web-1", "worker-1", {"kind": "ReplicaSet", "name": "web"}))
    code, out, err = knet("drain", "worker-1", "--timeout", "0.2")  # no agent to stop it: it stays Terminating
    assert (code, out.splitlines()) == (1, ["node/worker-1 cordoned", "evicting pod default/web-1"])
    assert err == "error: timed out waiting for 1 pods to leave worker-1\n"


DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
          "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                   "template": {"metadata": {"labels": {"app": "web"}},
                                "spec": {"containers": [{"name": "c", "image": "agnhost"}]}}}}


def test_scale(knet, client):
    client.create(DEPLOYMENTS, "default", DEPLOY)
    assert knet("scale", "deploy/web", "--replicas", "5") == (0, "deployment.apps/web scaled\n", "")
    assert client.get(DEPLOYMENTS, "default", "web")["spec"]["replicas"] == 5
    assert knet("scale", "deploy/web", "--replicas", "-1") == (
        1, "", "error: --replicas: Invalid value: must be greater than or equal to 0\n")
    assert knet("scale", "svc/kubernetes", "--replicas", "1") == (1, "", "error: cannot scale a Service\n")
    assert knet("scale", "web", "--replicas", "1") == (1, "", "error: expected KIND/NAME, got 'web'\n")
    assert knet("scale", "deploy/nope", "--replicas", "1") == (
        1, "", 'Error from server (NotFound): deployments.apps "nope" not found\n')
    assert client.get(DEPLOYMENTS, "default", "web")["spec"]["replicas"] == 5


def test_rollout_status(knet, client):
    client.create(DEPLOYMENTS, "default", DEPLOY)
    # No controller has observed it: not done, and without --watch that is exit 1.
    assert knet("rollout", "status", "deploy/web", "--no-watch") == (
        1, "Waiting for deployment spec update to be observed...\n", "")
    d = client.get(DEPLOYMENTS, "default", "web")
    d["status"] = {"observedGeneration": d["metadata"]["generation"], "replicas": 2, "updatedReplicas": 2,
                   "availableReplicas": 1}
    client.update(DEPLOYMENTS, "default", "web", d, subresource="status")
    assert knet("rollout", "status", "deploy/web", "--no-watch") == (
        1, 'Waiting for deployment "web" rollout to finish: 1 of 2 updated replicas are available...\n', "")
    code, out, err = knet("rollout", "status", "deploy/web", "--timeout", "0.2")
    assert out == 'Waiting for deployment "web" rollout to finish: 1 of 2 updated replicas are available...\n'
    assert (code, err) == (1, "error: timed out waiting for the rollout of deployment/web\n")
    d = client.get(DEPLOYMENTS, "default", "web")
    d["status"]["availableReplicas"] = 2
    client.update(DEPLOYMENTS, "default", "web", d, subresource="status")
    assert knet("rollout", "status", "deploy/web") == (0, 'deployment "web" successfully rolled out\n', "")
    assert knet("rollout", "status", "deploy/nope") == (
        1, "", 'Error from server (NotFound): deployments.apps "nope" not found\n')
