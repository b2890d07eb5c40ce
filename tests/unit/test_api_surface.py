"""The API surface kubectl prints from, without a cluster: server-side Tables
(knet/api/tablecodec.py), discovery's subresources, categories and verbs,
the scale subresource and unknown subresources (knet/api/subresources.py),
the access reviews (knet/api/authz.py), the protobuf bodies of kubectl's
typed clients (knet/api/protobuf.py), and what a node reports (knet/node)."""

from __future__ import annotations

import json
import re

import pytest

from knet.api import authz, discovery, protobuf, tablecodec
from knet.api.errors import ApiError
from knet.api.registry import Registry
from knet.api.resources import RESOURCES, SERVED, by_kind
from knet.api.server import ApiServer, Request, unsupported_media_type
from knet.api.validation import validation_errors
from knet.node import lease, nodeinfo
from knet.printers import table as knet_table
from knet.store.sqlite import SqliteStore

KUBECTL_ACCEPT = ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,"
                  "application/json")
NOW = 1.8e9


def pod(name="p", phase="Running", ready=True, node="worker-1"):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "d", "uid": "u-" + name, "resourceVersion": "7",
                         "labels": {"app": name}, "creationTimestamp": "2027-01-15T08:00:00Z"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "agnhost"}]},
            "status": {"phase": phase, "podIP": "10.244.1.5",
                       "containerStatuses": [{"name": "c", "ready": ready, "restartCount": 0,
                                              "state": {"running": {}} if phase == "Running" else
                                              {"terminated": {"reason": "Completed", "exitCode": 0}}}]}}


# -- Tables ------------------------------------------------------------------------


@pytest.mark.parametrize("accept,version", [
    (KUBECTL_ACCEPT, "v1"),
    ("application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json", "v1beta1"),
    ("application/json", None),
    ("application/json, */*", None),
    ("application/json,application/json;as=Table;v=v1;g=meta.k8s.io", None),  # plain JSON preferred
    ("application/json;as=Table;v=v2;g=meta.k8s.io,application/json", None),  # no such Table version
    ("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json", None),
    ("application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1;"
     "g=meta.k8s.io", "v1"),
])
def test_the_table_version_is_negotiated_in_the_clients_order(accept, version):
    assert tablecodec.table_version(accept) == version


def test_pod_columns_are_upstreams_with_wide_ones_at_priority_1():
    defs = tablecodec.column_definitions(by_kind("Pod"))
    assert [(d["name"], d["type"], d["format"], d["priority"]) for d in defs] == [
        ("Name", "string", "name", 0), ("Ready", "string", "", 0), ("Status", "string", "", 0),
        ("Restarts", "string", "", 0), ("Age", "string", "", 0), ("IP", "string", "", 1),
        ("Node", "string", "", 1), ("Nominated Node", "string", "", 1), ("Readiness Gates", "string", "", 1)]
    assert all(d["description"] for d in defs)
    deploy = {d["name"]: d["type"] for d in tablecodec.column_definitions(by_kind("Deployment"))}
    assert (deploy["Ready"], deploy["Up-to-date"], deploy["Available"]) == ("string", "integer", "integer")


@pytest.mark.parametrize("res", RESOURCES, ids=lambda r: r.kind)
def test_every_kinds_table_has_its_records_columns_and_knet_gets_cells(res):
    """kubectl upper-cases the column names: the headers it prints are knet get's."""
    defs = tablecodec.column_definitions(res)
    assert [d["name"].upper() for d in defs] == [h for h, _ in res.columns]
    obj = {"apiVersion": res.api_version, "kind": res.kind,
           "metadata": {"name": "x", "namespace": "d", "creationTimestamp": "2027-01-15T08:00:00Z"}}
    printed = re.split(r"\s{2,}", knet_table(res.kind, [obj], wide=True, now=NOW).splitlines()[0].strip())
    assert printed[:len(defs)] == [d["name"].upper() for d in defs]
    row = tablecodec.table(res, [obj], tablecodec.TableOptions("v1", "Metadata"), now=NOW)["rows"][0]
    assert [str(c) for c in row["cells"]] == res.hook("printer")(obj, True, NOW)


