"""The real kubectl (v1.37) and the official Python client against a live
cluster, for the API surface they print from: server-side Tables (the same
columns and cells as `knet get`, -o wide's priority-1 columns, watches of
Tables), the scale subresource, discovery (`get all`, api-resources with
subresources), `auth can-i` / `whoami`, node capacity and nodeInfo, the
nodes' Leases, `describe svc` with its EndpointSlices, and 404 for a
subresource nobody serves. Headers are compared with what upstream kubectl
prints against a real cluster."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import threading
import time

import pytest

from knet.harness.cluster import KUBECTL, Cluster

pytestmark = [pytest.mark.root, pytest.mark.cluster]

APP = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: agnhost
        image: agnhost
        ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-web}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{ports: [{port: 8080}]}]
"""


@pytest.fixture(scope="module")
def c():
    cluster = Cluster.up(workers=2)
    try:
        cluster.apply(APP)
        # Settled (web's pods and coredns's ready), so the two commands compared see the same cluster.
        cluster.wait_for("web's 2 pods and coredns ready", lambda: all(
            (cluster.get("Deployment", ns, name) or {}).get("status", {}).get("readyReplicas") == 2
            for ns, name in (("default", "web"), ("kube-system", "coredns"))), timeout=60)
        yield cluster
    finally:
        cluster.down()


def columns(text: str) -> list[list[str]]:
    """A kubectl/knet table split into cells on runs of 2+ spaces (cells such as
    "NOMINATED NODE" hold one space)."""
    return [re.split(r"\s{2,}", line.strip()) for line in text.splitlines() if line.strip()]


def without_age(rows: list[list[str]], header: list[str]) -> list[list[str]]:
    """Rows with the AGE-like cells dropped: the two commands run a moment apart."""
    drop = {i for i, h in enumerate(header) if h in ("AGE", "LAST SEEN", "FIRST SEEN")}
    return [[cell for i, cell in enumerate(row) if i not in drop] for row in rows]


# What upstream kubectl prints as headers against a real cluster (kubernetes/pkg/printers).
HEADERS = {
    ("pods", False): ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
    ("pods", True): ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE",
                     "READINESS GATES"],
    ("services", True): ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"],
    ("deployments", True): ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES",
                            "SELECTOR"],
    ("replicasets", False): ["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
    ("networkpolicies", False): ["NAME", "POD-SELECTOR", "AGE"],
    ("nodes", False): ["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
    ("nodes", True): ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE",
                      "KERNEL-VERSION", "CONTAINER-RUNTIME"],
    ("endpointslices", False): ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"],
}


@pytest.mark.parametrize("kind,wide", sorted(HEADERS), ids=lambda v: str(v))
def test_kubectl_get_prints_the_server_table_as_knet_get(c, kind, wide):
    args = ["get", kind] + (["-A"] if kind not in ("nodes",) else []) + (["-o", "wide"] if wide else [])
    kubectl = columns(c.kubectl(*args).stdout)
    knet = columns(c.knet(*args).stdout)
    header = HEADERS[(kind, wide)]
    namespaced = kubectl[0][0] == "NAMESPACE"
    assert kubectl[0][1 if namespaced else 0:] == header
    # knet get may add columns of its own after kubectl's (a pod's policy isolation).
    knet = [row[:len(kubectl[0])] for row in knet]
    assert knet[0] == kubectl[0]
    # The same rows, cell for cell (but the ages, a moment apart), in the same order.
    assert len(kubectl) > 1
    assert without_age(kubectl, kubectl[0]) == without_age(knet, knet[0])


TABLE_ACCEPT = ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,"
                "application/json")  # what kubectl get sends


def raw_get(c, path: str, accept: str, query: list | None = None) -> tuple[int, dict]:
    """A GET through the official Python client's transport (TLS, the kubeconfig's credentials)."""
    from kubernetes import config

    api = config.new_client_from_config(config_file=c.kubeconfig)
    method, url, headers, _, _ = api.param_serialize("GET", path, query_params=query or [],
                                                     header_params={"Accept": accept})
    resp = api.call_api(method, url, header_params=headers)
    resp.read()
    return resp.status, json.loads(resp.data)


