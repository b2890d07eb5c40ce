"""`knet apply`, `create` and `delete`, and their --wait, against knet's API
server running in this process (no root, no cluster): what each prints, its
exit code, and what is stored afterwards. The controllers and node agents
that --wait follows are played by the test, through the same progress
endpoint they report to."""

from __future__ import annotations

import threading
import time

from knet.api.errors import ApiError
from knet.api.resources import by_kind

PODS, SERVICES, DEPLOYMENTS, NAMESPACES = by_kind("Pod"), by_kind("Service"), by_kind("Deployment"), by_kind("Namespace")
EVENTS, NODES = by_kind("Event"), by_kind("Node")

APP = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: team}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: agnhost}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: team}
spec: {selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Namespace
metadata: {name: team}
"""

POD = """\
apiVersion: v1
kind: Pod
metadata: {name: %s, labels: {app: %s}}
spec: {containers: [{name: c, image: agnhost}]}
"""


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def names(client, res, namespace: str | None = "default") -> list[str]:
    return sorted(o["metadata"]["name"] for o in client.list(res, namespace)["items"])


def test_apply_creates_then_leaves_unchanged_then_configures(knet, server, tmp_path):
    app = write(tmp_path, "app.yaml", APP)
    # The Namespace goes first, though the file has it last.
    assert knet("apply", "-f", app) == (
        0, "namespace/team created\ndeployment.apps/web created\nservice/web created\n", "")
    assert knet("apply", "-f", app) == (
        0, "namespace/team unchanged\ndeployment.apps/web unchanged\nservice/web unchanged\n", "")
    write(tmp_path, "app.yaml", APP.replace("replicas: 2", "replicas: 5"))
    assert knet("apply", "-f", app) == (
        0, "namespace/team unchanged\ndeployment.apps/web configured\nservice/web unchanged\n", "")
    assert server.client().get(DEPLOYMENTS, "team", "web")["spec"]["replicas"] == 5


def test_apply_of_a_file_with_one_bad_object_applies_nothing(knet, server, tmp_path):
    bad = write(tmp_path, "bad.yaml", POD % ("good", "good") + "---\n" + POD % ("Bad_Name", "bad"))
    code, out, err = knet("apply", "-f", bad)
    assert (code, out) == (1, "")
    first, last = err.splitlines()
    assert first.startswith('Error from server (Invalid): error when applying pod/Bad_Name: Pod "Bad_Name" is '
                            'invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain')
    assert last == "nothing was applied"
    assert names(server.client(), PODS) == []  # the good one was only a dry run


def test_apply_refuses_unknown_fields_and_kinds_and_a_namespace_mismatch(knet, server, tmp_path):
    typo = write(tmp_path, "typo.yaml", POD.replace("image: agnhost", "image: agnhost, imagePullPolicyy: Always")
                 % ("web", "web"))
    assert knet("apply", "-f", typo) == (
        1, "", 'Error from server (BadRequest): error when applying pod/web: Pod in version "v1" cannot be handled '
               'as a Pod: strict decoding error: unknown field "spec.containers[0].imagePullPolicyy"\n'
               "nothing was applied\n")
    gadget = write(tmp_path, "gadget.yaml", "apiVersion: v9\nkind: Gadget\nmetadata: {name: g}\n")
    assert knet("apply", "-f", gadget) == (
        1, "", f'error: unable to recognize "{gadget}": no matches for kind "Gadget" in version "v9"\n')
    elsewhere = write(tmp_path, "other.yaml", (POD % ("web", "web")).replace("name: web,", "name: web, namespace: other,"))
    assert knet("apply", "-f", elsewhere, "-n", "team") == (
        1, "", 'error: the namespace from the provided object "other" does not match the namespace "team". '
               "You must pass '--namespace=other' to perform this operation.\n")
    assert names(server.client(), PODS, None) == []


def test_create_creates_the_rest_and_reports_what_exists(knet, server, tmp_path):
    server.client().create(PODS, "default", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b"},
                                             "spec": {"containers": [{"name": "c", "image": "agnhost"}]}})
    both = write(tmp_path, "pods.yaml", POD % ("a", "a") + "---\n" + POD % ("b", "b") + "---\n" + POD % ("c", "c"))
    assert knet("create", "-f", both) == (
        1, "pod/a created\npod/c created\n",
        f'Error from server (AlreadyExists): error when creating "{both}": pods "b" already exists\n')
    assert names(server.client(), PODS) == ["a", "b", "c"]
    assert knet("create", "-f", write(tmp_path, "empty.yaml", "")) == (1, "", "error: no objects passed to create\n")


def test_delete_by_name_kind_slash_name_selector_and_file(knet, server, tmp_path):
    pods = write(tmp_path, "pods.yaml", "---\n".join(POD % (n, app) for n, app in
                                                     (("a", "x"), ("b", "x"), ("c", "y"), ("d", "y"), ("e", "z"))))
    assert knet("apply", "-f", pods)[0] == 0
    assert knet("delete", "pod", "a") == (0, "pod \"a\" deleted from default namespace\n", "")
    assert knet("delete", "pod/b", "svc/nope") == (
        1, "pod \"b\" deleted from default namespace\n", 'Error from server (NotFound): services "nope" not found\n')
    assert knet("delete", "pod", "a", "--ignore-not-found") == (0, "", "")
    assert knet("delete", "pods", "--all", "-l", "app=y") == (0, "pod \"c\" deleted from default namespace\npod \"d\" deleted from default namespace\n", "")
    assert knet("delete", "-f", write(tmp_path, "e.yaml", POD % ("e", "z"))) == (0, "pod \"e\" deleted from default namespace\n", "")
    assert names(server.client(), PODS) == []


def test_delete_refusals(knet):
    assert knet("delete") == (1, "", "error: you must provide one or more resources by argument or filename\n")
    assert knet("delete", "pods") == (
        1, "", "error: resource(s) were provided, but no name was specified (use --all to delete all)\n")
    assert knet("delete", "gadget", "x") == (1, "", 'error: the server doesn\'t have a resource type "gadget"\n')


# -- --wait ------------------------------------------------------------------------------------


def report(client, component: str, revision: int, error: str = "") -> None:
    """What a controller manager or node agent posts once it has acted on `revision`."""
    client.request("POST", "/knet/v1/progress", {"component": component, "observed": revision,
                                                 "written": revision, "error": error})


def ready_node(client, name: str) -> None:
    client.create(NODES, None, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    node = client.get(NODES, None, name)
    node["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
    client.update(NODES, None, name, node, subresource="status")


def test_wait_times_out_naming_who_is_behind(knet, server, tmp_path):
    pod = write(tmp_path, "pod.yaml", POD % ("web", "web"))
    code, out, err = knet("apply", "-f", pod, "--wait", "--timeout", "0.2")
    revision = server.client().get(PODS, "default", "web")["metadata"]["resourceVersion"]
    assert (code, out) == (1, "pod/web created\n")
    assert err == f"error: timed out after 0.2s waiting for controllers to reach revision {revision}\n"
    client = server.client()
    ready_node(client, "worker-1")
    report(client, "controllers", 10**6)
    report(client, "node/worker-1", 1, error="nftables: No such file or directory")
    code, out, err = knet("delete", "pod", "web", "--wait", "--timeout", "0.2")
    assert (code, out) == (1, "pod \"web\" deleted from default namespace\n")
    warning, error = err.splitlines()
    assert warning == "warning: node/worker-1: nftables: No such file or directory (still waiting)"
    assert error.startswith("error: timed out after 0.2s waiting for worker-1 to reach revision ")
    assert error.endswith("; worker-1: nftables: No such file or directory")


def test_wait_returns_once_the_nodes_have_acted_and_reports_failures_to_realize(knet, server, tmp_path):
    """The test plays the controllers and the one node: once the Deployment is stored, a
    FailedCreate Warning about it, then progress past its revision. apply --wait prints the
    Warning and fails: the object is stored but not realized."""
    client = server.client()
    ready_node(client, "worker-1")

    def controllers() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                deploy = client.get(DEPLOYMENTS, "team", "web")
                break
            except ApiError:
                time.sleep(0.01)
        else:
            return
        m = deploy["metadata"]
        client.create(EVENTS, "team", {
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.1"}, "type": "Warning",
            "reason": "FailedCreate", "message": "quota exceeded",
            "involvedObject": {"kind": "Deployment", "namespace": "team", "name": "web", "uid": m["uid"]}})
        revision = int(client.request("GET", "/knet/v1/progress")["revision"])
        report(client, "controllers", revision)
        report(client, "node/worker-1", revision)

    playing = threading.Thread(target=controllers, daemon=True)
    playing.start()
    code, out, err = knet("apply", "-f", write(tmp_path, "app.yaml", APP), "--wait", "--timeout", "10")
    playing.join()
    assert out == "namespace/team created\ndeployment.apps/web created\nservice/web created\n"
    assert (code, err) == (1, "Warning: deployment/web: FailedCreate: quota exceeded\n"
                              "error: applied but not realized: deployment/web (see the warnings above)\n")
    # Everyone caught up and nothing new went wrong: the same apply waits and succeeds.
    code, out, err = knet("apply", "-f", str(tmp_path / "app.yaml"), "--wait", "--timeout", "10")
    assert (code, err) == (0, "") and out.count("unchanged") == 3
