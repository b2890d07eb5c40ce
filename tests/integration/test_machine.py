"""knet init, join and reset on machines (issue 17): three emulated machines
(tests/integration/machines.py: each its own network and mount namespaces,
on a LAN bridge the test made), `knet init` on the first, `knet join` with
the printed command on the others, then packets: pod to pod across machines
over VXLAN without NAT, a ClusterIP, a NodePort from the control-plane
machine. `knet reset` on each leaves no link, route, nft table, process,
namespace name or file of knet's behind, and runs again cleanly."""

from __future__ import annotations

import json
import os
import re
import sys
import time

import pytest
from machines import KNET, Lab

from knet.api.bootstraptoken import generate_token

pytestmark = [pytest.mark.root]
KUBECTL = os.path.join(os.path.dirname(sys.executable), "kubectl")

JOIN_RE = re.compile(r"^\s*knet join (192\.168\.77\.11:6443) --token ([a-z0-9]{6}\.[a-z0-9]{16}) "
                     r"--discovery-token-ca-cert-hash (sha256:[0-9a-f]{64})\s*$", re.M)

APP = """---
apiVersion: v1
kind: Pod
metadata: {name: a, labels: {app: a}}
spec:
  nodeSelector: {kubernetes.io/hostname: w1}
  containers:
  - {name: srv, image: agnhost, ports: [{containerPort: 80}]}
  - {name: tools, image: agnhost, command: [sleep, "600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, labels: {app: b}}
spec:
  nodeSelector: {kubernetes.io/hostname: w2}
  containers:
  - {name: srv, image: agnhost, ports: [{containerPort: 80}, {containerPort: 80, protocol: UDP}]}
---
apiVersion: v1
kind: Service
metadata: {name: b}
spec:
  selector: {app: b}
  ports: [{port: 8080, targetPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: b-np}
spec:
  type: NodePort
  selector: {app: b}
  ports: [{port: 80, targetPort: 80}]
"""


