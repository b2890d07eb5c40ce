"""A node's pod network: CNI configuration, the thick plugin's server, the
overlay to the other nodes and the masquerade for traffic leaving the pod
network. Everything here is programmed inside the node's own namespace.

The overlay follows Flannel's vxlan backend: one VXLAN device (VNI 1, UDP
8472, MTU = LAN MTU - 50) whose MAC the node publishes on its Node object;
for each peer, a permanent neighbour entry (peer podCIDR network address ->
peer VTEP MAC), an FDB entry (VTEP MAC -> peer LAN IP) and a route to the
peer's podCIDR via that address, onlink, so the kernel never has to learn or
ARP. The host-gw backend instead routes each peer podCIDR via the peer's LAN IP.

All of it goes through knet.net.rtnl's hand-made messages, not pyroute2:
every node agent does this, and importing pyroute2 for a dozen requests
costs each agent about 11 MB of resident memory.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os

import trio

from knet.cni.handler import handle
from knet.cni.runtime import Runtime
from knet.cni.server import install_shim, serve
from knet.config import ClusterConfig
from knet.net.nft import Interface
from knet.net.rtnl import RT_SCOPE_LINK, Rtnl, RtnlError

log = logging.getLogger("knet.network")
VXLAN_DEV = "knet.1"
VNI, VXLAN_PORT = 1, 8472
VTEP_ANNOTATION = "knet.dev/vtep-mac"
REFERENCE_PLUGINS = "/usr/lib/cni"
NAT_TABLE = "knet-nat"


class NodeNetwork:
    def __init__(self, cfg: ClusterConfig, node: str, nft: Interface):
        self.cfg = cfg
        self.nft = nft
        self.node = node
        self.node_ip = cfg.node(node).ip
        self.dir = os.path.join(cfg.state_dir, "nodes", node, "cni")
        self.socket = os.path.join(self.dir, "agent.sock")
        self.bin_dir = os.path.join(self.dir, "bin")
        self.conf_dir = os.path.join(self.dir, "net.d")
        self.pod_cidr: str | None = None
        self.ready = trio.Event()
        # The node's own knet-cni shim only forwards to this process's handler: called in place (see
        # knet.cni.runtime); any other plugin on the path, chained ones too, is exec'd as containerd would.
        self.runtime = Runtime(os.path.join(self.conf_dir, "10-knet.conflist"),
                               [self.bin_dir, REFERENCE_PLUGINS], os.path.join(self.dir, "results"),
                               builtins={os.path.join(self.bin_dir, "knet-cni"): handle})
        self.peers: dict[str, tuple[str, str, str | None]] = {}  # node -> (podCIDR, LAN IP, VTEP MAC)
        self.vtep_mac: str | None = None

    @property
    def mtu(self) -> int:
        return 1500 - 50 if self.cfg.backend == "vxlan" else 1500

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        os.makedirs(self.dir, exist_ok=True)
        install_shim(self.bin_dir, self.socket)
        await serve(self.socket, task_status=task_status)

    def conflist(self, pod_cidr: str) -> dict:
        net = ipaddress.ip_network(pod_cidr)
        return {"cniVersion": "1.1.0", "name": "knet", "plugins": [{
            "type": "knet-cni", "bridge": "cni0", "mtu": self.mtu, "hairpinMode": True,
            "ipam": {"subnet": pod_cidr, "gateway": str(net.network_address + 1),
                     "dataDir": os.path.join(self.dir, "ipam")}}]}

    def configure(self, pod_cidr: str) -> None:
        """Called (in a worker thread) once the control plane has given this node
        its podCIDR; the caller then sets `ready`."""
        os.makedirs(self.conf_dir, exist_ok=True)
        path = self.runtime.conflist_path
        wanted = self.conflist(pod_cidr)
        existing = None
        if os.path.exists(path):
            with open(path) as f:
                existing = json.load(f)
        # Keep a conflist someone extended with chained plugins, as long as it is knet's network.
        if not existing or existing["plugins"][0].get("ipam", {}).get("subnet") != pod_cidr:
            with open(path + ".tmp", "w") as f:
                json.dump(wanted, f, indent=2)
            os.replace(path + ".tmp", path)
        with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
            f.write("1")
        self.pod_cidr = pod_cidr
        if self.cfg.backend == "vxlan":
            self.vtep_mac = ensure_vxlan(self.node_ip, pod_cidr, self.mtu)
        program_masquerade(self.nft, self.cfg.pod_subnet)
        route_service_subnet(self.cfg.service_subnet, self.node_ip)

    def sync_peers(self, nodes: list[dict]) -> None:
        """Bring routes to the other nodes in line with their Node objects."""
        want: dict[str, tuple[str, str, str | None]] = {}
        for n in nodes:
            name = n["metadata"]["name"]
            cidr = n.get("spec", {}).get("podCIDR")
            if name == self.node or not cidr:
                continue
            ip = next((a["address"] for a in n.get("status", {}).get("addresses", []) if a["type"] == "InternalIP"),
                      None)
            mac = (n["metadata"].get("annotations") or {}).get(VTEP_ANNOTATION)
            if ip and (mac or self.cfg.backend == "host-gw"):
                want[name] = (cidr, ip, mac)
        if want == self.peers:
            return
        with Rtnl() as rtnl:
            for name, peer in self.peers.items():
                if want.get(name) != peer:
                    remove_peer(rtnl, self.cfg.backend, *peer)
            for name, peer in want.items():
                if self.peers.get(name) != peer:
                    add_peer(rtnl, self.cfg.backend, *peer)
        log.info("routes to %d peer nodes: %s", len(want), ", ".join(sorted(want)))
        self.peers = want


def ensure_vxlan(node_ip: str, pod_cidr: str, mtu: int) -> str:
    """The VXLAN device (made once, kept by a restarted agent); its MAC."""
    with Rtnl() as rtnl:
        link = rtnl.link(VXLAN_DEV)
        if link is None:
            rtnl.add_vxlan(VXLAN_DEV, VNI, VXLAN_PORT, node_ip, lan_index(rtnl, node_ip), mtu)
            link = rtnl.link(VXLAN_DEV)
            rtnl.add_address(link.index, str(ipaddress.ip_network(pod_cidr).network_address), 32)
            rtnl.set_up(link.index)
        return link.mac


def add_peer(rtnl: Rtnl, backend: str, cidr: str, ip: str, mac: str | None) -> None:
    net = ipaddress.ip_network(cidr)
    if backend == "host-gw":
        rtnl.replace_route(cidr, gateway=ip)
        return
    idx = rtnl.link_index(VXLAN_DEV)
    gw = str(net.network_address)
    rtnl.replace_neigh(idx, gw, mac)
    rtnl.replace_fdb(idx, mac, ip)
    rtnl.replace_route(cidr, gateway=gw, oif=idx, onlink=True)


def remove_peer(rtnl: Rtnl, backend: str, cidr: str, ip: str, mac: str | None) -> None:
    """Each part on its own: one already gone (a route the kernel dropped with
    its device) must not keep the others."""
    net = ipaddress.ip_network(cidr)
    steps = [lambda: rtnl.delete_route(cidr)]
    if backend == "vxlan":
        idx = rtnl.link_index(VXLAN_DEV)
        if idx is not None:
            steps.append(lambda: rtnl.delete_neigh(idx, str(net.network_address)))
            if mac:
                steps.append(lambda: rtnl.delete_fdb(idx, mac, ip))
    for step in steps:
        try:
            step()
        except RtnlError:
            pass


def lan_index(rtnl: Rtnl, node_ip: str) -> int | None:
    """The link that carries the node's address: eth0 in a node namespace, whichever
    the machine's is in machine mode (a Vagrant VM's private network is eth1)."""
    for link in rtnl.links():
        if node_ip in rtnl.addresses(link.index):
            return link.index
    return rtnl.link_index("eth0")


def route_service_subnet(service_subnet: str, node_ip: str) -> None:
    """A route for Service IPs, so a packet to a Service that has no endpoint
    reaches the proxy's reject rule instead of dying in routing (nodes have no
    default route: nothing leaves the fabric)."""
    with Rtnl() as rtnl:
        rtnl.replace_route(service_subnet, oif=lan_index(rtnl, node_ip), scope=RT_SCOPE_LINK)


def program_masquerade(nft: Interface, pod_subnet: str) -> None:
    """Traffic from pods to outside the pod network leaves with the node's
    address. And the overlay's own UDP packets skip conntrack: nothing NATs
    them, and tracking each encapsulated packet on both nodes (the inner one
    is tracked anyway) cost about a tenth of the cross-node throughput."""
    udp_vxlan = {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}},
                           "right": VXLAN_PORT}}
    nft.run([
        {"add": {"table": {"family": "ip", "name": NAT_TABLE}}},
        {"flush": {"table": {"family": "ip", "name": NAT_TABLE}}},
        *[c for name, hook in (("raw-prerouting", "prerouting"), ("raw-output", "output")) for c in (
            {"add": {"chain": {"family": "ip", "table": NAT_TABLE, "name": name, "type": "filter", "hook": hook,
                               "prio": -300, "policy": "accept"}}},
            {"add": {"rule": {"family": "ip", "table": NAT_TABLE, "chain": name,
                              "expr": [udp_vxlan, {"notrack": None}]}}})],
        {"add": {"chain": {"family": "ip", "table": NAT_TABLE, "name": "postrouting", "type": "nat",
                           "hook": "postrouting", "prio": 100, "policy": "accept"}}},
        {"add": {"rule": {"family": "ip", "table": NAT_TABLE, "chain": "postrouting", "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                       "right": {"prefix": _prefix(pod_subnet)}}},
            {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                       "right": {"prefix": _prefix(pod_subnet)}}},
            {"masquerade": None}]}}},
    ])


def _prefix(cidr: str) -> dict:
    net = ipaddress.ip_network(cidr)
    return {"addr": str(net.network_address), "len": net.prefixlen}
