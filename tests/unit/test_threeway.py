"""The three-way patch kubectl apply sends (knet/api/threeway.py): exact
patches for the cases whose upstream output is known (apimachinery's
CreateThreeWayMergePatch / CreateThreeWayJSONMergePatch), and each patch
applied by the server's own strategic merge (knet/api/strategic.py) to the
live object, to show what survives: what others added stays, what the user
removed goes."""

from __future__ import annotations

import copy
import json

from knet.api import strategic
from knet.api.threeway import three_way_json_merge, three_way_strategic
from knet.cli.apply import LAST_APPLIED, _annotated

TOKEN_MOUNT = {"name": "kube-api-access-x7k2p", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
               "readOnly": True}
TOKEN_VOLUME = {"name": "kube-api-access-x7k2p", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}


def pod(*containers: dict, labels: dict | None = None) -> dict:
    meta: dict = {"name": "p", "namespace": "default"}
    if labels is not None:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"containers": list(containers)}}


def live(manifest: dict) -> dict:
    """The manifest as the server holds it after ServiceAccount admission and the node."""
    obj = copy.deepcopy(manifest)
    obj["metadata"].update(uid="u1", resourceVersion="7")
    for c in obj["spec"]["containers"]:
        c.setdefault("volumeMounts", []).append(dict(TOKEN_MOUNT))
    obj["spec"]["volumes"] = obj["spec"].get("volumes", []) + [dict(TOKEN_VOLUME)]
    obj["spec"]["serviceAccountName"] = "default"
    obj["status"] = {"phase": "Running", "podIP": "10.244.1.5"}
    return obj


def test_an_unchanged_manifest_gives_an_empty_patch_whatever_admission_added():
    m = pod({"name": "c", "image": "agnhost"})
    assert three_way_strategic(m, m, live(m), "Pod") == {}


def test_a_changed_image_merges_the_container_by_name_keeping_the_token_mount():
    old = pod({"name": "c", "image": "agnhost"})
    new = pod({"name": "c", "image": "agnhost:2.45"})
    current = live(old)
    patch = three_way_strategic(old, new, current, "Pod")
    assert patch == {"spec": {"$setElementOrder/containers": [{"name": "c"}],
                              "containers": [{"name": "c", "image": "agnhost:2.45"}]}}
    out = strategic.apply(current, patch, "Pod")
    assert out["spec"]["containers"] == [{"name": "c", "image": "agnhost:2.45", "volumeMounts": [TOKEN_MOUNT]}]
    assert out["spec"]["volumes"] == [TOKEN_VOLUME]


def test_a_removed_port_is_deleted_by_its_merge_key():
    old = pod({"name": "c", "image": "agnhost", "ports": [{"containerPort": 80}, {"containerPort": 443}]})
    new = pod({"name": "c", "image": "agnhost", "ports": [{"containerPort": 80}]})
    current = live(old)
    patch = three_way_strategic(old, new, current, "Pod")
    assert patch == {"spec": {
        "$setElementOrder/containers": [{"name": "c"}],
        "containers": [{"name": "c", "$setElementOrder/ports": [{"containerPort": 80}],
                        "ports": [{"$patch": "delete", "containerPort": 443}]}]}}
    c, = strategic.apply(current, patch, "Pod")["spec"]["containers"]
    assert c["ports"] == [{"containerPort": 80}] and c["volumeMounts"] == [TOKEN_MOUNT]


def test_a_removed_env_var_is_deleted_and_one_set_by_someone_else_stays():
    old = pod({"name": "c", "image": "agnhost", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]})
    new = pod({"name": "c", "image": "agnhost", "env": [{"name": "A", "value": "1"}]})
    current = live(old)
    current["spec"]["containers"][0]["env"].append({"name": "INJECTED", "value": "x"})
    patch = three_way_strategic(old, new, current, "Pod")
    assert patch == {"spec": {
        "$setElementOrder/containers": [{"name": "c"}],
        "containers": [{"name": "c", "$setElementOrder/env": [{"name": "A"}],
                        "env": [{"$patch": "delete", "name": "B"}]}]}}
    c, = strategic.apply(current, patch, "Pod")["spec"]["containers"]
    assert c["env"] == [{"name": "A", "value": "1"}, {"name": "INJECTED", "value": "x"}]


def test_reordered_containers_send_only_the_new_order():
    a, b = {"name": "a", "image": "agnhost"}, {"name": "b", "image": "busybox"}
    old, new = pod(a, b), pod(b, a)
    current = live(old)
    patch = three_way_strategic(old, new, current, "Pod")
    assert patch == {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}
    assert [c["name"] for c in strategic.apply(current, patch, "Pod")["spec"]["containers"]] == ["b", "a"]


def test_a_removed_container_gets_a_delete_directive():
    a, b = {"name": "a", "image": "agnhost"}, {"name": "b", "image": "busybox"}
    old, new = pod(a, b), pod(a)
    patch = three_way_strategic(old, new, live(old), "Pod")
    assert patch == {"spec": {"$setElementOrder/containers": [{"name": "a"}],
                              "containers": [{"$patch": "delete", "name": "b"}]}}