def test_a_list_becomes_rows_with_partial_objects_and_its_resource_version():
    res = by_kind("Pod")
    body = {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "42"},
            "items": [pod("a"), pod("b", phase="Succeeded", ready=False)]}
    out = tablecodec.convert(res, body, tablecodec.TableOptions("v1", "Metadata"))
    assert (out["kind"], out["apiVersion"], out["metadata"]) == ("Table", "meta.k8s.io/v1", {"resourceVersion": "42"})
    a, b = out["rows"]
    assert a["cells"][:3] == ["a", "1/1", "Running"] and a["cells"][5:7] == ["10.244.1.5", "worker-1"]
    assert a["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                           "metadata": pod("a")["metadata"]}
    assert "conditions" not in a
    assert b["conditions"] == [{"type": "Completed", "status": "True", "reason": "Succeeded",
                                "message": "The pod has completed successfully."}]
    whole = tablecodec.convert(res, body, tablecodec.TableOptions("v1beta1", "Object"))
    assert whole["apiVersion"] == "meta.k8s.io/v1beta1" and whole["rows"][0]["object"] == pod("a")
    none = tablecodec.convert(res, body, tablecodec.TableOptions("v1", "None"))
    assert none["rows"][0]["object"] is None
    one = tablecodec.convert(res, pod("a"), tablecodec.TableOptions("v1", "Metadata"))
    assert one["metadata"] == {"resourceVersion": "7"} and len(one["rows"]) == 1


def test_integer_columns_carry_integers():
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r", "namespace": "d"},
          "spec": {"replicas": 3, "selector": {"matchLabels": {"a": "b"}}}, "status": {"replicas": 2, "readyReplicas": 1}}
    row = tablecodec.table(by_kind("ReplicaSet"), [rs], tablecodec.TableOptions("v1", "None"), now=NOW)["rows"][0]
    assert row["cells"][:4] == ["r", 3, 2, 1]


def test_a_bad_include_object_is_a_400():
    with pytest.raises(ApiError) as e:
        tablecodec.options({"accept": KUBECTL_ACCEPT}, {"includeObject": "Everything"})
    assert e.value.code == 400 and "includeObject" in e.value.message
    assert tablecodec.options({"accept": "application/json"}, {"includeObject": "Everything"}) is None


