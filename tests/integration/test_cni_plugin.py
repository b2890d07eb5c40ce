"""knet-cni driven from outside knet, as cnitool would: CNI_* variables and a
config on stdin, inside throw-away "node" namespaces. Every verb, the error
codes, IPAM under concurrency, exhaustion and GC, and chaining with Debian's
reference plugins through the runtime the node agent uses."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
import trio

from knet.cni.runtime import Runtime
from knet.harness.cluster import unique_name
from knet.harness.cni import run_plugin, standalone_plugin, start_server
from knet.net import ns

PLUGIN = standalone_plugin()


@pytest.fixture
def lab(tmp_path):
    """A node namespace and a few pod namespaces, removed afterwards."""
    prefix = unique_name("kc")
    node = f"{prefix}-node"
    pods = [f"{prefix}-p{i}" for i in range(4)]
    for n in [node, *pods]:
        ns.create_netns(n)
    yield {"node": node, "pods": [ns.netns_path(p) for p in pods], "dir": tmp_path, "prefix": prefix}
    for n in [node, *pods]:
        ns.delete_netns(n)


def conf(lab, version="1.1.0", subnet="10.250.1.0/24", **extra):
    return {"cniVersion": version, "name": "knettest", "type": "knet-cni", "bridge": "kbr0",
            "ipam": {"subnet": subnet, "dataDir": str(lab["dir"] / "ipam")}, **extra}


def ipam_files(lab) -> list[str]:
    d = lab["dir"] / "ipam"
    return sorted(f for f in os.listdir(d) if f[0].isdigit()) if d.exists() else []


def test_version_answers_without_env_or_stdin(lab):
    r = run_plugin(PLUGIN, "VERSION", "", lab["node"])
    assert r.code == 0 and "1.1.0" in r.out["supportedVersions"] and "1.0.0" in r.out["supportedVersions"]
    r = run_plugin(PLUGIN, "VERSION", {"cniVersion": "1.0.0"}, lab["node"])
    assert r.out["cniVersion"] == "1.0.0"


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0", "1.1.0"])
def test_add_check_del_per_spec_version(lab, version):
    pod = lab["pods"][0]
    r = run_plugin(PLUGIN, "ADD", conf(lab, version), lab["node"], pod_netns=pod)
    assert r.code == 0, r
    res = r.out
    assert res["cniVersion"] == version
    assert [i["name"] for i in res["interfaces"]][0] == "kbr0" and res["interfaces"][2]["sandbox"] == pod
    assert res["ips"][0]["address"] == "10.250.1.2/24" and res["ips"][0]["gateway"] == "10.250.1.1"
    assert res["ips"][0]["interface"] == 2
    assert ("version" in res["ips"][0]) == (version == "0.4.0")
    assert res["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.250.1.1"}]
    addr = subprocess.run(["ip", "-n", os.path.basename(pod), "-o", "-4", "addr", "show", "eth0"],
                          capture_output=True, text=True).stdout
    assert "10.250.1.2/24" in addr
    port = subprocess.run(["ip", "netns", "exec", lab["node"], "bridge", "-d", "link", "show", "dev",
                           res["interfaces"][1]["name"]], capture_output=True, text=True).stdout
    assert "master kbr0" in port and "hairpin on" in port  # a pod can reach itself through a Service
    ok = run_plugin(PLUGIN, "CHECK", conf(lab, version, prevResult=res), lab["node"], pod_netns=pod)
    assert ok.code == 0 and ok.out is None
    assert run_plugin(PLUGIN, "DEL", conf(lab, version, prevResult=res), lab["node"], pod_netns=pod).code == 0
    assert ipam_files(lab) == []
    again = run_plugin(PLUGIN, "DEL", conf(lab, version), lab["node"], pod_netns=pod)
    assert again.code == 0  # DEL of what is already gone succeeds


def test_two_pods_on_the_bridge_reach_each_other(lab):
    a, b = lab["pods"][:2]
    assert run_plugin(PLUGIN, "ADD", conf(lab), lab["node"], container="a", pod_netns=a).code == 0
    rb = run_plugin(PLUGIN, "ADD", conf(lab), lab["node"], container="b", pod_netns=b)
    ip_b = rb.out["ips"][0]["address"].split("/")[0]
    ping = subprocess.run(["ip", "netns", "exec", os.path.basename(a), "ping", "-c1", "-W1", ip_b],
                          capture_output=True)
    assert ping.returncode == 0


def test_check_reports_what_is_missing(lab):
    pod = lab["pods"][0]
    res = run_plugin(PLUGIN, "ADD", conf(lab), lab["node"], pod_netns=pod).out
    subprocess.run(["ip", "-n", os.path.basename(pod), "addr", "flush", "dev", "eth0"], check=True)
    bad = run_plugin(PLUGIN, "CHECK", conf(lab, prevResult=res), lab["node"], pod_netns=pod)
    assert bad.code != 0 and "address 10.250.1.2/24 is missing" in bad.out["details"]
    subprocess.run(["ip", "-n", os.path.basename(pod), "link", "del", "eth0"], check=True)
    bad = run_plugin(PLUGIN, "CHECK", conf(lab, prevResult=res), lab["node"], pod_netns=pod)
    assert "interface eth0 is missing" in bad.out["details"]
    no_prev = run_plugin(PLUGIN, "CHECK", conf(lab), lab["node"], pod_netns=pod)
    assert no_prev.code != 0 and "prevResult" in no_prev.out["msg"]


@pytest.mark.parametrize("env,stdin,code", [
    ({"CNI_COMMAND": "ADD"}, None, 4),                                    # missing env
    ({"CNI_COMMAND": "BOGUS"}, None, 4),                                  # unknown command
    ({"CNI_IFNAME": "this-name-is-far-too-long"}, None, 4),               # bad ifname
    ({"CNI_CONTAINERID": "-bad"}, None, 3),                               # bad container id
    ({}, "{not json", 6),                                                 # decoding failure
    ({}, {"cniVersion": "9.9.9", "name": "x"}, 1),                        # incompatible version
    ({}, {"cniVersion": "1.0.0", "name": "bad name!"}, 7),                # invalid config
    ({}, {"cniVersion": "1.0.0", "name": "x", "ipam": {"subnet": "10.0.0.0/31"}}, 7),  # too small
    ({}, {"cniVersion": "1.0.0", "name": "x", "ipam": {"subnet": "10.0.0.1/24"}}, 7),  # not a network
])
def test_error_codes(lab, env, stdin, code):
    pod = lab["pods"][0]
    full = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": pod, "CNI_IFNAME": "eth0",
            "CNI_PATH": "/usr/lib/cni", "PATH": "/usr/bin:/bin", **env}
    if env.get("CNI_COMMAND") == "ADD" and len(env) == 1:
        full = {"CNI_COMMAND": "ADD", "PATH": "/usr/bin:/bin"}
    body = json.dumps(conf(lab)) if stdin is None else stdin if isinstance(stdin, str) else json.dumps(stdin)
    fd = os.open(ns.netns_path(lab["node"]), os.O_RDONLY)
    p = subprocess.run([PLUGIN], input=body, env=full, capture_output=True, text=True,
                       preexec_fn=lambda: ns.setns(fd, ns.CLONE_NEWNET))
    os.close(fd)
    assert p.returncode != 0
    err = json.loads(p.stdout)
    assert err["code"] == code, err
    assert err["msg"] and "cniVersion" in err
    assert ipam_files(lab) == []


def test_exhausted_range_is_a_clear_error_and_status_says_so(lab):
    small = conf(lab, subnet="10.250.9.0/29")  # .1 gateway, .2-.6 for pods
    for i, pod in enumerate(lab["pods"]):
        assert run_plugin(PLUGIN, "ADD", small, lab["node"], container=f"c{i}", pod_netns=pod).code == 0
    extra = f"{lab['prefix']}-extra"
    ns.create_netns(extra)
    try:
        assert run_plugin(PLUGIN, "ADD", small, lab["node"], container="c4", pod_netns=ns.netns_path(extra)).code == 0
        ns.create_netns(extra + "2")
        r = run_plugin(PLUGIN, "ADD", small, lab["node"], container="c5", pod_netns=ns.netns_path(extra + "2"))
        assert r.code != 0
        assert r.out["code"] == 50 and "exhausted" in r.out["details"]
        status = run_plugin(PLUGIN, "STATUS", small, lab["node"])
        assert status.code != 0 and status.out["code"] == 50
    finally:
        ns.delete_netns(extra)
        ns.delete_netns(extra + "2")
    assert run_plugin(PLUGIN, "STATUS", conf(lab, subnet="10.250.8.0/24"), lab["node"]).code == 0


def test_gc_releases_everything_not_valid(lab):
    for i, pod in enumerate(lab["pods"][:3]):
        assert run_plugin(PLUGIN, "ADD", conf(lab), lab["node"], container=f"c{i}", pod_netns=pod).code == 0
    valid = conf(lab, **{"cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}]})
    r = run_plugin(PLUGIN, "GC", valid, lab["node"])
    assert r.code == 0
    assert ipam_files(lab) == ["10.250.1.3"]
    links = subprocess.run(["ip", "-n", lab["node"], "-o", "link", "show", "master", "kbr0"],
                           capture_output=True, text=True).stdout
    assert links.count("veth") == 1


def test_50_concurrent_adds_never_share_an_address(lab):
    names = [f"{lab['prefix']}-q{i}" for i in range(50)]
    for n in names:
        ns.create_netns(n)
    sock = str(lab["dir"] / "agent.sock")
    server = start_server(lab["node"], sock, str(lab["dir"] / "bin"))
    shim = str(lab["dir"] / "bin" / "knet-cni")
    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda i: run_plugin(shim, "ADD", conf(lab, subnet="10.250.2.0/24"),
                                                         lab["node"], container=f"q{i}",
                                                         pod_netns=ns.netns_path(names[i])), range(50)))
        assert all(r.code == 0 for r in results), [r.out for r in results if r.code]
        ips = [r.out["ips"][0]["address"] for r in results]
        assert len(set(ips)) == 50
        assert len(ipam_files(lab)) == 50
    finally:
        server.kill()
        for n in names:
            ns.delete_netns(n)


def test_add_del_cycles_with_agent_kill_9_leak_nothing_after_gc(lab):
    """1,000 ADD/DEL cycles through the thick plugin, killing its agent at random."""
    sock = str(lab["dir"] / "agent.sock")
    shim_dir = str(lab["dir"] / "bin")
    shim = os.path.join(shim_dir, "knet-cni")
    server = start_server(lab["node"], sock, shim_dir)
    rng = random.Random(7)
    cfg = conf(lab, subnet="10.250.3.0/24")
    kills = failures = 0
    try:
        for i in range(1000):
            pod = lab["pods"][i % 4]
            cid = f"cyc{i}"
            if rng.random() < 0.02:
                server.send_signal(signal.SIGKILL)
                server.wait()
                kills += 1
                server = start_server(lab["node"], sock, shim_dir)
            add = run_plugin(shim, "ADD", cfg, lab["node"], container=cid, pod_netns=pod)
            if rng.random() < 0.01:
                server.send_signal(signal.SIGKILL)  # killed right after an ADD: its DEL never happens
                server.wait()
                kills += 1
                server = start_server(lab["node"], sock, shim_dir)
                failures += 1
                continue
            failures += add.code != 0
            run_plugin(shim, "DEL", cfg, lab["node"], container=cid, pod_netns=pod)
        assert kills > 0
        gc = run_plugin(shim, "GC", dict(cfg, **{"cni.dev/valid-attachments": []}), lab["node"])
        assert gc.code == 0
        assert ipam_files(lab) == []
        ports = subprocess.run(["ip", "-n", lab["node"], "-o", "link", "show", "master", "kbr0"],
                               capture_output=True, text=True).stdout
        assert "veth" not in ports
    finally:
        server.kill()


def test_chaining_reference_tuning_and_portmap_after_knet_cni(lab, tmp_path):
    """knet-cni's result is a valid prevResult for Debian's reference plugins."""
    assert shutil.which("iptables-save"), "the reference portmap plugin needs iptables (scripts/setup installs it)"
    conflist = {"cniVersion": "1.0.0", "name": "chain", "plugins": [
        {"type": "knet-cni", "bridge": "kbr0", "ipam": {"subnet": "10.250.4.0/24", "dataDir": str(tmp_path / "ipam")}},
        {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.accept_local": "1"}, "mtu": 1400},
        {"type": "portmap", "capabilities": {"portMappings": True},
         "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}}]}
    path = tmp_path / "chain.conflist"
    path.write_text(json.dumps(conflist))
    bin_dir = os.path.dirname(PLUGIN)
    rt = Runtime(str(path), [bin_dir, "/usr/lib/cni"], str(tmp_path / "cache"))
    pod = lab["pods"][0]
    # Plugins run in the caller's netns: drive the runtime from a thread inside the node namespace.
    fd = os.open(ns.netns_path(lab["node"]), os.O_RDONLY)
    result = _in_thread_netns(fd, lambda: trio.run(lambda: rt.add("chained1", pod)))
    assert result["ips"][0]["address"].startswith("10.250.4.")
    mtu = subprocess.run(["ip", "netns", "exec", os.path.basename(pod), "cat", "/sys/class/net/eth0/mtu"],
                         capture_output=True, text=True).stdout.strip()
    assert mtu == "1400"  # tuning acted on knet-cni's interface
    accept_local = subprocess.run(["ip", "netns", "exec", os.path.basename(pod), "sysctl", "-n",
                                   "net.ipv4.conf.eth0.accept_local"], capture_output=True, text=True).stdout
    assert accept_local.strip() == "1"
    rules = subprocess.run(["ip", "netns", "exec", lab["node"], "iptables-save"], capture_output=True, text=True).stdout
    assert "8080" in rules and "CNI-HOSTPORT-DNAT" in rules
    _in_thread_netns(fd, lambda: trio.run(lambda: rt.delete("chained1", pod)))
    os.close(fd)
    assert not os.listdir(tmp_path / "ipam") or all(not f[0].isdigit() for f in os.listdir(tmp_path / "ipam"))


def _in_thread_netns(fd: int, fn):
    import threading
    box = {}

    def target():
        ns.setns(fd, ns.CLONE_NEWNET)
        try:
            box["v"] = fn()
        except BaseException as e:
            box["e"] = e
    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "e" in box:
        raise box["e"]
    return box.get("v")
