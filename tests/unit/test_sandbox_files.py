"""The pod's files (resolv.conf, hosts, hostname, nsswitch.conf): written whole
at the sandbox's making, and once its address is known only /etc/hosts again
(issue 14: each file rewritten was a new inode and a deleted one per pod)."""

from __future__ import annotations

import os
from types import SimpleNamespace

from knet.node import sandbox as sandboxes

CFG = SimpleNamespace(dns_service_ip="10.96.0.10", dns_domain="cluster.local", dns_upstreams=["192.0.2.53"])
POD = {"metadata": {"name": "web-1", "namespace": "default", "uid": "u1"}, "spec": {"containers": []}}


def _inodes(sb: sandboxes.Sandbox) -> dict[str, int]:
    return {src: os.stat(src).st_ino for src, _ in sb.files()}


def test_the_address_rewrites_only_the_hosts_file(tmp_path):
    sb = sandboxes.Sandbox("u1", "knet-x-pod-u1", str(tmp_path))
    sandboxes.write_files(CFG, sb, POD)
    assert {os.path.basename(src) for src, _ in sb.files()} <= set(os.listdir(tmp_path))
    assert "10.244.1.7" not in (tmp_path / "hosts").read_text()
    before = _inodes(sb)

    sandboxes.write_hosts(CFG, sb, POD, "10.244.1.7")

    after = _inodes(sb)
    assert after[sb.hosts] != before[sb.hosts]  # replaced whole (a reader sees old or new)
    assert {k: v for k, v in after.items() if k != sb.hosts} == {k: v for k, v in before.items() if k != sb.hosts}
    assert "10.244.1.7\tweb-1\n" in (tmp_path / "hosts").read_text()
    assert (tmp_path / "resolv.conf").read_text().startswith("search default.svc.cluster.local")
    assert (tmp_path / "hostname").read_text() == "web-1\n"
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    assert oct(os.stat(sb.hosts).st_mode & 0o777) == "0o644"


def test_a_new_sandboxs_hosts_file_is_rewritten_in_place(tmp_path):
    sb = sandboxes.Sandbox("u1", "knet-x-pod-u1", str(tmp_path))
    sandboxes.write_files(CFG, sb, POD)
    before = _inodes(sb)
    sandboxes.write_hosts(CFG, sb, POD, "10.244.1.7", in_place=True)
    assert _inodes(sb) == before  # no inode made, none deleted
    assert "10.244.1.7\tweb-1\n" in (tmp_path / "hosts").read_text()
    assert oct(os.stat(sb.hosts).st_mode & 0o777) == "0o644"


def test_the_hosts_file_matches_a_full_write_with_the_address(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    once = sandboxes.Sandbox("u1", "n", str(tmp_path / "a"))
    twice = sandboxes.Sandbox("u1", "n", str(tmp_path / "b"))
    sandboxes.write_files(CFG, once, POD, "10.244.1.7")
    sandboxes.write_files(CFG, twice, POD)
    sandboxes.write_hosts(CFG, twice, POD, "10.244.1.7", in_place=True)
    for (a, _), (b, _) in zip(once.files(), twice.files(), strict=True):
        assert open(a).read() == open(b).read()
