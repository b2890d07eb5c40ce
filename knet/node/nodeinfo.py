"""What a node reports about itself in its status, as kubelet reports it:
capacity and allocatable, nodeInfo, the kubelet endpoint.

Every knet node is a network namespace on the same machine, so each reports
the machine's cores, memory, root filesystem and boot, as a kind node (a
container) reports its host's. Identity is per node, as kind gives each node
container its own /etc/machine-id: machineID and systemUUID are derived from
the machine's id, the cluster and the node name, so they are stable across
agent restarts and distinct between nodes.

Read once per agent (the values do not change while it runs): the heartbeat
only copies them.
"""

from __future__ import annotations

import os
import platform
import uuid

# kubelet's defaults: --max-pods 110; hard eviction memory.available<100Mi and
# nodefs.available<10% come off allocatable (no system or kube reservation).
MAX_PODS = 110
EVICTION_MEMORY_KI = 100 * 1024
EVICTION_NODEFS_FRACTION = 0.10
KUBELET_PORT = 10250
# The release the node reports running: the API server's (knet.api.server.VERSION; a unit
# test keeps them equal), as a kubeadm cluster's kubelets run the control plane's. Not
# imported from there: the agent would load the whole server to read one string.
KUBELET_VERSION = "v1.37.0"


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def memory_ki(meminfo: str | None = None) -> int:
    """MemTotal from /proc/meminfo, in KiB (cAdvisor's machine memory capacity)."""
    text = _read("/proc/meminfo") if meminfo is None else meminfo
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def root_fs_bytes(path: str = "/") -> int:
    try:
        st = os.statvfs(path)
    except OSError:
        return 0
    return st.f_blocks * st.f_frsize


def os_image(os_release: str | None = None) -> str:
    text = _read("/etc/os-release") if os_release is None else os_release
    for line in text.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return "Linux"


def resources(cpus: int, mem_ki: int, fs_bytes: int, max_pods: int = MAX_PODS) -> tuple[dict[str, str], dict[str, str]]:
    """(capacity, allocatable) as kubelet's Quantities: memory and ephemeral
    storage capacity in Ki, allocatable less the default hard eviction
    thresholds (storage in bytes, as kubelet's arithmetic leaves it)."""
    fs_ki = fs_bytes // 1024
    capacity = {"cpu": str(cpus), "ephemeral-storage": f"{fs_ki}Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0",
                "memory": f"{mem_ki}Ki", "pods": str(max_pods)}
    allocatable = dict(capacity)
    allocatable["memory"] = f"{max(mem_ki - EVICTION_MEMORY_KI, 0)}Ki"
    allocatable["ephemeral-storage"] = str(int(fs_ki * 1024 * (1 - EVICTION_NODEFS_FRACTION)))
    return capacity, allocatable


def node_ids(cluster: str, node: str, machine_id: str | None = None) -> tuple[str, str]:
    """(machineID, systemUUID) of one knet node: the machine's id in the
    systemd format (32 hex digits) and a UUID, both particular to the node."""
    base = (_read("/etc/machine-id") or _read("/var/lib/dbus/machine-id")) if machine_id is None else machine_id
    node_uuid = uuid.uuid5(uuid.NAMESPACE_URL, f"knet:{base}:{cluster}:{node}")
    return node_uuid.hex, str(uuid.uuid5(node_uuid, "system-uuid"))


def node_info(cluster: str, node: str, kubelet_version: str, runtime_version: str) -> dict[str, str]:
    """status.nodeInfo with every field kubelet fills (clients such as the
    Python client require each of them)."""
    machine_id, system_uuid = node_ids(cluster, node)
    return {
        "machineID": machine_id,
        "systemUUID": system_uuid,
        "bootID": _read("/proc/sys/kernel/random/boot_id"),
        "kernelVersion": platform.release(),
        "osImage": os_image(),
        "containerRuntimeVersion": runtime_version,
        "kubeletVersion": kubelet_version,
        "kubeProxyVersion": "",  # deprecated; kubelet leaves it empty since v1.31
        "operatingSystem": "linux",
        "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()),
    }


def static_status(cluster: str, node: str, kubelet_version: str, runtime_version: str,
                  max_pods: int = MAX_PODS) -> dict:
    """The parts of a node's status that do not change while its agent runs;
    `max_pods` is the node's maxPods from the cluster file (kubelet's --max-pods)."""
    capacity, allocatable = resources(os.cpu_count() or 1, memory_ki(), root_fs_bytes(), max_pods)
    return {"capacity": capacity, "allocatable": allocatable,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": KUBELET_PORT}},
            "nodeInfo": node_info(cluster, node, kubelet_version, runtime_version)}
