"""PATCH as kube-apiserver serves it: strategic merge patch with its
directives (cases after apimachinery's strategicpatch tests, on the real
kinds' merge keys), RFC 6902 JSON patch, RFC 7386 merge patch, and
server-side apply's field ownership and conflicts. Through the server's
request handler where the HTTP answer matters, on plain dicts where the
merge itself does."""

from __future__ import annotations

import copy
import json

import pytest

from knet.api import fieldmanager, strategic
from knet.api.errors import ApiError
from knet.api.registry import Registry
from knet.api.resources import by_kind
from knet.api.server import ApiServer, Request
from knet.store.sqlite import SqliteStore

DEPLOY, PODS, SVC = by_kind("Deployment"), by_kind("Pod"), by_kind("Service")
SMP = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
JSONP = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"


def deployment(image: str = "nginx:1", **spec) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                         {"name": "web", "image": image, "ports": [{"containerPort": 80, "protocol": "TCP"}],
                          "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                         {"name": "side", "image": "busybox", "args": ["sleep", "1d"]}]}}, **spec}}


def pod_spec(obj: dict) -> dict:
    return obj["spec"]["template"]["spec"]


def smp(obj: dict, spec_patch: dict) -> dict:
    return strategic.apply(obj, {"spec": {"template": {"spec": spec_patch}}}, "Deployment")


def directives_in(v) -> list[str]:
    if isinstance(v, dict):
        return [k for k in v if k.startswith("$")] + [d for x in v.values() for d in directives_in(x)]
    if isinstance(v, list):
        return [d for x in v for d in directives_in(x)]
    return []


# -- strategic merge patch -------------------------------------------------------------------


def test_a_changed_image_merges_into_the_container_by_name_keeping_its_ports():
    """What `kubectl apply` sends for a changed image: the container merged on
    its merge key, the ports and the other container kept, the order directive
    consumed."""
    d = deployment()
    out = smp(d, {"$setElementOrder/containers": [{"name": "web"}, {"name": "side"}],
                  "containers": [{"name": "web", "image": "nginx:2"}]})
    web, side = pod_spec(out)["containers"]
    assert web["image"] == "nginx:2"
    assert web["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert web["env"] == pod_spec(d)["containers"][0]["env"]
    assert side == pod_spec(d)["containers"][1]
    assert directives_in(out) == []
    assert pod_spec(d)["containers"][0]["image"] == "nginx:1"  # the original is not changed


def test_items_new_to_a_merged_list_come_first_unless_set_element_order_says():
    """Upstream's normalizeElementOrder puts the patch's items, new ones
    included, ahead of the items only the live list has."""
    out = smp(deployment(), {"$setElementOrder/containers": [{"name": "first"}, {"name": "web"}, {"name": "side"}],
                             "containers": [{"name": "first", "image": "x"}]})
    assert [c["name"] for c in pod_spec(out)["containers"]] == ["first", "web", "side"]
    out = smp(deployment(), {"containers": [{"name": "first", "image": "x"}]})
    assert [c["name"] for c in pod_spec(out)["containers"]] == ["first", "web", "side"]
    out = smp(deployment(), {"$setElementOrder/containers": [{"name": "web"}, {"name": "side"}, {"name": "last"}],
                             "containers": [{"name": "last", "image": "x"}]})
    assert [c["name"] for c in pod_spec(out)["containers"]] == ["web", "side", "last"]


def test_set_element_order_reorders_the_live_list_without_items():
    out = smp(deployment(), {"$setElementOrder/containers": [{"name": "side"}, {"name": "web"}]})
    assert [c["name"] for c in pod_spec(out)["containers"]] == ["side", "web"]


def test_nested_lists_merge_on_their_own_keys():
    """env by name, ports by containerPort, inside a container merged by name."""
    out = smp(deployment(), {"containers": [{"name": "web", "env": [{"name": "B", "value": "changed"},
                                                                  {"name": "C", "value": "3"}],
                                             "ports": [{"containerPort": 8080}]}]})
    web = pod_spec(out)["containers"][0]
    assert web["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "changed"}, {"name": "C", "value": "3"}]
    assert [p["containerPort"] for p in web["ports"]] == [8080, 80]  # the patch's items first


def test_patch_delete_removes_the_item_with_the_merge_key():
    out = smp(deployment(), {"containers": [{"name": "side", "$patch": "delete"}]})
    assert [c["name"] for c in pod_spec(out)["containers"]] == ["web"]


def test_patch_replace_in_a_list_replaces_the_whole_list():
    out = smp(deployment(), {"containers": [{"name": "only", "image": "x"}, {"$patch": "replace"}]})
    assert pod_spec(out)["containers"] == [{"name": "only", "image": "x"}]


def test_patch_replace_and_delete_in_a_map():
    d = deployment()
    out = strategic.apply(d, {"metadata": {"labels": {"fresh": "yes", "$patch": "replace"}}}, "Deployment")
    assert out["metadata"]["labels"] == {"fresh": "yes"}
    out = strategic.apply(d, {"spec": {"template": {"metadata": {"$patch": "delete"}}}}, "Deployment")
    assert out["spec"]["template"]["metadata"] == {}


def test_null_deletes_a_key_and_nulls_in_new_values_are_dropped():
    out = strategic.apply(deployment(), {"metadata": {"labels": {"app": None}},
                                         "spec": {"strategy": {"type": "Recreate", "rollingUpdate": None}}},
                          "Deployment")
    assert out["metadata"]["labels"] == {}
    assert out["spec"]["strategy"] == {"type": "Recreate"}


def test_lists_without_a_merge_strategy_are_replaced():
    """args (and tolerations, which have no merge key upstream) replace whole."""
    out = smp(deployment(), {"containers": [{"name": "side", "args": ["sleep", "2d"]}],
                             "tolerations": [{"key": "a", "operator": "Exists"}]})
    assert pod_spec(out)["containers"][1]["args"] == ["sleep", "2d"]
    d = deployment()
    pod_spec(d)["tolerations"] = [{"key": "old", "operator": "Exists"}]
    out = smp(d, {"tolerations": [{"key": "a", "operator": "Exists"}]})
    assert pod_spec(out)["tolerations"] == [{"key": "a", "operator": "Exists"}]


def test_retain_keys_clears_what_it_does_not_name():
    """kubectl apply switching a Deployment to Recreate (DeploymentSpec.strategy is retainKeys)."""
    d = deployment(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}})
    out = strategic.apply(d, {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}, "Deployment")
    assert out["spec"]["strategy"] == {"type": "Recreate"}
    with pytest.raises(strategic.PatchError, match="invalid patch format of retainKeys") as e:
        strategic.apply(d, {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}, "Deployment")
    assert e.value.code == 400


def test_scalar_lists_with_merge_strategy_are_sets_and_delete_from_primitive_list():
    """finalizers: merge dedupes, the parallel deletion list removes."""
    d = deployment()
    d["metadata"]["finalizers"] = ["a", "b"]
    out = strategic.apply(d, {"metadata": {"finalizers": ["b", "c"]}}, "Deployment")
    assert out["metadata"]["finalizers"] == ["a", "b", "c"]
    out = strategic.apply(d, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["c"]}},
                          "Deployment")
    assert out["metadata"]["finalizers"] == ["c", "b"]
    assert directives_in(out) == []


