"""What the API server reads and answers besides plain JSON: protobuf bodies
(client-go's typed clients) decoded to their JSON object or refused with
415, CBOR refused with 415 (client-go then falls back to JSON), an Accept
without JSON 406, /version/ with a slash; and WatchList's initial events
ended by the k8s.io/initial-events-end bookmark. Against the real server
in this process (knet.harness.apiserver) where HTTP is involved."""

from __future__ import annotations

import json

import pytest

from knet.api import protobuf, server
from knet.api.client import _Connection
from knet.harness.apiserver import TOKEN

# -- a protobuf encoder of the test's own, to build bodies as client-go sends them ----------


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_varint(num: int, n: int) -> bytes:
    return varint(num << 3) + varint(n)


def f_bytes(num: int, data: bytes | str) -> bytes:
    data = data.encode() if isinstance(data, str) else data
    return varint(num << 3 | 2) + varint(len(data)) + data


def entry(num: int, key: str, value: str) -> bytes:
    return f_bytes(num, f_bytes(1, key) + f_bytes(2, value))


def unknown(api_version: str, kind: str, raw: bytes) -> bytes:
    return b"k8s\x00" + f_bytes(1, f_bytes(1, api_version) + f_bytes(2, kind)) + f_bytes(2, raw) + f_bytes(3, "") \
        + f_bytes(4, "")


# ObjectMeta as Go marshals it: every non-pointer field on the wire, empty ones too.
def meta(name: str, labels: dict[str, str], created: int = 0) -> bytes:
    out = f_bytes(1, name) + f_bytes(2, "") + f_bytes(3, "") + f_bytes(4, "") + f_bytes(5, "") + f_bytes(6, "")
    out += f_varint(7, 0) + f_bytes(8, f_varint(1, created) + f_varint(2, 0))
    for k, v in labels.items():
        out += entry(11, k, v)
    return out


DEPLOYMENT = unknown("apps/v1", "Deployment", (
    f_bytes(1, meta("web", {"app": "web"}))
    + f_bytes(2, f_varint(1, 0)  # replicas: 0, a pointer: kept
              + f_bytes(2, entry(1, "app", "web"))
              + f_bytes(3, f_bytes(1, meta("", {"app": "web"})) + f_bytes(2, (
                  f_bytes(2, f_bytes(1, "c") + f_bytes(2, "agnhost") + f_bytes(5, "")
                          + f_bytes(6, f_bytes(1, "") + f_varint(2, 0) + f_varint(3, 80) + f_bytes(4, "TCP")
                                    + f_bytes(5, ""))
                          + f_bytes(8, b"") + f_varint(16, 0))
                  + f_bytes(3, "") + f_bytes(6, "") + f_varint(11, 0) + f_bytes(19, ""))))
              + f_bytes(4, f_bytes(1, ""))  # strategy: {type: ""}, dropped as omitempty drops it
              + f_varint(5, 0) + f_varint(7, 0))
    + f_bytes(3, f_varint(1, 0) + f_varint(2, 0) + f_varint(3, 0))))


def test_protobuf_deployment_decodes_to_its_json():
    assert protobuf.decode(DEPLOYMENT) == {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "agnhost",
                                                       "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}}}


def test_protobuf_int_or_string_time_and_negative_numbers():
    port = f_bytes(1, "http") + f_varint(3, 80) + f_bytes(4, f_varint(1, 0) + f_varint(2, 8080))
    named = f_varint(3, 81) + f_bytes(4, f_varint(1, 1) + f_bytes(3, "web"))
    svc = unknown("v1", "Service", f_bytes(1, meta("s", {}, created=1_700_000_000))
                  + f_bytes(2, f_bytes(1, port) + f_bytes(1, named) + entry(2, "app", "web") + f_bytes(4, "NodePort")))
    assert protobuf.decode(svc) == {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "s", "creationTimestamp": "2023-11-14T22:13:20Z"},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}, {"port": 81, "targetPort": "web"}],
                 "selector": {"app": "web"}, "type": "NodePort"}}
    pod = unknown("v1", "Pod", f_bytes(1, meta("p", {})) + f_bytes(2, f_varint(4, -1)))  # a pointer int64
    assert protobuf.decode(pod)["spec"] == {"terminationGracePeriodSeconds": -1}