def test_the_table_itself_is_meta_v1_with_wide_priorities_and_partial_objects(c):
    status, table = raw_get(c, "/api/v1/namespaces/default/pods", TABLE_ACCEPT)
    assert status == 200 and (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    assert table["metadata"]["resourceVersion"].isdigit()
    assert [(d["name"], d["priority"]) for d in table["columnDefinitions"]] == [
        ("Name", 0), ("Ready", 0), ("Status", 0), ("Restarts", 0), ("Age", 0), ("IP", 1), ("Node", 1),
        ("Nominated Node", 1), ("Readiness Gates", 1)]
    row = next(r for r in table["rows"] if r["cells"][0].startswith("web-"))
    assert row["cells"][1:3] == ["1/1", "Running"] and len(row["cells"]) == 9
    assert row["object"]["kind"] == "PartialObjectMetadata" and row["object"]["metadata"]["labels"]["app"] == "web"
    assert "spec" not in row["object"]
    # includeObject=Object gives the objects whole; upstream's integer columns are integers.
    _, table = raw_get(c, "/apis/apps/v1/namespaces/default/replicasets", TABLE_ACCEPT, [("includeObject", "Object")])
    row = table["rows"][0]
    assert row["object"]["kind"] == "ReplicaSet" and row["object"]["spec"]["replicas"] == row["cells"][1]
    assert isinstance(row["cells"][1], int)
    # Without as=Table first, plain JSON.
    _, listed = raw_get(c, "/api/v1/namespaces/default/pods", "application/json")
    assert listed["kind"] == "PodList"


def test_get_all_and_the_all_category(c):
    out = c.kubectl("get", "all").stdout
    names = {row[0] for row in columns(out) if row[0] != "NAME"}
    assert "service/web" in names and "service/kubernetes" in names
    assert "deployment.apps/web" in names
    assert any(n.startswith("pod/web-") for n in names) and any(n.startswith("replicaset.apps/web-") for n in names)
    resources = c.kubectl("api-resources", "--categories=all", "-o", "name").stdout.split()
    assert sorted(resources) == ["daemonsets.apps", "deployments.apps", "pods", "replicasets.apps", "services",
                                 "statefulsets.apps"]


def test_api_resources_lists_subresources_verbs_and_short_names(c):
    core = json.loads(c.kubectl("get", "--raw", "/api/v1").stdout)
    by_name = {r["name"]: r for r in core["resources"]}
    assert by_name["pods/eviction"] == {"name": "pods/eviction", "singularName": "", "namespaced": True,
                                        "group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"]}
    assert by_name["pods"]["storageVersionHash"] == "xPOwRZ+Yhw8="  # what a real API server lists
    assert by_name["namespaces"]["verbs"] == ["create", "delete", "get", "list", "patch", "update", "watch"]
    assert {"pods/log", "pods/exec", "pods/attach", "pods/portforward", "pods/binding", "pods/status"} <= set(by_name)
    apps = {r["name"]: r for r in json.loads(c.kubectl("get", "--raw", "/apis/apps/v1").stdout)["resources"]}
    assert apps["deployments/scale"]["kind"] == "Scale" and apps["deployments/scale"]["group"] == "autoscaling"
    # kubectl asks for aggregated discovery (apidiscovery.k8s.io/v2) and gets it: /api and /apis, no more.
    with tempfile.TemporaryDirectory() as cache:
        out = c.kubectl("api-resources", "--cache-dir", cache, "-v=6")
    fetched = re.findall(r'"Response" verb="GET" url="https://[^/]+(/[^"?]*)', out.stderr)
    assert fetched == ["/api", "/apis"], fetched
    wide = columns(c.kubectl("api-resources", "-o", "wide").stdout)
    lease = next(r for r in wide if r[0] == "leases")
    assert lease[1:4] == ["coordination.k8s.io/v1", "true", "Lease"]


