"""The real kubectl's writes that are patches, against a live cluster: apply
and re-apply (a strategic merge patch), apply --server-side (field managers),
diff, patch --type strategic|merge|json, rollout restart and undo, label,
annotate. What kubectl prints and what the objects hold afterwards are
compared with what a real API server gives for the same commands."""

from __future__ import annotations

import json

import pytest

from knet.harness.cluster import Cluster

pytestmark = [pytest.mark.root, pytest.mark.cluster]


def app(image: str, name: str = "web", replicas: int = 2, labels: str = "") -> str:
    extra = f", {labels}" if labels else ""
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}{extra}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: web
        image: {image}
        ports: [{{containerPort: 8080}}]
        env: [{{name: A, value: "1"}}]
      - name: side
        image: busybox
        command: [sleep, "100000"]
"""


SERVICE = """apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""

CLIENT = """apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers: [{name: c, image: agnhost, command: [sleep, "100000"]}]
"""


@pytest.fixture(scope="module")
def c():
    cluster = Cluster.up(workers=1)
    try:
        cluster.kubectl("apply", "-f", "-", input=CLIENT)
        cluster.wait_pod("default", "client", lambda p: p["status"].get("podIP"), timeout=60)
        yield cluster
    finally:
        cluster.down()


def get(c: Cluster, *what: str) -> dict:
    return json.loads(c.kubectl("get", *what, "-o", "json", "--show-managed-fields").stdout)


def rolled_out(c: Cluster, name: str) -> None:
    c.kubectl("rollout", "status", f"deployment/{name}", "--timeout=90s", timeout=100)


def pods_of(c: Cluster, app_label: str) -> list[dict]:
    items = get(c, "pods", "-l", f"app={app_label}")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def hashes(c: Cluster, app_label: str) -> set[str]:
    return {p["metadata"]["labels"]["pod-template-hash"] for p in pods_of(c, app_label)}


def ask_service(c: Cluster, ip: str) -> str:
    out = c.exec_pod("default", "client", ["sh", "-c", f"echo hostname | nc -w2 {ip} 80"])
    return out.stdout.strip()


def test_apply_then_reapply_a_changed_image_keeps_ports_and_rolls_the_pods(c):
    out = c.kubectl("apply", "-f", "-", input=app("agnhost:2.40") + "---\n" + SERVICE)
    assert out.stdout.splitlines() == ["deployment.apps/web created", "service/web created"]
    rolled_out(c, "web")
    before = hashes(c, "web")
    ip = get(c, "service", "web")["spec"]["clusterIP"]
    first = {p["metadata"]["name"] for p in pods_of(c, "web")}
    c.wait_for("the Service answering from a pod", lambda: ask_service(c, ip) in first, timeout=60)

    out = c.kubectl("apply", "-f", "-", input=app("agnhost:2.45") + "---\n" + SERVICE)
    assert out.stdout.splitlines() == ["deployment.apps/web configured", "service/web unchanged"]
    d = get(c, "deployment", "web")
    assert "$setElementOrder" not in json.dumps(d) and "$patch" not in json.dumps(d)
    web, side = d["spec"]["template"]["spec"]["containers"]
    assert web["image"] == "agnhost:2.45" and side["name"] == "side"
    assert web["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert web["env"] == [{"name": "A", "value": "1"}]
    assert d["metadata"]["generation"] == 2
    managers = {(e["manager"], e["operation"]) for e in d["metadata"]["managedFields"]}
    assert ("kubectl-client-side-apply", "Update") in managers
    rolled_out(c, "web")
    after = hashes(c, "web")
    assert len(after) == 1 and not after & before
    names = {p["metadata"]["name"] for p in pods_of(c, "web")}
    c.wait_for("the Service answering from a new pod", lambda: ask_service(c, ip) in names, timeout=60)
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] in ("1", "2")
    c.wait_for("revision 2", lambda: get(c, "deployment", "web")["metadata"]["annotations"][
        "deployment.kubernetes.io/revision"] == "2", timeout=60)