@pytest.mark.parametrize("body,why", [
    (unknown("v1", "Namespace", f_bytes(1, meta("n", {})) + f_bytes(9, "?")), "field 9 of Namespace"),
    (unknown("v1", "Frobnicator", b""), "kind 'Frobnicator'"),
    (b'{"kind": "Namespace"}', "magic"),
    (unknown("v1", "Pod", f_bytes(2, f_bytes(1, f_bytes(1, "v") + f_bytes(2, f_bytes(26, b""))))), "any"),
])
def test_protobuf_that_does_not_map_exactly_is_unsupported(body, why):
    with pytest.raises(protobuf.Unsupported) as e:
        protobuf.decode(body)
    assert why in str(e.value)


@pytest.mark.parametrize("body", [
    unknown("v1", "Namespace", f_bytes(1, f_bytes(1, b"\x80"))),  # not UTF-8
    DEPLOYMENT[:-3],  # cut short
    b"k8s\x00\x0a\xff",
])
def test_bytes_that_are_not_protobuf_are_malformed(body):
    with pytest.raises(protobuf.Malformed):
        protobuf.decode(body)


def test_every_field_of_the_schema_has_its_number():
    """What the JSON decoder accepts, the protobuf decoder can place: a field
    left without a number would make a whole kind refused."""
    from knet.api import schema
    inline_only = {n for numbers in protobuf.FIELDS.values() for n, _p, i in numbers.values() if i}
    for name, numbers in protobuf.FIELDS.items():
        types = schema.STRUCTS.get(name) or protobuf.EXTRA_STRUCTS.get(name)
        if types is None:
            assert name in inline_only, name  # an embedded struct: its fields are its parent's in the schema
            continue
        named = {n for n, _ptr, inline in numbers.values() if not inline}
        for _n, _ptr, inline in numbers.values():
            if inline:
                named |= {n for n, _p, i in protobuf.FIELDS[_n].values() if not i}
        missing = {f for f in types if f not in ("kind", "apiVersion")} - named
        assert not missing, (name, missing)


# -- over HTTP -------------------------------------------------------------------------------


