"""The cluster file (kind-style) and the names and paths everything derives from it.

One place decides every name knet gives to something on the host (netns,
state directory, socket), so `knet down` can find all of it again from the
cluster name alone, also after a crash.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import asdict, dataclass, field

from knet.paths import STATE_ROOT, state_dir  # noqa: F401 (re-exported)

CLUSTER_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?$")
NODE_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


class ConfigError(ValueError):
    """A cluster file that cannot be used; the message names the field."""


@dataclass
class NodeConfig:
    name: str
    role: str  # "control-plane" or "worker"
    ip: str
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict] = field(default_factory=list)
    max_pods: int = 110  # Node capacity.pods, as kubelet's --max-pods (maxPods in the cluster file)
    link: dict = field(default_factory=dict)  # impairments of its LAN link: {"loss": "5%", "rate": "10mbit"}


@dataclass
class ClusterConfig:
    name: str = "knet"
    nodes: list[NodeConfig] = field(default_factory=list)
    pod_subnet: str = "10.244.0.0/16"
    node_cidr_mask_size: int = 24  # each node's podCIDR, as kube-controller-manager's --node-cidr-mask-size
    service_subnet: str = "10.96.0.0/12"
    lan_subnet: str = "192.168.56.0/24"
    ext_ip: str = "192.168.56.1"
    dns_domain: str = "cluster.local"
    dns_upstreams: list[str] = field(default_factory=list)  # where the cluster DNS forwards other names
    node_port_range: str = "30000-32767"
    api_port: int = 6443
    lb_pool: str = ""  # first-last LAN addresses for LoadBalancer Services (default .200-.250)
    backend: str = "vxlan"  # or "host-gw": how pod traffic crosses between nodes
    heartbeat_seconds: float = 2.0
    node_grace_seconds: float = 10.0
    node_status_report_seconds: float = 300.0  # kubelet's nodeStatusReportFrequency: a Node status write at least this often
    restart_backoff_seconds: float = 10.0
    proxy_resync_seconds: float = 30.0
    cluster_id: str = ""  # random, set by `knet up`: marks what this very cluster created
    pod_sandbox: bool = True  # knet.podSandbox: pods isolated as a runtime does (issue 15); off for comparisons
    pod_pids_limit: int = -1  # knet.podPidsLimit, as kubelet's podPidsLimit (pids.max of each pod's cgroup)
    # Machine mode (knet init/join, knet.machine): the one node this machine is; its host namespace is the
    # machine's own, and only its components run here. Empty: every node is a namespace on this machine.
    machine: str = ""

    # -- derived names -------------------------------------------------------

    @property
    def prefix(self) -> str:
        return f"knet-{self.name}-"

    @property
    def fabric_netns(self) -> str:
        return f"knet-{self.name}-fabric"

    @property
    def ext_netns(self) -> str:
        return f"knet-{self.name}-ext"

    def node_netns(self, node: str) -> str:
        return f"knet-{self.name}-{node}"

    def lan_port(self, node: str) -> str:
        """The LAN bridge's port to a node (in the fabric namespace): the far end of its eth0."""
        return f"to-n{[n.name for n in self.nodes].index(node)}"

    def pod_netns(self, uid: str) -> str:
        return f"knet-{self.name}-pod-{uid.replace('-', '')[:12]}"

    @property
    def state_dir(self) -> str:
        return state_dir(self.name)

    @property
    def owner_marker(self) -> str:
        return f"knet:{self.name}:{self.cluster_id}"

    @property
    def netns_owner(self):
        """What ns.create_netns needs to mark a namespace as this cluster's
        (see knet.cluster's ownership rules)."""
        from knet.net.ns import NetnsOwner

        return NetnsOwner(self.owner_marker, os.path.join(self.state_dir, "netns"))

    @property
    def dns_service_ip(self) -> str:
        """kube-dns's ClusterIP: the serviceSubnet's tenth address, as kubeadm
        picks it (10.96.0.10); every ClusterFirst pod's nameserver."""
        return str(ipaddress.ip_network(self.service_subnet)[10])

    @property
    def control_plane(self) -> NodeConfig:
        return next(n for n in self.nodes if n.role == "control-plane")

    @property
    def lan_prefixlen(self) -> int:
        return ipaddress.ip_network(self.lan_subnet).prefixlen

    def node(self, name: str) -> NodeConfig:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> ClusterConfig:
        data = json.loads(text)
        data["nodes"] = [NodeConfig(**n) for n in data["nodes"]]
        return cls(**data)




def load_saved(cluster: str) -> ClusterConfig:
    """The config a running cluster was started with (written by `knet up`)."""
    with open(os.path.join(state_dir(cluster), "cluster.json")) as f:
        return ClusterConfig.from_json(f.read())


def check_cluster_name(name: str) -> None:
    if not CLUSTER_NAME_RE.match(name or ""):
        raise ConfigError(f"name: Invalid value: {name!r}: a cluster name must be 1-20 lowercase "
                          "alphanumeric characters or '-', starting and ending with an alphanumeric")


def default_config(name: str = "knet") -> ClusterConfig:
    return parse_cluster({"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4"}, name)


