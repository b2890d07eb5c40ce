"""knet on three real kernels (issue 17): QEMU VMs booted from the image scripts/vm-image caches,
on a bridge inside a namespace this test makes (vms.py). `knet init` on vm1 prints the join
command, vm2 and vm3 run it, then packets between the VMs: pod to pod across machines over
VXLAN without NAT, a ClusterIP, a NodePort from the control-plane VM on both workers.

Collected only when asked (`pytest tests/vm`, see tests/conftest.py): it takes minutes of
software emulation. With -s it prints its figures (boot, init, join, first cross-machine
connection, pod-to-pod against VM-to-VM throughput); bench/vms.py prints them as JSON."""

from __future__ import annotations

import json

import pytest
from vms import VMLab, bring_up, cross_machine, get_json, throughput, wait_for

pytestmark = [pytest.mark.root, pytest.mark.vm]


@pytest.fixture(scope="module")
def lab():
    lab = VMLab()
    try:
        lab.figures = bring_up(lab)
        yield lab
    finally:
        lab.close()


def test_each_vm_is_a_ready_node_with_the_overlay_on_its_lan(lab):
    vm1 = lab.vms[0]
    nodes = {n["metadata"]["name"]: n for n in get_json(vm1, "nodes")["items"]}
    assert sorted(nodes) == ["vm1", "vm2", "vm3"]
    for vm in lab.vms:
        node = nodes[vm.name]
        assert {a["type"]: a["address"] for a in node["status"]["addresses"]}["InternalIP"] == vm.ip
        assert any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])
        # the node is the machine: the VXLAN device is in its root namespace, on its LAN interface
        link = " ".join(vm.sh("ip -d link show knet.1").stdout.split())
        assert f"local {vm.ip} dev eth0" in link


def test_pod_to_pod_across_vms_over_vxlan_keeps_the_source_address(lab):
    a, b = lab.figures["pod_a_ip"], lab.figures["pod_b_ip"]
    assert cross_machine(lab, "clientip", b, 80).split(":")[0] == a
    assert cross_machine(lab, "hostname", b, 80) == "b"
    # the packets crossed the LAN as VXLAN: vm3 (b's node) routes the pod subnets of vm2 through knet.1
    routes = lab.vms[2].sh("ip -4 route show dev knet.1").stdout
    assert a.rsplit(".", 1)[0] + ".0/24" in routes


def test_a_clusterip_reaches_the_pod_on_another_vm(lab):
    vm1 = lab.vms[0]
    ip = get_json(vm1, "service", "b")["spec"]["clusterIP"]
    assert cross_machine(lab, "hostname", ip, 8080) == "b"


def test_a_nodeport_answers_the_control_plane_vm_on_both_workers(lab):
    vm1 = lab.vms[0]
    port = get_json(vm1, "service", "b-np")["spec"]["ports"][0]["nodePort"]
    for vm in lab.vms[1:]:  # vm2 has no endpoint of b: it forwards across the overlay to vm3
        got = wait_for(f"NodePort {vm.ip}:{port} from vm1", lambda vm=vm: vm1.sh(
            f"echo hostname | nc -w5 {vm.ip} {port}", check=False).stdout.strip(), timeout=300, pause=2)
        assert got == "b", f"NodePort {vm.ip}:{port} from vm1 answered {got!r}"


def test_throughput_pod_to_pod_and_vm_to_vm(lab):
    """Both measured, neither asserted beyond having carried data: TCG sets the pace."""
    figures = throughput(lab)
    assert figures["vm_to_vm_bps"] > 0 and figures["pod_to_pod_bps"] > 0
    lab.figures.update(figures)
    shown = {k: v for k, v in lab.figures.items() if k not in ("pod_a_ip", "pod_b_ip")}
    print("\nknet on 3 TCG VMs:", json.dumps(shown))
