"""knet-cni's commands: ADD, DEL, CHECK, STATUS, GC (VERSION lives in the shim).

`handle(env, stdin)` returns (exit code, stdout) exactly as the plugin
process would, so the node agent can serve it over its socket (the thick
plugin) and a standalone knet-cni can run it in-process.

Network configuration (a plugin entry of a conflist):
  {"cniVersion": "1.1.0", "name": "knet", "type": "knet-cni",
   "bridge": "cni0", "mtu": 1450, "hairpinMode": true,
   "ipam": {"subnet": "10.244.1.0/24", "gateway": "10.244.1.1", "dataDir": "/run/.../ipam"}}
"""

from __future__ import annotations

import ipaddress
import json
import os

from knet.cni import spec
from knet.cni.spec import CniError

DEFAULT_DATA_DIR = "/var/lib/cni/networks"


def _ipam(conf: dict):
    from knet.cni.ipam import Ipam

    ipam = conf.get("ipam") or {}
    subnet = ipam.get("subnet")
    if not subnet:
        raise CniError(spec.INVALID_CONFIG, "invalid network configuration", "ipam.subnet is required")
    data_dir = ipam.get("dataDir") or os.path.join(DEFAULT_DATA_DIR, conf["name"])
    return Ipam(data_dir, subnet, ipam.get("gateway"))


def _bridge(conf: dict) -> str:
    name = conf.get("bridge", "cni0")
    if not isinstance(name, str) or not 0 < len(name) <= 15:
        raise CniError(spec.INVALID_CONFIG, "invalid network configuration", f"bridge: {name!r}: not an interface name")
    return name


def _mtu(conf: dict) -> int:
    mtu = conf.get("mtu", 1500)
    if not isinstance(mtu, int) or not 68 <= mtu <= 65535:
        raise CniError(spec.INVALID_CONFIG, "invalid network configuration", f"mtu: {mtu!r}: must be 68-65535")
    return mtu


def handle(env: dict[str, str], stdin: str) -> tuple[int, str]:
    version = "1.1.0"
    try:
        command = spec.check_env(env)
        conf = spec.parse_config(stdin, command)
        version = conf.get("cniVersion") or version
        if command == "VERSION":
            return 0, json.dumps({"cniVersion": version, "supportedVersions": spec.SUPPORTED})
        out = {"ADD": cmd_add, "DEL": cmd_del, "CHECK": cmd_check, "STATUS": cmd_status, "GC": cmd_gc}[command](
            env, conf)
        return 0, json.dumps(out) if out is not None else ""
    except CniError as e:
        return 1, json.dumps(e.to_json(version))
    except FileExistsError as e:
        return 1, json.dumps(CniError(spec.INTERNAL, str(e)).to_json(version))
    except Exception as e:  # a failing kernel call: report it, never a traceback on stdout
        return 1, json.dumps(CniError(spec.INTERNAL, f"{type(e).__name__}: {e}").to_json(version))