def parse_cluster(doc: dict | None, name: str = "knet") -> ClusterConfig:
    """Read a kind-style cluster file into a ClusterConfig, checking every field.

    The default, like kind's multi-node example, is "three+one": one
    control-plane node and three workers.
    """
    doc = doc or {}
    if not isinstance(doc, dict):
        raise ConfigError("the cluster file must be a YAML mapping")
    kind = doc.get("kind", "Cluster")
    if kind != "Cluster":
        raise ConfigError(f"kind: Unsupported value: {kind!r}: supported values: \"Cluster\"")
    name = doc.get("name") or name
    check_cluster_name(name)
    cfg = ClusterConfig(name=name)
    net = doc.get("networking") or {}
    if not isinstance(net, dict):
        raise ConfigError("networking: Invalid value: must be a mapping")
    for key, attr in (("podSubnet", "pod_subnet"), ("serviceSubnet", "service_subnet"), ("lanSubnet", "lan_subnet")):
        if key in net:
            try:
                value = str(ipaddress.ip_network(str(net[key]), strict=True))
            except ValueError as e:
                raise ConfigError(f"networking.{key}: Invalid value: {net[key]!r}: {e}") from None
            setattr(cfg, attr, value)
    if "nodeCIDRMaskSize" in net:
        low = ipaddress.ip_network(cfg.pod_subnet).prefixlen
        cfg.node_cidr_mask_size = _int(net["nodeCIDRMaskSize"], "networking.nodeCIDRMaskSize", low, 30)
    if "dnsDomain" in net:
        cfg.dns_domain = _dns_domain(net["dnsDomain"])
    if "dnsUpstreams" in net:
        cfg.dns_upstreams = _dns_upstreams(net["dnsUpstreams"])
    if "nodePortRange" in net:
        m = re.match(r"^(\d+)-(\d+)$", str(net["nodePortRange"]))
        if not m or not (1 <= int(m[1]) <= int(m[2]) <= 65535):
            raise ConfigError(f"networking.nodePortRange: Invalid value: {net['nodePortRange']!r}: must be LOW-HIGH within 1-65535")
        cfg.node_port_range = str(net["nodePortRange"])
    if "backend" in net:
        if net["backend"] not in ("vxlan", "host-gw"):
            raise ConfigError(f"networking.backend: Unsupported value: {net['backend']!r}: supported values: "
                              '"host-gw", "vxlan"')
        cfg.backend = net["backend"]
    if "apiServerPort" in net:
        cfg.api_port = _int(net["apiServerPort"], "networking.apiServerPort", 1, 65535)
    knet = doc.get("knet") or {}
    for key, attr in (("heartbeatSeconds", "heartbeat_seconds"), ("nodeGracePeriodSeconds", "node_grace_seconds"),
                      ("nodeStatusReportSeconds", "node_status_report_seconds"),
                      ("restartBackoffSeconds", "restart_backoff_seconds"),
                      ("proxyResyncSeconds", "proxy_resync_seconds")):
        if key in knet:
            value = knet[key]
            if not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"knet.{key}: Invalid value: {value!r}: must be a positive number")
            setattr(cfg, attr, float(value))
    if "podSandbox" in knet:
        if not isinstance(knet["podSandbox"], bool):
            raise ConfigError(f"knet.podSandbox: Invalid value: {knet['podSandbox']!r}: must be true or false")
        cfg.pod_sandbox = knet["podSandbox"]
    if "podPidsLimit" in knet:
        value = knet["podPidsLimit"]
        if isinstance(value, bool) or not isinstance(value, int) or (value < 1 and value != -1):
            raise ConfigError(f"knet.podPidsLimit: Invalid value: {value!r}: must be a positive integer or -1")
        cfg.pod_pids_limit = value
    lan = ipaddress.ip_network(cfg.lan_subnet)
    hosts = list(lan.hosts())
    cfg.ext_ip = str(hosts[0])
    if "loadBalancerPool" in net:
        pool = str(net["loadBalancerPool"])
        try:
            first, last = (ipaddress.ip_address(x.strip()) for x in pool.split("-"))
            if first not in lan or last not in lan or first > last:
                raise ValueError(f"must be FIRST-LAST within the LAN {lan}")
        except ValueError as e:
            raise ConfigError(f"networking.loadBalancerPool: Invalid value: {pool!r}: {e}") from None
        cfg.lb_pool = f"{first}-{last}"
    elif len(hosts) > 250:
        cfg.lb_pool = f"{hosts[199]}-{hosts[249]}"
    nodes = doc.get("nodes")
    if nodes is None:
        nodes = [{"role": "control-plane"}, {"role": "worker"}, {"role": "worker"}, {"role": "worker"}]
    if not isinstance(nodes, list) or not nodes:
        raise ConfigError("nodes: Invalid value: must be a non-empty list")
    workers = 0
    seen = set()
    for i, n in enumerate(nodes):
        if not isinstance(n, dict):
            raise ConfigError(f"nodes[{i}]: Invalid value: must be a mapping")
        role = n.get("role", "worker")
        if role not in ("control-plane", "worker"):
            raise ConfigError(f"nodes[{i}].role: Unsupported value: {role!r}: supported values: \"control-plane\", \"worker\"")
        if role == "worker":
            workers += 1
        default_name = "control-plane" if role == "control-plane" else f"worker-{workers}"
        node_name = n.get("name") or default_name
        if not NODE_NAME_RE.match(node_name) or node_name in ("fabric", "ext") or node_name.startswith("pod-"):
            raise ConfigError(f"nodes[{i}].name: Invalid value: {node_name!r}: must be a DNS label of at most "
                              "32 characters, and not 'fabric', 'ext' or 'pod-*'")
        if node_name in seen:
            raise ConfigError(f"nodes[{i}].name: Duplicate value: {node_name!r}")
        seen.add(node_name)
        labels = n.get("labels") or {}
        if not isinstance(labels, dict):
            raise ConfigError(f"nodes[{i}].labels: Invalid value: must be a mapping")
        labels = {str(k): str(v) for k, v in labels.items()}
        taints = list(n.get("taints") or [])
        if role == "control-plane":
            labels.setdefault("node-role.kubernetes.io/control-plane", "")
            if not any(t.get("key") == CONTROL_PLANE_TAINT["key"] for t in taints):
                taints.append(dict(CONTROL_PLANE_TAINT))
        labels.setdefault("kubernetes.io/hostname", node_name)
        labels.setdefault("kubernetes.io/os", "linux")
        max_pods = n.get("maxPods", 110)
        if isinstance(max_pods, bool) or not isinstance(max_pods, int) or not 1 <= max_pods <= 10000:
            raise ConfigError(f"nodes[{i}].maxPods: Invalid value: {max_pods!r}: must be an integer from 1 to 10000")
        link = _link(n.get("link"), f"nodes[{i}].link")
        index = 10 + i
        if index >= len(hosts):
            raise ConfigError(f"nodes[{i}]: the LAN {lan} has no room for node {node_name}")
        cfg.nodes.append(NodeConfig(node_name, role, str(hosts[index - 1]), labels, taints, max_pods, link))
    spare_bits = cfg.node_cidr_mask_size - ipaddress.ip_network(cfg.pod_subnet).prefixlen
    room = 2 ** spare_bits if spare_bits >= 0 else 0
    if len(cfg.nodes) > room:
        raise ConfigError(f"networking.nodeCIDRMaskSize: Invalid value: {cfg.node_cidr_mask_size}: the podSubnet "
                          f"{cfg.pod_subnet} holds {room} node CIDRs of that size, and there are {len(cfg.nodes)} nodes")
    cps = [n for n in cfg.nodes if n.role == "control-plane"]
    if len(cps) != 1:
        raise ConfigError(f"nodes: Invalid value: exactly one control-plane node is required, found {len(cps)}")
    return cfg


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _dns_domain(value: object) -> str:
    """A lowercase DNS-1123 subdomain (a trailing dot tolerated), as kubelet's
    --cluster-domain: it becomes every pod's search path and the zone the cluster
    DNS is authoritative for."""
    text = str(value).rstrip(".") if isinstance(value, str) else ""
    if not text or len(text) > 253 or not all(_DNS_LABEL.match(label) for label in text.split(".")):
        raise ConfigError(f"networking.dnsDomain: Invalid value: {value!r}: must be a lowercase DNS subdomain "
                          "(labels of 'a-z', '0-9' and '-', e.g. 'cluster.local')")
    return text


