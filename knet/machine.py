"""Machine mode: `knet init`, `knet join` and `knet reset` on a real machine, as kubeadm's.

`knet up` makes every node a network namespace on one machine. Here the
machine is the node: the node agent owns the machine's own network namespace
(its pods are namespaces inside it, cni0 and the VXLAN device are the
machine's, the overlay runs across the real network), and the control plane
serves on the machine's address.

The seam is the node's name: everything that reaches a node enters the
namespace /run/netns/knet-<cluster>-<node> (the supervisor starting the
agent, `knet exec` into a hostNetwork pod, trace, capture). `knet up` makes
that a namespace of its own; machine mode gives the machine's own namespace
that name (ns.name_netns, `ip netns attach`'s work), so the agent, the
runtime and the supervisor run unchanged. ClusterConfig.machine names the
one node that is this machine: its supervisor runs only that node's
processes (and the control plane on the `init` machine), and the saved
cluster file lists only the nodes it needs (the control plane, to reach the
API, and itself).

That name is never an owned namespace of the cluster (no marker, no record,
and a cluster_id is always set), so `knet down`'s sweep of "every process in
the cluster's namespaces" never reaches the machine's own processes: `reset`
ends the cluster's processes by pid file and argv, as `down` does, unnames
the namespace, and removes what the agent made in it, by name: the cni0 and
knet.1 devices, the routes to the pod and Service networks, the knet-*
nftables tables, and ip_forward as it was before.

Joining follows kubeadm (knet.api.bootstraptoken): cluster-info read without
credentials and trusted only by the CA hash, the bootstrap token exchanged
for the node's own client certificate, whose key never leaves the machine.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import secrets
import socket
import subprocess
import time

from knet import cluster as clusters
from knet import supervisor as sup
from knet.api import bootstraptoken as bt
from knet.config import NODE_NAME_RE, STATE_ROOT, ClusterConfig, NodeConfig, state_dir
from knet.net import ns

MACHINE_FILE = "machine.json"
ADMIN_CONF = "admin.conf"  # kubeadm's /etc/kubernetes/admin.conf, in the cluster's state directory
VXLAN_DEV, BRIDGE = "knet.1", "cni0"  # knet.node.network's and knet.cni's devices
IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
Say = clusters.Say


class MachineError(RuntimeError):
    """A refusal, worded for the user; the message names the flag or field."""


# -- this machine's addresses ---------------------------------------------------------------


def local_addresses() -> dict[str, tuple[str, int]]:
    """IPv4 address -> (interface, prefix length), loopback left out."""
    out = subprocess.run(["ip", "-j", "-4", "addr", "show"], capture_output=True, text=True, check=True).stdout
    addrs = {}
    for link in json.loads(out or "[]"):
        for a in link.get("addr_info") or []:
            if a.get("family") == "inet" and not ipaddress.ip_address(a["local"]).is_loopback:
                addrs[a["local"]] = (link["ifname"], int(a["prefixlen"]))
    return addrs


def default_address(addrs: dict[str, tuple[str, int]]) -> str:
    """kubeadm's choice without --advertise-address: the address of the
    default route's interface; the only address when there is one."""
    out = subprocess.run(["ip", "-j", "-4", "route", "show", "default"], capture_output=True, text=True).stdout
    devs = [r.get("dev") for r in json.loads(out or "[]")]
    for ip, (dev, _plen) in addrs.items():
        if dev in devs:
            return ip
    if len(addrs) == 1:
        return next(iter(addrs))
    raise MachineError("--advertise-address: Required value: this machine has no default route and "
                       f"{len(addrs)} addresses ({', '.join(addrs) or 'none'}): name the one the nodes reach")