def test_changes_additions_and_deletions_of_one_list_in_one_patch_deletions_last():
    a, b, c = {"name": "a", "image": "agnhost"}, {"name": "b", "image": "busybox"}, {"name": "c", "image": "nginx"}
    old, new = pod(a, b), pod({**a, "image": "agnhost:2"}, c)
    current = live(old)
    patch = three_way_strategic(old, new, current, "Pod")
    assert patch == {"spec": {
        "$setElementOrder/containers": [{"name": "a"}, {"name": "c"}],
        "containers": [{"name": "a", "image": "agnhost:2"}, c, {"$patch": "delete", "name": "b"}]}}
    assert strategic.apply(current, patch, "Pod")["spec"]["containers"] == [
        {"name": "a", "image": "agnhost:2", "volumeMounts": [TOKEN_MOUNT]}, c]


def test_maps_delete_the_users_removed_keys_only():
    c = {"name": "c", "image": "agnhost"}
    old, new = pod(c, labels={"app": "web", "tier": "1"}), pod(c, labels={"app": "web", "env": "prod"})
    current = live(old)
    current["metadata"]["labels"]["added-by-controller"] = "yes"
    patch = three_way_strategic(old, new, current, "Pod")
    assert patch == {"metadata": {"labels": {"tier": None, "env": "prod"}}}
    assert strategic.apply(current, patch, "Pod")["metadata"]["labels"] == {
        "app": "web", "added-by-controller": "yes", "env": "prod"}


def test_primitive_lists_merged_as_sets_and_replaced_otherwise():
    old = pod({"name": "c", "image": "agnhost", "args": ["a", "b"]})
    new = pod({"name": "c", "image": "agnhost", "args": ["a"]})
    old["metadata"]["finalizers"], new["metadata"]["finalizers"] = ["x", "y"], ["x", "z"]
    current = live(old)
    current["metadata"]["finalizers"].append("server/f")
    patch = three_way_strategic(old, new, current, "Pod")
    assert patch == {
        "metadata": {"finalizers": ["z"], "$deleteFromPrimitiveList/finalizers": ["y"],
                     "$setElementOrder/finalizers": ["x", "z"]},
        "spec": {"$setElementOrder/containers": [{"name": "c"}], "containers": [{"name": "c", "args": ["a"]}]}}
    out = strategic.apply(current, patch, "Pod")
    assert out["metadata"]["finalizers"] == ["x", "z", "server/f"]
    assert out["spec"]["containers"][0]["args"] == ["a"]


def test_without_an_original_nothing_the_manifest_lacks_is_deleted():
    """An object created by `kubectl create` (no last-applied annotation) and
    then applied: only additions and changes, never a deletion."""
    created = pod({"name": "c", "image": "agnhost", "ports": [{"containerPort": 80}]}, labels={"x": "y"})
    new = pod({"name": "c", "image": "agnhost"}, labels={"app": "web"})
    patch = three_way_strategic(None, new, live(created), "Pod")
    assert patch == {"metadata": {"labels": {"app": "web"}}}


def test_retain_keys_clear_a_volume_source_the_user_switched_from():
    old = pod({"name": "c", "image": "agnhost"})
    old["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    new = copy.deepcopy(old)
    new["spec"]["volumes"] = [{"name": "data", "hostPath": {"path": "/srv"}}]
    current = live(old)
    patch = three_way_strategic(old, new, current, "Pod")
    assert patch == {"spec": {
        "$setElementOrder/volumes": [{"name": "data"}],
        "volumes": [{"name": "data", "emptyDir": None, "hostPath": {"path": "/srv"},
                     "$retainKeys": ["hostPath", "name"]}]}}
    assert strategic.apply(current, patch, "Pod")["spec"]["volumes"] == [
        {"name": "data", "hostPath": {"path": "/srv"}}, TOKEN_VOLUME]


def test_json_merge_variant_replaces_lists_and_deletes_only_what_the_user_removed():
    old = {"kind": "AdminNetworkPolicy", "metadata": {"name": "q"}, "spec": {"priority": 40, "ingress": [1, 2]}}
    new = {"kind": "AdminNetworkPolicy", "metadata": {"name": "q"}, "spec": {"priority": 41, "egress": [3]}}
    current = copy.deepcopy(old)
    current["spec"]["subject"] = {"namespaces": {}}
    current["metadata"]["uid"] = "u"
    assert three_way_json_merge(old, new, current) == {"spec": {"priority": 41, "ingress": None, "egress": [3]}}
    assert three_way_json_merge(old, old, current) == {}


def test_the_last_applied_annotation_is_kubectls_text():
    m = pod({"name": "c", "image": "a<b>&c"})
    text = _annotated(m)["metadata"]["annotations"][LAST_APPLIED]
    assert text == ('{"apiVersion":"v1","kind":"Pod","metadata":{"annotations":{},"name":"p","namespace":"default"},'
                    '"spec":{"containers":[{"image":"a\\u003cb\\u003e\\u0026c","name":"c"}]}}\n')
    assert json.loads(text) == {**m, "metadata": {**m["metadata"], "annotations": {}}}
    # re-annotating an object that carries the annotation records only the manifest, not itself
    again = _annotated(_annotated(m))["metadata"]["annotations"]
    assert again == {LAST_APPLIED: text}
