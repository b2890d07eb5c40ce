"""The API server's limits, over real HTTP on a unix socket, in-process:
request bodies (413 after reading the body, so the client sees it), objects
over etcd's 1.5 MiB (413, nothing stored), bad bodies (binary, deep, not an
object: 400, never 500), error values truncated, a stalled watcher closed
while a reading one gets every event, knet's reflector carrying on after the
server closes its watch, and a watch from a future resourceVersion (504)."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import trio

from knet.api.aclient import AsyncClient
from knet.api.client import Client
from knet.api.errors import ApiError
from knet.api.reflector import reflect
from knet.api.resources import by_kind
from knet.api.server import MAX_BODY
from knet.harness.apiserver import TOKEN, LocalApiServer
from knet.store.sqlite import MAX_VALUE_BYTES

PODS, SVC, NODES = by_kind("Pod"), by_kind("Service"), by_kind("Node")


@pytest.fixture
def server(tmp_path):
    s = LocalApiServer(tmp_path, services=False).start()
    yield s
    s.stop()


@pytest.fixture
def client(server):
    return Client(TOKEN, unix_path=server.socket)


def raw(server: LocalApiServer, request: bytes, timeout: float = 30) -> tuple[int, dict]:
    """Send bytes as they are; return the status code and the JSON body."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(server.socket)
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def post(path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


def service(name: str, **meta) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, **meta},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}}


def test_a_17_mib_annotation_is_413_naming_the_limit_and_nothing_is_stored(server, client):
    big = service("huge", annotations={"blob": "x" * (17 * 1024 * 1024)})
    with pytest.raises(ApiError) as e:
        client.create(SVC, "default", big)
    assert (e.value.code, e.value.reason) == (413, "RequestEntityTooLarge")
    assert e.value.message == f"Request entity too large: limit is {MAX_BODY}" == \
        "Request entity too large: limit is 3145728"
    with pytest.raises(ApiError) as e:
        client.get(SVC, "default", "huge")
    assert e.value.code == 404
    # The body was read to its end, so the same connection goes on serving.
    assert client.create(SVC, "default", service("small"))["metadata"]["name"] == "small"
    assert [s["metadata"]["name"] for s in client.list(SVC, "default")["items"]] == ["small"]


def test_an_object_over_etcds_limit_is_413_and_nothing_is_stored(server, client):
    rev = server.store.revision()
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "big"},
           "spec": {"containers": [{"name": "c", "image": "busybox", "args": ["x" * (2 * 1024 * 1024)]}]}}
    for query in ({"dryRun": "All"}, None):
        with pytest.raises(ApiError) as e:
            client.request("POST", PODS.path("default"), pod, query=query)
        assert (e.value.code, e.value.reason) == (413, "RequestEntityTooLarge")
        assert e.value.message.startswith("etcdserver: request is too large")
        assert str(MAX_VALUE_BYTES) in e.value.message
    assert server.store.revision() == rev
    assert client.list(PODS, "default")["items"] == []


@pytest.mark.parametrize("body, words", [
    (b"\xff\xfe\x00garbage\x80", ("UTF-8",)),
    (b'{"metadata": {"name": "\xc3\x28"}}', ("UTF-8",)),
    (b"[" * 100_000 + b"]" * 100_000, ("deep", "depth")),
    (b'{"a": ' * 100_000 + b"1" + b"}" * 100_000, ("deep", "depth")),
    (b"[1, 2, 3]", ("object", "cannot unmarshal array")),
    (b"{not json", ("JSON",)),
])
def test_a_body_that_cannot_be_decoded_is_400_never_500(server, body, words):
    rev = server.store.revision()
    code, status = raw(server, post("/api/v1/namespaces/default/pods", body))
    assert (code, status["reason"]) == (400, "BadRequest")
    assert any(w in status["message"] for w in words), status["message"]
    assert server.store.revision() == rev
    code, status = raw(server, post("/knet/v1/progress", b'{"component": "x", "observed": "many"}'))
    assert code == 400 and "observed" in status["message"]