def call(server_, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    conn = _Connection(server_.socket, None, 0, 10)
    try:
        conn.send(method, path, {"Authorization": f"Bearer {TOKEN}", **(headers or {})}, body)
        status, h = conn.response()
        return status, json.loads(b"".join(conn.body(h)) or b"{}")
    finally:
        conn.close()


def test_protobuf_create_over_http(server):
    ns = unknown("v1", "Namespace", f_bytes(1, meta("from-proto", {"a": "b"})) + f_bytes(2, b"") + f_bytes(3, f_bytes(1, "")))
    status, out = call(server, "POST", "/api/v1/namespaces", ns, {
        "Content-Type": "application/vnd.kubernetes.protobuf", "Accept": "application/vnd.kubernetes.protobuf,application/json"})
    assert status == 201, out
    assert out["metadata"]["name"] == "from-proto" and out["metadata"]["labels"]["a"] == "b"
    bad = unknown("v1", "Namespace", f_bytes(1, meta("never", {})) + f_bytes(7, "x"))
    status, out = call(server, "POST", "/api/v1/namespaces", bad, {"Content-Type": "application/vnd.kubernetes.protobuf"})
    assert (status, out["reason"]) == (415, "UnsupportedMediaType")
    assert call(server, "GET", "/api/v1/namespaces/never")[0] == 404


@pytest.mark.parametrize("ctype,method", [("application/cbor", "POST"), ("application/apply-patch+cbor", "PATCH"),
                                          ("application/cbor; charset=binary", "PUT")])
def test_cbor_gets_415_with_kubernetes_status(server, ctype, method):
    path = "/api/v1/namespaces" + ("" if method == "POST" else "/default")
    status, out = call(server, method, path, b"\xa3\x64kind", {"Content-Type": ctype})
    assert status == 415
    assert out["kind"] == "Status" and out["reason"] == "UnsupportedMediaType" and out["code"] == 415
    assert out["message"].startswith("the body of the request was in an unknown format - accepted media types include:")
    assert ("application/merge-patch+json" in out["message"]) == (method == "PATCH")


def test_accept_negotiation(server):
    status, out = call(server, "GET", "/api/v1/namespaces/default",
                       headers={"Accept": "application/vnd.kubernetes.protobuf, application/json"})
    assert status == 200 and out["metadata"]["name"] == "default"
    status, out = call(server, "GET", "/api/v1/namespaces/default",
                       headers={"Accept": "application/vnd.kubernetes.protobuf"})
    assert (status, out["reason"]) == (406, "NotAcceptable")


def test_version_with_and_without_slash(server):
    a, b = call(server, "GET", "/version"), call(server, "GET", "/version/")
    assert a == b and a[0] == 200
    assert a[1]["major"] == "1" and a[1]["gitVersion"].startswith(f"v1.{a[1]['minor']}.")


def test_unsupported_media_type_is_none_for_json():
    req = server.Request("POST", "/api/v1/namespaces", {}, {"content-type": "application/json"}, b"{}")
    assert server.unsupported_media_type(req) is None
    req.headers["content-type"] = "application/cbor"
    assert server.unsupported_media_type(req).code == 415
    req.body = b""
    assert server.unsupported_media_type(req) is None  # no body: nothing to refuse


# -- WatchList ---------------------------------------------------------------------------------


def watch_lines(server_, query: str):
    conn = _Connection(server_.socket, None, 0, 10)
    conn.send("GET", "/api/v1/namespaces/default/services?watch=true&" + query,
              {"Authorization": f"Bearer {TOKEN}"}, None)
    status, headers = conn.response()
    if status >= 400:
        out = json.loads(b"".join(conn.body(headers)))
        conn.close()
        return status, out, None
    pending = b""

    def events():
        nonlocal pending
        for chunk in conn.body(headers):
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                yield json.loads(line)
    return status, events(), conn


def svc(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": {"ports": [{"port": 80}]}}


def test_send_initial_events_ends_with_the_bookmark(server):
    from knet.api.resources import by_kind
    client = server.client()
    for n in ("a", "b"):
        client.create(by_kind("Service"), "default", svc(n))
    listed = client.list(by_kind("Service"), "default")
    status, events, conn = watch_lines(
        server, "sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&resourceVersion="
        + listed["metadata"]["resourceVersion"])
    try:
        assert status == 200
        initial = []
        for ev in events:
            if ev["type"] == "BOOKMARK":
                bookmark = ev["object"]
                break
            initial.append((ev["type"], ev["object"]["metadata"]["name"]))
        assert sorted(initial) == [("ADDED", "a"), ("ADDED", "b"), ("ADDED", "kubernetes")]
        assert bookmark["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
        assert bookmark["kind"] == "Service"
        assert int(bookmark["metadata"]["resourceVersion"]) >= int(listed["metadata"]["resourceVersion"])
        client.create(by_kind("Service"), "default", svc("c"))
        ev = next(events)
        assert (ev["type"], ev["object"]["metadata"]["name"]) == ("ADDED", "c")
    finally:
        conn.close()


def test_no_bookmark_unless_asked(server):
    from knet.api.resources import by_kind
    client = server.client()
    status, events, conn = watch_lines(server, "")
    try:
        assert next(events)["type"] == "ADDED"  # default/kubernetes
        client.create(by_kind("Service"), "default", svc("d"))
        ev = next(events)
        assert (ev["type"], ev["object"]["metadata"]["name"]) == ("ADDED", "d")
    finally:
        conn.close()


@pytest.mark.parametrize("query,field", [
    ("sendInitialEvents=true&allowWatchBookmarks=true", "resourceVersionMatch"),
    ("sendInitialEvents=true&resourceVersionMatch=NotOlderThan", "allowWatchBookmarks"),
    ("resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true", "resourceVersionMatch"),
])
def test_watch_list_options_are_validated(server, query, field):
    status, out, _ = watch_lines(server, query)
    assert status == 422 and out["reason"] == "Invalid"
    assert out["details"]["causes"][0]["field"] == field


def test_protobuf_eviction_and_access_review():
    """What `kubectl drain` and `kubectl auth can-i` send with their typed clients."""
    ev = unknown("policy/v1", "Eviction", f_bytes(1, meta("web-1", {})) + f_bytes(2, f_varint(1, 0) + f_bytes(5, "All")))
    assert protobuf.decode(ev) == {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web-1"},
                                   "deleteOptions": {"gracePeriodSeconds": 0, "dryRun": ["All"]}}
    attrs = f_bytes(1, "default") + f_bytes(2, "list") + f_bytes(3, "") + f_bytes(4, "") + f_bytes(5, "pods") \
        + f_bytes(6, "") + f_bytes(7, "")
    ssar = unknown("authorization.k8s.io/v1", "SelfSubjectAccessReview",
                   f_bytes(1, meta("", {})) + f_bytes(2, f_bytes(1, attrs))
                   + f_bytes(3, f_varint(1, 0) + f_varint(4, 0) + f_bytes(2, "") + f_bytes(3, "")))
    assert protobuf.decode(ssar)["spec"] == {"resourceAttributes": {"namespace": "default", "verb": "list",
                                                                    "resource": "pods"}}
