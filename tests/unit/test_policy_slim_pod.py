"""The policy engine's slim Pod (knet.policy.model.slim_pod, the transform of the
cluster-wide Pod informer every agent keeps): the compiler reads exactly the same
from it as from the whole Pod, in every shape a pod takes, and the slim one keeps
a fraction of the whole one's fields."""

from __future__ import annotations

import copy
import json

from knet.policy.model import pod_info, slim_pod
from knet.policy.rules import Compiler

FULL = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "web-1", "namespace": "x", "uid": "u-1", "resourceVersion": "42", "generation": 1,
                 "labels": {"app": "web", "tier": "front"}, "annotations": {"knet.dev/netns": "knet-c-pod-1"},
                 "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "rs"}]},
    "spec": {"nodeName": "worker", "serviceAccountName": "default", "dnsPolicy": "ClusterFirst",
             "containers": [
                 {"name": "web", "image": "agnhost", "ports": [{"name": "http", "containerPort": 8080},
                                                               {"containerPort": 9000, "protocol": "TCP"}],
                  "volumeMounts": [{"name": "kube-api-access-abcde", "mountPath": "/var/run/secrets"}]},
                 {"name": "dns", "image": "agnhost", "ports": [{"name": "dns", "containerPort": 53,
                                                               "protocol": "UDP"}]}],
             "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}],
             "volumes": [{"name": "kube-api-access-abcde", "projected": {"sources": [
                 {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}]}}]},
    "status": {"phase": "Running", "podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}],
               "hostIP": "192.168.56.11", "qosClass": "BestEffort",
               "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
               "containerStatuses": [{"name": "web", "ready": True, "restartCount": 0,
                                      "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]},
}


def variants() -> list[dict]:
    out = [copy.deepcopy(FULL)]
    host = copy.deepcopy(FULL)
    host["spec"]["hostNetwork"] = True
    done = copy.deepcopy(FULL)
    done["status"]["phase"] = "Succeeded"
    pending = copy.deepcopy(FULL)
    del pending["spec"]["nodeName"]
    pending["status"] = {"phase": "Pending"}
    bare = {"metadata": {"name": "bare", "namespace": "y"}, "spec": {"containers": [{"name": "c"}]}}
    no_named = copy.deepcopy(FULL)
    for c in no_named["spec"]["containers"]:
        c["ports"] = [{"containerPort": 80}]
    v6 = copy.deepcopy(FULL)
    v6["status"]["podIP"] = "fd00::5"
    return out + [host, done, pending, bare, no_named, v6]


def test_the_compiler_reads_the_same_from_the_slim_pod():
    for p in variants():
        assert pod_info(slim_pod(p)) == pod_info(p), p["metadata"]["name"]
        assert slim_pod(p)["metadata"].get("uid") == p["metadata"].get("uid")  # a pod made again is told apart


def test_a_table_compiled_from_slim_pods_is_the_table_from_whole_ones():
    policy = {"kind": "NetworkPolicy", "metadata": {"namespace": "x", "name": "named"},
              "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                       "ingress": [{"from": [{"podSelector": {}}], "ports": [{"port": "http"}, {"port": "dns",
                                                                                           "protocol": "UDP"}]}]}}
    texts = []
    for view in (lambda p: p, slim_pod):
        c = Compiler("worker")
        c.upsert("Namespace", {"metadata": {"name": "x"}})
        c.upsert("NetworkPolicy", policy)
        for i, p in enumerate(variants()):
            p = copy.deepcopy(p)
            p["metadata"]["name"] = f"{p['metadata']['name']}-{i}"
            if i % 2:
                p["metadata"]["namespace"] = "x"
            if p.get("status", {}).get("podIP", "").startswith("10."):
                p["status"]["podIP"] = f"10.244.1.{10 + i}"
            c.upsert("Pod", view(p))
        texts.append(c.full())
    assert "10.244.1.10 . tcp . 8080" in texts[0] and "10.244.1.10 . udp . 53" in texts[0]
    assert texts[0] == texts[1]


def test_the_slim_pod_keeps_a_fraction_of_the_whole():
    slim = slim_pod(FULL)
    assert set(slim) == {"metadata", "spec", "status"}
    assert set(slim["status"]) == {"phase", "podIP"} and "volumes" not in slim["spec"]
    assert len(json.dumps(slim)) * 3 < len(json.dumps(FULL))
