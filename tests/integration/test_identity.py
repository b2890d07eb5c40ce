"""Identity and authorization against a live cluster, through the real kubectl:
ServiceAccounts made per namespace, the token volume admission writes, the
TokenRequest API's tokens (bound to their pod: refused once it is gone),
RBAC with upstream's 403 words, the default `view` role, impersonation and
`kubectl auth can-i`, a user's client certificate from `knet kubeconfig
--user`, seed 002's Role/RoleBinding/ClusterRole as written, and a node
agent's own credential (node rights only: it cannot delete a Service).
One cluster for the module."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile

import pytest

from knet.api import tls
from knet.cluster import host_port
from knet.harness.cluster import KUBECTL, Cluster

pytestmark = [pytest.mark.root, pytest.mark.cluster]

SA = "system:serviceaccount:default:default"
FORBIDDEN_LIST = (f'Error from server (Forbidden): pods is forbidden: User "{SA}" cannot list resource "pods" '
                  'in API group "" in the namespace "default"')

# Seed 002, as written: what `kubectl create role|rolebinding|clusterrole ... --dry-run=client -o yaml` prints.
SEED_ROLE = """apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  creationTimestamp: null
  name: test
rules:
- apiGroups:
  - ""
  resources:
  - pods
  verbs:
  - list
"""
SEED_BINDING = """apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  creationTimestamp: null
  name: reader
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: test
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: reader-user
"""
SEED_CLUSTERROLE = """apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  creationTimestamp: null
  name: test
rules:
- apiGroups:
  - ""
  resources:
  - namespaces
  verbs:
  - list
  - get
"""
NULL_TIMESTAMP = "  creationTimestamp: null\n"
PODS = """apiVersion: v1
kind: Pod
metadata: {name: holder}
spec:
  containers: [{name: a, image: agnhost}, {name: b, image: agnhost}]
---
apiVersion: v1
kind: Pod
metadata: {name: quiet}
spec:
  automountServiceAccountToken: false
  containers: [{name: a, image: agnhost}]