def test_scale_subresource(c):
    assert c.kubectl("scale", "deploy/web", "--replicas=3").stdout.strip() == "deployment.apps/web scaled"
    scale = json.loads(c.kubectl("get", "--raw", "/apis/apps/v1/namespaces/default/deployments/web/scale").stdout)
    assert (scale["kind"], scale["apiVersion"], scale["spec"]) == ("Scale", "autoscaling/v1", {"replicas": 3})
    assert scale["status"]["selector"] == "app=web"
    c.wait_for("3 ready", lambda: c.get("Deployment", "default", "web")["status"].get("readyReplicas") == 3,
               timeout=60)
    # A stale resourceVersion is refused; kubectl scale --current-replicas checks first.
    out = c.kubectl("scale", "deploy/web", "--current-replicas=5", "--replicas=2", check=False)
    assert out.returncode != 0 and "Expected replicas to be 5, was 3" in out.stderr
    assert c.kubectl("scale", "deploy/web", "--current-replicas=3", "--replicas=2").returncode == 0
    rs = c.list("ReplicaSet", "default")[0]["metadata"]["name"]
    assert c.kubectl("scale", f"rs/{rs}", "--replicas=2").stdout.strip() == f"replicaset.apps/{rs} scaled"
    assert c.get("Deployment", "default", "web")["spec"]["replicas"] == 2


def test_auth_can_i_and_whoami(c):
    assert c.kubectl("auth", "can-i", "create", "pods").stdout.strip() == "yes"
    assert c.kubectl("auth", "can-i", "delete", "nodes", "--all-namespaces").stdout.strip() == "yes"
    listed = columns(c.kubectl("auth", "can-i", "--list").stdout)
    assert listed[0] == ["Resources", "Non-Resource URLs", "Resource Names", "Verbs"]
    assert ["*.*", "[]", "[]", "[*]"] in listed
    who = columns(c.kubectl("auth", "whoami").stdout)
    assert who[1] == ["Username", "kubernetes-admin"] and "system:masters" in who[2][1]
    # Asked for another user (the admin may impersonate), the answer is that user's: no rights without RBAC.
    out = c.kubectl("auth", "can-i", "create", "pods", "--as=jane", check=False)
    assert (out.returncode, out.stdout.strip()) == (1, "no")
    assert c.kubectl("auth", "can-i", "create", "pods", "--as=jane", "--as-group=system:masters").stdout.strip() == "yes"
    assert columns(c.kubectl("auth", "whoami", "--as=jane").stdout)[1] == ["Username", "jane"]


def test_describe_node_shows_capacity_system_info_and_lease(c):
    out = c.kubectl("describe", "node", "worker-1").stdout
    capacity = out.split("Capacity:")[1].split("Allocatable:")[0]
    assert re.search(rf"cpu:\s+{os.cpu_count()}\n", capacity)
    assert re.search(r"memory:\s+\d+Ki\n", capacity) and re.search(r"pods:\s+110\n", capacity)
    assert re.search(r"ephemeral-storage:\s+\d+Ki\n", capacity)
    lease = out.split("Lease:")[1].split("Conditions:")[0]
    assert re.search(r"HolderIdentity:\s+worker-1\n", lease)
    assert "RenewTime:" in lease and "<unset>" not in lease.split("RenewTime:")[1].splitlines()[0]
    info = out.split("System Info:")[1]
    for field in ("Machine ID", "System UUID", "Boot ID", "Kernel Version", "OS Image", "Container Runtime Version",
                  "Kubelet Version"):
        value = re.search(rf"{field}:\s+(\S.*)\n", info)
        assert value and value.group(1).strip(), field
    leases = columns(c.kubectl("get", "leases", "-n", "kube-node-lease").stdout)
    assert leases[0] == ["NAME", "HOLDER", "AGE"]
    assert {(r[0], r[1]) for r in leases[1:]} == {(n, n) for n in ("control-plane", "worker-1", "worker-2")}
    lease = json.loads(c.kubectl("get", "lease", "-n", "kube-node-lease", "worker-1", "-o", "json").stdout)
    node = c.get("Node", None, "worker-1")
    assert lease["spec"]["leaseDurationSeconds"] == 40
    assert lease["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Node", "name": "worker-1", "uid": node["metadata"]["uid"]}]


def test_the_node_lease_is_renewed(c):
    def renew_time():
        return json.loads(c.kubectl("get", "lease", "-n", "kube-node-lease", "worker-2", "-o", "json").stdout)[
            "spec"]["renewTime"]

    first = renew_time()
    c.wait_for("a renewal", lambda: renew_time() != first, timeout=25, interval=1)