def source_address(host: str, port: int) -> str:
    """The address this machine reaches host from (a connected UDP socket sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((host, port))
        except OSError as e:
            raise MachineError(f"server: {host}: unreachable from this machine ({e.strerror})") from None
        return s.getsockname()[0]


def check_node_name(name: str, flag: str = "--node-name") -> str:
    if not NODE_NAME_RE.match(name or "") or name in ("fabric", "ext") or name.startswith("pod-"):
        raise MachineError(f"{flag}: Invalid value: {name!r}: must be a DNS label of at most 32 characters "
                           "(lowercase letters, digits, '-'), and not 'fabric', 'ext' or 'pod-*'")
    return name


def default_node_name() -> str:
    return socket.gethostname().split(".")[0].lower()


# -- the machine's record -----------------------------------------------------------------------


def machine_path(cluster: str) -> str:
    return os.path.join(state_dir(cluster), MACHINE_FILE)


def read_machine(cluster: str) -> dict | None:
    try:
        with open(machine_path(cluster)) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def _write(path: str, data: bytes | str, mode: int) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def _claim(cfg: ClusterConfig) -> None:
    """The state directory, made here or refused: one machine is one node of one cluster by this name."""
    if os.path.exists(os.path.join(cfg.state_dir, "cluster.json")) or read_machine(cfg.name):
        raise MachineError(f'this machine already runs cluster "{cfg.name}" (knet reset'
                           f'{"" if cfg.name == "knet" else " --cluster " + cfg.name} removes it)')
    if os.path.isdir(cfg.state_dir):
        clusters._remove_state_dir(cfg.state_dir)  # an interrupted init/join's
    os.makedirs(STATE_ROOT, mode=0o755, exist_ok=True)
    os.makedirs(cfg.state_dir, mode=0o700)


BRIDGE_NF = "/proc/sys/net/bridge/bridge-nf-call-iptables"


def _bridge_netfilter(say: Say) -> None:
    """Pod traffic bridged on cni0 must cross nftables (a Service's reply from a pod on the same
    node is un-DNATed there), as kubeadm's preflight demands: a stock Debian kernel has
    br_netfilter as a module, loaded here when it is not (a kernel with it built in has the file)."""
    if not os.path.exists(BRIDGE_NF):
        subprocess.run(["modprobe", "br_netfilter"], capture_output=True)
    if not os.path.exists(BRIDGE_NF):
        say(" ! br_netfilter is not available: a Service reached from a pod on the same node may not answer")


def _start_node(cfg: ClusterConfig, role: str, extra: dict, say: Say) -> object:
    """Record the machine, name its namespace as the node's, start the supervisor in it."""
    _bridge_netfilter(say)
    with open(IP_FORWARD) as f:
        forward = f.read().strip()
    record = {"node": cfg.machine, "role": role, "ipForward": forward, "podSubnet": cfg.pod_subnet,
              "serviceSubnet": cfg.service_subnet, **extra}
    _write(machine_path(cfg.name), json.dumps(record, indent=1), 0o600)
    _write(os.path.join(cfg.state_dir, "cluster.json"), cfg.to_json(), 0o600)
    ns.name_netns(cfg.node_netns(cfg.machine))
    return sup.spawn(cfg, "supervisor", sup.supervisor_argv(cfg.name), cfg.node_netns(cfg.machine), record=False,
                     cwd=sup.PACKAGE_ROOT)


# -- knet init ----------------------------------------------------------------------------------


