"""The real kubectl against a live cluster's OpenAPI documents: apply with
kubectl's default validation (no --validate=false), which asks /openapi/v3
whether the server validates fields and then sends fieldValidation=Strict;
an unknown field refused with the field named, in kubectl's words for strict
validation; explain's output, compared with what kubectl prints against a
real API server; the documents cached on disk by their hash."""

from __future__ import annotations

import json
import re
import shutil
import tempfile

import pytest

from knet.harness.cluster import Cluster

pytestmark = [pytest.mark.root, pytest.mark.cluster]

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: {image}
        ports: [{{containerPort: 8080}}]{extra}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
"""

BAD_POD = """apiVersion: v1
kind: Pod
metadata: {name: bad}
spec:
  containers:
  - name: c
    image: agnhost
    bogus: 1
  nonsense: true
"""


@pytest.fixture(scope="module")
def c():
    cluster = Cluster.up(workers=0)
    cache = tempfile.mkdtemp(prefix="knet-kubectl-cache-")
    cluster.cache = cache  # kubectl's disk cache for this module, not the machine's ~/.kube/cache
    try:
        yield cluster
    finally:
        cluster.down()
        shutil.rmtree(cache, ignore_errors=True)


def kubectl(c: Cluster, *args: str, **kw):
    return c.kubectl(f"--cache-dir={c.cache}", *args, **kw)


def requests(stderr: str) -> list[tuple[str, str, str]]:
    """(verb, path?query, status) of each request kubectl's -v=6 log shows it sent."""
    found = re.findall(r'verb="(\w+)" url="https://[^/"]+([^"]*)" status="(\d+)', stderr)
    return [(verb, url.replace("timeout=32s", "").rstrip("?&"), status) for verb, url, status in found]


def test_apply_leaves_field_validation_to_the_server(c):
    out = kubectl(c, "apply", "-f", "-", "-v=6", input=DEPLOYMENT.format(image="agnhost", extra=""))
    assert out.stdout == "deployment.apps/web created\nservice/web created\n"
    sent = requests(out.stderr)
    urls = [u for _, u, _ in sent]
    # kubectl asked the v3 index and the apps/v1 document (by its hash) whether PATCH takes fieldValidation ...
    assert ("GET", "/openapi/v3", "200") in sent
    assert any(u.startswith("/openapi/v3/apis/apps/v1?hash=") for u in urls), urls
    assert not any(u.startswith("/openapi/v2") for u in urls)  # ... and never needed the v2 document
    # ... so it validated nothing itself and asked the server to be strict.
    creates = [u for v, u, _ in sent if v == "POST"]
    assert creates == ["/apis/apps/v1/namespaces/default/deployments?fieldManager=kubectl-client-side-apply"
                       "&fieldValidation=Strict",
                       "/api/v1/namespaces/default/services?fieldManager=kubectl-client-side-apply"
                       "&fieldValidation=Strict"]


def test_reapply_computes_its_patch_from_the_v3_merge_keys(c):
    kubectl(c, "apply", "-f", "-", input=DEPLOYMENT.format(image="agnhost", extra=""), check=False)
    out = kubectl(c, "apply", "-f", "-", "-v=8", input=DEPLOYMENT.format(image="agnhost:2", extra=""))
    assert "deployment.apps/web configured" in out.stdout
    # built from the v3 schema: no fallback to the v2 document or to kubectl's compiled-in types
    assert "error calculating patch" not in out.stderr and "does not support strategic merge patch" not in out.stderr
    assert "/openapi/v2" not in out.stderr
    patch = re.search(r'"Request Body" body="(\{\\"metadata.*?)"\n', out.stderr)
    assert patch, out.stderr[-3000:]
    assert "$setElementOrder/containers" in patch.group(1).replace("\\", "")
    dep = json.loads(kubectl(c, "get", "deployment", "web", "-o", "json").stdout)
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "agnhost:2" and container["ports"][0]["containerPort"] == 8080


def test_an_unknown_field_is_refused_naming_it(c):
    out = kubectl(c, "apply", "-f", "-", input=BAD_POD, check=False)
    assert out.returncode == 1
    # kubectl's and kube-apiserver's words for strict field validation
    assert out.stderr == ('Error from server (BadRequest): error when creating "STDIN": Pod in version "v1" '
                          'cannot be handled as a Pod: strict decoding error: unknown field '
                          '"spec.containers[0].bogus", unknown field "spec.nonsense"\n')
    assert kubectl(c, "get", "pod", "bad", check=False).returncode == 1  # nothing was created
    # kubectl create validates the same way
    out = kubectl(c, "create", "-f", "-", input=BAD_POD, check=False)
    assert out.returncode == 1 and 'unknown field "spec.nonsense"' in out.stderr


