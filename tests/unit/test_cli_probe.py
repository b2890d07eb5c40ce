"""`knet probe` without root: which pods take part and why the others do not,
the pairs and the addresses they dial (pod IPs, ClusterIPs), the matrix text
and totals, -o json, --expect and the one-line errors, through the real
parser and main() against knet's API server in this process. The kernel seam
(the prober, and finding a pod's network namespace) is replaced by a table of
what connects; the prober itself is exercised on real sockets on 127.0.0.1
(a socket made without entering a namespace stays in this one)."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from knet.api.resources import by_kind
from knet.cli import probe
from knet.policy.matrix import Matrix

PODS, NAMESPACES, SERVICES = by_kind("Pod"), by_kind("Namespace"), by_kind("Service")
MODEL = [f"{ns}/{p}" for ns in "xyz" for p in "abc"]


def pod(name: str, namespace: str, ip: str | None = "10.244.1.2", phase: str = "Running",
        node: str | None = "worker-1", **labels: str) -> dict:
    spec = {"containers": [{"name": "c", "image": "agnhost", "ports": [{"containerPort": 80}]}]}
    if node:
        spec["nodeName"] = node
    status = {"phase": phase}
    if ip:
        status["podIP"] = ip
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace,
                                                           "labels": labels or {"pod": name}},
            "spec": spec, "status": status}


def store_pod(client, obj: dict) -> dict:
    """Create a pod and give it the status its node would post."""
    status = obj.pop("status")
    made = client.create(PODS, obj["metadata"]["namespace"], obj)
    made["status"] = status
    return client.update(PODS, obj["metadata"]["namespace"], obj["metadata"]["name"], made, "status")


def service(name: str, namespace: str, selector: dict, ports=((80, "TCP"),), cluster_ip: str | None = None) -> dict:
    spec = {"selector": selector, "ports": [{"name": f"p{port}{proto.lower()}", "port": port, "protocol": proto}
                                            for port, proto in ports]}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def blocked_into_y_on_80(p: probe.Probe) -> bool:
    """The connectivity the fake prober reports: everything into namespace y
    on port 80 is blocked, the rest connects."""
    return not (p.server.startswith("y/") and p.port == 80)


@pytest.fixture
def dialled(monkeypatch, tmp_path):
    """Replace the kernel seam: `run` answers from a table and records what it
    was asked; every pod's namespace is "there" (root is not needed); the UDP
    source-port counter is a file of the test's."""
    asked: list[probe.Probe] = []
    table = {"connects": blocked_into_y_on_80}

    def fake_run(probes, timeout):
        asked.extend(probes)
        return [probe.Outcome(p, table["connects"](p), "fake") for p in probes]

    monkeypatch.setattr(probe, "run", fake_run)
    monkeypatch.setattr(probe, "require_root", lambda: None)
    monkeypatch.setattr(probe, "_cluster_netns", lambda cluster: lambda p: f"/run/netns/{p['metadata']['uid']}")
    monkeypatch.setattr(probe, "_cluster_ports", lambda cluster, count: probe.next_ports(str(tmp_path / "ports"), count))
    return asked, table