def test_describe_service_shows_its_endpoints(c):
    out = c.kubectl("describe", "svc", "web")
    assert "panic" not in out.stderr
    text = out.stdout
    assert re.search(r"Port:\s+<unset>\s+80/TCP", text)
    endpoints = re.search(r"Endpoints:\s+(\S+)", text).group(1).split(",")
    pods = [p["status"]["podIP"] for p in c.list("Pod", "default", label_selector="app=web")]
    assert sorted(e.split(":")[0] for e in endpoints) == sorted(pods)
    assert all(e.endswith(":8080") for e in endpoints)
    slices = c.list("EndpointSlice", "default", label_selector="kubernetes.io/service-name=web")
    assert slices[0]["ports"] == [{"name": "", "port": 8080, "protocol": "TCP"}]


def test_an_unknown_subresource_is_404_not_the_object(c):
    out = c.kubectl("get", "--raw", "/api/v1/namespaces/default/services/web/log", check=False)
    assert out.returncode != 0 and "NotFound" in out.stderr and '"kind":"Service"' not in out.stdout
    out = c.kubectl("get", "--raw", "/apis/apps/v1/namespaces/default/deployments/web/bogus", check=False)
    assert out.returncode != 0 and "the server could not find the requested resource" in out.stderr


def test_the_python_client_lists_nodes_and_pods(c):
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(config_file=c.kubeconfig))
    nodes = api.list_node().items
    assert sorted(n.metadata.name for n in nodes) == ["control-plane", "worker-1", "worker-2"]
    for n in nodes:
        info = n.status.node_info
        assert info.machine_id and info.boot_id and info.system_uuid and info.kubelet_version
        assert n.status.capacity["pods"] == "110" and n.status.daemon_endpoints.kubelet_endpoint.port == 10250
        assert {a.type for a in n.status.addresses} == {"InternalIP", "Hostname"}
    assert len({n.status.node_info.machine_id for n in nodes}) == 3  # one identity per node
    pods = api.list_pod_for_all_namespaces().items
    assert any(p.metadata.name.startswith("web-") for p in pods)
    apps = client.AppsV1Api(config.new_client_from_config(config_file=c.kubeconfig))
    scale = apps.read_namespaced_deployment_scale("web", "default")
    assert scale.spec.replicas == c.get("Deployment", "default", "web")["spec"]["replicas"]
    leases = client.CoordinationV1Api(config.new_client_from_config(config_file=c.kubeconfig))
    assert leases.read_namespaced_lease("worker-1", "kube-node-lease").spec.holder_identity == "worker-1"
    # Every kind's list deserializes into the client's models (each required field present).
    assert api.list_event_for_all_namespaces().items and api.list_namespace().items
    assert client.DiscoveryV1Api(api.api_client).list_endpoint_slice_for_all_namespaces().items
    assert apps.list_replica_set_for_all_namespaces().items
    assert client.NetworkingV1Api(api.api_client).list_network_policy_for_all_namespaces().items
    review = client.AuthorizationV1Api(api.api_client).create_self_subject_access_review(
        client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(verb="delete", resource="pods", namespace="default"))))
    assert review.status.allowed is True


def test_kubectl_get_watch_prints_table_rows(c):
    """`kubectl get -w` watches with Tables: the header once, then a row per event."""
    proc = subprocess.Popen([KUBECTL, "get", "deploy", "web", "-w"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "KUBECONFIG": c.kubeconfig})
    stop = threading.Timer(60, proc.kill)  # a kubectl that prints nothing more must not hang the test
    stop.start()
    try:
        header = proc.stdout.readline()
        assert header.split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
        first = proc.stdout.readline().split()
        assert first[0] == "web"
        c.kubectl("scale", "deploy/web", "--replicas=1")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            row = proc.stdout.readline().split()
            assert row[0] == "web"  # rows only: no second header
            if row[1].endswith("/1"):
                break
        else:
            pytest.fail("no row for the scaled Deployment")
    finally:
        stop.cancel()
        proc.kill()
        proc.wait()