def test_an_unknown_field_in_a_changed_object_is_refused_and_changes_nothing(c):
    kubectl(c, "apply", "-f", "-", input=DEPLOYMENT.format(image="agnhost", extra=""), check=False)
    before = json.loads(kubectl(c, "get", "deployment", "web", "-o", "json").stdout)
    out = kubectl(c, "apply", "-f", "-", check=False,
                  input=DEPLOYMENT.format(image="agnhost:3", extra="\n        bogus: 1"))
    assert out.returncode == 1
    assert 'unknown field "spec.template.spec.containers[0].bogus"' in out.stderr
    after = json.loads(kubectl(c, "get", "deployment", "web", "-o", "json").stdout)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_validate_warn_and_false_accept_and_drop_the_field(c):
    out = kubectl(c, "apply", "--validate=warn", "-f", "-", input=BAD_POD.replace("name: bad", "name: warned"))
    assert out.stdout == "pod/warned created\n"
    assert 'Warning: unknown field "spec.containers[0].bogus"' in out.stderr
    assert 'Warning: unknown field "spec.nonsense"' in out.stderr
    out = kubectl(c, "apply", "--validate=false", "-f", "-", input=BAD_POD.replace("name: bad", "name: ignored"))
    assert out.stdout == "pod/ignored created\n" and "Warning" not in out.stderr
    pod = json.loads(kubectl(c, "get", "pod", "ignored", "-o", "json").stdout)
    assert "nonsense" not in pod["spec"] and "bogus" not in pod["spec"]["containers"][0]


# -- explain: compared with what kubectl prints against kube-apiserver v1.37 ----------------

def test_explain_a_field(c):
    out = kubectl(c, "explain", "svc.spec.ports.port").stdout
    assert out == ("KIND:       Service\nVERSION:    v1\n\nFIELD: port <integer>\n\n\nDESCRIPTION:\n"
                   "    The port that will be exposed by this service.\n    \n\n")


def test_explain_a_list_of_structs(c):
    out = kubectl(c, "explain", "pod.spec.containers").stdout
    assert out.startswith(
        "KIND:       Pod\nVERSION:    v1\n\nFIELD: containers <[]Container>\n\n\nDESCRIPTION:\n"
        "    List of containers belonging to the pod. Containers cannot currently be\n"
        "    added or removed. There must be at least one container in a Pod. Cannot be\n"
        "    updated.\n"
        "    A single application container that you want to run within a pod.\n"
        "    \n"
        "FIELDS:\n"
        "  args\t<[]string>\n"
        "    Arguments to the entrypoint. The container image's CMD is used if this is\n"), out[:800]
    assert ("  name\t<string> -required-\n"
            "    Name of the container specified as a DNS_LABEL. Each container in a pod must\n"
            "    have a unique name (DNS_LABEL). Cannot be updated.\n") in out
    assert "  imagePullPolicy\t<string>\n  enum: Always, IfNotPresent, Never\n" in out
    assert "  ports\t<[]ContainerPort>\n" in out and "  resources\t<ResourceRequirements>\n" in out


def test_explain_an_enum(c):
    out = kubectl(c, "explain", "service.spec.type").stdout
    assert out.startswith("KIND:       Service\nVERSION:    v1\n\nFIELD: type <string>\nENUM:\n"
                          "    ClusterIP\n    ExternalName\n    LoadBalancer\n    NodePort\n\nDESCRIPTION:\n"
                          "    type determines how the Service is exposed."), out
    assert "Possible enum values:\n     - `\"ClusterIP\"` means a service will only be accessible inside the" in out


def test_explain_recursive(c):
    out = kubectl(c, "explain", "deployment", "--recursive").stdout
    assert out.startswith("GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n\nDESCRIPTION:\n"
                          "    Deployment enables declarative updates for Pods and ReplicaSets.\n    \n"
                          "FIELDS:\n  apiVersion\t<string>\n  kind\t<string>\n  metadata\t<ObjectMeta>\n"
                          "    annotations\t<map[string]string>\n"), out[:600]
    assert "\n  spec\t<DeploymentSpec> -required-\n    minReadySeconds\t<integer>\n" in out
    assert "\n    template\t<PodTemplateSpec> -required-\n" in out
    assert ("\n          ports\t<[]ContainerPort>\n            containerPort\t<integer> -required-\n"
            "            hostIP\t<string>\n            hostPort\t<integer>\n            name\t<string>\n"
            "            protocol\t<string>\n            enum: SCTP, TCP, UDP\n") in out
    assert "\n        targetPort\t<IntOrString>\n" not in out  # a Deployment has no Service ports
    assert "\n  status\t<DeploymentStatus>\n" in out