@pytest.fixture
def model(server):
    """Upstream's model: namespaces x, y, z with pods a, b, c, and one Service s-<ns>-<pod> each."""
    client = server.client()
    n = 2
    for ns in "xyz":
        client.create(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": ns, "labels": {"ns": ns}}})
        for p in "abc":
            store_pod(client, pod(p, ns, ip=f"10.244.1.{n}"))
            client.create(SERVICES, ns, service(f"s-{ns}-{p}", ns, {"pod": p}, ((80, "TCP"), (81, "UDP"))))
            n += 1
    return client


# -- selection ---------------------------------------------------------------------------------


def test_select_keeps_running_pods_with_an_ip_and_says_why_it_skips_the_others():
    pods = [pod("web", "x"), pod("new", "x", ip=None, phase="Pending"), pod("starting", "x", ip=None),
            pod("floating", "x", node=None, phase="Pending", ip=None), pod("done", "x", phase="Succeeded"),
            pod("gone", "x"), pod("elsewhere", "y")]
    pods[5]["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    chosen, skipped = probe.select(pods, lambda p: None if p["metadata"]["name"] == "elsewhere" else "/run/netns/p")
    assert [(t.name, t.ip, t.netns) for t in chosen] == [("x/web", "10.244.1.2", "/run/netns/p")]
    assert skipped == [("x/done", "phase Succeeded"), ("x/floating", "not scheduled to a node"),
                       ("x/gone", "terminating"), ("x/new", "phase Pending"), ("x/starting", "no IP yet"),
                       ("y/elsewhere", "its network namespace is not there")]


def test_plan_pairs_every_client_with_every_server_for_every_port_and_protocol():
    targets = [probe.Target(f"x/{n}", f"10.0.0.{i}", f"/ns/{n}", pod(n, "x")) for i, n in enumerate("ab", 1)]
    probes, notes = probe.plan(targets, targets, [80, 81], ["TCP", "UDP"])
    assert notes == []
    assert len(probes) == 2 * 2 * 2 * 2
    assert {(p.client, p.server, p.netns, p.address) for p in probes} == {
        ("x/a", "x/a", "/ns/a", "10.0.0.1"), ("x/b", "x/a", "/ns/b", "10.0.0.1"),
        ("x/a", "x/b", "/ns/a", "10.0.0.2"), ("x/b", "x/b", "/ns/b", "10.0.0.2")}
    assert {(p.port, p.protocol) for p in probes} == {(80, "TCP"), (81, "TCP"), (80, "UDP"), (81, "UDP")}


def test_a_service_for_a_server_is_the_most_specific_one_with_the_port():
    a, b = pod("a", "x", app="web", tier="a"), pod("b", "x", app="web", tier="b")
    target = probe.Target("x/a", "10.0.0.1", None, a)
    services = [
        service("all-web", "x", {"app": "web"}, cluster_ip="10.96.0.20"),
        service("just-a", "x", {"tier": "a"}, cluster_ip="10.96.0.21"),
        service("just-a-udp", "x", {"tier": "a"}, ((80, "UDP"),), cluster_ip="10.96.0.22"),
        service("other-ns", "y", {"tier": "a"}, cluster_ip="10.96.0.23"),
        service("headless", "x", {"tier": "a"}, cluster_ip="None"),
    ]
    assert probe.service_for(target, 80, "TCP", services, [a, b]) == ("10.96.0.21", "just-a")
    assert probe.service_for(target, 80, "UDP", services, [a, b]) == ("10.96.0.22", "just-a-udp")
    assert probe.service_for(target, 81, "TCP", services, [a, b]) is None
    probes, notes = probe.plan([target], [target], [80, 81], ["TCP"], services, [a, b])
    assert [(p.address, p.port) for p in probes] == [("10.96.0.21", 80)]
    assert notes == ["no Service selects x/a on port 81/TCP: its column is not probed"]


# -- the command ---------------------------------------------------------------------------------


def test_probe_prints_upstreams_matrix_and_the_totals(knet, model, dialled):
    code, out, err = knet("probe", "-n", "x,y,z")
    assert (code, err) == (0, "")
    expected = Matrix(MODEL).expect_peer("*", "y/*", False)
    title, *rest = out.split("\n\n")[0].splitlines()
    assert title == "TCP/80"
    assert "\n".join(rest) == expected.format()
    assert Matrix.parse(out) == expected
    assert "TCP/80: 81 probed, 54 connected, 27 blocked" in out.splitlines()
    asked, _ = dialled
    assert len(asked) == 81 and {p.port for p in asked} == {80}


def test_probe_takes_namespaces_selectors_ports_and_protocols(knet, model, dialled):
    asked, _ = dialled
    code, out, err = knet("probe", "-n", "x,y", "-l", "pod in (a,b)", "--port", "80,81", "--protocol", "tcp,UDP")
    assert (code, err) == (0, "")
    assert {p.client for p in asked} == {"x/a", "x/b", "y/a", "y/b"}
    assert len(asked) == 4 * 4 * 2 * 2
    assert [line for line in out.splitlines() if line[:4] in ("TCP/", "UDP/") and ":" not in line] == \
        ["TCP/80", "TCP/81", "UDP/80", "UDP/81"]
    assert "UDP/81: 16 probed, 16 connected, 0 blocked" in out
    asked.clear()
    code, out, err = knet("probe", "-A", "-l", "pod=c")
    assert code == 0
    assert {p.client for p in asked} == {"x/c", "y/c", "z/c"}


def test_udp_probes_of_successive_runs_never_share_a_source_port(knet, model, dialled):
    """A UDP probe reusing a recent flow's 5-tuple would be let through by
    conntrack whatever the policy says now: each run takes fresh ports."""
    asked, _ = dialled
    runs = []
    for _ in range(3):
        asked.clear()
        assert knet("probe", "-n", "x,y,z", "--port", "80,81", "--protocol", "TCP,UDP")[0] == 0
        runs.append(list(asked))
    for probes in runs:
        assert all(p.source_port is None for p in probes if p.protocol == "TCP")
        udp = [p for p in probes if p.protocol == "UDP"]
        assert len(udp) == 2 * 81 and all(probe.PORT_RANGE[0] <= p.source_port < probe.PORT_RANGE[1] for p in udp)
        by_client = {}
        for p in udp:
            by_client.setdefault(p.client, []).append(p.source_port)
        assert all(len(set(ports)) == 18 for ports in by_client.values())  # 9 servers x 2 ports each
    ports = [{p.source_port for p in probes if p.protocol == "UDP"} for probes in runs]
    assert not ports[0] & ports[1] and not ports[1] & ports[2] and not ports[0] & ports[2]


def test_the_port_counter_moves_on_wraps_and_starts_anywhere(tmp_path):
    state = str(tmp_path / "ports")
    first = probe.next_ports(state, 10, (1000, 1050))
    assert 1000 <= first <= 1040
    assert probe.next_ports(state, 10, (1000, 1050)) == (first + 10 if first + 20 <= 1050 else 1000)
    with open(state, "w") as f:
        f.write("1045")
    assert probe.next_ports(state, 10, (1000, 1050)) == 1000   # 1045..1054 would leave the range
    assert probe.next_ports(state, 10, (1000, 1050)) == 1010
    assert probe.next_ports(state, 51, (1000, 1050)) is None    # more than the range holds: the kernel picks
    assert probe.next_ports(state, 0, (1000, 1050)) is None
    assert 1000 <= probe.next_ports(None, 10, (1000, 1050)) <= 1040


def test_probe_json_is_one_record_per_pair(knet, model, dialled):
    code, out, err = knet("probe", "-n", "x,y", "-l", "pod=a", "--protocol", "UDP", "-o", "json")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "[" and lines[-1] == "]" and len(lines) == 4 + 2
    records = json.loads(out)
    assert sorted(records, key=lambda r: (r["from"], r["to"])) == [
        {"from": "x/a", "to": "x/a", "port": 80, "protocol": "UDP", "connected": True},
        {"from": "x/a", "to": "y/a", "port": 80, "protocol": "UDP", "connected": False},
        {"from": "y/a", "to": "x/a", "port": 80, "protocol": "UDP", "connected": True},
        {"from": "y/a", "to": "y/a", "port": 80, "protocol": "UDP", "connected": False}]


def test_probe_lists_the_pods_it_skips(knet, model, server, dialled):
    store_pod(server.client(), pod("pending", "x", ip=None, phase="Pending"))
    code, out, err = knet("probe", "-n", "x")
    assert code == 0
    assert err == "skipped x/pending: phase Pending\n"
    assert Matrix.parse(out).froms == ("x/a", "x/b", "x/c")
    assert "3 probes" not in out and "9 probes in" in out and "1 pods skipped" in out


def test_probe_through_services_dials_cluster_ips_and_names_servers_without_one(knet, model, server, dialled):
    asked, _ = dialled
    client = server.client()
    ips = {(s["metadata"]["namespace"], s["spec"]["selector"]["pod"]): s["spec"]["clusterIP"]
           for s in client.list(SERVICES, None)["items"] if s["metadata"]["namespace"] in "xyz"}
    client.delete(SERVICES, "z", "s-z-b")
    code, out, err = knet("probe", "-n", "x,y,z", "--to-service", "--protocol", "TCP,UDP", "--port", "81")
    assert code == 0
    assert err.splitlines() == [f"no Service selects {p} on port 81/TCP: its column is not probed" for p in MODEL] \
        + ["no Service selects z/b on port 81/UDP: its column is not probed"]
    tcp, udp = out.split("\n\n")[:2]
    assert set(Matrix.parse(tcp).values.values()) == {None}
    assert "TCP/81: 0 probed, 0 connected, 0 blocked, 81 not probed" in out
    assert {(p.server, p.address) for p in asked} == {
        (f"{ns}/{p}", ips[(ns, p)]) for ns, p in ips if (ns, p) != ("z", "b")}
    assert "UDP/81 through ClusterIPs" in udp
    assert Matrix.parse(udp).get("x/a", "z/b") is None
    assert "UDP/81: 72 probed, 72 connected, 0 blocked, 9 not probed" in out


def test_expect_passes_on_its_own_output_and_names_each_difference(knet, model, dialled, tmp_path):
    _, table = dialled
    code, out, _ = knet("probe", "-n", "x,y,z", "--port", "80,81")
    assert code == 0
    saved = tmp_path / "expected.txt"
    saved.write_text(out)
    assert knet("probe", "-n", "x,y,z", "--port", "80,81", "--expect", str(saved))[0] == 0
    # Now x/a cannot reach z/b on 81, and x/b reaches y/c on 80.
    table["connects"] = lambda p: (blocked_into_y_on_80(p) != ((p.client, p.server, p.port) == ("x/b", "y/c", 80))
                                   and (p.client, p.server, p.port) != ("x/a", "z/b", 81))
    code, out, err = knet("probe", "-n", "x,y,z", "--port", "80,81", "--expect", str(saved))
    assert code == 1
    assert err.splitlines() == ["TCP/80 x/b -> y/c: expected X, observed .",
                                "TCP/81 x/a -> z/b: expected ., observed X",
                                f"2 differences from {saved}"]


def test_expect_ignores_loopback_and_unknowns_and_takes_one_untitled_matrix_for_every_port(knet, model, dialled,
                                                                                           tmp_path):
    expected = Matrix(MODEL).expect_peer("*", "y/*", False)
    expected.expect("y/a", "y/a", True)  # the diagonal is not judged (upstream's ignoreLoopback)
    expected.expect("x/a", "y/b", None)  # nor a pair expected "?"
    saved = tmp_path / "m.txt"
    saved.write_text(expected.format() + "\n")
    assert knet("probe", "-n", "x,y,z", "--protocol", "TCP,UDP", "--expect", str(saved))[0] == 0
    code, _, err = knet("probe", "-n", "x,y,z", "--port", "81", "--expect", str(saved))
    # On 81 everything connects: 27 pairs into y expected blocked, less y's 3 to themselves and x/a -> y/b.
    assert code == 1 and err.splitlines()[-1] == f"23 differences from {saved}"


def test_expect_names_pods_missing_on_either_side(knet, model, dialled, tmp_path):
    saved = tmp_path / "m.txt"
    saved.write_text("TCP/80\n" + Matrix(["x/a", "x/b", "q/z"]).format() + "\n")
    code, _, err = knet("probe", "-n", "x", "--expect", str(saved))
    assert code == 1
    assert err.splitlines() == ["TCP/80 q/z: expected, not probed", "TCP/80 x/c: probed, not in the expected matrix",
                                f"2 differences from {saved}"]
    code, _, err = knet("probe", "-n", "x", "--protocol", "UDP", "--expect", str(saved))
    assert code == 1 and err.splitlines()[0] == "UDP/80: no expected matrix for it in the file"


@pytest.mark.parametrize("argv, message", [
    (["-n", "x,nope"], 'Error from server (NotFound): namespaces "nope" not found'),
    (["-n", "x", "-l", "pod in (a"], "Error from server (BadRequest): unable to parse requirement"),
    (["-n", "x", "-A"], "error: -n and -A are exclusive"),
    (["-n", "x", "--port", "80,http"], "error: --port: invalid port 'http'"),
    (["-n", "x", "--port", "70000"], "error: --port: invalid port '70000'"),
    (["-n", "x", "--protocol", "SCTP"], "error: --protocol: unsupported value 'SCTP'"),
    (["-n", "x", "--timeout", "0"], "error: --timeout: invalid value 0.0"),
    (["-n", "x", "-l", "pod=q"], "error: no pod to probe in x matching 'pod=q'"),
    (["-n", "x", "--expect", "/nonexistent/m.txt"], "error: --expect: /nonexistent/m.txt: no such file"),
])
def test_errors_are_one_line_and_name_the_problem(knet, model, dialled, argv, message):
    asked, _ = dialled
    code, out, err = knet("probe", *argv)
    assert (code, out) == (1, "")
    assert len(err.splitlines()) == 1 and err.startswith(message), err
    assert asked == []


def test_a_bad_expect_file_names_the_line(knet, model, dialled, tmp_path):
    saved = tmp_path / "m.txt"
    saved.write_text("TCP/80\n-\tx/a\tx/b\nx/a\t.\tY\n")
    code, _, err = knet("probe", "-n", "x", "--expect", str(saved))
    assert code == 1
    assert err.startswith(f"error: --expect: {saved}: the matrix for TCP/80: line 3: row x/a: 'Y' is not one of")
    saved.write_text("nothing here\n")
    assert "no matrix found" in knet("probe", "-n", "x", "--expect", str(saved))[2]


# -- the prober on real sockets (no namespace entered: this one's loopback) ----------------------------


def udp_server(answer: bytes | None) -> tuple[socket.socket, threading.Thread]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.1)

    def serve() -> None:
        while s.fileno() != -1:
            try:
                _, peer = s.recvfrom(100)
            except (TimeoutError, OSError):
                continue
            if answer is not None:
                s.sendto(answer, peer)
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return s, t


def test_run_makes_real_connections_and_judges_udp_answers():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
    right, _ = udp_server(b"x/b\n")
    wrong, _ = udp_server(b"x/c\n")
    other, _ = udp_server(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    silent, _ = udp_server(None)
    try:
        def p(server: str, sock: socket.socket, proto: str) -> probe.Probe:
            return probe.Probe("x/a", server, None, "127.0.0.1", sock.getsockname()[1], proto)
        probes = [p("x/b", listener, "TCP"), p("x/b", closed, "TCP"), p("x/b", right, "UDP"), p("x/b", wrong, "UDP"),
                  p("x/b", other, "UDP"), p("x/b", silent, "UDP")] * 3
        outcomes = probe.run(probes, timeout=0.6)
        assert [o.probe for o in outcomes] == probes
        assert [(o.connected, o.detail) for o in outcomes] == [
            (True, "connected"), (False, "refused"), (True, "connected"), (False, "answered by x/c"),
            (True, "connected (answer not from knet's built-in server)"), (False, "timeout")] * 3
    finally:
        for s in (listener, closed, right, wrong, other, silent):
            s.close()


def test_run_sends_from_the_source_port_asked_for_or_any_when_it_is_taken():
    seen: list[int] = []
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(0.1)
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("0.0.0.0", 0))
    free = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    free.bind(("0.0.0.0", 0))
    wanted = free.getsockname()[1]
    free.close()

    def serve() -> None:
        while server.fileno() != -1:
            try:
                data, peer = server.recvfrom(100)
            except (TimeoutError, OSError):
                continue
            seen.append(peer[1])
            server.sendto(b"x/b\n", peer)
    threading.Thread(target=serve, daemon=True).start()
    try:
        port = server.getsockname()[1]
        probes = [probe.Probe("x/a", "x/b", None, "127.0.0.1", port, "UDP", source_port=wanted),
                  probe.Probe("x/a", "x/b", None, "127.0.0.1", port, "UDP", source_port=taken.getsockname()[1])]
        outcomes = probe.run(probes, timeout=0.6)
        assert [o.connected for o in outcomes] == [True, True]
        assert wanted in seen and taken.getsockname()[1] not in seen
    finally:
        server.close()
        taken.close()


def test_run_reports_a_namespace_it_cannot_enter_per_probe():
    outcomes = probe.run([probe.Probe("x/a", "x/b", "/nonexistent/netns", "127.0.0.1", 9, "TCP")], timeout=0.2)
    assert not outcomes[0].connected
    assert outcomes[0].detail.startswith("cannot enter the client's network namespace")
