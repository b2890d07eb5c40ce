"""The OpenAPI documents (knet/api/openapi.py): valid OpenAPI 3.0 and Swagger
2.0 shapes, every served kind with its GVK, every reference resolving, the
list and patch extensions kubectl computes its patches from, what kubectl's
field-validation check looks for, and how they are served (hash, ETag, 304,
301, 406) through the real API server."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket

import pytest

from knet.api import errors, openapi, patchmeta, schema
from knet.api.resources import RESOURCES, Resource, by_kind
from knet.harness.apiserver import TOKEN, LocalApiServer

V3 = openapi.v3_documents()
V2 = openapi.v2_document()
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def _gvk(r: Resource) -> dict:
    return {"group": r.group, "version": r.version, "kind": r.kind}


def _refs(node, found=None) -> list[str]:
    found = [] if found is None else found
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                found.append(v)
            else:
                _refs(v, found)
    elif isinstance(node, list):
        for v in node:
            _refs(v, found)
    return found


def _resolve(doc: dict, ref: str) -> dict:
    assert ref.startswith("#/"), ref
    node = doc
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def _struct_schema(doc: dict, name: str, v3: bool = True) -> dict:
    defs = doc["components"]["schemas"] if v3 else doc["definitions"]
    return defs[openapi.definition_names()[name]]


# -- shapes ----------------------------------------------------------------------------


def test_the_index_names_one_document_per_group_version_served():
    served = {f"apis/{r.group}/{r.version}" if r.group else f"api/{r.version}" for r in RESOURCES}
    assert set(V3) == served
    assert "api/v1" in V3 and "apis/apps/v1" in V3 and "apis/policy.networking.k8s.io/v1alpha1" in V3


@pytest.mark.parametrize("gv", sorted(V3))
def test_each_v3_document_has_the_openapi_3_shape(gv):
    doc = V3[gv]
    assert doc["openapi"].startswith("3.0.")
    assert doc["info"]["title"] and doc["info"]["version"]
    assert doc["paths"] and doc["components"]["schemas"]
    for path, item in doc["paths"].items():
        assert path.startswith("/api/" if gv.startswith("api/") else f"/{gv}/"), path
        for p in item.get("parameters", []):
            assert p["in"] in ("path", "query") and p["name"] and "schema" in p
            if p["in"] == "path":
                assert p["required"] is True and "{" + p["name"] + "}" in path
        for method, op in item.items():
            if method == "parameters":
                continue
            assert method in METHODS
            assert op["operationId"] and op["responses"]
            assert all(p["in"] in ("path", "query") for p in op["parameters"])  # bodies are requestBody in v3
            for code, response in op["responses"].items():
                assert code.isdigit() and response["description"]
            if "requestBody" in op:
                assert op["requestBody"]["content"]
    for name, definition in doc["components"]["schemas"].items():
        assert name.startswith("io.k8s."), name
        assert isinstance(definition, dict)


def test_the_v2_document_has_the_swagger_2_shape():
    assert V2["swagger"] == "2.0"
    assert V2["info"]["title"] and V2["definitions"]
    for item in V2["paths"].values():
        for method, op in item.items():
            params = op if method == "parameters" else op["parameters"]
            for p in params:
                assert p["in"] in ("path", "query", "body")
                if p["in"] == "body":
                    assert "schema" in p and "type" not in p
                else:
                    assert p["type"] in ("string", "integer", "boolean") and "schema" not in p
            if method != "parameters":
                assert "requestBody" not in op and op["produces"] in (["application/json"], ["*/*"])
                for response in op["responses"].values():
                    assert "content" not in response


@pytest.mark.parametrize("gv", sorted(V3))
def test_every_reference_in_a_v3_document_resolves_in_it(gv):
    doc = V3[gv]
    refs = _refs(doc)
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert isinstance(_resolve(doc, ref), dict)


def test_every_reference_in_the_v2_document_resolves_in_it():
    refs = _refs(V2)
    assert refs
    for ref in refs:
        assert ref.startswith("#/definitions/"), ref
        assert isinstance(_resolve(V2, ref), dict)


# -- kinds -----------------------------------------------------------------------------


@pytest.mark.parametrize("r", RESOURCES, ids=lambda r: r.kind)
def test_every_served_kind_has_its_definition_with_its_gvk_in_both_documents(r):
    gv = f"apis/{r.group}/{r.version}" if r.group else f"api/{r.version}"
    for defs in (V3[gv]["components"]["schemas"], V2["definitions"]):
        found = [d for d in defs.values() if _gvk(r) in d.get("x-kubernetes-group-version-kind", [])]
        assert len(found) == 1, r.kind
        assert set(found[0]["properties"]) == set(schema.STRUCTS[r.kind])
        lists = [d for d in defs.values()
                 if {**_gvk(r), "kind": r.list_kind} in d.get("x-kubernetes-group-version-kind", [])]
        assert len(lists) == 1 and lists[0]["properties"]["items"]["type"] == "array"


def test_definitions_are_named_by_upstreams_go_packages():
    names = openapi.definition_names()
    assert names["Pod"] == "io.k8s.api.core.v1.Pod"
    assert names["PodTemplateSpec"] == "io.k8s.api.core.v1.PodTemplateSpec"  # used by apps' kinds only
    assert names["PodSpec"] == "io.k8s.api.core.v1.PodSpec"
    assert names["ObjectMeta"] == "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    assert names["LabelSelector"] == "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"
    assert names["Deployment"] == "io.k8s.api.apps.v1.Deployment"
    assert names["DeploymentStrategy"] == "io.k8s.api.apps.v1.DeploymentStrategy"
    assert names["EndpointSlice"] == "io.k8s.api.discovery.v1.EndpointSlice"
    assert names["NetworkPolicyPeer"] == "io.k8s.api.networking.v1.NetworkPolicyPeer"
    assert names["ObjectReference"] == "io.k8s.api.core.v1.ObjectReference"
    assert names["IntOrString"] == "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
    # a CRD's schema is named by its reversed group
    assert names["AdminNetworkPolicy"] == "io.k8s.networking.policy.v1alpha1.AdminNetworkPolicy"


def test_struct_definitions_have_exactly_the_schemas_fields_and_types():
    """Generated from schema.STRUCTS, not a second schema: every struct
    reachable from a kind has exactly its fields, each of the right type."""
    doc = V3["api/v1"]
    for name in ("Pod", "PodSpec", "Container", "ServiceSpec", "ServicePort", "ObjectMeta", "Probe"):
        props = _struct_schema(doc, name)["properties"]
        assert set(props) == set(schema.STRUCTS[name]), name
    ports = _struct_schema(doc, "ServicePort")["properties"]
    assert ports["port"]["type"] == "integer" and ports["port"]["format"] == "int32"
    assert ports["targetPort"]["allOf"] == [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.util.intstr.IntOrString"}]
    assert ports["protocol"]["type"] == "string"
    pod_spec = _struct_schema(doc, "PodSpec")["properties"]
    assert pod_spec["terminationGracePeriodSeconds"]["format"] == "int64"
    assert pod_spec["hostNetwork"]["type"] == "boolean"
    assert pod_spec["nodeSelector"] == {**pod_spec["nodeSelector"], "type": "object",
                                        "additionalProperties": {"type": "string"}}
    assert pod_spec["containers"]["items"]["allOf"] == [{"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}]
    limits = _struct_schema(doc, "ResourceRequirements")["properties"]["limits"]
    assert limits["additionalProperties"] == {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.api.resource.Quantity"}
    assert _struct_schema(doc, "ObjectMeta")["properties"]["creationTimestamp"]["allOf"][0]["$ref"].endswith("meta.v1.Time")


def test_descriptions_and_required_fields_are_upstreams():
    doc = V3["api/v1"]
    ports = _struct_schema(doc, "ServicePort")
    assert ports["properties"]["port"]["description"] == "The port that will be exposed by this service."
    assert ports["required"] == ["port"]
    container = _struct_schema(doc, "Container")
    assert container["required"] == ["name"]
    assert container["properties"]["image"]["description"].startswith("Container image name.")
    assert _struct_schema(doc, "PodSpec")["required"] == ["containers"]
    # every field says something, even where upstream's text is not known
    for definition in doc["components"]["schemas"].values():
        for name, prop in definition.get("properties", {}).items():
            assert prop.get("description") or name in ("kind", "apiVersion"), name


def test_crd_shaped_kinds_are_one_inline_tree_with_metadata_by_reference():
    doc = V3["apis/policy.networking.k8s.io/v1alpha1"]
    anp = _struct_schema(doc, "AdminNetworkPolicy")
    assert anp["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]
    spec = anp["properties"]["spec"]
    assert "$ref" not in json.dumps(spec)
    assert spec["required"] == ["priority", "subject"]
    assert spec["properties"]["priority"]["description"].startswith("Priority is a value from 0 to 1000.")
    peer = spec["properties"]["egress"]["items"]["properties"]["to"]["items"]["properties"]
    assert set(peer) == set(schema.STRUCTS["AdminNetworkPolicyEgressPeer"])
    # no strategic merge patch for a CRD, so no patch strategies either
    assert "x-kubernetes-patch-strategy" not in json.dumps(anp)
    conditions = anp["properties"]["status"]["properties"]["conditions"]
    assert set(conditions["items"]["properties"]) == set(schema.STRUCTS["Condition"])


# -- extensions ------------------------------------------------------------------------


def _field(doc: dict, key: str) -> dict:
    struct, field = key.split(".")
    return _struct_schema(doc, struct)["properties"][field]


def _doc_with(struct: str) -> dict:
    name = openapi.definition_names()[struct]
    return next(d for d in V3.values() if name in d["components"]["schemas"])


def test_merge_keys_kubectl_apply_patches_by():
    doc = V3["api/v1"]
    containers = _field(doc, "PodSpec.containers")
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-list-type"] == "map" and containers["x-kubernetes-list-map-keys"] == ["name"]
    ports = _field(doc, "Container.ports")
    assert ports["x-kubernetes-patch-merge-key"] == "containerPort"
    assert ports["x-kubernetes-list-map-keys"] == ["containerPort", "protocol"]
    assert _field(doc, "Container.env")["x-kubernetes-patch-merge-key"] == "name"
    assert _field(doc, "PodSpec.volumes")["x-kubernetes-patch-strategy"] == "merge,retainKeys"
    assert _field(doc, "ServiceSpec.ports")["x-kubernetes-patch-merge-key"] == "port"
    assert _field(doc, "ObjectMeta.finalizers")["x-kubernetes-list-type"] == "set"
    assert "x-kubernetes-patch-merge-key" not in _field(doc, "ObjectMeta.finalizers")
    assert _field(doc, "PodSpec.nodeSelector")["x-kubernetes-map-type"] == "atomic"
    assert _struct_schema(doc, "LabelSelector")["x-kubernetes-map-type"] == "atomic"
    assert _field(V3["apis/apps/v1"], "DeploymentSpec.strategy")["x-kubernetes-patch-strategy"] == "retainKeys"


def test_every_list_and_patch_semantic_is_published_from_the_one_table():
    """knet/api/patchmeta.py, what strategic merge patch and server-side
    apply merge by, is what the documents publish: one copy."""
    for (struct, field), list_type in patchmeta.LIST_TYPES.items():
        if not schema.STRUCTS[struct][field].startswith("[]"):
            continue  # kept as any JSON (ContainerStatus.volumeMounts): no list schema to mark
        f = _field(_doc_with(struct), f"{struct}.{field}")
        assert f["x-kubernetes-list-type"] == list_type[0], (struct, field)
        assert f.get("x-kubernetes-list-map-keys", []) == list(list_type[1:]), (struct, field)
    for (struct, field), (strategies, merge_key) in patchmeta.STRATEGIC.items():
        f = _field(_doc_with(struct), f"{struct}.{field}")
        assert f["x-kubernetes-patch-strategy"] == ",".join(strategies), (struct, field)
        assert f.get("x-kubernetes-patch-merge-key", "") == merge_key, (struct, field)
    for struct, field in patchmeta.ATOMIC_MAPS:
        assert _field(_doc_with(struct), f"{struct}.{field}")["x-kubernetes-map-type"] == "atomic"
    for struct in patchmeta.ATOMIC_STRUCTS:
        assert _struct_schema(_doc_with(struct), struct)["x-kubernetes-map-type"] == "atomic"


# -- what kubectl looks for ----------------------------------------------------------


def _supports_query_param_v3(doc: dict, gvk: dict, param: str) -> bool | None:
    """cli-runtime's supportsQueryParamV3: the PATCH operation of the GVK,
    then the parameter among its query parameters. None: no PATCH for the GVK."""
    for item in doc["paths"].values():
        op = item.get("patch")
        if not op or op.get("x-kubernetes-group-version-kind") != gvk:
            continue
        return any(p["name"] == param and p["in"] == "query" for p in op["parameters"])
    return None


@pytest.mark.parametrize("r", RESOURCES, ids=lambda r: r.kind)
def test_kubectl_finds_field_validation_on_each_kinds_patch(r):
    doc = V3[f"apis/{r.group}/{r.version}" if r.group else f"api/{r.version}"]
    assert _supports_query_param_v3(doc, _gvk(r), "fieldValidation") is True
    # and on the v2 document (its fallback)
    ops = [i["patch"] for i in V2["paths"].values()
           if "patch" in i and i["patch"]["x-kubernetes-group-version-kind"] == _gvk(r)]
    assert ops and any(p["name"] == "fieldValidation" and p["in"] == "query" for p in ops[0]["parameters"])


@pytest.mark.parametrize("r", RESOURCES, ids=lambda r: r.kind)
def test_strategic_merge_patch_is_offered_for_built_in_kinds_only(r):
    """kubectl apply computes a strategic merge patch from the v3 schema when
    the PATCH operation takes one, and a merge patch otherwise (CRDs)."""
    doc = V3[f"apis/{r.group}/{r.version}" if r.group else f"api/{r.version}"]
    ops = [i["patch"] for i in doc["paths"].values()
           if "patch" in i and i["patch"]["x-kubernetes-group-version-kind"] == _gvk(r)]
    content = ops[0]["requestBody"]["content"]
    assert "application/merge-patch+json" in content and "application/json-patch+json" in content
    assert ("application/strategic-merge-patch+json" in content) == (r.kind not in patchmeta.NO_STRATEGIC)


@pytest.mark.parametrize("r", RESOURCES, ids=lambda r: r.kind)
def test_the_operations_are_the_verbs_the_kind_serves(r):
    gv = f"apis/{r.group}/{r.version}" if r.group else f"api/{r.version}"
    actions = {op["x-kubernetes-action"] for item in V3[gv]["paths"].values() for m, op in item.items()
               if m != "parameters" and op["x-kubernetes-group-version-kind"] == _gvk(r)}
    expected = {"list": "list", "create": "post", "deletecollection": "deletecollection", "get": "get",
                "update": "put", "patch": "patch", "delete": "delete"}
    assert actions == {expected[v] for v in r.served_verbs if v in expected}
    if r.kind == "Namespace":
        assert "deletecollection" not in actions


def test_subresources_are_documented_as_upstream_documents_them():
    paths = V3["api/v1"]["paths"]
    pod = "/api/v1/namespaces/{namespace}/pods/{name}"
    assert set(paths[pod + "/status"]) == {"get", "put", "patch", "parameters"}
    assert paths[pod + "/log"]["get"]["operationId"] == "readCoreV1NamespacedPodLog"
    assert {p["name"] for p in paths[pod + "/log"]["get"]["parameters"]} >= {"container", "follow", "tailLines"}
    exec_ = paths[pod + "/exec"]
    assert exec_["post"]["operationId"] == "connectCoreV1PostNamespacedPodExec"
    assert exec_["get"]["x-kubernetes-action"] == "connect"
    assert exec_["get"]["x-kubernetes-group-version-kind"] == {"group": "", "kind": "PodExecOptions", "version": "v1"}
    eviction = paths[pod + "/eviction"]["post"]
    assert eviction["x-kubernetes-group-version-kind"] == {"group": "policy", "kind": "Eviction", "version": "v1"}
    assert eviction["requestBody"]["content"]["*/*"]["schema"] == {"$ref": "#/components/schemas/io.k8s.api.policy.v1.Eviction"}
    binding = paths[pod + "/binding"]["post"]
    assert binding["requestBody"]["content"]["*/*"]["schema"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.Binding"}
    scale = V3["apis/apps/v1"]["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert scale["put"]["operationId"] == "replaceAppsV1NamespacedDeploymentScale"
    assert scale["patch"]["x-kubernetes-group-version-kind"] == {"group": "autoscaling", "kind": "Scale", "version": "v1"}
    definition = V3["apis/apps/v1"]["components"]["schemas"]["io.k8s.api.autoscaling.v1.Scale"]
    assert set(definition["properties"]) == {"apiVersion", "kind", "metadata", "spec", "status"}
    # only what the kind serves: a Service has no scale, a Deployment no log
    assert not [p for p in paths if p.startswith("/api/v1/namespaces/{namespace}/services/{name}/scale")]
    assert not [p for p in V3["apis/apps/v1"]["paths"] if p.endswith("/log")]


def test_explain_finds_each_kind_by_its_collection_path():
    """kubectl explain's template looks up the GVK on the operations of
    /api(s)/.../<plural> (namespaced or not) and then the definition with it."""
    for r in RESOURCES:
        gv = f"apis/{r.group}/{r.version}" if r.group else f"api/{r.version}"
        base = f"/{gv}/namespaces/{{namespace}}/{r.plural}" if r.namespaced else f"/{gv}/{r.plural}"
        assert V3[gv]["paths"][base]["get"]["x-kubernetes-group-version-kind"] == _gvk(r)


# -- serving ---------------------------------------------------------------------------


def test_the_index_carries_each_documents_hash_and_the_hash_is_its_bytes():
    code, headers, body = openapi.serve("GET", "/openapi/v3", {}, {})
    assert code == 200 and dict(headers)["Content-Type"] == "application/json"
    index = json.loads(body)["paths"]
    assert set(index) == set(V3)
    for gv, entry in index.items():
        url = entry["serverRelativeURL"]
        path, _, query = url.partition("?")
        assert path == f"/openapi/v3/{gv}" and query.startswith("hash=")
        code, headers, data = openapi.serve("GET", path, {"hash": query[5:]}, {"accept": "application/json"})
        assert code == 200
        assert query[5:] == hashlib.sha512(data).hexdigest().upper()
        h = dict(headers)
        assert h["Etag"] == f'"{query[5:]}"'
        assert h["Cache-Control"] == "public, immutable" and "Expires" in h
        assert json.loads(data)["openapi"].startswith("3.0.")


def test_documents_are_encoded_once():
    first = openapi.serve("GET", "/openapi/v3/api/v1", {}, {})[2]
    second = openapi.serve("GET", "/openapi/v3/api/v1", {}, {})[2]
    assert first is second


def test_a_stale_hash_is_redirected_to_the_current_document():
    code, headers, body = openapi.serve("GET", "/openapi/v3/apis/apps/v1", {"hash": "0" * 128}, {})
    etag = openapi.serve("GET", "/openapi/v3/apis/apps/v1", {}, {})[1]
    assert code == 301 and body == b""
    assert dict(headers)["Location"] == "/openapi/v3/apis/apps/v1?hash=" + dict(etag)["Etag"].strip('"')


def test_a_document_the_client_has_is_not_sent_again():
    _, headers, _ = openapi.serve("GET", "/openapi/v2", {}, {})
    etag = dict(headers)["Etag"]
    code, _, body = openapi.serve("GET", "/openapi/v2", {}, {"if-none-match": etag})
    assert code == 304 and body == b""
    code, _, body = openapi.serve("GET", "/openapi/v2", {}, {"if-none-match": '"other"'})
    assert code == 200 and json.loads(body)["swagger"] == "2.0"


def _fields(data: bytes) -> list[tuple[int, object]]:
    """A protobuf message's (field number, value) pairs: varints as ints,
    length-delimited fields as bytes (the test reads the wire format itself)."""
    out, i = [], 0

    def varint() -> int:
        nonlocal i
        n = shift = 0
        while True:
            b = data[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n

    while i < len(data):
        key = varint()
        if key & 7 == 0:
            out.append((key >> 3, varint()))
        elif key & 7 == 2:
            size = varint()
            out.append((key >> 3, data[i:i + size]))
            i += size
        else:
            raise AssertionError(f"wire type {key & 7}")
    return out


def _named(data: bytes, field: int) -> dict[str, bytes]:
    """The Named* entries (name = 1, value = 2) in `field` of a message."""
    out = {}
    for f, entry in _fields(data):
        if f == field:
            parts = dict(_fields(entry))
            out[parts[1].decode()] = parts.get(2, b"")
    return out


def test_the_v2_document_in_protobuf_is_the_same_document():
    """What client-go asks for (gnostic's openapi_v2.Document), read back
    field by field: kubectl validates `kind: List` manifests against it."""
    code, headers, data = openapi.serve("GET", "/openapi/v2", {}, {
        "accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"})
    assert code == 200
    assert dict(headers)["Content-Type"] == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    doc = dict(_fields(data))
    assert doc[1] == b"2.0"
    definitions = _named(doc[9], 1)  # Definitions{additional_properties = 1}
    assert set(definitions) == set(V2["definitions"])
    port = dict(_fields(definitions["io.k8s.api.core.v1.ServicePort"]))
    assert port[19] == b"port"  # required
    properties = _named(port[25], 1)
    assert set(properties) == set(V2["definitions"]["io.k8s.api.core.v1.ServicePort"]["properties"])
    target = dict(_fields(properties["targetPort"]))
    assert target[1] == b"#/definitions/io.k8s.apimachinery.pkg.util.intstr.IntOrString"
    number = dict(_fields(properties["port"]))
    assert dict(_fields(number[22]))[1] == b"integer" and number[2] == b"int32"
    pod = definitions["io.k8s.api.core.v1.Pod"]
    extensions = {k: dict(_fields(v))[2] for k, v in _named(pod, 31).items()}  # NamedAny{Any{yaml = 2}}
    assert json.loads(extensions["x-kubernetes-group-version-kind"]) == [{"group": "", "kind": "Pod", "version": "v1"}]
    containers = _named(dict(_fields(definitions["io.k8s.api.core.v1.PodSpec"]))[25], 1)["containers"]
    extensions = {k: dict(_fields(v))[2] for k, v in _named(containers, 31).items()}
    assert json.loads(extensions["x-kubernetes-patch-merge-key"]) == "name"
    # paths: the PATCH of pods carries its GVK and the fieldValidation query parameter
    paths = _named(dict(_fields(data))[8], 2)
    item = dict(_fields(paths["/api/v1/namespaces/{namespace}/pods/{name}"]))
    patch = _fields(item[8])
    gvk = dict(_fields(_named(item[8], 13)["x-kubernetes-group-version-kind"]))[2]  # Operation.vendor_extension
    assert json.loads(gvk) == {"group": "", "kind": "Pod", "version": "v1"}
    queries = []
    for f, p in patch:
        if f == 8:  # ParametersItem{parameter = 1: Parameter{non_body = 2: {query = 3}}}
            parameter = dict(_fields(dict(_fields(p))[1]))
            if 2 in parameter and 3 in dict(_fields(parameter[2])):
                queries.append(dict(_fields(dict(_fields(parameter[2]))[3]))[4].decode())
    assert "fieldValidation" in queries and "dryRun" in queries


def test_what_no_served_format_matches_is_not_acceptable():
    proto_v3 = {"accept": "application/com.github.proto-openapi.spec.v3@v1.0+protobuf"}
    assert openapi.serve("GET", "/openapi/v3/api/v1", {}, proto_v3)[0] == 406
    assert openapi.serve("GET", "/openapi/v2", {}, {"accept": "application/yaml"})[0] == 406
    for accept in ("application/json", "*/*", "application/json;q=0.5, application/yaml", ""):
        code, headers, _ = openapi.serve("GET", "/openapi/v2", {}, {"accept": accept})
        assert code == 200 and dict(headers)["Content-Type"] == "application/json"
    # the client's preference decides between the two forms
    code, headers, _ = openapi.serve("GET", "/openapi/v2", {}, {
        "accept": "application/json;q=0.5, application/com.github.proto-openapi.spec.v2.v1.0+protobuf"})
    assert dict(headers)["Content-Type"].endswith("+protobuf")


def test_unknown_documents_and_other_methods_are_refused():
    with pytest.raises(errors.ApiError) as e:
        openapi.serve("GET", "/openapi/v3/apis/batch/v1", {}, {})
    assert e.value.code == 404
    with pytest.raises(errors.ApiError) as e:
        openapi.serve("POST", "/openapi/v2", {}, {})
    assert e.value.code == 405
    code, _, body = openapi.serve("HEAD", "/openapi/v3", {}, {})
    assert code == 200 and body == b""


def test_documents_follow_the_records_they_are_built_from():
    """A record the cluster does not serve gets its document too: nothing is
    kept by kind outside resources.py and schema.py."""
    extra = by_kind("NetworkPolicy")._replace(version="v9")
    docs = openapi.v3_documents((*RESOURCES, extra))
    assert "apis/networking.k8s.io/v9" in docs
    gvks = [g for d in docs["apis/networking.k8s.io/v9"]["components"]["schemas"].values()
            for g in d.get("x-kubernetes-group-version-kind", [])]
    assert _gvk(extra) in gvks


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost")
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


def _get(server: LocalApiServer, path: str, headers: dict[str, str]) -> tuple[int, dict, bytes]:
    conn = _UnixHTTP(server.socket)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_the_api_server_serves_them_behind_its_credentials(tmp_path):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with LocalApiServer(tmp_path) as server:
        code, _, _ = _get(server, "/openapi/v3", {})
        assert code == 401
        code, headers, body = _get(server, "/openapi/v3", auth)
        assert code == 200
        url = json.loads(body)["paths"]["apis/apps/v1"]["serverRelativeURL"]
        code, headers, body = _get(server, url, {**auth, "Accept": "application/json"})
        assert code == 200 and headers["cache-control"] == "public, immutable"
        assert int(headers["content-length"]) == len(body)
        doc = json.loads(body)
        assert {"group": "apps", "version": "v1", "kind": "Deployment"} in \
            doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"]
        code, _, body = _get(server, url, {**auth, "If-None-Match": headers["etag"]})
        assert code == 304 and body == b""
        code, headers, body = _get(server, "/openapi/v2", {
            **auth, "Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"})
        assert code == 200 and headers["content-type"].endswith("+protobuf") and body[:5] == b"\n\x032.0"
        code, _, body = _get(server, "/openapi/v3/api/v1", {**auth, "Accept": "application/yaml"})
        assert code == 406
        code, _, body = _get(server, "/openapi/v3/apis/nothing/v1", auth)
        assert code == 404 and json.loads(body)["kind"] == "Status"
