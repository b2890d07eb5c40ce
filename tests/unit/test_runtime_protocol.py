"""The node runtime's protocol: requests checked field by field, the built-in
server's answers, and start/stop/list/watch over a real unix socket (a
container with no ports, so nothing binds outside a cluster's namespaces)."""

from __future__ import annotations

import json
import os
import socket
import threading

import pytest

from knet.node.runtime import BadRequest, Runtime, answer, parse_start

GOOD = {"id": "uid-1/web", "netns": "/proc/self/ns/net", "identity": "default/web", "hostname": "web",
        "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}], "labels": {"restartCount": 2}}


def test_parse_start_defaults_protocol_and_drops_duplicate_ports():
    spec = parse_start({**GOOD, "ports": [{"containerPort": 80}, {"containerPort": 80, "protocol": "TCP"},
                                          {"containerPort": 80, "protocol": "UDP"}]})
    assert spec["ports"] == [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 80, "protocol": "UDP"}]
    assert spec["labels"] == {"restartCount": 2}


@pytest.mark.parametrize("change,field", [
    ({"id": ""}, "id:"),
    ({"id": "no-slash"}, "id: Invalid value"),
    ({"netns": None}, "netns:"),
    ({"identity": 3}, "identity:"),
    ({"ports": {"containerPort": 80}}, "ports: must be a list"),
    ({"ports": [80]}, "ports[0]: must be an object"),
    ({"ports": [{"containerPort": 80}, {"containerPort": 0}]}, "ports[1].containerPort"),
    ({"ports": [{"containerPort": "80"}]}, "ports[0].containerPort"),
    ({"ports": [{"containerPort": True}]}, "ports[0].containerPort"),
    ({"ports": [{"containerPort": 80, "protocol": "ICMP"}]}, "ports[0].protocol: Unsupported value"),
    ({"labels": []}, "labels:"),
])
def test_parse_start_names_the_bad_field(change, field):
    with pytest.raises(BadRequest) as e:
        parse_start({**GOOD, **change})
    assert str(e.value).startswith(field)


def test_answers():
    peer = ("::ffff:10.244.1.7", 40000, 0, 0)
    assert answer("ns/p", "p", b"", peer) == b"ns/p\n"
    assert answer("ns/p", "p", b"hostname\n", peer) == b"p\n"
    assert answer("ns/p", "p", b"CLIENTIP\r\n", peer) == b"10.244.1.7:40000\n"
    http = answer("ns/p", "p", b"GET /clientip?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", peer)
    assert http.startswith(b"HTTP/1.1 200 OK\r\n") and http.endswith(b"\r\n\r\n10.244.1.7:40000\n")
    assert b"Content-Length: 17\r\n" in http
    assert answer("ns/p", "p", b"GET /healthz HTTP/1.0\r\n\r\n", peer).endswith(b"\r\n\r\nok\n")
    assert answer("ns/p", "p", b"GET /other HTTP/1.0\r\n\r\n", peer).endswith(b"\r\n\r\nns/p\n")


@pytest.fixture
def runtime(tmp_path):
    rt = Runtime(str(tmp_path / "runtime.sock"))
    rt.listen()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            rt.loop.run_once(0.02)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield rt
    stop.set()
    t.join(5)
    for c in list(rt.containers):
        rt.stop(c, "test over")


class Conn:
    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(path)
        self.f = self.sock.makefile("rb")

    def call(self, req) -> dict:
        self.sock.sendall((req if isinstance(req, bytes) else json.dumps(req).encode()) + b"\n")
        return self.read()

    def read(self) -> dict:
        return json.loads(self.f.readline())

    def close(self) -> None:
        self.f.close()
        self.sock.close()


def test_socket_is_root_only(runtime):
    assert os.stat(runtime.path).st_mode & 0o777 == 0o600