def cmd_add(env: dict[str, str], conf: dict) -> dict:
    from knet.cni import datapath

    netns = env["CNI_NETNS"]
    if not os.path.exists(netns):
        raise CniError(spec.INVALID_ENV, "invalid environment variables", f"CNI_NETNS: {netns}: no such namespace")
    cid, ifname = env["CNI_CONTAINERID"], env["CNI_IFNAME"]
    args = spec.parse_args(env.get("CNI_ARGS", ""))
    ipam = _ipam(conf)
    bridge, mtu = _bridge(conf), _mtu(conf)
    requested = args.get("IP") or ((conf.get("args") or {}).get("cni") or {}).get("ips", [None])[0]
    if requested:
        requested = str(ipaddress.ip_interface(requested).ip)
    with datapath.netlink() as ipr:
        bridge_idx, bridge_mac = datapath.ensure_bridge(ipr, bridge, str(ipam.gateway), ipam.net.prefixlen, mtu)
    ip = ipam.allocate(cid, ifname, requested)
    try:
        try:
            links = datapath.add_pod_interface(netns, cid, ifname, bridge_idx, str(ip), ipam.net.prefixlen,
                                               str(ipam.gateway), mtu, conf.get("hairpinMode", True))
        except datapath.NetlinkError as e:
            if e.code != datapath.ENODEV:
                raise
            datapath.forget_bridge(bridge)  # somebody removed the bridge: make it again, once
            with datapath.netlink() as ipr:
                bridge_idx, bridge_mac = datapath.ensure_bridge(ipr, bridge, str(ipam.gateway),
                                                                ipam.net.prefixlen, mtu)
            links = datapath.add_pod_interface(netns, cid, ifname, bridge_idx, str(ip), ipam.net.prefixlen,
                                               str(ipam.gateway), mtu, conf.get("hairpinMode", True))
    except BaseException:
        ipam.release(cid, ifname)  # nothing half-made: the address goes back
        datapath.del_pod_interface(netns, cid, ifname)
        raise
    result = {
        "cniVersion": conf["cniVersion"],
        "interfaces": [{"name": bridge, "mac": bridge_mac}, {"name": links["host"], "mac": links["host_mac"]},
                       {"name": ifname, "mac": links["pod_mac"], "sandbox": netns, "mtu": mtu}],
        "ips": [{"address": f"{ip}/{ipam.net.prefixlen}", "gateway": str(ipam.gateway), "interface": 2}],
        "routes": [{"dst": "0.0.0.0/0", "gw": str(ipam.gateway)}],
        "dns": conf.get("dns") or {},
    }
    return spec.convert_result(result, conf["cniVersion"])


def cmd_del(env: dict[str, str], conf: dict) -> None:
    from knet.cni import datapath

    cid, ifname = env["CNI_CONTAINERID"], env["CNI_IFNAME"]
    netns = env.get("CNI_NETNS") or None
    if netns and not os.path.exists(netns):
        netns = None
    datapath.del_pod_interface(netns, cid, ifname)
    _ipam(conf).release(cid, ifname)
    return None


def cmd_check(env: dict[str, str], conf: dict) -> None:
    from knet.cni import datapath

    prev = conf.get("prevResult")
    if not prev:
        raise CniError(spec.INTERNAL, "Required prevResult missing")
    ours = [ip for ip in prev.get("ips", []) if ip.get("interface") is not None]
    if not ours:
        raise CniError(spec.INTERNAL, "prevResult has no address of this plugin")
    cid, ifname = env["CNI_CONTAINERID"], env["CNI_IFNAME"]
    ipam = _ipam(conf)
    problems = datapath.check_pod_interface(env["CNI_NETNS"], cid, ifname, _bridge(conf), ours[0]["address"],
                                            ours[0].get("gateway") or str(ipam.gateway))
    held = ipam.find(cid, ifname)
    if held != str(ipaddress.ip_interface(ours[0]["address"]).ip):
        problems.append(f"IPAM holds {held or 'nothing'} for {cid}/{ifname}, not {ours[0]['address']}")
    if problems:
        raise CniError(spec.INTERNAL, "attachment check failed", "; ".join(problems))
    return None


def cmd_status(env: dict[str, str], conf: dict) -> None:
    if _ipam(conf).free_count() <= 0:
        raise CniError(spec.NOT_AVAILABLE, "no IP addresses available", "the pod range is exhausted")
    return None


def cmd_gc(env: dict[str, str], conf: dict) -> None:
    from knet.cni import datapath

    valid_list = conf.get("cni.dev/valid-attachments")
    if valid_list is None:
        valid_list = []
    valid = {(a.get("containerID"), a.get("ifname")) for a in valid_list}
    _ipam(conf).gc(valid)
    keep = {datapath.host_veth_name(cid, ifn) for cid, ifn in valid}
    for port in datapath.bridge_ports(_bridge(conf)):
        if port.startswith("veth") and port not in keep:
            datapath.delete_link(port)
    return None