def test_set_element_order_of_a_scalar_list():
    d = deployment()
    d["metadata"]["finalizers"] = ["a", "b", "c"]
    out = strategic.apply(d, {"metadata": {"$setElementOrder/finalizers": ["c", "b", "a"]}}, "Deployment")
    assert out["metadata"]["finalizers"] == ["c", "b", "a"]


def test_service_ports_merge_on_port():
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}
    out = strategic.apply(svc, {"spec": {"ports": [{"port": 443, "name": "https"},
                                                   {"port": 80, "targetPort": 9090}]}}, "Service")
    assert out["spec"]["ports"] == [{"port": 443, "name": "https"}, {"name": "http", "port": 80, "targetPort": 9090}]


@pytest.mark.parametrize("patch, message", [
    ({"containers": [{"image": "x"}]}, "map: map[image:x] does not contain declared merge key: name"),
    ({"containers": [{"name": "web", "$patch": "bogus"}]}, "unknown patch type: bogus in map: map[$patch:bogus name:web]"),
    ({"containers": [{"name": "web", "$patch": "merge"}]}, "merging lists cannot yet be specified in the patch"),
    ({"$setElementOrder/containers": {"name": "web"}},
     "expected a []interface {}, but received a map[string]interface {}"),
    ({"$deleteFromPrimitiveList": ["x"]}, "invalid patch format of primitive list"),
    ({"$setElementOrder/containers": [{"name": "side"}, {"name": "web"}],
      "containers": [{"name": "web", "image": "a"}, {"name": "side", "image": "b"}]}, "doesn't match $setElementOrder"),
])
def test_malformed_directives_are_refused_in_upstreams_words(patch, message):
    with pytest.raises(strategic.PatchError) as e:
        smp(deployment(), patch)
    assert message in str(e.value)


def test_a_patch_of_lists_of_lists_is_unprocessable():
    d = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}, "spec": {"podCIDRs": [["x"]]}}
    with pytest.raises(strategic.PatchError, match="lists of lists") as e:
        strategic.apply(d, {"spec": {"podCIDRs": [["y"]]}}, "Node")
    assert e.value.code == 422


def test_no_directive_survives_in_replaced_or_added_values():
    out = smp(deployment(), {"containers": [{"name": "new", "env": [{"name": "X", "$patch": "delete"}],
                                             "$setElementOrder/env": [{"name": "X"}]}],
                             "volumes": [{"name": "v", "emptyDir": {}, "$retainKeys": ["name", "emptyDir"]}]})
    assert directives_in(out) == []
    assert pod_spec(out)["volumes"] == [{"name": "v", "emptyDir": {}}]