def init(cfg: ClusterConfig, advertise: str | None = None, node: str | None = None, say: Say = print,
         timeout: float = 120.0, doc: dict | None = None, token: str | None = None) -> str:
    """Make this machine the cluster's control plane and its first node; the join command.
    token: the bootstrap token to publish (kubeadm init --token), else a new one."""
    clusters.checked(cfg.name)
    if token is not None:
        bt.parse_token(token)
    addrs = local_addresses()
    if advertise is None:
        advertise = default_address(addrs)
    elif advertise not in addrs:
        raise MachineError(f"--advertise-address: Invalid value: {advertise!r}: not an address of this machine "
                           f"(it has {', '.join(sorted(addrs)) or 'none'})")
    node = check_node_name(node or default_node_name())
    _dev, plen = addrs[advertise]
    cp = cfg.control_plane
    labels = {**cp.labels, "kubernetes.io/hostname": node}
    cfg.nodes = [NodeConfig(node, "control-plane", advertise, labels, cp.taints, cp.max_pods)]
    cfg.lan_subnet = str(ipaddress.ip_interface(f"{advertise}/{plen}").network)
    if "loadBalancerPool" not in ((doc or {}).get("networking") or {}):
        cfg.lb_pool = ""  # the machine's network is not knet's to hand out: no pool unless the file gives one
    cfg.machine = node
    cfg.cluster_id = secrets.token_hex(8)
    _claim(cfg)
    say(f'Initialising cluster "{cfg.name}" on this machine as node {node} ({advertise}) ...')
    try:
        from knet.api.tls import write_identities, write_pki

        _write(os.path.join(cfg.state_dir, "token"), secrets.token_urlsafe(32) + "\n", 0o600)
        write_pki(cfg.state_dir, advertise, cfg.service_subnet, cfg.dns_domain)
        write_identities(cfg.state_dir, [node])
        proc = _start_node(cfg, "control-plane", {"server": f"{advertise}:{cfg.api_port}"}, say)
        clusters._wait_ready(cfg, say, timeout, proc)
        token = publish_bootstrap(cfg, advertise, token)
        _write_admin_conf(cfg, advertise)
    except BaseException as e:
        say(f"✗ init failed: {e}")
        tail = clusters._log_tail(cfg)
        if tail:
            say(tail)
        reset(cfg.name, say=lambda _m: None)
        raise
    from knet.api.tls import pki_paths

    with open(pki_paths(cfg.state_dir).ca_crt, "rb") as f:
        ca_hash = bt.ca_cert_hash(f.read())
    return bt.join_command(advertise, cfg.api_port, token, ca_hash)


def publish_bootstrap(cfg: ClusterConfig, advertise: str, token: str | None = None,
                      ttl: datetime.timedelta = bt.DEFAULT_TTL) -> str:
    """What joining needs, as kubeadm's init makes it: cluster-info, the RBAC for
    it and for bootstrap tokens, and a token; the token."""
    from knet.api.errors import ApiError
    from knet.api.resources import by_kind
    from knet.api.tls import pki_paths

    client = clusters.connect(cfg.name)
    with open(pki_paths(cfg.state_dir).ca_crt, "rb") as f:
        ca = f.read()
    token = token or bt.generate_token()
    objects = [*bt.discovery_rbac(), bt.cluster_info(f"https://{advertise}:{cfg.api_port}", ca, token),
               bt.token_secret(token, ttl=ttl, description="made by knet init")]
    for obj in objects:
        try:
            client.create(by_kind(obj["kind"]), obj["metadata"].get("namespace"), obj)
        except ApiError as e:
            if e.code != 409:
                raise
    return token


def _write_admin_conf(cfg: ClusterConfig, advertise: str) -> str:
    from knet.api import kubeconfig
    from knet.api.tls import pki_paths

    p = pki_paths(cfg.state_dir)
    ca, crt, key = (open(f, "rb").read() for f in (p.ca_crt, p.admin_crt, p.admin_key))
    doc = kubeconfig.config_for(cfg.name, f"https://{advertise}:{cfg.api_port}", ca, crt, key)
    path = os.path.join(cfg.state_dir, ADMIN_CONF)
    _write(path, json.dumps(doc, indent=2), 0o600)
    return path


def admin_conf_path(cluster: str) -> str:
    return os.path.join(state_dir(cluster), ADMIN_CONF)


# -- knet join ----------------------------------------------------------------------------------


def _https(host: str, port: int, method: str, path: str, ctx, token: str = "", body: dict | None = None,
           timeout: float = 10.0) -> tuple[int, dict]:
    import http.client

    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=timeout)
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, data, headers)
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(raw or b"{}")
    except ValueError:
        return resp.status, {"message": raw[:200].decode(errors="replace")}