def wait_for(what: str, fn, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def lab():
    lab = Lab()
    try:
        m1, m2, m3 = lab.start(3)
        lab.forward = {m.name: m.run("cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() for m in lab.machines}
        token = generate_token()  # as a Vagrantfile passes one: knet init --token
        out = m1.knet("init", "--advertise-address", m1.ip, "--node-name", "cp", "--token", token)
        m = JOIN_RE.search(out.stdout)
        assert m and m[2] == token, out.stdout
        lab.join = m.groups()
        m2.knet("join", lab.join[0], "--token", lab.join[1], "--discovery-token-ca-cert-hash", lab.join[2],
                "--node-name", "w1")
        # without the pin: cluster-info's signature with the token is then the only check
        m3.knet("join", lab.join[0], "--token", lab.join[1], "--discovery-token-unsafe-skip-ca-verification",
                "--node-name", "w2")
        m1.knet("apply", "-f", "-", input=APP)
        yield lab
    finally:
        lab.close()


def get_json(m, *args: str) -> dict:
    return json.loads(m.knet("get", *args, "-o", "json").stdout)


def pod_ip(lab, name: str) -> str:
    def ip():
        pod = get_json(lab.machines[0], "pod", name)
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])
        return ready and pod["status"].get("podIP")
    return wait_for(f"pod {name} Ready", ip)


def nc(m, pod: str, what: str, ip: str, port: int) -> str:
    """From a pod on another machine: kubectl on the control-plane machine, with the admin.conf
    knet init wrote, through the API server to that node's kubelet port across the LAN."""
    out = m.run(KUBECTL, "--kubeconfig", f"/run/knet/{m.cluster}/admin.conf", "exec", pod, "-c", "tools", "--",
                "sh", "-c", f"echo {what} | nc -w2 {ip} {port}", check=False)
    return out.stdout.strip()


def test_each_machine_is_its_node_with_its_own_address(lab):
    m1, m2, m3 = lab.machines
    nodes = {n["metadata"]["name"]: n for n in get_json(m1, "nodes")["items"]}
    assert sorted(nodes) == ["cp", "w1", "w2"]
    for name, m in (("cp", m1), ("w1", m2), ("w2", m3)):
        addrs = {a["type"]: a["address"] for a in nodes[name]["status"]["addresses"]}
        assert addrs["InternalIP"] == m.ip
        # the agent owns the machine's own namespace: the overlay device is there, on eth0
        assert f"local {m.ip} dev eth0" in m.run("ip", "-d", "link", "show", "knet.1").stdout.replace("  ", " ")
    # the node credential a worker got is its own: CN=system:node:w1, O=system:nodes
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(m2.run("cat", f"/run/knet/{m2.cluster}/pki/nodes/w1.crt").stdout.encode())
    assert cert.subject.rfc4514_string() == "CN=system:node:w1,O=system:nodes"
    assert not m2.run("test", "-e", f"/run/knet/{m2.cluster}/pki/ca.key", check=False).returncode == 0


def test_pods_on_two_machines_reach_each_other_over_vxlan_without_nat(lab):
    m1 = lab.machines[0]
    a, b = pod_ip(lab, "a"), pod_ip(lab, "b")
    assert wait_for("a to b", lambda: nc(m1, "a", "clientip", b, 80)).split(":")[0] == a
    assert nc(m1, "a", "hostname", b, 80) == "b"


def test_a_clusterip_reaches_the_pod_on_another_machine(lab):
    m1 = lab.machines[0]
    pod_ip(lab, "b")
    ip = get_json(m1, "service", "b")["spec"]["clusterIP"]
    assert wait_for("ClusterIP", lambda: nc(m1, "a", "hostname", ip, 8080)) == "b"


def test_a_nodeport_answers_the_control_plane_machine_on_every_node(lab):
    m1, m2, m3 = lab.machines
    pod_ip(lab, "b")
    port = get_json(m1, "service", "b-np")["spec"]["ports"][0]["nodePort"]
    for m in (m2, m3):  # w1 has no endpoint: it forwards across the overlay to b on w2
        got = wait_for(f"NodePort on {m.ip}", lambda m=m: m1.run(
            "sh", "-c", f"echo hostname | nc -w2 {m.ip} {port}", check=False).stdout.strip())
        assert got == "b"


def test_join_with_a_wrong_ca_hash_is_refused_and_leaves_nothing(lab):
    m3 = lab.machines[2]
    other = [*KNET, "join", "--cluster", "other", lab.join[0], "--node-name", "w9"]
    out = m3.run(*other, "--token", lab.join[1], "--discovery-token-ca-cert-hash", "sha256:" + "0" * 64, check=False)
    assert out.returncode == 1
    assert "--discovery-token-ca-cert-hash: Invalid value" in out.stderr and lab.join[2] in out.stderr
    assert m3.run("test", "-e", "/run/knet/other", check=False).returncode != 0
    bad = m3.run(*other, "--token", "nope", "--ca-cert-hash", lab.join[2], check=False)
    assert bad.returncode == 1 and "--token: Invalid value: 'nope'" in bad.stderr
    unknown = m3.run(*other, "--token", generate_token(), "--discovery-token-unsafe-skip-ca-verification",
                     check=False)
    assert unknown.returncode == 1 and "cluster-info has no signature for token id" in unknown.stderr
    assert m3.run("test", "-e", "/run/knet/other", check=False).returncode != 0


def test_a_bootstrap_token_may_join_and_nothing_else_and_anonymous_reads_only_cluster_info(lab):
    m2 = lab.machines[1]
    base = f"https://{lab.join[0]}"

    def code(path: str, token: str = "", method: str = "GET") -> str:
        auth = ["-H", f"Authorization: Bearer {token}"] if token else []
        return m2.run("curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "-X", method, *auth,
                      base + path).stdout
    assert code("/api/v1/namespaces/kube-public/configmaps/cluster-info") == "200"
    assert code("/api/v1/namespaces/kube-public/configmaps/kube-root-ca.crt") == "401"
    assert code("/api/v1/namespaces/kube-system/secrets") == "401"
    token = lab.join[1]
    # kubeadm binds cluster-info's Role to system:anonymous only: an authenticated bootstrapper is not it
    for path in ("/api/v1/namespaces/kube-public/configmaps/cluster-info", "/api/v1/pods", "/api/v1/namespaces/kube-system/secrets", "/api/v1/nodes"):
        assert code(path, token) == "403", path
    assert code("/knet/v1/nodecredentials", generate_token(), "POST") == "401"  # an unknown token


def test_knet_exec_reaches_a_pod_on_another_machine_through_the_api(lab):
    """knet exec on the control-plane machine into pods on w1 and w2: pods/exec through the API
    server to their kubelets, with stdout, stdin and the exit code carried across."""
    m1 = lab.machines[0]
    pod_ip(lab, "a")
    pod_ip(lab, "b")
    assert m1.knet("exec", "b", "--", "hostname").stdout.strip() == "b"
    out = m1.knet("exec", "a", "-c", "tools", "--", "sh", "-c", "cat; echo err >&2; exit 3", input="from m1\n",
                  check=False)
    assert (out.returncode, out.stdout, out.stderr.strip()) == (3, "from m1\n", "err")
    missing = m1.knet("exec", "b", "--", "no-such-command", check=False)
    assert missing.returncode != 0 and "no-such-command" in missing.stderr


def test_token_create_print_join_command_list_and_delete(lab):
    """A second bootstrap token, as after knet init's has expired: its Secret is kubeadm's, it
    signs cluster-info, it authenticates; deleted, join refuses it and the API does too."""
    import datetime

    from knet.api import bootstraptoken as bt

    m1, m3 = lab.machines[0], lab.machines[2]
    out = m1.knet("token", "create", "--print-join-command", "--ttl", "2h", "--description", "late worker")
    m = JOIN_RE.search(out.stdout)
    assert m and m[1] == lab.join[0] and m[3] == lab.join[2] and m[2] != lab.join[1], out.stdout
    token, token_id = m[2], m[2].split(".")[0]
    listed = [line.split() for line in m1.knet("token", "list").stdout.splitlines()]
    assert listed[0][:2] == ["TOKEN", "TTL"]
    assert {row[0] for row in listed[1:]} == {lab.join[1], token}
    mine = next(row for row in listed if row[0] == token)
    assert mine[1] in ("2h", "119m") and "late" in mine and bt.DEFAULT_GROUP in mine
    secret = get_json(m1, "secret", f"bootstrap-token-{token_id}", "-n", "kube-system")
    assert secret["type"] == bt.SECRET_TYPE
    user = bt.authenticate(token, lambda name: secret if name == secret["metadata"]["name"] else None)
    assert user == (f"system:bootstrap:{token_id}", [bt.BOOTSTRAPPERS, bt.DEFAULT_GROUP])
    assert bt.authenticate(token, lambda name: secret, now=datetime.datetime.now(datetime.UTC)
                           + datetime.timedelta(hours=3)) is None  # --ttl 2h
    base = f"https://{lab.join[0]}"
    info = json.loads(m3.run("curl", "-sk", base + "/api/v1/namespaces/kube-public/configmaps/cluster-info").stdout)
    bt.verify_cluster_info(info, token)  # what join checks first
    bt.verify_cluster_info(info, lab.join[1])  # init's token still signs it

    def credentials_code(t: str) -> str:
        return m3.run("curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H",
                      f"Authorization: Bearer {t}", base + "/knet/v1/nodecredentials").stdout
    assert credentials_code(token) != "401"  # authenticated (the empty request is refused later)

    assert f'bootstrap token "{token_id}" deleted' in m1.knet("token", "delete", token_id).stdout
    assert [line.split()[0] for line in m1.knet("token", "list").stdout.splitlines()[1:]] == [lab.join[1]]
    refused = m3.run(*KNET, "join", "--cluster", "other", lab.join[0], "--node-name", "w9", "--token", token,
                     "--discovery-token-ca-cert-hash", lab.join[2], check=False)
    assert refused.returncode == 1 and f"cluster-info has no signature for token id '{token_id}'" in refused.stderr
    assert m3.run("test", "-e", "/run/knet/other", check=False).returncode != 0
    assert credentials_code(token) == "401"
    again = m1.knet("token", "delete", token_id, check=False)
    assert again.returncode == 1 and f'bootstrap token "{token_id}" not found' in again.stderr
    bad = m1.knet("token", "create", "--ttl", "1d", check=False)
    assert bad.returncode == 1 and "--ttl: Invalid value: '1d'" in bad.stderr


LAB = """kind: Lab
name: across
title: checks from the control-plane machine into pods on the others
cluster: {kind: Cluster, apiVersion: kind.x-k8s.io/v1alpha4, nodes: [{role: control-plane}]}
exercises:
- title: across machines
  text: pods on w1 and w2, checked from cp
  checks:
  - probe: {from: a, to: b, port: 80, expect: connected}
  - probe: {from: a, to: b, port: 80, protocol: UDP, expect: connected}
  - probe: {from: b, to: a, port: 80, expect: connected}
  - probe: {from: b, to: a, port: 80, protocol: UDP, expect: blocked}
  - probe: {from: a, to: b, port: 81, expect: blocked}
  - probe: {from: a, service: b, port: 8080, expect: connected}
  - exec: {pod: a, container: tools, command: [sh, -c, 'echo hostname | nc -w2 {{ pod/b .status.podIP }} 80'], output: '^b$'}
"""


def test_lab_checks_from_the_control_plane_reach_pods_on_other_machines(lab, tmp_path):
    """knet lab check on cp: probes and exec checks from pods on w1 and w2 run inside them through pods/exec."""
    m1 = lab.machines[0]
    pod_ip(lab, "a")
    pod_ip(lab, "b")
    (tmp_path / "lab.yaml").write_text(LAB)
    (tmp_path / "README.md").write_text("# across\n")
    runs = []

    def passed() -> bool:
        runs.append(m1.knet("lab", "check", str(tmp_path), "--cluster", m1.cluster, check=False))
        return runs[-1].returncode == 0
    try:
        wait_for("the lab's checks", passed, timeout=60)
    finally:
        print(runs[-1].stdout, runs[-1].stderr)
    assert "7 of 7 checks passed" in runs[-1].stdout


def test_exec_and_lab_checks_from_a_worker_machine_with_the_admin_conf(lab, tmp_path):
    """On w1's machine, which holds only its node's credential: the error says to bring admin.conf;
    with it (--kubeconfig), knet exec and the lab's checks go through the API (pods/exec) to any pod."""
    m1, m2 = lab.machines[0], lab.machines[1]
    pod_ip(lab, "a")
    pod_ip(lab, "b")
    refused = m2.knet("get", "pods", check=False)
    assert refused.returncode == 1 and "holds no admin credential: copy admin.conf" in refused.stderr, refused.stderr
    conf = tmp_path / "admin.conf"  # as a user copies it from the control-plane machine
    conf.write_text(m1.run("cat", f"/run/knet/{m1.cluster}/admin.conf").stdout)
    assert m2.knet("exec", "--kubeconfig", str(conf), "b", "--", "hostname").stdout.strip() == "b"  # on w2
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "lab.yaml").write_text(LAB)
    (tmp_path / "lab" / "README.md").write_text("# across\n")
    out = m2.knet("lab", "check", str(tmp_path / "lab"), "--kubeconfig", str(conf), check=False)
    assert out.returncode == 0 and "7 of 7 checks passed" in out.stdout, out.stdout + out.stderr


def test_reset_leaves_nothing_behind_and_runs_again(lab):
    for m in reversed(lab.machines):
        out = m.knet("down" if m is lab.machines[2] else "reset")  # knet down of a machine's cluster resets it
        assert "Reset cluster" in out.stdout and "link knet.1" in out.stdout
        names = sorted(line.split()[0].split("@")[0] for line in m.run("ip", "-br", "link").stdout.splitlines())
        assert names == ["eth0", "lo"]
        assert m.run("ip", "-4", "route").stdout.split() == ["192.168.77.0/24", "dev", "eth0", "proto", "kernel",
                                                             "scope", "link", "src", m.ip]
        assert m.run("nft", "list", "tables").stdout.strip() == ""
        assert m.run("cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == lab.forward[m.name]
        assert m.run("ls", "-A", "/run/knet", "/run/netns").stdout.split() == ["/run/knet:", "/run/netns:"]
        wait_for(f"no process left on {m.name}", lambda m=m: not m.pids(), timeout=10)
        again = m.knet("reset")
        assert "0 processes, 0 pod namespaces" in again.stdout