def test_a_watch_of_tables_sends_the_columns_with_the_first_event_only():
    enc = tablecodec.WatchEncoder(by_kind("Pod"), tablecodec.TableOptions("v1", "Metadata"))
    first = json.loads(enc("ADDED", pod("a")))
    second = json.loads(enc("MODIFIED", pod("a")))
    assert first["type"] == "ADDED" and first["object"]["kind"] == "Table"
    assert len(first["object"]["columnDefinitions"]) == 9 and second["object"]["columnDefinitions"] is None
    assert second["object"]["rows"][0]["cells"][0] == "a" and second["object"]["metadata"] == {"resourceVersion": "7"}
    bookmark = {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": "9"}}
    assert json.loads(enc("BOOKMARK", bookmark))["object"] == bookmark


@pytest.fixture
def server(tmp_path):
    reg = Registry(SqliteStore(str(tmp_path / "s.db")))
    reg.bootstrap()
    return ApiServer(reg, "t")


def req(method, path, body=None, headers=None, query=None):
    raw = json.dumps(body).encode() if body is not None else b""
    return Request(method, path, query or {}, headers or {}, raw)


def test_the_server_answers_a_get_with_a_table_when_asked(server):
    server.registry.create(by_kind("Pod"), "default", {"metadata": {"name": "a"},
                                                       "spec": {"containers": [{"name": "c", "image": "i"}]}})
    r = req("GET", "/api/v1/namespaces/default/pods", headers={"accept": KUBECTL_ACCEPT})
    code, body = server.handle(r)
    out = tablecodec.respond(r, code, body)
    assert out["kind"] == "Table" and out["rows"][0]["cells"][:3] == ["a", "0/1", "Pending"]
    r = req("GET", "/api/v1/namespaces/default/pods", headers={"accept": "application/json"})
    assert tablecodec.respond(r, *server.handle(r))["kind"] == "PodList"


# -- discovery -----------------------------------------------------------------------


def test_core_discovery_lists_subresources_categories_and_hashes_as_upstream():
    doc = discovery.document("/api/v1", SERVED)
    assert "apiVersion" not in doc and doc["groupVersion"] == "v1"
    names = [r["name"] for r in doc["resources"]]
    assert names == sorted(names)
    by_name = {r["name"]: r for r in doc["resources"]}
    # Entries as a v1.31 kube-apiserver lists them.
    assert by_name["pods"] == {
        "name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
        "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        "shortNames": ["po"], "categories": ["all"], "storageVersionHash": "xPOwRZ+Yhw8="}
    assert by_name["pods/eviction"] == {"name": "pods/eviction", "singularName": "", "namespaced": True,
                                        "group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"]}
    assert by_name["pods/exec"]["kind"] == "PodExecOptions" and by_name["pods/exec"]["verbs"] == ["create", "get"]
    assert by_name["pods/log"] == {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod",
                                   "verbs": ["get"]}
    assert by_name["services"]["storageVersionHash"] == "0/CO1lhkEBI=" and by_name["services"]["categories"] == ["all"]
    assert by_name["namespaces"]["storageVersionHash"] == "Q3oi5N2YM8M="
    assert "deletecollection" not in by_name["namespaces"]["verbs"]
    assert "categories" not in by_name["events"] and "categories" not in by_name["nodes"]


def test_apps_discovery_has_scale_and_the_all_category():
    by_name = {r["name"]: r for r in discovery.document("/apis/apps/v1", SERVED)["resources"]}
    for kind in ("deployments", "replicasets", "statefulsets"):
        assert by_name[f"{kind}/scale"] == {"name": f"{kind}/scale", "singularName": "", "namespaced": True,
                                            "group": "autoscaling", "version": "v1", "kind": "Scale",
                                            "verbs": ["get", "patch", "update"]}
    assert "daemonsets/scale" not in by_name
    assert all(by_name[k]["categories"] == ["all"] for k in ("deployments", "replicasets", "statefulsets",
                                                              "daemonsets"))


def test_the_reviews_are_discovered_create_only_and_leases_at_coordination_v1():
    ssar = discovery.document("/apis/authorization.k8s.io/v1", SERVED)["resources"]
    assert ssar == [
        {"name": "selfsubjectaccessreviews", "singularName": "selfsubjectaccessreview", "namespaced": False,
         "kind": "SelfSubjectAccessReview", "verbs": ["create"]},
        {"name": "selfsubjectrulesreviews", "singularName": "selfsubjectrulesreview", "namespaced": False,
         "kind": "SelfSubjectRulesReview", "verbs": ["create"]}]
    leases = discovery.document("/apis/coordination.k8s.io/v1", SERVED)["resources"]
    assert [(r["name"], r["namespaced"], r["kind"]) for r in leases] == [("leases", True, "Lease")]


KUBECTL_DISCOVERY_ACCEPT = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
                            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json")


@pytest.mark.parametrize("accept,version", [
    (KUBECTL_DISCOVERY_ACCEPT, "v2"),
    ("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json", "v2beta1"),
    ("application/json, */*", None),
    ("application/json,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", None),
    ("application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList,application/json", None),
])
def test_aggregated_discovery_is_negotiated(accept, version):
    assert discovery.aggregated_version(accept) == version


def test_aggregated_discovery_holds_every_group_version_and_subresource():
    apis = discovery.aggregated("/apis", SERVED)
    assert (apis["kind"], apis["apiVersion"]) == ("APIGroupDiscoveryList", "apidiscovery.k8s.io/v2")
    groups = {g["metadata"]["name"]: g for g in apis["items"]}
    assert set(groups) == {r.group for r in SERVED if r.group}
    apps = groups["apps"]["versions"]
    assert [v["version"] for v in apps] == ["v1"] and apps[0]["freshness"] == "Current"
    deploy = next(r for r in apps[0]["resources"] if r["resource"] == "deployments")
    assert deploy == {
        "resource": "deployments", "responseKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "scope": "Namespaced", "singularResource": "deployment",
        "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        "shortNames": ["deploy"], "categories": ["all"], "subresources": [
            {"subresource": "scale", "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
             "verbs": ["get", "patch", "update"]},
            {"subresource": "status", "responseKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
             "verbs": ["get", "patch", "update"]}]}
    core = discovery.aggregated("/api", SERVED)["items"]
    assert len(core) == 1 and "name" not in core[0]["metadata"]
    pods = next(r for r in core[0]["versions"][0]["resources"] if r["resource"] == "pods")
    eviction = next(s for s in pods["subresources"] if s["subresource"] == "eviction")
    assert eviction == {"subresource": "eviction", "responseKind": {"group": "policy", "version": "v1",
                                                                    "kind": "Eviction"}, "verbs": ["create"]}
    headers, body = discovery.serve_aggregated("/apis", KUBECTL_DISCOVERY_ACCEPT, SERVED)
    assert ("Content-Type", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList") in headers
    assert json.loads(body) == apis
    assert discovery.serve_aggregated("/apis", "application/json", SERVED) is None
    assert discovery.serve_aggregated("/api/v1", KUBECTL_DISCOVERY_ACCEPT, SERVED) is None


# -- scale and subresources ----------------------------------------------------------


def deployment(replicas=2):
    return {"metadata": {"name": "web"}, "spec": {
        "replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}


SCALE = "/apis/apps/v1/namespaces/default/deployments/web/scale"


def test_scale_get_put_and_patch(server):
    dep = by_kind("Deployment")
    server.registry.create(dep, "default", deployment())
    code, scale = server.handle(req("GET", SCALE))
    assert code == 200 and scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"] == {"replicas": 2} and scale["status"] == {"replicas": 0, "selector": "app=web"}
    assert scale["metadata"]["resourceVersion"] == server.registry.get(dep, "default", "web")["metadata"][
        "resourceVersion"]
    code, out = server.handle(req("PUT", SCALE, dict(scale, spec={"replicas": 5})))
    assert code == 200 and out["spec"] == {"replicas": 5}
    assert server.registry.get(dep, "default", "web")["spec"]["replicas"] == 5
    # kubectl scale's patch; a JSON patch.
    server.handle(req("PATCH", SCALE, {"spec": {"replicas": 3}}, {"content-type": "application/merge-patch+json"}))
    assert server.registry.get(dep, "default", "web")["spec"]["replicas"] == 3
    server.handle(req("PATCH", SCALE, {"apiVersion": "autoscaling/v1", "kind": "Scale", "spec": {"replicas": 4}},
                      {"content-type": "application/apply-patch+yaml"}))
    assert server.registry.get(dep, "default", "web")["spec"]["replicas"] == 4
    with pytest.raises(ApiError) as e:
        server.handle(req("PATCH", SCALE, [{"op": "test", "path": "/spec/replicas", "value": 9}],
                          {"content-type": "application/json-patch+json"}))
    assert e.value.code == 422
    server.handle(req("PATCH", SCALE, [{"op": "replace", "path": "/spec/replicas", "value": 0}],
                      {"content-type": "application/json-patch+json"}))
    stored = server.registry.get(dep, "default", "web")
    assert stored["spec"]["replicas"] == 0 and server.handle(req("GET", SCALE))[1]["spec"] == {}
    # The stale resourceVersion of the first read is a conflict; a bad count changes nothing.
    with pytest.raises(ApiError) as e:
        server.handle(req("PUT", SCALE, dict(scale, spec={"replicas": 4})))
    assert (e.value.code, e.value.reason) == (409, "Conflict")
    with pytest.raises(ApiError) as e:
        server.handle(req("PUT", SCALE, {"spec": {"replicas": -1}}))
    assert e.value.code == 422 and e.value.message == (
        'Scale "web" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0')
    with pytest.raises(ApiError) as e:
        server.handle(req("PUT", SCALE, {"spec": {"replicas": "4"}}))
    assert e.value.code == 400
    with pytest.raises(ApiError) as e:
        server.handle(req("PATCH", SCALE, {"spec": {"replicas": 1}}, {"content-type": "text/plain"}))
    assert e.value.code == 415
    assert server.registry.get(dep, "default", "web")["metadata"]["resourceVersion"] == stored["metadata"][
        "resourceVersion"]
    with pytest.raises(ApiError) as e:
        server.handle(req("GET", "/apis/apps/v1/namespaces/default/deployments/nope/scale"))
    assert e.value.code == 404


def test_unknown_subresources_are_404_and_wrong_verbs_405(server):
    server.registry.create(by_kind("Pod"), "default", {"metadata": {"name": "a"},
                                                       "spec": {"containers": [{"name": "c", "image": "i"}]}})
    for path in ("/api/v1/namespaces/default/pods/a/bogus", "/api/v1/namespaces/default/services/kubernetes/log",
                 "/api/v1/namespaces/default/pods/a/scale"):
        with pytest.raises(ApiError) as e:
            server.handle(req("GET", path))
        assert (e.value.code, e.value.message) == (404, "the server could not find the requested resource"), path
    with pytest.raises(ApiError) as e:  # served by the node agent's kubelet server, never the object here
        server.handle(req("GET", "/api/v1/namespaces/default/pods/a/log"))
    assert e.value.code == 404
    with pytest.raises(ApiError) as e:
        server.handle(req("GET", "/api/v1/namespaces/default/pods/a/binding"))
    assert (e.value.code, e.value.reason) == (405, "MethodNotAllowed")
    assert server.handle(req("GET", "/api/v1/namespaces/default/pods/a/status"))[1]["kind"] == "Pod"


# -- access reviews ------------------------------------------------------------------


def test_the_admin_may_and_another_user_may_not(server):
    ask = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
           "spec": {"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}}}
    code, out = server.handle(req("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", ask))
    assert code == 201 and out["status"] == {"allowed": True} and out["spec"] == ask["spec"]
    stranger = authz.User("jane", ("system:authenticated",))
    out = authz.access_review(authz.DEFAULT, stranger, ask)
    assert out["status"]["allowed"] is False
    rules = authz.rules_review(authz.DEFAULT, stranger, {"spec": {"namespace": "default"}})["status"]
    assert rules["nonResourceRules"] == [] and "*" not in rules["resourceRules"][0]["verbs"]


def test_a_review_without_or_with_both_attributes_is_invalid(server):
    path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    with pytest.raises(ApiError) as e:
        server.handle(req("POST", path, {"spec": {}}))
    assert e.value.code == 422 and "exactly one of nonResourceAttributes or resourceAttributes" in e.value.message
    with pytest.raises(ApiError) as e:
        server.handle(req("POST", path, {"spec": {"resourceAttributes": {}, "nonResourceAttributes": {}}}))
    assert e.value.code == 422 and "spec.nonResourceAttributes" in e.value.message
    with pytest.raises(ApiError) as e:
        server.handle(req("GET", path))
    assert e.value.code == 405


def test_rules_and_self_reviews(server):
    code, out = server.handle(req("POST", "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
                                  {"spec": {"namespace": "default"}}))
    assert code == 201 and out["status"]["resourceRules"] == [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]
    assert out["status"]["incomplete"] is False
    r = req("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", {})
    r.user = ("kubernetes-admin", ["system:masters", "system:authenticated"])
    code, out = server.handle(r)
    assert out["status"]["userInfo"] == {"username": "kubernetes-admin",
                                         "groups": ["system:masters", "system:authenticated"]}


class DenyAll:
    def authorize(self, user, attributes, resource):
        return False, True, "denied by test"

    def rules(self, user, namespace):
        return [], [], True


def test_an_authorizer_plugs_in(server):
    server.authorizer = DenyAll()
    _, out = server.handle(req("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                               {"spec": {"nonResourceAttributes": {"path": "/healthz", "verb": "get"}}}))
    assert out["status"] == {"allowed": False, "denied": True, "reason": "denied by test"}


# -- protobuf bodies of kubectl's typed clients ---------------------------------------

# What kubectl v1.37 `auth can-i create pods` sent, byte for byte.
KUBECTL_SSAR = bytes.fromhex("""
    6b 38 73 00 0a 32 0a 17  61 75 74 68 6f 72 69 7a
    61 74 69 6f 6e 2e 6b 38  73 2e 69 6f 2f 76 31 12
    17 53 65 6c 66 53 75 62  6a 65 63 74 41 63 63 65
    73 73 52 65 76 69 65 77  12 3f 0a 10 0a 00 12 00
    1a 00 22 00 2a 00 32 00  38 00 42 00 12 21 0a 1f
    0a 07 64 65 66 61 75 6c  74 12 06 63 72 65 61 74
    65 1a 00 22 00 2a 04 70  6f 64 73 32 00 3a 00 1a
    08 08 00 12 00 1a 00 20  00 1a 00 22 00""")


def _field(number, payload):
    if isinstance(payload, int):
        return bytes([number << 3]) + bytes([payload])
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_kubectls_protobuf_review_reads_as_its_json():
    out = protobuf.decode(KUBECTL_SSAR)
    assert out == {"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                   "spec": {"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}}}
    r = Request("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {},
                {"content-type": "application/vnd.kubernetes.protobuf"}, KUBECTL_SSAR)
    assert unsupported_media_type(r) is None
    assert r.headers["content-type"] == "application/json" and json.loads(r.body) == out


def _envelope(api_version: bytes, kind: bytes, raw: bytes) -> bytes:
    return protobuf.MAGIC + _field(1, _field(1, api_version) + _field(2, kind)) + _field(2, raw)


def test_an_eviction_and_a_deletes_options():
    options = _field(1, 5) + _field(5, b"All")
    raw = _field(1, _field(1, b"web-1") + _field(3, b"default")) + _field(2, options)
    assert protobuf.decode(_envelope(b"policy/v1", b"Eviction", raw)) == {
        "kind": "Eviction", "apiVersion": "policy/v1", "metadata": {"name": "web-1", "namespace": "default"},
        "deleteOptions": {"gracePeriodSeconds": 5, "dryRun": ["All"]}}
    delete = Request("DELETE", "/api/v1/namespaces/default/pods/web-1", {},
                     {"content-type": "application/vnd.kubernetes.protobuf"},
                     _envelope(b"v1", b"DeleteOptions", options + _field(4, b"Background")))
    assert unsupported_media_type(delete) is None and json.loads(delete.body) == {
        "kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 5, "dryRun": ["All"],
        "propagationPolicy": "Background"}
    # a delete's body is its options: a Pod there is refused (415), as bytes that are not protobuf are (400)
    pod = Request("DELETE", "/api/v1/namespaces/default/pods/web-1", {},
                  {"content-type": "application/vnd.kubernetes.protobuf"}, _envelope(b"v1", b"Pod", b""))
    assert unsupported_media_type(pod).code == 415
    garbage = Request("POST", "/api/v1/namespaces/default/pods", {},
                      {"content-type": "application/vnd.kubernetes.protobuf"}, b"k8s\x00\xff\xff")
    assert unsupported_media_type(garbage).code == 400


# -- nodes and leases ----------------------------------------------------------------


def test_node_capacity_and_allocatable_as_kubelet_computes_them():
    capacity, allocatable = nodeinfo.resources(8, 16 * 1024 * 1024, 100 * 2**30)
    assert capacity == {"cpu": "8", "ephemeral-storage": f"{100 * 2**20}Ki", "hugepages-1Gi": "0",
                        "hugepages-2Mi": "0", "memory": "16777216Ki", "pods": "110"}
    assert allocatable["memory"] == "16674816Ki"  # less the 100Mi hard eviction threshold
    assert allocatable["ephemeral-storage"] == str(int(100 * 2**30 * 0.9))
    assert nodeinfo.memory_ki("MemTotal:       16303072 kB\nMemFree: 1 kB\n") == 16303072
    assert nodeinfo.os_image('NAME="Debian"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n') == (
        "Debian GNU/Linux 12 (bookworm)")


def test_each_node_has_its_own_stable_identity():
    a = nodeinfo.node_ids("knet", "worker-1", machine_id="0123")
    assert a == nodeinfo.node_ids("knet", "worker-1", machine_id="0123")
    assert a != nodeinfo.node_ids("knet", "worker-2", machine_id="0123")
    assert a != nodeinfo.node_ids("other", "worker-1", machine_id="0123")
    assert re.fullmatch(r"[0-9a-f]{32}", a[0]) and re.fullmatch(r"[0-9a-f-]{36}", a[1])
    info = nodeinfo.node_info("knet", "worker-1", "v1.37.0", "knet://0.1")
    assert set(info) == {"machineID", "systemUUID", "bootID", "kernelVersion", "osImage", "containerRuntimeVersion",
                         "kubeletVersion", "kubeProxyVersion", "operatingSystem", "architecture"}


def test_the_lease_an_agent_writes_is_a_valid_lease():
    obj = lease.lease_object("worker-1", "uid-1", now=1.8e9 + 0.25)
    assert obj["spec"] == {"holderIdentity": "worker-1", "leaseDurationSeconds": 40,
                           "renewTime": "2027-01-15T08:00:00.250000Z"}
    assert obj["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Node", "name": "worker-1",
                                                   "uid": "uid-1"}]
    assert validation_errors(obj) == []
    bad = dict(obj, spec=dict(obj["spec"], leaseDurationSeconds=0, leaseTransitions=-1))
    assert [e.field for e in validation_errors(bad)] == ["spec.leaseDurationSeconds", "spec.leaseTransitions"]


def test_a_nodes_lease_goes_with_its_node(tmp_path):
    from knet.controlplane import reconcile

    reg = Registry(SqliteStore(str(tmp_path / "gc.db")))
    reg.bootstrap()
    node = reg.create(by_kind("Node"), None, {"metadata": {"name": "worker-9"}})
    reg.create(by_kind("Lease"), "kube-node-lease", lease.lease_object("worker-9", node["metadata"]["uid"]))
    reconcile(reg)
    assert reg.find(by_kind("Lease"), "kube-node-lease", "worker-9") is not None
    reg.delete(by_kind("Node"), None, "worker-9")
    reconcile(reg)
    assert reg.find(by_kind("Lease"), "kube-node-lease", "worker-9") is None


def test_reviews_answer_for_the_impersonated_user(server):
    ask = {"spec": {"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}}}
    path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    r = req("POST", path, ask, {"impersonate-user": "jane"})
    assert server.handle(r)[1]["status"]["allowed"] is False  # jane has no rights: `kubectl auth can-i --as=jane`
    r = req("POST", path, ask, {"impersonate-user": "jane", "impersonate-group": "system:masters"})
    r.raw_headers = [(b"impersonate-user", b"jane"), (b"impersonate-group", b"dev"),
                     (b"impersonate-group", b"system:masters")]
    assert server.handle(r)[1]["status"]["allowed"] is True
    r = req("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", {}, {"impersonate-user": "jane"})
    assert server.handle(r)[1]["status"]["userInfo"] == {"username": "jane", "groups": ["system:authenticated"]}
    r = req("POST", path, ask, {"impersonate-user": "bob"})
    r.user = ("jane", ["system:authenticated"])
    with pytest.raises(ApiError) as e:
        server.handle(r)
    assert e.value.code == 403 and 'User "jane" cannot impersonate' in e.value.message


def test_nodes_report_the_api_servers_release():
    from knet.api.server import VERSION

    assert nodeinfo.KUBELET_VERSION == VERSION["gitVersion"]