def test_explain_a_crd_shaped_kind(c):
    out = kubectl(c, "explain", "anp.spec.priority").stdout
    assert out.startswith("GROUP:      policy.networking.k8s.io\nKIND:       AdminNetworkPolicy\n"
                          "VERSION:    v1alpha1\n\nFIELD: priority <integer>\n\n\nDESCRIPTION:\n"
                          "    Priority is a value from 0 to 1000."), out
    out = kubectl(c, "explain", "anp.spec", "--recursive").stdout
    assert "  ingress\t<[]Object>\n    action\t<string> -required-\n    enum: Allow, Deny, Pass\n" in out


def _responses(stderr: str, prefix: str) -> list[str]:
    """The headers of each response kubectl's -v=8 log shows for a request
    whose path starts with `prefix`."""
    out = []
    for m in re.finditer(r'"Request" verb="GET" url="https://[^/"]+' + re.escape(prefix), stderr):
        rest = stderr[m.end():]
        response = re.search(r'"Response" status="[^"]*" headers=<\n(.*?)\n >', rest, re.S)
        out.append(response.group(1) if response else "")
    return out


def test_the_documents_are_cached_on_disk_by_their_hash(c):
    """The index names each document by a URL with its hash, and the document
    is served immutable: kubectl's second run takes it from its disk cache."""
    cache = tempfile.mkdtemp(prefix="knet-kubectl-cache-")
    try:
        first = c.kubectl(f"--cache-dir={cache}", "explain", "pod.spec", "-v=8").stderr
        second = c.kubectl(f"--cache-dir={cache}", "explain", "pod.spec", "-v=8").stderr
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    [fetched] = _responses(first, "/openapi/v3/api/v1?hash=")
    assert "Cache-Control: public, immutable" in fetched and "X-From-Cache" not in fetched
    [cached] = _responses(second, "/openapi/v3/api/v1?hash=")
    assert "X-From-Cache: 1" in cached


LIST = """apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: listed}
  spec:
    ports: [{port: 80%s}]
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: listed}
  spec:
    selector: {matchLabels: {app: listed}}
    template:
      metadata: {labels: {app: listed}}
      spec:
        containers: [{name: c, image: agnhost, resources: {limits: {cpu: 1}}, ports: [{containerPort: %s}]}]
"""


def test_a_list_manifest_is_validated_client_side_against_the_v2_document(c):
    """kubectl cannot ask the server to validate a `kind: List` (what
    `kubectl get -o yaml` writes): it validates each item itself against the
    v2 document, fetched in protobuf. Its words are upstream's."""
    out = kubectl(c, "apply", "-f", "-", check=False, input=LIST % (", bogus: 1", '"80"'))
    assert out.returncode == 1
    assert out.stderr == (
        'error: error validating "STDIN": error validating data: [ValidationError(Service.spec.ports[0]): '
        'unknown field "bogus" in io.k8s.api.core.v1.ServicePort, '
        'ValidationError(Deployment.spec.template.spec.containers[0].ports[0].containerPort): invalid type for '
        'io.k8s.api.core.v1.ContainerPort.containerPort: got "string", expected "integer"]; if you choose to '
        'ignore these errors, turn validation off with --validate=false\n')
    assert kubectl(c, "get", "svc", "listed", check=False).returncode == 1
    out = kubectl(c, "apply", "-f", "-", "-v=6", input=LIST % ("", "80"))
    assert out.stdout == "service/listed created\ndeployment.apps/listed created\n"
    assert ("GET", "/openapi/v2", "200") in requests(out.stderr)


def test_explain_from_the_v2_document(c):
    out = kubectl(c, "explain", "svc.spec.ports.port", "--output=plaintext-openapiv2").stdout
    assert out == ("KIND:     Service\nVERSION:  v1\n\nFIELD:    port <integer>\n\nDESCRIPTION:\n"
                   "     The port that will be exposed by this service.\n")


def test_the_documents_are_served_as_json(c):
    doc = json.loads(kubectl(c, "get", "--raw", "/openapi/v2").stdout)
    assert doc["swagger"] == "2.0"
    pod = doc["definitions"]["io.k8s.api.core.v1.Pod"]
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod", "version": "v1"}]
    index = json.loads(kubectl(c, "get", "--raw", "/openapi/v3").stdout)
    assert index["paths"]["apis/apps/v1"]["serverRelativeURL"].startswith("/openapi/v3/apis/apps/v1?hash=")