# -- through the server ----------------------------------------------------------------------------


@pytest.fixture
def api(tmp_path):
    reg = Registry(SqliteStore(str(tmp_path / "p.db")))
    reg.bootstrap()
    return ApiServer(reg, "t")


def call(api, method, path, body=None, content_type=None, query=None, agent="kubectl/v1.37.0 (linux/amd64)"):
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    headers = {"user-agent": agent}
    if content_type:
        headers["content-type"] = content_type
    req = Request(method, path, query or {}, headers, body or b"")
    try:
        code, out = api.handle(req)
    except ApiError as e:
        return e.code, e.status(), req.warnings
    return code, out, req.warnings


def created(api, obj=None) -> dict:
    """POST as knet's own clients send it (no field manager, no user agent):
    untracked."""
    code, out, _ = call(api, "POST", DEPLOY.path("default"), obj or deployment(), "application/json", agent="")
    assert code == 201, out
    return out


def test_create_and_update_record_their_manager_as_upstream(api):
    code, out, _ = call(api, "POST", DEPLOY.path("default"), deployment(), "application/json",
                        {"fieldManager": "kubectl-create"})
    assert code == 201, out
    entry, = out["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"]) == ("kubectl-create", "Update")
    assert "f:replicas" in entry["fieldsV1"]["f:spec"]
    obj = api.registry.get(DEPLOY, "default", "web")
    obj["spec"]["replicas"] = 5
    code, out, _ = call(api, "PUT", DEPLOY.path("default", "web"), obj, "application/json")
    assert code == 200, out
    managers = {(e["manager"], e["operation"]) for e in out["metadata"]["managedFields"]}
    assert ("kubectl", "Update") in managers  # the user agent's first word, without fieldManager