@pytest.mark.root
def test_start_is_idempotent_list_stop_and_watch(runtime):
    spec = {**GOOD, "ports": []}
    watcher = Conn(runtime.path)
    first = watcher.call({"op": "watch"})
    assert first["ok"] and first["containers"] == [] and first["seq"] == 0
    c = Conn(runtime.path)
    ping = c.call({"op": "ping"})
    assert ping["ok"] and ping["pid"] == os.getpid() and ping["boot"] == first["boot"]
    started = c.call({"op": "start", **spec})
    assert started["ok"] and started["existing"] is False
    rec = started["container"]
    assert (rec["id"], rec["uid"], rec["container"], rec["seq"]) == ("uid-1/web", "uid-1", "web", 1)
    assert rec["labels"] == {"restartCount": 2} and rec["startedAt"].endswith("Z")
    # What a restarted agent sees: the same container, not a new one.
    again = c.call({"op": "start", **spec, "labels": {"restartCount": 9}})
    assert again["existing"] is True and again["container"] == rec
    listing = c.call({"op": "list"})
    assert [x["id"] for x in listing["containers"]] == ["uid-1/web"] and listing["seq"] == 1
    assert c.call({"op": "stop", "id": "uid-1/web"}) == {"ok": True, "stopped": True}
    assert c.call({"op": "stop", "id": "uid-1/web"}) == {"ok": True, "stopped": False}
    event = watcher.read()
    assert event == {"event": "exited", "id": "uid-1/web", "boot": rec["boot"], "seq": 1, "reason": "Stopped"}
    restarted = c.call({"op": "start", **spec})
    assert restarted["existing"] is False and restarted["container"]["seq"] == 2
    c.close()
    watcher.close()


def test_bad_requests_are_answered_and_change_nothing(runtime):
    c = Conn(runtime.path)
    assert c.call(b"{not json")["reason"] == "BadRequest"
    assert c.call([1, 2])["error"] == "a request is a JSON object"
    assert c.call({"op": "explode"})["error"].startswith("op: Unsupported value 'explode'")
    bad = c.call({"op": "start", **GOOD, "ports": [{"containerPort": 70000}]})
    assert not bad["ok"] and bad["error"].startswith("ports[0].containerPort")
    missing = c.call({"op": "start", **GOOD, "netns": "/run/netns/knet-no-such-namespace"})
    assert not missing["ok"] and missing["error"].startswith("netns: Not found")
    assert c.call({"op": "stop"})["error"].startswith("id: Required value")
    assert c.call({"op": "list"})["containers"] == []  # the connection still serves after errors
    c.close()


def test_an_over_long_line_is_refused(runtime):
    c = Conn(runtime.path)
    c.sock.sendall(b"x" * (1 << 20) + b"y" * 70000)
    assert "longer than" in c.read()["error"]
    assert c.f.readline() == b""  # and the connection is closed
    c.close()


def test_agent_side_reconciles_a_listing_with_what_workers_believe_runs():
    """After a broken watch: a server missing from the runtime's listing (or a
    different one under its name) is gone; one started after the listing was
    taken is not judged by it."""
    from knet.node.cri import Handle, RuntimeClient

    def rec(cid: str, boot: str, seq: int) -> dict:
        return {"id": cid, "boot": boot, "seq": seq}

    client = RuntimeClient("/nonexistent")
    kept, replaced, missing, newer = (Handle(rec("a/s", "b1", 1)), Handle(rec("b/s", "b1", 2)),
                                      Handle(rec("c/s", "b1", 3)), Handle(rec("d/s", "b1", 5)))
    for h in (kept, replaced, missing, newer):
        client.handles[h.id] = h
    client._reconcile({"boot": "b1", "seq": 4, "containers": [rec("a/s", "b1", 1), rec("b/s", "b1", 4)]})
    assert not kept.gone.is_set() and not newer.gone.is_set()
    assert replaced.gone.is_set() and missing.gone.is_set()
    assert set(client.handles) == {"a/s", "d/s"}
    # A listing from a new runtime process: everything the old one ran is gone.
    client._reconcile({"boot": "b2", "seq": 0, "containers": []})
    assert kept.gone.is_set() and newer.gone.is_set() and client.handles == {}