def test_server_side_apply_creates_updates_and_reports_conflicts(c):
    manifest = app("agnhost:2.40", name="ssa", replicas=1, labels="tier: front")
    out = c.kubectl("apply", "--server-side", "--dry-run=server", "-f", "-", input=manifest)
    assert out.stdout.strip() == "deployment.apps/ssa serverside-applied (server dry run)"
    assert c.kubectl("get", "deployment", "ssa", check=False).returncode == 1  # nothing made
    ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: ssa-ns, labels: {team: a}}\n"
    assert c.kubectl("apply", "--server-side", "-f", "-", input=ns).stdout.strip() == \
        "namespace/ssa-ns serverside-applied"
    assert get(c, "namespace", "ssa-ns")["metadata"]["labels"]["team"] == "a"
    out = c.kubectl("apply", "--server-side", "-f", "-", input=manifest)
    assert out.stdout.strip() == "deployment.apps/ssa serverside-applied"
    d = get(c, "deployment", "ssa")
    entry, = [e for e in d["metadata"]["managedFields"] if e["operation"] == "Apply"]
    assert entry["manager"] == "kubectl" and entry["fieldsType"] == "FieldsV1"
    fields = entry["fieldsV1"]
    assert fields["f:metadata"]["f:labels"] == {"f:app": {}, "f:tier": {}}
    web = fields["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']
    assert web["f:ports"] == {'k:{"containerPort":8080,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}}

    # An update: the label the configuration no longer lists goes, the image changes.
    out = c.kubectl("apply", "--server-side", "-f", "-", input=app("agnhost:2.45", name="ssa", replicas=1))
    assert out.stdout.strip() == "deployment.apps/ssa serverside-applied"
    d = get(c, "deployment", "ssa")
    assert d["metadata"]["labels"] == {"app": "ssa"}
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "agnhost:2.45"

    # Another manager takes a field; applying it back is a conflict until forced.
    c.kubectl("patch", "deployment/ssa", "--type=merge", "-p", '{"spec":{"replicas":3}}')
    out = c.kubectl("apply", "--server-side", "-f", "-", input=app("agnhost:2.45", name="ssa", replicas=1),
                    check=False)
    assert out.returncode == 1
    assert 'Apply failed with 1 conflict: conflict with "kubectl-patch" using apps/v1: .spec.replicas' in out.stderr
    assert get(c, "deployment", "ssa")["spec"]["replicas"] == 3
    c.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
              input=app("agnhost:2.45", name="ssa", replicas=1))
    d = get(c, "deployment", "ssa")
    assert d["spec"]["replicas"] == 1
    patcher = [e for e in d["metadata"]["managedFields"] if e["manager"] == "kubectl-patch"]
    assert not patcher or "f:replicas" not in json.dumps(patcher[0]["fieldsV1"])
    rolled_out(c, "ssa")


def test_diff_shows_the_change_and_changes_nothing(c):
    c.kubectl("apply", "-f", "-", input=app("agnhost:2.40", name="differ", replicas=1))
    rolled_out(c, "differ")  # its status settled, so that only the change differs
    generation = get(c, "deployment", "differ")["metadata"]["generation"]
    same = c.kubectl("diff", "-f", "-", input=app("agnhost:2.40", name="differ", replicas=1), check=False)
    assert same.returncode == 0 and same.stdout == ""
    out = c.kubectl("diff", "-f", "-", input=app("agnhost:2.99", name="differ", replicas=1), check=False)
    assert out.returncode == 1, out.stderr
    assert "-        image: agnhost:2.40" in out.stdout and "+        image: agnhost:2.99" in out.stdout
    out = c.kubectl("diff", "--server-side", "-f", "-", input=app("agnhost:2.98", name="differ", replicas=1),
                    check=False)
    assert out.returncode == 1, out.stderr
    assert "+        image: agnhost:2.98" in out.stdout
    d = get(c, "deployment", "differ")
    assert d["metadata"]["generation"] == generation
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "agnhost:2.40"


def test_patch_strategic_merge_and_json(c):
    c.kubectl("apply", "-f", "-", input=app("agnhost:2.40", name="patchme", replicas=1))
    out = c.kubectl("patch", "deployment/patchme", "-p",
                    '{"spec":{"template":{"spec":{"containers":[{"name":"web","env":[{"name":"B","value":"2"}]}]}}}}')
    assert out.stdout.strip() == "deployment.apps/patchme patched"
    web = get(c, "deployment", "patchme")["spec"]["template"]["spec"]["containers"][0]
    assert web["env"] == [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]
    assert web["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]

    out = c.kubectl("patch", "deployment/patchme", "--type=merge", "-p", '{"metadata":{"labels":{"x":"y"}}}')
    assert out.stdout.strip() == "deployment.apps/patchme patched"
    assert get(c, "deployment", "patchme")["metadata"]["labels"] == {"app": "patchme", "x": "y"}

    out = c.kubectl("patch", "deployment/patchme", "--type=json",
                    "-p", '[{"op":"test","path":"/spec/replicas","value":1},'
                          '{"op":"replace","path":"/spec/replicas","value":2}]')
    assert out.stdout.strip() == "deployment.apps/patchme patched"
    assert get(c, "deployment", "patchme")["spec"]["replicas"] == 2

    out = c.kubectl("patch", "deployment/patchme", "--type=json",
                    "-p", '[{"op":"remove","path":"/spec/template/spec/affinity"}]', check=False)
    assert out.returncode == 1
    # Upstream's Status says only "the server rejected our request due to an error in our request";
    # knet's carries the same message and a cause naming the operation's path, which kubectl prints.
    assert out.stderr.startswith("The request is invalid: /spec/template/spec/affinity: "), out.stderr

    out = c.kubectl("patch", "deployment/patchme", "-p", '{"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}',
                    check=False)
    assert out.returncode == 1 and "does not contain declared merge key: name" in out.stderr

    out = c.kubectl("patch", "deployment/patchme", "-p", '{"spec":{"replicas":-1}}', check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == ('The Deployment "patchme" is invalid: spec.replicas: Invalid value: -1: '
                                  "must be greater than or equal to 0")

    same = c.kubectl("patch", "deployment/patchme", "--type=merge", "-p", '{"metadata":{"labels":{"x":"y"}}}')
    assert same.stdout.strip() == "deployment.apps/patchme patched (no change)"


def test_rollout_restart_and_undo(c):
    c.kubectl("apply", "-f", "-", input=app("agnhost:2.40", name="roll", replicas=1))
    rolled_out(c, "roll")
    first = hashes(c, "roll")
    out = c.kubectl("rollout", "restart", "deployment/roll")
    assert out.stdout.strip() == "deployment.apps/roll restarted"
    d = get(c, "deployment", "roll")
    assert "kubectl.kubernetes.io/restartedAt" in d["spec"]["template"]["metadata"]["annotations"]
    rolled_out(c, "roll")
    assert not hashes(c, "roll") & first

    c.kubectl("set", "image", "deployment/roll", "web=agnhost:2.50")
    rolled_out(c, "roll")
    history = c.kubectl("rollout", "history", "deployment/roll").stdout
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2", "3"]
    out = c.kubectl("rollout", "undo", "deployment/roll")
    assert out.stdout.strip() == "deployment.apps/roll rolled back"
    d = get(c, "deployment", "roll")
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "agnhost:2.40"
    rolled_out(c, "roll")
    c.wait_for("revision 4", lambda: get(c, "deployment", "roll")["metadata"]["annotations"][
        "deployment.kubernetes.io/revision"] == "4", timeout=60)
    images = {p["spec"]["containers"][0]["image"] for p in pods_of(c, "roll")}
    assert images == {"agnhost:2.40"}


def test_label_and_annotate(c):
    c.kubectl("apply", "-f", "-", input=app("agnhost:2.40", name="marked", replicas=1))
    assert c.kubectl("label", "deployment/marked", "team=net").stdout.strip() == "deployment.apps/marked labeled"
    out = c.kubectl("label", "deployment/marked", "team=other", check=False)
    assert out.returncode == 1 and "'team' already has a value (net), and --overwrite is false" in out.stderr
    c.kubectl("label", "deployment/marked", "team=other", "--overwrite")
    assert c.kubectl("annotate", "deployment/marked", "note=hi").stdout.strip() == "deployment.apps/marked annotated"
    d = get(c, "deployment", "marked")
    assert d["metadata"]["labels"]["team"] == "other" and d["metadata"]["annotations"]["note"] == "hi"
    managers = {e["manager"] for e in d["metadata"]["managedFields"]}
    assert {"kubectl-label", "kubectl-annotate"} <= managers
    c.kubectl("label", "deployment/marked", "team-")
    c.kubectl("annotate", "deployment/marked", "note-")
    d = get(c, "deployment", "marked")
    assert "team" not in d["metadata"]["labels"] and "note" not in (d["metadata"].get("annotations") or {})


def test_every_stored_object_decodes_strictly(c):
    """kubectl patches with fieldValidation=Strict, and a strategic or JSON patch
    is checked as the whole object it yields: a field knet itself stores outside
    the schema would make every such patch of that object fail."""
    from knet.api import decode
    from knet.api.resources import RESOURCES

    checked = 0
    for res in RESOURCES:
        for obj in c.list(res.kind):
            _, strict = decode.decode_typed(obj, res.kind)
            assert strict == [], (res.kind, obj["metadata"]["name"], strict)
            checked += 1
    assert checked > 20


ANP = """apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {{name: quiet}}
spec:
  priority: {priority}
  subject: {{namespaces: {{matchLabels: {{team: quiet}}}}}}
  ingress: [{{name: deny-all, action: Deny, from: [{{namespaces: {{}}}}]}}]
"""


def test_a_kind_without_go_types_takes_merge_patches_not_strategic_ones(c):
    """AdminNetworkPolicy is a custom resource upstream: kubectl apply sends it
    JSON merge patches, and a strategic patch gets the 415 a custom resource gets."""
    assert c.kubectl("apply", "-f", "-", input=ANP.format(priority=40)).stdout.strip() == \
        "adminnetworkpolicy.policy.networking.k8s.io/quiet created"
    out = c.kubectl("apply", "-f", "-", input=ANP.format(priority=41))
    assert out.stdout.strip() == "adminnetworkpolicy.policy.networking.k8s.io/quiet configured"
    assert get(c, "adminnetworkpolicy", "quiet")["spec"]["priority"] == 41
    out = c.kubectl("patch", "adminnetworkpolicy/quiet", "-p", '{"spec":{"priority":42}}', check=False)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        "error: application/strategic-merge-patch+json is not supported by policy.networking.k8s.io/v1alpha1, "
        "Kind=AdminNetworkPolicy: the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml")
    c.kubectl("patch", "adminnetworkpolicy/quiet", "--type=merge", "-p", '{"spec":{"priority":42}}')
    assert get(c, "adminnetworkpolicy", "quiet")["spec"]["priority"] == 42
    c.kubectl("delete", "adminnetworkpolicy/quiet")


def test_the_python_client_patches_strategic_json_and_applies(c):
    """The official client picks the patch type from the body: a dict is sent
    as a strategic merge patch, a list as a JSON patch."""
    from kubernetes import client, config

    apps = client.AppsV1Api(config.new_client_from_config(config_file=c.kubeconfig))
    c.kubectl("apply", "-f", "-", input=app("agnhost:2.40", name="pyclient", replicas=1))
    out = apps.patch_namespaced_deployment("pyclient", "default", {"spec": {"template": {"spec": {
        "containers": [{"name": "web", "image": "agnhost:2.41"}]}}}}, field_manager="pytest")
    web = out.spec.template.spec.containers[0]
    assert web.image == "agnhost:2.41" and web.ports[0].container_port == 8080
    assert "pytest" in {e.manager for e in out.metadata.managed_fields}
    out = apps.patch_namespaced_deployment("pyclient", "default",
                                           [{"op": "replace", "path": "/spec/replicas", "value": 2}])
    assert out.spec.replicas == 2
    with pytest.raises(client.ApiException) as e:
        apps.patch_namespaced_deployment("pyclient", "default", [{"op": "test", "path": "/spec/replicas", "value": 9}])
    assert e.value.status == 422


def test_edit_sends_a_strategic_patch_of_the_change(c, monkeypatch):
    c.kubectl("apply", "-f", "-", input=app("agnhost:2.40", name="edited", replicas=1))
    monkeypatch.setenv("KUBE_EDITOR", "sed -i -e s/agnhost:2.40/agnhost:2.41/")
    out = c.kubectl("edit", "deployment/edited")
    assert out.stdout.strip() == "deployment.apps/edited edited"
    d = get(c, "deployment", "edited")
    web = d["spec"]["template"]["spec"]["containers"][0]
    assert web["image"] == "agnhost:2.41" and web["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert "kubectl-edit" in {e["manager"] for e in d["metadata"]["managedFields"]}


SLEEPER = """apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  containers: [{name: c, image: agnhost, command: [sleep, "100000"], ports: [{containerPort: 80}]}]
"""


def test_knet_apply_and_kubectl_apply_see_each_others_applies_as_unchanged(c):
    """Both write the same last-applied annotation and send a three-way patch,
    so neither sees a change the other made from the same file; a port and an
    env var removed from the file go, and what others set stays (admission's
    token volumeMount, a label added by kubectl label)."""
    try:
        assert c.apply(SLEEPER % "by-knet", wait=False).stdout.strip() == "pod/by-knet created"
        assert c.kubectl("apply", "-f", "-", input=SLEEPER % "by-knet").stdout.strip() == "pod/by-knet unchanged"
        assert c.apply(SLEEPER % "by-knet", wait=False).stdout.strip() == "pod/by-knet unchanged"
        assert c.kubectl("apply", "-f", "-", input=SLEEPER % "by-kubectl").stdout.strip() == "pod/by-kubectl created"
        assert c.apply(SLEEPER % "by-kubectl", wait=False).stdout.strip() == "pod/by-kubectl unchanged"
        mounts = get(c, "pod", "by-knet")["spec"]["containers"][0]["volumeMounts"]
        assert [m["mountPath"] for m in mounts] == ["/var/run/secrets/kubernetes.io/serviceaccount"]

        manifest = app("agnhost:2.40", name="threeway", replicas=0)
        assert c.apply(manifest, wait=False).stdout.strip() == "deployment.apps/threeway created"
        c.kubectl("label", "deployment/threeway", "added-by=someone-else")
        fewer = manifest.replace("ports: [{containerPort: 8080}]", "ports: []").replace(
            'env: [{name: A, value: "1"}]', "env: []")
        assert fewer != manifest
        assert c.apply(fewer, wait=False).stdout.strip() == "deployment.apps/threeway configured"
        d = get(c, "deployment", "threeway")
        web = d["spec"]["template"]["spec"]["containers"][0]
        assert not web.get("ports") and not web.get("env")
        assert d["metadata"]["labels"] == {"app": "threeway", "added-by": "someone-else"}
        assert c.kubectl("apply", "-f", "-", input=fewer).stdout.strip() == "deployment.apps/threeway unchanged"
        assert c.apply(fewer, wait=False).stdout.strip() == "deployment.apps/threeway unchanged"
    finally:
        c.kubectl("delete", "pod/by-knet", "pod/by-kubectl", "deployment/threeway", "--ignore-not-found",
                  "--wait=false", check=False)