def fetch_ca(host: str, port: int, token: str, ca_hash: str | None, timeout: float = 30.0) -> bytes:
    """kubeadm's token discovery: cluster-info without credentials over TLS
    that is not yet verified (there is no CA to verify with), then trust its CA
    only if it is signed with the token and (unless ca_hash is None: the
    unsafe skip) hashes to the pin. Retries until the control plane answers."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the pin below is the check
    deadline = time.monotonic() + timeout
    while True:
        try:
            code, body = _https(host, port, "GET", "/api/v1/namespaces/kube-public/configmaps/cluster-info", ctx)
            break
        except OSError as e:
            if time.monotonic() > deadline:
                raise MachineError(f"server: {host}:{port}: no API server answers ({e})") from None
            time.sleep(0.5)
    if code != 200:
        raise MachineError(f"server: {host}:{port}: cluster-info could not be read (HTTP {code}: "
                           f"{body.get('message', '')}): was the cluster made by knet init?")
    bt.verify_cluster_info(body, token)
    _server, ca = bt.read_cluster_info(body)
    got = bt.ca_cert_hash(ca)
    if ca_hash is not None and got != ca_hash:
        raise MachineError(f"--discovery-token-ca-cert-hash: Invalid value: {ca_hash!r}: the cluster's CA hashes "
                           f"to {got}: refusing to trust it (check the join command)")
    return ca


def join(cluster: str, server: str, token: str, ca_hash: str | None, node: str | None = None,
         address: str | None = None, say: Say = print, timeout: float = 120.0) -> float:
    """Make this machine a worker node of the cluster whose control plane is at server.
    ca_hash None: trust the CA that cluster-info signed with the token carries, unpinned."""
    t0 = time.monotonic()
    clusters.checked(cluster)
    host, port = bt.parse_server(server)
    bt.parse_token(token)
    ca_hash = bt.parse_ca_hash(ca_hash) if ca_hash is not None else None
    node = check_node_name(node or default_node_name())
    addrs = local_addresses()
    address = address or source_address(host, port)
    if address not in addrs:
        raise MachineError(f"--address: Invalid value: {address!r}: not an address of this machine")
    probe = ClusterConfig(name=cluster)
    _claim(probe)
    say(f"Joining {host}:{port} as node {node} ({address}) ...")
    try:
        ca = fetch_ca(host, port, token, ca_hash, timeout=min(timeout, 60.0))
        say(f" ✓ cluster-info is signed with the token; the CA {'matches ' + ca_hash[:19] + '...' if ca_hash else 'is not pinned (unsafe skip)'}")
        from knet.api.tls import client_context, kubelet_token_path, node_cert_paths, pki_paths

        key, csr = bt.node_csr(node)
        p = pki_paths(probe.state_dir)
        _write(p.ca_crt, ca, 0o644)
        # the answer may take long (tests/vm: over 10 s from a TCG VM at load 50, which ended the join):
        # it is not retried, so it gets until the join's deadline
        code, answer = _https(host, port, "POST", bt.CREDENTIALS_PATH, client_context(p.ca_crt), token=token,
                              body={"csr": csr.decode()}, timeout=max(10.0, t0 + timeout - time.monotonic()))
        if code != 201:
            raise MachineError(f"--token: the API server refused it (HTTP {code}: {answer.get('message', '')})")
        crt_path, key_path = node_cert_paths(probe.state_dir, node)
        _write(key_path, key, 0o600)
        _write(crt_path, answer["certificate"], 0o644)
        _write(kubelet_token_path(probe.state_dir), answer.get("kubeletToken", "") + "\n", 0o600)
        say(f" ✓ node credential: CN=system:node:{node}, O=system:nodes")
        cfg = ClusterConfig.from_json(json.dumps(answer["cluster"]))
        cp = cfg.control_plane
        if node == cp.name:
            raise MachineError(f"--node-name: Invalid value: {node!r}: the control plane's name")
        cfg.name = cluster
        cfg.nodes = [cp, NodeConfig(node, "worker", address, {"kubernetes.io/hostname": node,
                                                               "kubernetes.io/os": "linux"})]
        cfg.machine = node
        cfg.cluster_id = secrets.token_hex(8)
        proc = _start_node(cfg, "worker", {"server": f"{host}:{port}"}, say)
        _wait_node_ready(cfg, node, host, port, proc, t0 + timeout)
        say(f" ✓ node {node} is Ready")
    except BaseException as e:
        say(f"✗ join failed: {e}")
        reset(cluster, say=lambda _m: None)
        raise
    return time.monotonic() - t0


def _wait_node_ready(cfg: ClusterConfig, node: str, host: str, port: int, proc, deadline: float) -> None:
    """Until the Node this agent registers says Ready, asked with the node's own credential."""
    from knet.api.tls import client_context, node_cert_paths, pki_paths

    crt, key = node_cert_paths(cfg.state_dir, node)
    ctx = client_context(pki_paths(cfg.state_dir).ca_crt, crt, key)
    while True:
        try:
            code, obj = _https(host, port, "GET", f"/api/v1/nodes/{node}", ctx)
            if code == 200 and any(c.get("type") == "Ready" and c.get("status") == "True"
                                   for c in (obj.get("status") or {}).get("conditions") or []):
                return
        except OSError:
            pass
        if proc.poll() is not None and clusters.supervisor_pid(cfg.name) is None:
            raise MachineError(f"the supervisor {sup.describe_exit(proc.returncode)} (see {cfg.state_dir}/logs)")
        if time.monotonic() > deadline:
            raise MachineError(f"node {node} not Ready in time (see {cfg.state_dir}/logs)")
        time.sleep(0.2)