"""


@pytest.fixture(scope="module")
def c():
    cluster = Cluster.up(workers=1)
    try:
        cluster.kubectl("apply", "-f", "-", input=PODS)
        yield cluster
    finally:
        cluster.down()


def kubectl_with(c: Cluster, *args: str, token: str | None = None, cert: tuple[str, str] | None = None,
                 check: bool = False) -> subprocess.CompletedProcess:
    """The real kubectl with only the given credential (an empty kubeconfig:
    no admin certificate beside it)."""
    with tempfile.TemporaryDirectory() as d:
        empty = os.path.join(d, "config")
        open(empty, "w").close()
        creds = [f"--token={token}"] if token else [f"--client-certificate={cert[0]}", f"--client-key={cert[1]}"]
        argv = [KUBECTL, f"--server=https://127.0.0.1:{host_port(c.name)}",
                f"--certificate-authority={tls.pki_paths(c.cfg.state_dir).ca_crt}", *creds, *args]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                             env={**os.environ, "KUBECONFIG": empty, "KUBECACHEDIR": os.path.join(d, "cache")})
    if check and out.returncode:
        raise AssertionError(f"kubectl {' '.join(args)}: {out.stderr}")
    return out


def token_for(c: Cluster, pod: str, sa: str = "default", namespace: str = "default") -> str:
    out = c.kubectl("create", "token", sa, "-n", namespace, "--bound-object-kind", "Pod",
                    "--bound-object-name", pod)
    return out.stdout.strip()


def test_every_namespace_gets_a_default_serviceaccount_and_the_root_ca(c):
    c.kubectl("create", "namespace", "team-a")
    sa = c.wait_for("team-a's default ServiceAccount", lambda: c.get("ServiceAccount", "team-a", "default"))
    cm = c.wait_for("team-a's kube-root-ca.crt", lambda: c.get("ConfigMap", "team-a", "kube-root-ca.crt"))
    with open(tls.pki_paths(c.cfg.state_dir).ca_crt) as f:
        assert cm["data"] == {"ca.crt": f.read()}
    c.kubectl("delete", "serviceaccount", "default", "-n", "team-a")
    again = c.wait_for("the default ServiceAccount back", lambda: (c.get("ServiceAccount", "team-a", "default")
                                                                    or {}).get("metadata", {}).get("uid"))
    assert again != sa["metadata"]["uid"]
    assert "coredns" in c.kubectl("get", "sa", "-n", "kube-system").stdout


def test_pods_get_the_token_volume_as_the_admission_plugin_writes_it(c):
    pod = c.get("Pod", "default", "holder")
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "default"
    [vol] = [v for v in spec["volumes"] if v["name"].startswith("kube-api-access-")]
    assert len(vol["name"]) == len("kube-api-access-") + 5
    assert vol["projected"] == {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}
    for container in spec["containers"]:
        assert {"name": vol["name"], "readOnly": True,
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"} in container["volumeMounts"]
    quiet = c.get("Pod", "default", "quiet")["spec"]
    assert not any(v["name"].startswith("kube-api-access-") for v in quiet.get("volumes") or [])


def test_a_serviceaccount_has_no_rights_until_bound_then_views_but_cannot_delete(c):
    token = token_for(c, "holder")
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["sub"] == SA and claims["kubernetes.io"]["pod"]["name"] == "holder"
    assert claims["kubernetes.io"]["serviceaccount"]["name"] == "default"
    denied = kubectl_with(c, "get", "pods", token=token)
    assert denied.returncode == 1 and denied.stderr.strip() == FORBIDDEN_LIST
    c.kubectl("create", "rolebinding", "sa-view", "--clusterrole=view", "--serviceaccount=default:default")
    listed = kubectl_with(c, "get", "pods", "-o", "name", token=token, check=True)
    assert "pod/holder" in listed.stdout.split()
    deleted = kubectl_with(c, "delete", "pod", "quiet", token=token)
    assert deleted.returncode == 1 and deleted.stderr.strip() == (
        f'Error from server (Forbidden): pods "quiet" is forbidden: User "{SA}" cannot delete resource "pods" '
        'in API group "" in the namespace "default"')
    assert c.get("Pod", "default", "quiet") is not None
    assert kubectl_with(c, "auth", "can-i", "list", "pods", token=token).stdout.strip() == "yes"
    assert kubectl_with(c, "auth", "can-i", "delete", "pods", token=token).stdout.strip() == "no"


def test_a_token_whose_pod_is_gone_is_refused(c):
    c.kubectl("run", "short", "--image=agnhost", "--restart=Never")
    token = token_for(c, "short")
    assert kubectl_with(c, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}",
                        token=token, check=True).stdout == SA
    c.kubectl("delete", "pod", "short", "--grace-period=0", "--force")
    c.wait_gone("Pod", "default", "short", timeout=30)
    refused = kubectl_with(c, "auth", "whoami", token=token)
    assert refused.returncode == 1
    assert "Unauthorized" in refused.stderr


def test_seed_002_role_binding_and_impersonation_with_can_i(c):
    denied = c.kubectl("get", "pods", "--as", "reader-user", check=False)
    assert denied.stderr.strip() == ('Error from server (Forbidden): pods is forbidden: User "reader-user" cannot '
                                     'list resource "pods" in API group "" in the namespace "default"')
    made = c.kubectl("create", "role", "test", "--verb=list", "--resource=pod", "--dry-run=client", "-o", "yaml")
    assert made.stdout == SEED_ROLE.replace(NULL_TIMESTAMP, "")  # kubectl 1.37 leaves the null out
    made = c.kubectl("create", "rolebinding", "reader", "--role=test", "--user=reader-user", "--dry-run=client",
                     "-o", "yaml")
    assert made.stdout == SEED_BINDING.replace(NULL_TIMESTAMP, "")
    c.kubectl("apply", "-f", "-", input=SEED_ROLE + "---\n" + SEED_BINDING)
    assert "holder" in c.kubectl("get", "pods", "--as", "reader-user").stdout
    assert c.kubectl("auth", "can-i", "--as", "reader-user", "list", "pods").stdout.strip() == "yes"
    no = c.kubectl("auth", "can-i", "--as", "reader-user", "delete", "pods", check=False)
    assert (no.returncode, no.stdout.strip()) == (1, "no")
    assert c.kubectl("auth", "can-i", "--as", "reader-user", "list", "pods", "-n", "kube-system",
                     check=False).stdout.strip() == "no"
    # The seed's ClusterRole, bound with kubectl create clusterrolebinding.
    c.kubectl("apply", "-f", "-", input=SEED_CLUSTERROLE)
    assert c.kubectl("get", "namespaces", "--as", "reader-user", check=False).returncode == 1
    c.kubectl("create", "clusterrolebinding", "reader-ns", "--clusterrole=test", "--user=reader-user")
    assert "kube-system" in c.kubectl("get", "namespaces", "--as", "reader-user").stdout
    # A group's rights through --as-group; the reader may not impersonate anyone itself.
    assert c.kubectl("auth", "can-i", "--as", "someone", "--as-group", "system:masters", "delete", "nodes"
                     ).stdout.strip() == "yes"
    imp = c.kubectl("get", "pods", "--as", "reader-user", "--as", "x", check=False)
    assert imp.returncode != 0


def test_a_users_kubeconfig_from_knet_carries_its_name_and_groups(c):
    out = c.knet("kubeconfig", "--user", "reader-user", "--group", "readers")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "config")
        with open(path, "w") as f:
            f.write(out.stdout)
        env = {**os.environ, "KUBECONFIG": path, "KUBECACHEDIR": os.path.join(d, "cache")}
        whoami = subprocess.run([KUBECTL, "auth", "whoami", "-o", "json"], capture_output=True, text=True,
                                env=env, timeout=60)
        info = json.loads(whoami.stdout)["status"]["userInfo"]
        assert info["username"] == "reader-user" and info["groups"] == ["readers", "system:authenticated"]
        pods = subprocess.run([KUBECTL, "get", "pods", "-o", "name"], capture_output=True, text=True, env=env,
                              timeout=60)
        assert pods.returncode == 0 and "pod/holder" in pods.stdout.split()  # seed 002's binding


def test_a_node_credential_has_node_rights_only(c):
    cert = tls.node_cert_paths(c.cfg.state_dir, "worker-1")
    c.kubectl("create", "service", "clusterip", "victim", "--tcp=80:80")
    assert kubectl_with(c, "get", "nodes", "-o", "name", cert=cert, check=True).stdout.split() == [
        "node/control-plane", "node/worker-1"]
    refused = kubectl_with(c, "delete", "service", "victim", cert=cert)
    assert refused.returncode == 1 and refused.stderr.strip() == (
        'Error from server (Forbidden): services "victim" is forbidden: User "system:node:worker-1" cannot delete '
        'resource "services" in API group "" in the namespace "default"')
    assert c.get("Service", "default", "victim") is not None
    other = kubectl_with(c, "label", "node", "control-plane", "x=y", cert=cert)
    assert other.returncode == 1 and 'is not allowed to modify node "control-plane"' in other.stderr
    assert kubectl_with(c, "get", "secrets", "-A", cert=cert).returncode == 1
    # The agents run with these credentials: every node registered and Ready, its Lease kept, without the
    # admin token.
    assert set(c.nodes_ready().values()) == {"True"}
    for node in ("control-plane", "worker-1"):
        lease = c.wait_for(f"{node}'s Lease", lambda n=node: c.get("Lease", "kube-node-lease", n), timeout=30)
        assert lease["spec"]["holderIdentity"] == node


def test_coredns_runs_as_its_serviceaccount_with_kubeadms_role(c):
    pods = c.wait_for("coredns pods", lambda: c.list("Pod", "kube-system", label_selector="k8s-app=kube-dns"))
    assert {p["spec"]["serviceAccountName"] for p in pods} == {"coredns"}
    token = token_for(c, pods[0]["metadata"]["name"], sa="coredns", namespace="kube-system")
    assert kubectl_with(c, "get", "endpointslices", "-A", token=token).returncode == 0
    assert kubectl_with(c, "get", "secrets", "-A", token=token).returncode == 1


INCLUSTER_PY = r"""
import json, kubernetes
from kubernetes.client.rest import ApiException
kubernetes.config.load_incluster_config()
v1 = kubernetes.client.CoreV1Api()
out = {"pods": sorted(p.metadata.name for p in v1.list_namespaced_pod("default").items)}
try:
    v1.delete_namespaced_pod("quiet", "default")
    out["delete"] = 200
