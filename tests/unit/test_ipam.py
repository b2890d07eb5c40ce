"""host-local-style IPAM: address files are the truth; the owners index finds an attachment's
address without reading every file (a full node read one file per pod on every ADD)."""

from __future__ import annotations

import os

import pytest

from knet.cni.ipam import Ipam
from knet.cni.spec import CniError


def test_allocate_release_round_robin(tmp_path):
    ipam = Ipam(str(tmp_path), "10.244.1.0/29")
    a = ipam.allocate("c1", "eth0")
    b = ipam.allocate("c2", "eth0")
    assert (str(a), str(b)) == ("10.244.1.2", "10.244.1.3")
    assert ipam.find("c1", "eth0") == "10.244.1.2"
    with pytest.raises(CniError) as e:
        ipam.allocate("c1", "eth0")
    assert "duplicate allocation is not allowed: c1/eth0 already has 10.244.1.2" in e.value.details
    assert ipam.release("c1", "eth0") == ["10.244.1.2"]
    assert ipam.find("c1", "eth0") is None and ipam.release("c1", "eth0") == []
    assert str(ipam.allocate("c3", "eth0")) == "10.244.1.4"  # a freed address is not reused at once
    assert ipam.allocations() == {"10.244.1.3": ("c2", "eth0"), "10.244.1.4": ("c3", "eth0")}


def test_an_allocation_without_an_index_entry_is_still_found_and_released(tmp_path):
    """Written by an earlier knet (or by hand, as host-local writes it)."""
    ipam = Ipam(str(tmp_path), "10.244.1.0/24")
    with open(tmp_path / "10.244.1.9", "w") as f:
        f.write("old\neth0")
    assert ipam.find("old", "eth0") == "10.244.1.9"
    assert ipam.release("old", "eth0") == ["10.244.1.9"]
    assert not os.path.exists(tmp_path / "10.244.1.9")


def test_a_stale_index_entry_is_not_believed(tmp_path):
    ipam = Ipam(str(tmp_path), "10.244.1.0/24")
    ip = str(ipam.allocate("c1", "eth0"))
    os.unlink(tmp_path / ip)  # the address went behind the index's back
    with open(tmp_path / ip, "w") as f:
        f.write("other\neth0")
    assert ipam.find("c1", "eth0") is None and ipam.release("c1", "eth0") == []
    assert ipam.allocations() == {ip: ("other", "eth0")}
    assert ipam.gc({("other", "eth0")}) == [] and os.listdir(tmp_path / "owners") == []


def test_gc_frees_what_is_not_valid_with_its_index(tmp_path):
    ipam = Ipam(str(tmp_path), "10.244.1.0/24")
    keep, drop = str(ipam.allocate("keep", "eth0")), str(ipam.allocate("drop", "eth0"))
    assert ipam.gc({("keep", "eth0")}) == [drop]
    assert os.listdir(tmp_path / "owners") == ["keep.eth0"] and ipam.find("keep", "eth0") == keep


def test_an_allocation_reads_a_constant_number_of_files(tmp_path, monkeypatch):
    ipam = Ipam(str(tmp_path), "10.244.0.0/23")
    for i in range(300):
        ipam.allocate(f"c{i}", "eth0")
    reads = []
    real = Ipam._owner
    monkeypatch.setattr(Ipam, "_owner", lambda self, ip: reads.append(ip) or real(self, ip))
    ipam.allocate("late", "eth0")
    ipam.release("c7", "eth0")
    assert len(reads) <= 2, reads
