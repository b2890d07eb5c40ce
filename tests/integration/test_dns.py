"""The cluster DNS on a live cluster: the coredns Deployment and kube-dns
Service `knet up` makes, real resolvers in pods (glibc's getent, curl,
Python's getaddrinfo, dig, nslookup) with the search path from two
namespaces, every record kind over UDP and TCP, an update answered,
truncation then TCP, forwarding to an upstream on the ext host (dnsmasq),
the pod's own resolv.conf, hosts and nsswitch, and the DNS surviving the
loss of a replica and the drain of its node."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from knet.harness.cluster import Cluster, ready

pytestmark = [pytest.mark.root, pytest.mark.cluster]

DOMAIN = "cluster.local"
EXT = "192.168.56.1"  # the ext host: the cluster's DNS upstream here (dnsmasq, started by the fixture)

APPS = """apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: agnhost, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: agnhost, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: nginx, namespace: default}
spec:
  clusterIP: None
  selector: {app: nginx}
  ports: [{name: http, port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: default}
spec:
  serviceName: nginx
  replicas: 2
  selector: {matchLabels: {app: nginx}}
  template:
    metadata: {labels: {app: nginx}}
    spec:
      containers: [{name: web, image: agnhost, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: search-engine, namespace: default}
spec:
  type: ExternalName
  externalName: www.example.org
---
apiVersion: v1
kind: Service
metadata: {name: big, namespace: default}
spec:
  clusterIP: None
  ports: [{name: http, port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: big-1
  namespace: default
  labels: {kubernetes.io/service-name: big}
addressType: IPv4
ports: [{name: http, port: 80, protocol: TCP}]
endpoints:
""" + "".join(f"- addresses: [10.244.250.{i}]\n  conditions: {{ready: true}}\n" for i in range(1, 41)) + """---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default}
spec:
  hostAliases: [{ip: 10.1.2.3, hostnames: [foo.local, bar.local]}]
  containers: [{name: c, image: agnhost, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: shop}
spec:
  containers: [{name: c, image: agnhost, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: custom, namespace: default}
spec:
  dnsPolicy: "None"
  dnsConfig:
    nameservers: [10.96.0.10]
    searches: [shop.svc.cluster.local, resolv.conf.local]
    options: [{name: ndots, value: "2"}, {name: edns0}]
  containers: [{name: c, image: agnhost, command: [sleep, "3600"]}]
"""

# Run several commands in one `knet exec` (each exec is a process start): a JSON
# list of argv in, a JSON list of [returncode, stdout, stderr] out.
BATCH = """
import json, subprocess, sys
out = []
for argv in json.loads(sys.argv[1]):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    out.append([p.returncode, p.stdout, p.stderr])
print(json.dumps(out))
"""


def run_in(c: Cluster, ns: str, pod: str, *commands: list[str]) -> list[tuple[int, str, str]]:
    out = c.exec_pod(ns, pod, [sys.executable, "-c", BATCH, json.dumps(list(commands))], timeout=120)
    assert out.returncode == 0, out.stderr
    return [tuple(x) for x in json.loads(out.stdout)]


def dig_parse(text: str) -> tuple[str, list[tuple[str, str, str]], list[str], set[str]]:
    """(status, answer records (name, type, data), authority types, flags) of `dig +noall +comments +answer +authority`."""
    status = re.search(r"status: (\w+)", text)
    flags = re.search(r";; flags: ([a-z ]*);", text)
    answers, authority, section = [], [], None
    for line in text.splitlines():
        if line.startswith(";; ANSWER SECTION"):
            section = answers
        elif line.startswith(";; AUTHORITY SECTION"):
            section = authority
        elif not line.strip() or line.startswith(";"):
            if not line.strip():
                section = None
        elif section is not None:
            parts = line.split(None, 4)
            if len(parts) == 5:
                section.append((parts[0].lower(), parts[3], parts[4]))
    return (status.group(1) if status else "NONE", [a for a in answers],
            [a[1] for a in authority], set(flags.group(1).split()) if flags else set())


def dig(*args: str, tcp: bool = False) -> list[str]:
    return ["dig", "+tcp" if tcp else "+notcp", "+noall", "+comments", "+answer", "+authority",
            "+tries=3", "+timeout=2", *args]


def coredns_pods(c: Cluster) -> list[dict]:
    return [p for p in c.list("Pod", "kube-system") if p["metadata"].get("labels", {}).get("k8s-app") == "kube-dns"]


def dns_ready(c: Cluster) -> list[dict]:
    pods = [p for p in coredns_pods(c) if ready(p) and not p["metadata"].get("deletionTimestamp")]
    return pods if len(pods) == 2 else []


@pytest.fixture(scope="module")
def c():
    cluster = Cluster.up({"networking": {"dnsUpstreams": [EXT]}}, workers=3)
    upstream = None
    try:
        # The upstream: dnsmasq on the ext host, answering example.org names only (never the host's resolvers).
        upstream = subprocess.Popen(
            [sys.executable, "-m", "knet.cli", "--cluster", cluster.name, "exec", "ext", "--",
             "/usr/sbin/dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
             "--user=root", "--pid-file=", f"--listen-address={EXT}", "--bind-interfaces",
             "--address=/example.org/192.0.2.123", "--log-facility=-"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cluster.apply(APPS)
        cluster.wait_for("coredns ready", lambda: dns_ready(cluster), timeout=60)
        for ns, name in (("default", "client"), ("shop", "client"), ("default", "custom")):
            cluster.wait_pod(ns, name, lambda p: p["status"].get("phase") == "Running", timeout=60)
        cluster.wait_for("web endpoints", lambda: all(
            any(ready(p) for p in cluster.list("Pod", ns) if p["metadata"].get("labels", {}).get("app") == "web")
            for ns in ("default", "shop")), timeout=60)
        cluster.wait_for("db-0, db-1 ready", lambda: sum(
            ready(p) for p in cluster.list("Pod", "default") if p["metadata"]["name"] in ("db-0", "db-1")) == 2,
            timeout=60)
        yield cluster
    finally:
        if upstream is not None:
            upstream.terminate()
            try:
                upstream.wait(10)
            except subprocess.TimeoutExpired:
                upstream.kill()
        cluster.down()


def cluster_ip(c: Cluster, ns: str, name: str) -> str:
    return c.get("Service", ns, name)["spec"]["clusterIP"]


def test_knet_up_makes_coredns_and_kube_dns(c):
    out = c.knet("get", "pods", "-n", "kube-system").stdout
    rows = [line.split() for line in out.splitlines()[1:] if line.startswith("coredns-")]
    assert len(rows) == 2 and all(r[2] == "Running" and r[1] == "1/1" for r in rows), out
    svc = c.get("Service", "kube-system", "kube-dns")
    assert svc["spec"]["clusterIP"] == "10.96.0.10"
    assert {(p["name"], p["protocol"], p["port"]) for p in svc["spec"]["ports"]} == {
        ("dns", "UDP", 53), ("dns-tcp", "TCP", 53), ("metrics", "TCP", 9153)}
    dep = c.get("Deployment", "kube-system", "coredns")
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["name"] == "coredns" and container["image"] == "registry.k8s.io/coredns/coredns:v1.11.3"
    assert dep["spec"]["replicas"] == 2 and dep["spec"]["template"]["metadata"]["labels"] == {"k8s-app": "kube-dns"}


def test_pod_files_resolv_conf_hosts_nsswitch(c):
    client = c.get("Pod", "default", "client")
    (rc1, resolv, _), (rc2, hosts, _), (rc3, nss, _), (rc4, me, _), (rc5, alias, _) = run_in(
        c, "default", "client", ["cat", "/etc/resolv.conf"], ["cat", "/etc/hosts"], ["cat", "/etc/nsswitch.conf"],
        ["getent", "hosts", "client"], ["getent", "hosts", "bar.local"])
    assert resolv == (f"search default.svc.{DOMAIN} svc.{DOMAIN} {DOMAIN}\nnameserver 10.96.0.10\noptions ndots:5\n")
    assert f"{client['status']['podIP']}\tclient\n" in hosts
    assert "# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\n" in hosts
    assert re.search(r"^hosts:\s+files dns$", nss, re.M)
    assert me.split()[0] == client["status"]["podIP"] and alias.split()[:2] == ["10.1.2.3", "foo.local"]
    (rc, custom, _), = run_in(c, "default", "custom", ["cat", "/etc/resolv.conf"])
    assert custom == "search shop.svc.cluster.local resolv.conf.local\nnameserver 10.96.0.10\noptions ndots:2 edns0\n"
    coredns = coredns_pods(c)[0]
    (rc, dns_resolv, _), = run_in(c, "kube-system", coredns["metadata"]["name"], ["cat", "/etc/resolv.conf"])
    assert dns_resolv == f"nameserver {EXT}\n"  # dnsPolicy Default: the node's, which is the upstreams


@pytest.mark.parametrize("ns", ["default", "shop"])
def test_glibc_and_tools_resolve_with_the_search_path(c, ns):
    mine, other = cluster_ip(c, ns, "web"), cluster_ip(c, "shop" if ns == "default" else "default", "web")
    other_ns = "shop" if ns == "default" else "default"
    script = ("import socket; print(sorted({a[4][0] for a in socket.getaddrinfo('web', 80)}), "
              f"sorted({{a[4][0] for a in socket.getaddrinfo('web.{other_ns}', 80)}}))")
    results = run_in(c, ns, "client",
                     ["getent", "hosts", "web"], ["getent", "ahosts", "web"], ["getent", "hosts", f"web.{other_ns}"],
                     ["getent", "hosts", f"web.{other_ns}.svc"], ["getent", "hosts", f"web.{ns}.svc.{DOMAIN}"],
                     ["curl", "-s", "--max-time", "5", "http://web/hostname"],
                     [sys.executable, "-c", script],
                     ["dig", "+short", "+search", "web"], ["nslookup", "web"],
                     ["getent", "hosts", "kubernetes.default"], ["getent", "hosts", "nope"])
    (rc, hosts, _), (_, ahosts, _), (_, cross, _), (_, cross_svc, _), (_, fqdn, _) = results[:5]
    (_, curl, _), (_, py, _), (_, dig_out, _), (rc_ns, nslookup, _), (_, kube, _), (rc_nope, _, _) = results[5:]
    assert rc == 0 and hosts.split()[:2] == [mine, f"web.{ns}.svc.{DOMAIN}"]
    assert {line.split()[0] for line in ahosts.splitlines()} == {mine} and "STREAM" in ahosts
    assert cross.split()[0] == other and cross_svc.split()[0] == other and fqdn.split()[0] == mine
    web = [p for p in c.list("Pod", ns) if p["metadata"].get("labels", {}).get("app") == "web"][0]
    assert curl.strip() == web["metadata"]["name"]
    assert py.strip() == f"['{mine}'] ['{other}']"
    assert dig_out.split() == [mine]
    assert rc_ns == 0 and f"Name:\tweb.{ns}.svc.{DOMAIN}\nAddress: {mine}" in nslookup
    assert kube.split()[0] == "10.96.0.1"
    assert rc_nope == 2  # getent: not found, after the search list (every expansion NXDOMAIN)


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_every_record_kind(c, tcp):
    web_ip = cluster_ip(c, "default", "web")
    db = {p["metadata"]["name"]: p["status"]["podIP"] for p in c.list("Pod", "default")
          if p["metadata"]["name"] in ("db-0", "db-1")}
    client_ip = c.get("Pod", "default", "client")["status"]["podIP"]
    f = f".default.svc.{DOMAIN}"
    queries = {
        "a": dig(f"web{f}", "A", tcp=tcp),
        "aaaa": dig(f"web{f}", "AAAA", tcp=tcp),
        "headless": dig(f"nginx{f}", "A", tcp=tcp),
        "sts": dig(f"db-0.nginx{f}", "A", tcp=tcp),
        "srv": dig(f"_http._tcp.web{f}", "SRV", tcp=tcp),
        "srv_headless": dig(f"_http._tcp.nginx{f}", "SRV", tcp=tcp),
        "ptr": dig("-x", web_ip, tcp=tcp),
        "ptr_ep": dig("-x", db["db-0"], tcp=tcp),
        "cname": dig(f"search-engine{f}", "CNAME", tcp=tcp),
        "extname_a": dig(f"search-engine{f}", "A", tcp=tcp),
        "pod": dig(client_ip.replace(".", "-") + f".default.pod.{DOMAIN}", "A", tcp=tcp),
        "version": dig(f"dns-version.{DOMAIN}", "TXT", tcp=tcp),
        "soa": dig(DOMAIN, "SOA", tcp=tcp),
        "ns": dig(DOMAIN, "NS", tcp=tcp),
        "nx": dig(f"nope{f}", "A", tcp=tcp),
        "nx_ns": dig(f"web.nons.svc.{DOMAIN}", "A", tcp=tcp),
        "mixed_case": dig(f"WeB.DeFaUlT.SvC.{DOMAIN.upper()}", "A", tcp=tcp),
        "outside": dig("www.example.org", "A", tcp=tcp),
    }
    out = dict(zip(queries, (dig_parse(o) for _, o, _ in run_in(c, "default", "client", *queries.values())), strict=True))

    def data(key, rtype):
        return sorted(d for _, t, d in out[key][1] if t == rtype)

    assert out["a"][0] == "NOERROR" and data("a", "A") == [web_ip]
    assert out["aaaa"][0] == "NOERROR" and out["aaaa"][1] == [] and out["aaaa"][2] == ["SOA"]  # NODATA
    assert data("headless", "A") == sorted(db.values()) and data("sts", "A") == [db["db-0"]]
    assert data("srv", "SRV") and data("srv", "SRV")[0].split()[2:] == ["80", f"web{f}."]
    assert {d.split()[3] for d in data("srv_headless", "SRV")} == {f"db-0.nginx{f}.", f"db-1.nginx{f}."}
    assert data("ptr", "PTR") == [f"web{f}."] and data("ptr_ep", "PTR") == [f"db-0.nginx{f}."]
    assert data("cname", "CNAME") == ["www.example.org."]
    assert data("extname_a", "CNAME") == ["www.example.org."] and data("extname_a", "A") == ["192.0.2.123"]
    assert data("pod", "A") == [client_ip]
    assert data("version", "TXT") == ['"1.1.0"']
    assert out["soa"][0] == "NOERROR" and data("soa", "SOA")[0].startswith(f"ns.dns.{DOMAIN}.")
    assert data("ns", "NS") == [f"kube-dns.kube-system.svc.{DOMAIN}."]
    for key in ("nx", "nx_ns"):
        assert out[key][0] == "NXDOMAIN" and out[key][2] == ["SOA"] and "aa" in out[key][3]
    assert data("mixed_case", "A") == [web_ip]
    assert out["outside"][0] == "NOERROR" and data("outside", "A") == ["192.0.2.123"]


def test_truncated_over_udp_then_tcp(c):
    name = f"big.default.svc.{DOMAIN}"
    (_, udp, _), (_, tcp, _), (rc, ahosts, _) = run_in(
        c, "default", "client", dig("+ignore", "+noedns", name, "A"), dig(name, "A", tcp=True), ["getent", "ahostsv4", "big"])
    status, answers, _, flags = dig_parse(udp)
    assert status == "NOERROR" and "tc" in flags and len(answers) < 40
    expected = sorted(f"10.244.250.{i}" for i in range(1, 41))
    assert sorted(d for _, _, d in dig_parse(tcp)[1]) == expected
    assert rc == 0 and sorted({line.split()[0] for line in ahosts.splitlines()}) == expected  # glibc: TC, then TCP


def test_outside_names_go_to_the_upstream(c):
    (rc, hosts, _), (rc2, _, _) = run_in(c, "shop", "client", ["getent", "hosts", "www.example.org"],
                                         ["getent", "hosts", "nothing.invalid"])
    assert rc == 0 and hosts.split()[0] == "192.0.2.123"
    assert rc2 == 2


def test_an_update_is_answered(c):
    c.apply("apiVersion: v1\nkind: Service\nmetadata: {name: late, namespace: shop}\n"
            "spec: {selector: {app: late}, ports: [{port: 80}]}\n", wait=False)
    ip = c.wait_for("late's ClusterIP", lambda: (c.get("Service", "shop", "late") or {}).get("spec", {}).get("clusterIP"))

    def answered():
        (_, out, _), = run_in(c, "shop", "client", ["dig", "+short", f"late.shop.svc.{DOMAIN}"])
        return out.split() == [ip]
    c.wait_for("late answered", answered, timeout=20, interval=0.05)
    c.knet("delete", "-n", "shop", "service", "late")

    def gone():
        (_, out, _), = run_in(c, "shop", "client", dig(f"late.shop.svc.{DOMAIN}"))
        return dig_parse(out)[0] == "NXDOMAIN"
    c.wait_for("late gone", gone, timeout=20, interval=0.05)


def test_a_replica_deleted_while_the_service_keeps_answering(c):
    """One coredns pod goes; every query through kube-dns during and after is answered (dig retries a
    lost datagram, as glibc does), and the Deployment brings a second replica back."""
    victim = dns_ready(c)[0]["metadata"]["name"]
    probe = ["sh", "-c", f"for i in $(seq 40); do dig +short +tries=3 +timeout=1 web.default.svc.{DOMAIN}; "
             "sleep 0.05; done"]
    loop = subprocess.Popen([sys.executable, "-m", "knet.cli", "--cluster", c.name, "exec", "client", "--", *probe],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    c.knet("delete", "-n", "kube-system", "pod", victim)
    out, err = loop.communicate(timeout=120)
    answers = out.split()
    assert len(answers) == 40 and set(answers) == {cluster_ip(c, "default", "web")}, (out, err)
    c.wait_for("two coredns replicas again", lambda: dns_ready(c) and victim not in
               [p["metadata"]["name"] for p in dns_ready(c)], timeout=60)


def test_drain_moves_it(c):
    """Last: the drain evicts the bare client pods on that node too (--force), as kubectl's would."""
    node = dns_ready(c)[0]["spec"]["nodeName"]
    c.knet("drain", node, "--force", timeout=120)
    try:
        c.wait_for("two coredns replicas off the drained node", lambda: (pods := dns_ready(c)) and all(
            p["spec"]["nodeName"] != node for p in pods), timeout=60)
        c.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: after, namespace: shop}\n"
                "spec: {containers: [{name: c, image: agnhost, command: [sleep, '600']}]}\n")
        c.wait_pod("shop", "after", lambda p: p["status"].get("phase") == "Running", timeout=60)
        (rc, out, _), = run_in(c, "shop", "after", ["getent", "hosts", "web.default"])
        assert rc == 0 and out.split()[0] == cluster_ip(c, "default", "web")
    finally:
        c.knet("uncordon", node)