def test_kubectl_apply_of_a_changed_image_keeps_ports_and_stores_no_directive(api):
    created(api)
    patch = {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "web"}, {"name": "side"}],
                                            "containers": [{"name": "web", "image": "nginx:2"}]}}}}
    code, out, _ = call(api, "PATCH", DEPLOY.path("default", "web"), patch, SMP,
                        {"fieldManager": "kubectl-client-side-apply"})
    assert code == 200, out
    stored = api.registry.get(DEPLOY, "default", "web")
    web = pod_spec(stored)["containers"][0]
    assert web["image"] == "nginx:2" and web["ports"][0]["containerPort"] == 80
    assert "$setElementOrder/containers" not in json.dumps(stored)
    assert stored["metadata"]["generation"] == 2
    entry, = stored["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"], entry["apiVersion"]) == ("kubectl-client-side-apply", "Update",
                                                                          "apps/v1")
    web_fields = entry["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']
    assert web_fields == {"f:image": {}}


def test_an_unknown_patch_type_is_415_and_strategic_is_refused_for_a_crd_like_kind(api):
    created(api)
    code, out, _ = call(api, "PATCH", DEPLOY.path("default", "web"), {"a": 1}, "text/plain")
    assert code == 415 and out["reason"] == "UnsupportedMediaType"
    assert out["message"] == ("the body of the request was in an unknown format - accepted media types include: "
                              "application/json-patch+json, application/merge-patch+json, "
                              "application/strategic-merge-patch+json, application/apply-patch+yaml")
    anp = by_kind("AdminNetworkPolicy")
    code, out, _ = call(api, "PATCH", anp.path(None, "x"), {"spec": {}}, SMP)
    assert code == 415
    assert "strategic" not in out["message"] and "application/merge-patch+json" in out["message"]


def test_strategic_patch_errors_answer_400_and_change_nothing(api):
    before = created(api)
    code, out, _ = call(api, "PATCH", DEPLOY.path("default", "web"),
                        {"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}, SMP)
    assert code == 400 and "does not contain declared merge key: name" in out["message"]
    code, out, _ = call(api, "PATCH", DEPLOY.path("default", "web"), [1, 2], SMP)
    assert code == 400 and "cannot unmarshal array" in out["message"]
    assert api.registry.get(DEPLOY, "default", "web")["metadata"]["resourceVersion"] == before["metadata"][
        "resourceVersion"]


def test_field_validation_applies_to_strategic_and_json_patches(api):
    created(api)
    bad = {"spec": {"template": {"spec": {"containers": [{"name": "web", "imagePolicy": "x"}]}}}}
    code, out, _ = call(api, "PATCH", DEPLOY.path("default", "web"), bad, SMP, {"fieldValidation": "Strict"})
    assert code == 422, out
    assert 'unknown field "spec.template.spec.containers[0].imagePolicy"' in out["message"]
    assert out["details"]["causes"][0]["field"] == "patch"
    code, out, warnings = call(api, "PATCH", DEPLOY.path("default", "web"), bad, SMP)
    assert code == 200 and warnings == ['unknown field "spec.template.spec.containers[0].imagePolicy"']
    assert "imagePolicy" not in json.dumps(out)
    code, out, _ = call(api, "PATCH", DEPLOY.path("default", "web"),
                        [{"op": "add", "path": "/spec/paused2", "value": True}], JSONP, {"fieldValidation": "Strict"})
    assert code == 422 and 'unknown field "spec.paused2"' in out["message"]
    code, out, _ = call(api, "PATCH", DEPLOY.path("default", "web"),
                        [{"op": "replace", "path": "/spec/replicas", "value": "three"}], JSONP)
    assert code == 422 and "cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32" \
        in out["message"]


def test_invalid_results_are_refused_naming_the_field(api):
    created(api)
    code, out, _ = call(api, "PATCH", DEPLOY.path("default", "web"), {"spec": {"replicas": -1}}, SMP)
    assert code == 422 and out["details"]["causes"][0]["field"] == "spec.replicas"


def test_dry_run_patches_change_nothing(api):
    before = created(api)
    for ctype, body in ((SMP, {"spec": {"replicas": 7}}), (MERGE, {"spec": {"replicas": 7}}),
                        (JSONP, [{"op": "replace", "path": "/spec/replicas", "value": 7}])):
        code, out, _ = call(api, "PATCH", DEPLOY.path("default", "web"), body, ctype, {"dryRun": "All"})
        assert code == 200 and out["spec"]["replicas"] == 7
    assert api.registry.get(DEPLOY, "default", "web")["metadata"]["resourceVersion"] == before["metadata"][
        "resourceVersion"]


# -- JSON patch ------------------------------------------------------------------------------------


def test_json_patch_operations(api):
    created(api)
    ops = [{"op": "test", "path": "/spec/replicas", "value": 2},
           {"op": "replace", "path": "/spec/replicas", "value": 3},
           {"op": "add", "path": "/metadata/labels/tier", "value": "front"},
           {"op": "copy", "from": "/metadata/labels/tier", "path": "/metadata/labels/copy"},
           {"op": "move", "from": "/metadata/labels/copy", "path": "/metadata/labels/moved"},
           {"op": "remove", "path": "/spec/template/spec/containers/1"},
           {"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": {"name": "C", "value": "3"}}]
    code, out, _ = call(api, "PATCH", DEPLOY.path("default", "web"), ops, JSONP)
    assert code == 200, out
    assert out["spec"]["replicas"] == 3
    assert out["metadata"]["labels"] == {"app": "web", "tier": "front", "moved": "front"}
    assert [c["name"] for c in pod_spec(out)["containers"]] == ["web"]
    assert pod_spec(out)["containers"][0]["env"][-1] == {"name": "C", "value": "3"}


@pytest.mark.parametrize("ops", [
    [{"op": "test", "path": "/spec/replicas", "value": 5}],
    [{"op": "remove", "path": "/spec/template/spec/affinity"}],
    [{"op": "replace", "path": "/spec/nothing/here", "value": 1}],
    [{"op": "jump", "path": "/spec/replicas"}],
])
def test_json_patch_that_does_not_apply_is_422_as_upstream(api, ops):
    before = created(api)
    code, out, _ = call(api, "PATCH", DEPLOY.path("default", "web"), ops, JSONP)
    assert code == 422
    assert out["reason"] == "Invalid"
    assert out["message"] == "the server rejected our request due to an error in our request"
    assert out["details"]["causes"][0]["message"]
    assert out["details"]["causes"][0]["field"] == (ops[0]["path"] if ops[0]["op"] != "jump" else "[0].op")
    assert api.registry.get(DEPLOY, "default", "web")["metadata"]["resourceVersion"] == before["metadata"][
        "resourceVersion"]


def test_a_patch_may_not_rename_or_move_the_object(api):
    created(api)
    code, out, _ = call(api, "PATCH", DEPLOY.path("default", "web"),
                        [{"op": "replace", "path": "/metadata/name", "value": "other"}], JSONP)
    assert code == 400 and out["message"] == "the name of the object (other) does not match the name on the URL (web)"
    code, out, _ = call(api, "PATCH", DEPLOY.path("default", "web"), {"metadata": {"namespace": "kube-system"}}, SMP)
    assert code == 400 and "namespace of the provided object does not match" in out["message"]


def test_json_patch_that_is_not_a_list_of_operations_is_400(api):
    created(api)
    code, out, _ = call(api, "PATCH", DEPLOY.path("default", "web"), {"op": "add"}, JSONP)
    assert code == 400 and out["message"] == "json: cannot unmarshal object into Go value of type jsonpatch.Patch"


# -- merge patch -----------------------------------------------------------------------------------


def test_merge_patch_replaces_lists_and_null_deletes(api):
    created(api)
    code, out, _ = call(api, "PATCH", DEPLOY.path("default", "web"),
                        {"metadata": {"labels": {"app": None, "b": "c"}},
                         "spec": {"template": {"spec": {"containers": [{"name": "only", "image": "x"}]}}}}, MERGE)
    assert code == 200
    assert out["metadata"]["labels"] == {"b": "c"}
    assert [c["name"] for c in pod_spec(out)["containers"]] == ["only"]


# -- server-side apply -----------------------------------------------------------------------------


APPLIED = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, tier: front}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1
        ports:
        - containerPort: 80
"""


def applied(api, text=APPLIED, manager="kubectl", **query):
    return call(api, "PATCH", DEPLOY.path("default", "web"), text, APPLY, {"fieldManager": manager, **query})


def test_apply_creates_the_object_with_its_managed_fields(api):
    code, out, _ = applied(api)
    assert code == 201, out
    entry, = out["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"], entry["fieldsType"]) == ("kubectl", "Apply", "FieldsV1")
    f = entry["fieldsV1"]
    assert f["f:metadata"] == {"f:labels": {"f:app": {}, "f:tier": {}}}
    web = f["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']
    assert web == {".": {}, "f:image": {}, "f:name": {}, "f:ports": {
        'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}}}
    assert f["f:spec"]["f:selector"] == {}  # LabelSelector is atomic
    assert "f:status" not in f
    stored = api.registry.get(DEPLOY, "default", "web")
    assert stored["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 30  # admitted: defaulted


def test_apply_needs_a_field_manager_and_force_is_only_for_apply(api):
    code, out, _ = call(api, "PATCH", DEPLOY.path("default", "web"), APPLIED, APPLY)
    assert code == 422
    assert out["message"] == ('PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                              "is required for apply patch")
    created(api)
    code, out, _ = call(api, "PATCH", DEPLOY.path("default", "web"), {"spec": {}}, SMP, {"force": "true"})
    assert code == 422 and "force: Forbidden: may not be specified for non-apply patch" in out["message"]


def test_reapply_removes_what_the_applier_stopped_listing_and_keeps_others_fields(api):
    applied(api)
    code, out, _ = call(api, "PATCH", DEPLOY.path("default", "web"), {"metadata": {"annotations": {"note": "x"}}},
                        MERGE, {"fieldManager": "kubectl-annotate"})
    assert code == 200
    text = APPLIED.replace("labels: {app: web, tier: front}", "labels: {app: web}").replace("nginx:1", "nginx:2")
    code, out, _ = applied(api, text)
    assert code == 200, out
    assert out["metadata"]["labels"] == {"app": "web"}  # tier: only the applier had it
    assert out["metadata"]["annotations"] == {"note": "x"}  # another manager's
    web = pod_spec(out)["containers"][0]
    assert web["image"] == "nginx:2" and web["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    managers = {e["manager"]: e for e in out["metadata"]["managedFields"]}
    assert set(managers) == {"kubectl", "kubectl-annotate"}
    assert managers["kubectl-annotate"]["fieldsV1"] == {"f:metadata": {"f:annotations": {".": {}, "f:note": {}}}}


def test_apply_of_a_field_another_manager_changed_is_a_conflict_unless_forced(api):
    applied(api)
    code, out, _ = call(api, "PATCH", DEPLOY.path("default", "web"), {"spec": {"replicas": 5}}, MERGE,
                        {"fieldManager": "scaler"})
    assert code == 200
    code, out, _ = applied(api)  # asks for 2 again
    assert code == 409
    assert out["reason"] == "Conflict"
    assert out["message"] == 'Apply failed with 1 conflict: conflict with "scaler" using apps/v1: .spec.replicas'
    assert out["details"]["causes"] == [{"reason": "FieldManagerConflict", "message":
                                         'conflict with "scaler" using apps/v1', "field": ".spec.replicas"}]
    assert api.registry.get(DEPLOY, "default", "web")["spec"]["replicas"] == 5
    code, out, _ = applied(api, force="true")
    assert code == 200 and out["spec"]["replicas"] == 2
    managers = {e["manager"] for e in out["metadata"]["managedFields"]}
    assert managers == {"kubectl"}  # the scaler owned only replicas, now the applier's


def test_the_same_value_is_shared_not_a_conflict_and_a_shared_field_stays(api):
    applied(api)
    other = APPLIED.replace("labels: {app: web, tier: front}", "labels: {tier: front}")
    code, out, _ = applied(api, other, manager="other")
    assert code == 200, out
    code, out, _ = applied(api, APPLIED.replace("labels: {app: web, tier: front}", "labels: {app: web}"))
    assert code == 200
    assert out["metadata"]["labels"] == {"app": "web", "tier": "front"}  # "other" still owns tier


def test_several_conflicts_are_listed_by_manager(api):
    applied(api)
    call(api, "PATCH", DEPLOY.path("default", "web"),
         {"spec": {"replicas": 4, "template": {"spec": {"containers": [{"name": "web", "image": "nginx:9"}]}}}},
         SMP, {"fieldManager": "kubectl-edit"})
    code, out, _ = applied(api)
    assert code == 409
    assert out["message"] == ('Apply failed with 2 conflicts: conflicts with "kubectl-edit" using apps/v1:\n'
                              '- .spec.replicas\n- .spec.template.spec.containers[name="web"].image')


def test_apply_to_an_object_nobody_tracked_conflicts_with_before_first_apply(api):
    created(api)  # POST without a field manager (in-process style)
    code, out, _ = applied(api, APPLIED.replace("replicas: 2", "replicas: 3"))
    assert code == 409 and '"before-first-apply" using apps/v1: .spec.replicas' in out["message"]


def test_apply_dry_run_creates_nothing(api):
    code, out, _ = applied(api, dryRun="All")
    assert code == 201 and out["metadata"]["name"] == "web"
    assert api.registry.find(DEPLOY, "default", "web") is None


def test_apply_refuses_a_configuration_that_does_not_fit_the_kind(api):
    code, out, _ = applied(api, APPLIED.replace("replicas: 2", "replicas: 2\n  replicaz: 3"))
    assert code == 400
    assert out["message"] == ("failed to create typed patch object (apps/v1, Kind=Deployment): "
                              ".spec.replicaz: field not declared in schema")
    code, out, _ = applied(api, APPLIED.replace("apps/v1", "apps/v1beta2"))
    assert code == 400 and out["message"] == ("Incorrect version specified in apply patch. Specified patch version: "
                                              "apps/v1beta2, expected: apps/v1")
    code, out, _ = applied(api, APPLIED.replace("  name: web\n", "  name: web\n  managedFields: []\n"))
    assert code == 400 and out["message"] == "metadata.managedFields must be nil"
    code, out, _ = applied(api, "- a\n- b\n")
    assert code == 400 and out["message"].startswith("error decoding YAML")
    code, out, _ = applied(api, APPLIED.replace("name: web\n  labels", "name: other\n  labels"))
    assert code == 400 and "does not match the name on the URL" in out["message"]
    assert api.registry.find(DEPLOY, "default", "web") is None


def test_ordinary_writes_take_ownership_from_appliers(api):
    applied(api)
    code, out, _ = call(api, "PATCH", DEPLOY.path("default", "web"), {"metadata": {"labels": {"tier": "back"}}},
                        MERGE, {"fieldManager": "kubectl-label"})
    entries = {e["manager"]: e["fieldsV1"] for e in out["metadata"]["managedFields"]}
    assert entries["kubectl-label"] == {"f:metadata": {"f:labels": {"f:tier": {}}}}
    assert "f:tier" not in entries["kubectl"]["f:metadata"]["f:labels"]
    # The manager defaults to the user agent's product when no fieldManager is sent.
    code, out, _ = call(api, "PATCH", DEPLOY.path("default", "web"), {"metadata": {"labels": {"x": "y"}}}, MERGE,
                        agent="kubernetes-python/37.0")
    assert "kubernetes-python" in {e["manager"] for e in out["metadata"]["managedFields"]}


def test_a_no_op_patch_writes_nothing(api, monkeypatch):
    applied(api)
    before = api.registry.get(DEPLOY, "default", "web")
    monkeypatch.setattr("knet.api.registry.now_rfc3339", lambda *a: "2999-01-01T00:00:00Z")  # a later second
    code, out, _ = call(api, "PATCH", DEPLOY.path("default", "web"), {"spec": {"replicas": 2}}, SMP,
                        {"fieldManager": "again"})
    assert code == 200 and out["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    code, out, _ = applied(api)
    assert out["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_a_client_may_set_managed_fields_itself(api):
    """kubectl's client-side to server-side apply migration rewrites them with a JSON patch."""
    applied(api)
    entries = copy.deepcopy(api.registry.get(DEPLOY, "default", "web")["metadata"]["managedFields"])
    entries[0]["manager"] = "renamed"
    code, out, _ = call(api, "PATCH", DEPLOY.path("default", "web"),
                        [{"op": "replace", "path": "/metadata/managedFields", "value": entries}], JSONP)
    assert code == 200 and [e["manager"] for e in out["metadata"]["managedFields"]] == ["renamed"]


# -- field sets ----------------------------------------------------------------------------------


def test_fields_v1_round_trip_and_paths_render_as_upstream():
    paths = set(fieldmanager.flatten(deployment(), "Deployment"))
    tree = fieldmanager.to_fields(paths)
    assert fieldmanager.from_fields(tree) == paths
    rendered = {fieldmanager.render_path(p) for p in paths}
    assert '.spec.template.spec.containers[name="web"].ports[containerPort=80,protocol="TCP"].containerPort' in rendered
    d = deployment()
    d["metadata"]["finalizers"] = ["x"]
    assert ('f:metadata', 'f:finalizers', 'v:"x"') in fieldmanager.flatten(d, "Deployment")


def test_a_list_item_without_its_key_is_a_shape_error():
    d = deployment()
    pod_spec(d)["containers"].append({"image": "nameless"})
    with pytest.raises(fieldmanager.ShapeError, match='omits key field "name"'):
        fieldmanager.flatten(d, "Deployment")


# -- what `kubectl rollout undo` needs of the Deployment controller ------------------------------------


def test_revisions_are_annotated_and_a_rollback_json_patch_restores_the_old_template(api):
    """kubectl rollout undo finds the ReplicaSet of the previous revision and
    sends a JSON patch of its template; the controller makes it current again
    under the next revision, and the Deployment carries its revision."""
    from knet.controlplane import reconcile

    reg = api.registry
    revision = "deployment.kubernetes.io/revision"
    created(api)
    reconcile(reg)
    assert reg.get(DEPLOY, "default", "web")["metadata"]["annotations"][revision] == "1"
    call(api, "PATCH", DEPLOY.path("default", "web"),
         {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}}, SMP)
    reconcile(reg)
    assert reg.get(DEPLOY, "default", "web")["metadata"]["annotations"][revision] == "2"
    sets = {rs["metadata"]["annotations"][revision]: rs for rs in reg.list(by_kind("ReplicaSet"), "default")[0]}
    assert set(sets) == {"1", "2"}
    template = copy.deepcopy(sets["1"]["spec"]["template"])
    del template["metadata"]["labels"]["pod-template-hash"]
    code, out, _ = call(api, "PATCH", DEPLOY.path("default", "web"), [
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": {revision: "2"}}], JSONP,
        {"fieldManager": "kubectl-rollout"})
    assert code == 200, out
    assert pod_spec(out)["containers"][0]["image"] == "nginx:1"
    reconcile(reg)
    sets = {rs["metadata"]["name"]: rs for rs in reg.list(by_kind("ReplicaSet"), "default")[0]}
    assert sets[sets_name(sets, "nginx:1")]["metadata"]["annotations"][revision] == "3"
    assert reg.get(DEPLOY, "default", "web")["metadata"]["annotations"][revision] == "3"


def sets_name(sets: dict, image: str) -> str:
    return next(n for n, rs in sets.items() if pod_spec(rs)["containers"][0]["image"] == image)


def test_kubectl_server_side_apply_over_client_side_apply_takes_the_recorded_fields(api):
    """Fields the last-applied-configuration annotation lists are no conflict for
    the "kubectl" manager, and the annotation follows the applied configuration."""
    import yaml
    last = yaml.safe_load(APPLIED)
    obj = deployment()
    obj["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": json.dumps(last)}
    created(api, obj)
    code, out, _ = applied(api, APPLIED.replace("replicas: 2", "replicas: 3"), manager="other")
    assert code == 409
    code, out, _ = applied(api, APPLIED.replace("replicas: 2", "replicas: 3"))
    assert code == 200, out
    recorded = json.loads(out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert recorded["spec"]["replicas"] == 3


def test_a_deleted_and_an_added_item_keep_upstreams_order_around_server_only_items():
    """kubectl apply that drops container a and adds c while the live list also
    has d (added by someone else): upstream orders b, d, c. Its merge shifts
    the live list in place, and the ordering reads that shifted list."""
    d = deployment()
    pod_spec(d)["containers"] = [{"name": "a", "image": "x"}, {"name": "b", "image": "x"}, {"name": "d", "image": "x"}]
    out = smp(d, {"$setElementOrder/containers": [{"name": "b"}, {"name": "c"}],
                  "containers": [{"name": "c", "image": "y"}, {"name": "a", "$patch": "delete"}]})
    assert [c["name"] for c in pod_spec(out)["containers"]] == ["b", "d", "c"]


def test_retain_keys_on_a_merged_list_item_switches_a_volume_source():
    """PodSpec.volumes is merge,retainKeys: kubectl apply changing a volume from
    emptyDir to configMap sends $retainKeys, and the old source goes."""
    d = deployment()
    pod_spec(d)["volumes"] = [{"name": "v", "emptyDir": {}}, {"name": "w", "emptyDir": {}}]
    out = smp(d, {"volumes": [{"name": "v", "configMap": {"name": "cm"}, "$retainKeys": ["configMap", "name"]}]})
    assert pod_spec(out)["volumes"] == [{"name": "v", "configMap": {"name": "cm"}}, {"name": "w", "emptyDir": {}}]


def test_patch_replace_of_a_map_inside_a_merged_item():
    d = deployment()
    pod_spec(d)["containers"][0]["resources"] = {"limits": {"cpu": "1", "memory": "1Gi"}}
    out = smp(d, {"containers": [{"name": "web", "resources": {"limits": {"cpu": "2"}, "$patch": "replace"}}]})
    assert pod_spec(out)["containers"][0]["resources"] == {"limits": {"cpu": "2"}}
    assert pod_spec(out)["containers"][0]["ports"]  # the rest of the item merged as usual


def test_set_element_order_with_a_primitive_deletion():
    d = deployment()
    d["metadata"]["finalizers"] = ["a", "b", "c"]
    out = strategic.apply(d, {"metadata": {"$setElementOrder/finalizers": ["c", "a"],
                                           "$deleteFromPrimitiveList/finalizers": ["b"]}}, "Deployment")
    assert out["metadata"]["finalizers"] == ["c", "a"]


def test_apply_owns_set_members_one_by_one(api):
    """finalizers is a set for apply: the applier's members and another
    manager's live side by side, and a member the applier drops goes alone."""
    with_fin = APPLIED.replace("  labels: {app: web, tier: front}", "  labels: {app: web}\n  finalizers: [a/x]")
    code, out, _ = applied(api, with_fin)
    assert code == 201, out
    code, out, _ = call(api, "PATCH", DEPLOY.path("default", "web"),
                        {"metadata": {"finalizers": ["b/y"]}}, SMP, {"fieldManager": "other"})
    assert out["metadata"]["finalizers"] == ["b/y", "a/x"]  # merged as a set, the patch's first
    code, out, _ = applied(api, APPLIED.replace("  labels: {app: web, tier: front}", "  labels: {app: web}"))
    assert code == 200 and out["metadata"]["finalizers"] == ["b/y"]
    mine = next(e for e in out["metadata"]["managedFields"] if e["manager"] == "other")
    assert mine["fieldsV1"] == {"f:metadata": {"f:finalizers": {'v:"b/y"': {}}}}  # the list was there before


def test_an_item_the_applier_stops_listing_goes_unless_another_manager_owns_part_of_it(api):
    two = APPLIED + "      - name: side\n        image: busybox\n        imagePullPolicy: Always\n"
    code, out, _ = applied(api, two)
    assert code == 201, out
    code, out, _ = applied(api)  # side no longer listed: it goes, name and all
    assert code == 200, out
    assert [c["name"] for c in pod_spec(out)["containers"]] == ["web"]
    applied(api, two)
    call(api, "PATCH", DEPLOY.path("default", "web"), {"spec": {"template": {"spec": {"containers": [
        {"name": "side", "image": "busybox:2", "env": [{"name": "KEEP", "value": "1"}]}]}}}}, SMP,
        {"fieldManager": "other"})
    code, out, _ = applied(api)
    assert code == 200, out
    side = [c for c in pod_spec(out)["containers"] if c["name"] == "side"]
    # kept for what "other" owns (its image, its env), without the applier's pull policy
    assert side == [{"name": "side", "image": "busybox:2", "env": [{"name": "KEEP", "value": "1"}]}]


def test_apply_merges_keyed_lists_in_structured_merge_diffs_order():
    """Live items the configuration does not name keep their places; the
    configuration's items follow its order."""
    live = deployment()
    pod_spec(live)["containers"] = [{"name": n, "image": "x"} for n in "abcd"]
    config = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
              "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "y"}, {"name": "a", "image": "y"}]}}}}
    out = fieldmanager.apply(live, config, "m", "Deployment", force=True, kind_has_status=True, now="t")
    assert [(c["name"], c["image"]) for c in pod_spec(out)["containers"]] == [
        ("b", "x"), ("c", "y"), ("d", "x"), ("a", "y")]


@pytest.mark.parametrize("field_manager, agent, want", [
    ("kubectl-edit", "kubectl/v1.37.0 (linux/amd64) kubernetes/abc", "kubectl-edit"),
    (None, "kubectl/v1.37.0 (linux/amd64) kubernetes/abc", "kubectl"),
    (None, "OpenAPI-Generator/37.0.0/python", "OpenAPI-Generator"),
    (None, "a\x07b" + "c" * 200, "ab" + "c" * 126),
    (None, None, ""),
])
def test_the_manager_is_the_field_manager_else_the_user_agents_product(field_manager, agent, want):
    from knet.api.patch import manager_name
    assert manager_name(field_manager, agent) == want


def test_patch_options_are_checked(api):
    created(api)
    code, out, _ = call(api, "PATCH", DEPLOY.path("default", "web"), APPLIED, APPLY,
                        {"fieldManager": "kubectl", "force": "maybe"})
    assert code == 400 and "force" in out["message"]
    code, out, _ = call(api, "PATCH", DEPLOY.path("default", "web"), {"spec": {}}, SMP, {"fieldManager": "m" * 129})
    assert code == 422 and "fieldManager: Too long: may not be more than 128 bytes" in out["message"]


def test_update_managers_are_capped_with_the_oldest_merged_into_ancient_changes(api):
    created(api)
    for i in range(12):
        code, out, _ = call(api, "PATCH", DEPLOY.path("default", "web"), {"metadata": {"labels": {f"l{i}": "x"}}},
                            MERGE, {"fieldManager": f"m{i:02d}"})
        assert code == 200
    managers = [e["manager"] for e in out["metadata"]["managedFields"]]
    assert len(managers) == 10 and "ancient-changes" in managers
    ancient = next(e for e in out["metadata"]["managedFields"] if e["manager"] == "ancient-changes")
    assert set(ancient["fieldsV1"]["f:metadata"]["f:labels"]) >= {"f:l0", "f:l1"}