def test_bad_parameters_and_bad_http_are_400(server, client):
    with pytest.raises(ApiError) as e:
        client.request("GET", NODES.path(None), query={"watch": "true", "resourceVersion": "abc"})
    assert e.value.code == 400 and "resourceVersion" in e.value.message
    client.create(PODS, "default", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    with pytest.raises(ApiError) as e:
        client.request("DELETE", PODS.path("default", "p"), query={"gracePeriodSeconds": "soon"})
    assert e.value.code == 400 and "gracePeriodSeconds" in e.value.message
    code, status = raw(server, b"GET /api/v1/pods HTTP/1.1\r\nHost: x\r\n" + b"X-Junk: " + b"a" * 100_000 + b"\r\n\r\n")
    assert code in (400, 431) and status["kind"] == "Status"
    code, status = raw(server, b"\x16\x03\x01 not http at all\r\n\r\n")
    assert code == 400 and status["kind"] == "Status"
    assert client.get(PODS, "default", "p")["metadata"]["name"] == "p"  # the server is still serving


def test_an_invalid_value_is_truncated_in_every_part_of_the_error(server, client):
    value = "y" * (1024 * 1024)
    bad = service("trunc", labels={"app": value})
    bad["spec"]["type"] = value
    with pytest.raises(ApiError) as e:
        client.create(SVC, "default", bad)
    assert e.value.code == 422
    status_size = len(json.dumps({"message": e.value.message, "details": e.value.details}))
    assert status_size < 8 * 1024  # not the 2 MiB of values sent
    fields = [c["field"] for c in e.value.details["causes"]]
    assert "spec.type" in fields and "metadata.labels" in fields
    for cause in e.value.details["causes"]:
        assert "...(truncated: 1048578 characters)" in cause["message"] or value[:300] not in cause["message"]
    assert "spec.type: Unsupported value: \"yyyy" in e.value.message
    assert "...(truncated: 1048578 characters)" in e.value.message
    with pytest.raises(ApiError):
        client.get(SVC, "default", "trunc")


def test_a_long_value_quoted_by_any_error_is_truncated(server, client):
    """Not only validation: every error that repeats part of a request (a kind,
    an apiVersion, a name) repeats at most the start of it."""
    for body in ({"apiVersion": "v1", "kind": "K" * 1_000_000, "metadata": {"name": "a"}},
                 {"apiVersion": "v" * 1_000_000, "kind": "Node", "metadata": {"name": "a"}}):
        with pytest.raises(ApiError) as e:
            client.create(NODES, None, body)
        assert 400 <= e.value.code < 500
        assert len(e.value.message) < 2048 and "truncated" in e.value.message
    with pytest.raises(ApiError) as e:
        client.get(NODES, None, "n" * 10_000)
    assert e.value.code == 404 and len(e.value.message) < 2048 and len(e.value.details["name"]) < 1024


def test_a_stalled_watcher_is_closed_while_a_reading_one_gets_every_event(server, client):
    """A raw watcher that never reads while 1,000 100 KB patches happen: its
    queue stays under the bound and the server closes it; a watcher that reads
    gets all 1,000 events, across the store's compactions."""
    node = client.create(NODES, None, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}})
    rv = node["metadata"]["resourceVersion"]
    stalled = socket.socket(socket.AF_UNIX)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(server.socket)
    stalled.sendall(f"GET /api/v1/nodes?watch=true&resourceVersion={rv} HTTP/1.1\r\nHost: x\r\n"
                    f"Authorization: Bearer {TOKEN}\r\n\r\n".encode())
    seen: list[int] = []

    def follow():
        for ev in Client(TOKEN, unix_path=server.socket).watch(NODES, None, resource_version=rv, timeout=120):
            if ev["type"] == "MODIFIED":
                seen.append(int(ev["object"]["metadata"]["annotations"]["i"]))
                if len(seen) == 1000:
                    return

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    pad = "z" * 100_000
    for i in range(1000):
        client.patch(NODES, None, "n", {"metadata": {"annotations": {"i": str(i), "pad": pad}}})
    reader.join(120)
    assert seen == list(range(1000))
    stats = server.api.watch_stats
    assert stats["closedBehind"] == 1
    assert stats["peakBufferedBytes"] <= server.api.watch_max_bytes
    assert server.store.oldest() > int(rv)  # the log was compacted under the reader
    stalled.settimeout(30)
    data = b""
    while chunk := stalled.recv(1 << 20):  # what the kernel held, then the server's close
        data += chunk
    stalled.close()
    assert 0 < data.count(b'"type":"MODIFIED"') < 1000