except ApiException as e:
    out["delete"], out["message"] = e.status, json.loads(e.body)["message"]
print(json.dumps(out), flush=True)
"""


def finished(pod: dict) -> bool:
    return pod["status"].get("phase") in ("Succeeded", "Failed")


def test_in_cluster_clients_reach_the_api_through_the_kubernetes_service_with_the_mounted_token(c):
    """The Python client's load_incluster_config() and kubectl in a pod: KUBERNETES_SERVICE_HOST
    (10.96.0.1:443), TLS checked against the mounted ca.crt, the mounted token as the pod's
    ServiceAccount; bound to view it lists and cannot delete, unbound it gets the 403."""
    c.kubectl("create", "serviceaccount", "robot")
    c.kubectl("create", "serviceaccount", "nobody")
    c.kubectl("create", "rolebinding", "robot-view", "--clusterrole=view", "--serviceaccount=default:robot")
    pods = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "incluster-py"}, "spec": {
            "serviceAccountName": "robot", "restartPolicy": "Never",
            "containers": [{"name": "py", "image": "python", "command": [sys.executable, "-c", INCLUSTER_PY],
                            "env": [{"name": "HOME", "value": "/tmp"}]}]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "incluster-kubectl"}, "spec": {
            "serviceAccountName": "nobody", "restartPolicy": "Never",
            "containers": [{"name": "kubectl", "image": "kubectl", "command": [
                "/bin/sh", "-c", f"{KUBECTL} get pods -o name; echo rc=$?"],
                "env": [{"name": "HOME", "value": "/tmp"}]}]}}]}
    c.kubectl("apply", "-f", "-", input=json.dumps(pods))
    c.wait_pod("default", "incluster-py", finished, timeout=60)
    out = json.loads(c.kubectl("logs", "incluster-py").stdout.strip().splitlines()[-1])
    assert "holder" in out["pods"] and "incluster-py" in out["pods"]
    assert out["delete"] == 403 and out["message"] == (
        'pods "quiet" is forbidden: User "system:serviceaccount:default:robot" cannot delete resource "pods" '
        'in API group "" in the namespace "default"')
    assert c.get("Pod", "default", "quiet") is not None
    c.wait_pod("default", "incluster-kubectl", finished, timeout=60)
    log = c.kubectl("logs", "incluster-kubectl").stdout
    assert ('Error from server (Forbidden): pods is forbidden: User "system:serviceaccount:default:nobody" '
            'cannot list resource "pods" in API group "" in the namespace "default"') in log
    assert log.strip().endswith("rc=1")


def test_the_dns_pods_read_the_api_with_their_own_token(c):
    [pod, *_] = c.wait_for("a running coredns pod", lambda: [
        p for p in c.list("Pod", "kube-system", label_selector="k8s-app=kube-dns")
        if p["status"].get("phase") == "Running"], timeout=60)
    token = c.exec_pod("kube-system", pod["metadata"]["name"],
                       ["cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"], check=True).stdout
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["sub"] == "system:serviceaccount:kube-system:coredns"
    assert claims["kubernetes.io"]["pod"]["name"] == pod["metadata"]["name"]
    assert kubectl_with(c, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", token=token,
                        check=True).stdout == "system:serviceaccount:kube-system:coredns"


def test_knet_and_kubectl_print_the_identity_kinds_alike(c):
    c.kubectl("create", "rolebinding", "table-check", "--clusterrole=view", "--user=ann", "--group=devs",
              "--serviceaccount=default:robot")
    for args in (["get", "rolebinding", "table-check", "-o", "wide"], ["get", "sa", "coredns", "-n", "kube-system"],
                 ["get", "cm", "kube-root-ca.crt"], ["get", "clusterrole", "view"]):
        ours = c.knet(*args).stdout.splitlines()
        theirs = c.kubectl(*args).stdout.splitlines()
        assert ours[0].split() == theirs[0].split()
        # Ages may tick between the two; every other cell matches.
        assert [cell for cell in ours[1].split() if not cell[:-1].isdigit()] == [
            cell for cell in theirs[1].split() if not cell[:-1].isdigit()]
    assert "devs" in c.knet("get", "rolebinding", "table-check", "-o", "wide").stdout
    assert "system:coredns" in c.kubectl("get", "clusterrolebinding", "system:coredns", "-o", "wide").stdout
    jwks = json.loads(c.kubectl("get", "--raw", "/openid/v1/jwks").stdout)
    assert jwks["keys"][0]["alg"] == "ES256"