def _dns_upstreams(value: object) -> list[str]:
    """IP addresses only (CoreDNS's `forward` takes addresses, and a name would
    need a resolver to find the resolver); at most 15, forward's own limit."""
    if not isinstance(value, list):
        raise ConfigError(f"networking.dnsUpstreams: Invalid value: {value!r}: must be a list of IP addresses")
    if len(value) > 15:
        raise ConfigError(f"networking.dnsUpstreams: Too many: {len(value)}: must have at most 15 items")
    out: list[str] = []
    for i, item in enumerate(value):
        try:
            ip = ipaddress.ip_address(str(item)) if isinstance(item, str) else None
        except ValueError:
            ip = None
        if ip is None:
            raise ConfigError(f"networking.dnsUpstreams[{i}]: Invalid value: {item!r}: must be a valid IP address")
        if ip.is_unspecified or ip.is_multicast:
            raise ConfigError(f"networking.dnsUpstreams[{i}]: Invalid value: {item!r}: "
                              "must be a unicast address")
        if str(ip) in out:
            raise ConfigError(f"networking.dnsUpstreams[{i}]: Duplicate value: {item!r}")
        out.append(str(ip))
    return out


def _link(value: object, field_name: str) -> dict:
    """A node's link impairments in their canonical form ({"loss": "5%", "rate": "10mbit"})."""
    from knet.net.impair import ImpairError, parse_link

    if value is None:
        return {}
    try:
        return parse_link(value, field_name).to_config()
    except ImpairError as e:
        raise ConfigError(str(e)) from None


def _int(value: object, field_name: str, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ConfigError(f"{field_name}: Invalid value: {value!r}: must be between {lo} and {hi}, inclusive")
    return value