def test_knet_reflector_carries_on_after_the_server_closes_its_watch(tmp_path):
    """The server closes a watch whose handler is stuck while 300 writes
    happen; knet's reflector watches again from its revision, gets 410 (the
    store kept 30 revisions), lists again, and ends with every object's last
    version."""
    s = LocalApiServer(tmp_path, services=False, history=30).start()
    s.api.watch_max_events = 3
    try:
        c = Client(TOKEN, unix_path=s.socket)
        for i in range(5):
            c.create(NODES, None, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"n{i}"}})
        view: dict[str, str] = {}
        lists = []

        async def on_list(items, rv):
            lists.append(rv)
            view.clear()
            view.update({o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in items})

        async def on_event(kind, obj, rv):
            if kind != "BOOKMARK":
                view[obj["metadata"]["name"]] = obj["metadata"]["resourceVersion"]
                # A handler stuck (a slow netlink call, say) until every write is done.
                await trio.to_thread.run_sync(written.wait)

        final: dict[str, str] = {}
        written = threading.Event()

        async def main():
            api = AsyncClient("", 0, TOKEN, unix_path=s.socket)
            async with trio.open_nursery() as n:
                n.start_soon(reflect, api, NODES, on_list, on_event)
                with trio.move_on_after(60):
                    while not lists:
                        await trio.sleep(0.01)
                    n.start_soon(trio.to_thread.run_sync, write)
                    while not written.is_set() or view != final:
                        await trio.sleep(0.05)
                n.cancel_scope.cancel()

        def write():
            pad = "p" * 20_000
            for i in range(300):
                c.patch(NODES, None, f"n{i % 5}", {"metadata": {"annotations": {"i": str(i), "pad": pad}}})
            final.update({o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in c.list(NODES)["items"]})
            written.set()

        trio.run(main)
        assert view == final and len(final) == 5
        assert s.api.watch_stats["closedBehind"] >= 1
        assert len(lists) >= 2  # its revision was compacted away while it was closed: it listed again
    finally:
        s.stop()


def test_a_watch_or_list_from_a_future_revision_waits_then_is_504(server, client):
    future = server.store.revision() + 100
    with pytest.raises(ApiError) as e:
        next(iter(client.watch(NODES, None, resource_version=str(future), timeout=30)))
    assert (e.value.code, e.value.reason) == (504, "Timeout")
    assert e.value.message == f"Timeout: Too large resource version: {future}, current: {server.store.revision()}"
    assert e.value.details["causes"][0]["reason"] == "ResourceVersionTooLarge"
    with pytest.raises(ApiError) as e:
        client.request("GET", NODES.path(None), query={"resourceVersion": str(future)})
    assert e.value.code == 504


def test_a_watch_from_the_next_revision_waits_for_it(server, client):
    nxt = server.store.revision() + 1
    got = []

    def watch():
        for ev in Client(TOKEN, unix_path=server.socket).watch(NODES, None, resource_version=str(nxt), timeout=30):
            if ev["type"] != "BOOKMARK":
                got.append((ev["type"], ev["object"]["metadata"].get("name")))
                return

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    time.sleep(0.5)
    client.create(NODES, None, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "later"}})
    client.create(NODES, None, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "later2"}})
    t.join(10)
    assert got == [("ADDED", "later2")]