# -- knet reset ---------------------------------------------------------------------------------


def reset(cluster: str, say: Say = print) -> dict:
    """Remove everything knet made on this machine for the cluster; safe to run any number of times."""
    clusters.checked(cluster)
    info = read_machine(cluster) or {}
    node = info.get("node")
    named = ns.netns_path(ClusterConfig(name=cluster).node_netns(node)) if node else None
    if named and os.path.lexists(named) and ns.inode(named) not in (None, ns.inode("/proc/self/ns/net")):
        raise MachineError(f"node {node}'s namespace is not this one: run knet reset on the machine itself")
    stopped = {"processes": 0}
    if os.path.exists(os.path.join(state_dir(cluster), "cluster.json")):
        try:
            stopped = clusters.stop(cluster, say=lambda _m: None, grace=1.0)  # nothing left to re-make what goes
        except (OSError, ValueError, clusters.ClusterError):
            pass
    removed = clean_network(info) if info else []
    if named:
        ns.remove_ns_file(named)
    done = clusters.down(cluster, say=lambda _m: None)
    total = stopped["processes"] + done["processes"]
    say(f'Reset cluster "{cluster}" on this machine: {total} processes, {done["namespaces"]} pod namespaces'
        + (f", {', '.join(removed)}" if removed else ""))
    return {"processes": total, "namespaces": done["namespaces"], "removed": removed}


def clean_network(info: dict) -> list[str]:
    """What the node agent made in the machine's namespace, by name: the devices
    (their routes and neighbours go with them), the routes left to the pod and
    Service networks (host-gw's, the Service route), knet's nftables tables,
    and ip_forward back to what it was. What it removed."""
    from knet.net.rtnl import Rtnl

    removed = []
    with Rtnl() as rtnl:
        for dev in (VXLAN_DEV, BRIDGE):
            if rtnl.delete_link(dev):
                removed.append(f"link {dev}")
    nets = [ipaddress.ip_network(n) for n in (info.get("podSubnet"), info.get("serviceSubnet")) if n]
    out = subprocess.run(["ip", "-j", "-4", "route", "show"], capture_output=True, text=True).stdout
    for route in json.loads(out or "[]"):
        dst = route.get("dst", "")
        try:
            net = ipaddress.ip_network(dst) if dst and dst != "default" else None
        except ValueError:
            continue
        if net is not None and any(net.subnet_of(n) for n in nets):
            if subprocess.run(["ip", "-4", "route", "del", dst], capture_output=True).returncode == 0:
                removed.append(f"route {dst}")
    out = subprocess.run(["nft", "-j", "list", "tables"], capture_output=True, text=True).stdout
    for item in (json.loads(out or "{}").get("nftables") or []):
        table = item.get("table")
        if table and str(table.get("name", "")).startswith("knet-"):
            subprocess.run(["nft", "delete", "table", table["family"], table["name"]], capture_output=True)
            removed.append(f"nft table {table['family']} {table['name']}")
    before = info.get("ipForward")
    if before in ("0", "1"):
        with open(IP_FORWARD) as f:
            now = f.read().strip()
        if now != before:
            with open(IP_FORWARD, "w") as f:
                f.write(before)
            removed.append(f"ip_forward back to {before}")
    return removed

