"""Three QEMU VMs on a LAN of their own, for knet's machine mode on real kernels (issue 17).

The VMs boot the image scripts/vm-image builds and caches (Debian 12, everything knet needs,
root's ssh key), directly from its kernel, each on a copy-on-write overlay, under TCG: /dev/kvm
here runs only PVM guest kernels, and CI machines may have none. Their LAN is a bridge inside a
network namespace made here; QEMU runs in it (`ip netns exec`) on tap devices there, and ssh
reaches the VMs from it, so the host's root namespace is never configured. knet comes from this
checkout as a tar file attached read-only as the VMs' second disk (no 9p: a tar on a block device
needs no guest driver beyond virtio-blk), with its .pyc files, which spare TCG the compiling.

Every QEMU runs under `nice -n 19` with one vCPU: the machine is shared. close() kills the VMs and
deletes the namespace (with it the bridge and taps) and the overlays, whatever happened before.
"""

from __future__ import annotations

import importlib.util
import json
import os
import py_compile
import re
import shlex
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
SUBNET = "192.168.56"
GATEWAY = f"{SUBNET}.1"  # the namespace's own address on the bridge, where ssh starts from
# Deadlines, not expectations: under TCG, niced, on a 2-core machine that others load, a boot that
# takes a minute alone took over 15 (vms.py's first runs here, load average 13).
BOOT_TIMEOUT = float(os.environ.get("KNET_VM_BOOT_TIMEOUT", "1800"))
MEMORY_MB = int(os.environ.get("KNET_VM_MEMORY", "1024"))


def build_image() -> Path:
    """The cached image's directory (built first if its recipe changed: a few minutes), or
    KNET_VM_IMAGE's (an image directory scripts/vm-image made, kept as it is)."""
    if os.environ.get("KNET_VM_IMAGE"):
        return Path(os.environ["KNET_VM_IMAGE"])
    out = subprocess.run([str(CHECKOUT / "scripts" / "vm-image")], check=True, stdout=subprocess.PIPE,
                         text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def checkout_tar(path: Path) -> Path:
    """The checkout as the VMs get it: git's tracked and untracked (not ignored) files as they
    are in the work tree, plus every knet module compiled here, now: under TCG each VM would
    spend tens of seconds compiling them at its first `knet` (the work tree's __pycache__ holds
    only what ran here, some of it older than its source). They stay valid in the guest because
    tar keeps the sources' mtimes and the guest's python3 is the venv's (Debian's 3.11)."""
    listed = subprocess.run(["git", "-C", str(CHECKOUT), "ls-files", "-co", "--exclude-standard", "-z"],
                            check=True, stdout=subprocess.PIPE).stdout.decode().split("\0")
    names = sorted({n for n in listed if n and (CHECKOUT / n).is_file() and "__pycache__/" not in n})
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar, \
            tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        for name in names:
            tar.add(CHECKOUT / name, arcname=name, recursive=False)
            if name.startswith("knet/") and name.endswith(".py"):
                pyc = importlib.util.cache_from_source(name)  # knet/x/__pycache__/y.cpython-311.pyc
                py_compile.compile(str(CHECKOUT / name), cfile=str(Path(tmp, pyc)), dfile=f"/opt/knet/{name}",
                                   doraise=True)
                tar.add(Path(tmp, pyc), arcname=pyc, recursive=False)
    return path


@dataclass
class VM:
    name: str
    ip: str
    lab: VMLab
    proc: subprocess.Popen | None = None
    started: float = 0.0
    booted_s: float = 0.0

    def ssh_argv(self, command: str) -> list[str]:
        return ["ip", "netns", "exec", self.lab.netns, "ssh", "-q", "-i", str(self.lab.image / "id_ed25519"),
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
                "-o", "ConnectTimeout=120", "-o", "ServerAliveInterval=15", "-o", "LogLevel=ERROR",
                f"root@{self.ip}", command]

    def sh(self, command: str, *, input: str | None = None, check: bool = True,
           timeout: float = 1500.0) -> subprocess.CompletedProcess:
        """A shell command in the VM, as root, over ssh from the lab's namespace. ssh's own failure
        (exit 255: a busy TCG guest's sshd slow to send its banner) is retried, twice."""
        for _ in range(3):
            out = subprocess.run(self.ssh_argv(command), input=input, capture_output=True, text=True,
                                 timeout=timeout)
            if out.returncode != 255:
                break
            time.sleep(5)
        if check and out.returncode != 0:
            raise AssertionError(f"{self.name}: {command!r} exited {out.returncode}\n"
                                 f"stdout: {out.stdout}\nstderr: {out.stderr}")
        return out

    def knet(self, *args: str, input: str | None = None, check: bool = True,
             timeout: float = 1500.0) -> subprocess.CompletedProcess:
        return self.sh("knet " + shlex.join(args), input=input, check=check, timeout=timeout)

    def console(self) -> str:
        path = self.lab.dir / f"{self.name}.console"
        return path.read_text(errors="replace") if path.exists() else ""


@dataclass
class VMLab:
    """The namespace, its bridge, and the VMs on it (vm1 .11, vm2 .12, ...)."""

    count: int = 3
    image: Path = field(default_factory=build_image)
    netns: str = field(default_factory=lambda: f"kvmtest-{os.getpid()}")
    dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="knet-vms-", dir="/var/tmp")))
    vms: list[VM] = field(default_factory=list)
    closing: bool = False

    def __post_init__(self) -> None:
        self.vms = [VM(f"vm{i}", f"{SUBNET}.{10 + i}", self) for i in range(1, self.count + 1)]

    def ns(self, *argv: str) -> None:
        subprocess.run(["ip", "netns", "exec", self.netns, *argv], check=True, capture_output=True)

    def start(self) -> list[VM]:
        """Make the LAN and start every VM; returns once each one answers ssh."""
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        self.ns("ip", "link", "set", "lo", "up")
        self.ns("ip", "link", "add", "br0", "type", "bridge")
        self.ns("ip", "addr", "add", f"{GATEWAY}/24", "dev", "br0")
        self.ns("ip", "link", "set", "br0", "up")
        tar = checkout_tar(self.dir / "knet.tar")
        for i, vm in enumerate(self.vms, 1):
            tap = f"tap{i}"
            self.ns("ip", "tuntap", "add", "dev", tap, "mode", "tap")
            self.ns("ip", "link", "set", tap, "master", "br0", "up")
            self.boot(vm, i, tar)
        pool = ThreadPoolExecutor(len(self.vms))
        try:
            list(pool.map(self.wait_ssh, self.vms))
        except BaseException:  # one VM failed, or Ctrl-C: the others' waits stop too
            self.closing = True
            raise
        finally:
            pool.shutdown()
        return self.vms

    def boot(self, vm: VM, i: int, tar: Path) -> None:
        overlay = self.dir / f"{vm.name}.qcow2"
        overlay.unlink(missing_ok=True)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                        str(self.image / "disk.qcow2"), str(overlay)], check=True)
        # no_timer_check: under TCG on a loaded host the kernel's IO-APIC timer check can miss its
        # window and panic ("IO-APIC + timer doesn't work"); panic=-1 with -no-reboot turns any
        # panic into QEMU's exit, which wait_ssh sees at once instead of at its deadline.
        # init=: scripts/vm-image's knet-vm-init instead of systemd (minutes under TCG, and nothing knet uses)
        cmdline = (f"root=/dev/vda rw console=ttyS0 net.ifnames=0 no_timer_check panic=-1 "
                   f"init=/usr/local/sbin/knet-vm-init knet.ip={vm.ip}/24 knet.hostname={vm.name}")
        argv = ["nice", "-n", "19", "ip", "netns", "exec", self.netns,
                "qemu-system-x86_64", "-name", vm.name, "-machine", "q35", "-accel", "tcg", "-cpu", "max",
                "-smp", "1", "-m", str(MEMORY_MB), "-nodefaults", "-display", "none", "-no-reboot",
                "-kernel", str(self.image / "vmlinuz"), "-initrd", str(self.image / "initrd.img"),
                "-append", cmdline,
                "-drive", f"file={overlay},if=virtio,format=qcow2,discard=unmap",
                "-drive", f"file={tar},if=virtio,format=raw,readonly=on",
                "-netdev", f"tap,id=lan,ifname=tap{i},script=no,downscript=no",
                "-device", f"virtio-net-pci,netdev=lan,mac=52:54:00:56:00:{10 + i:02x}",
                "-device", "virtio-rng-pci",
                "-serial", f"file:{self.dir / (vm.name + '.console')}"]
        vm.started = time.monotonic()
        with open(self.dir / f"{vm.name}.qemu.log", "w") as log:
            vm.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)

    def wait_ssh(self, vm: VM) -> None:
        deadline = vm.started + BOOT_TIMEOUT
        while not self.closing:
            if vm.proc is not None and vm.proc.poll() is not None:
                log = (self.dir / f"{vm.name}.qemu.log").read_text()
                raise AssertionError(f"{vm.name}: QEMU exited {vm.proc.returncode}: {log}\n{vm.console()[-3000:]}")
            # one attempt at a time, long enough for a slow guest's sshd: retries would pile up in it
            if self.answers(vm):
                vm.booted_s = time.monotonic() - vm.started
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{vm.name} did not answer ssh in {BOOT_TIMEOUT:.0f} s; its console:\n"
                                     f"{vm.console()[-3000:]}")
            time.sleep(2)

    def answers(self, vm: VM) -> bool:
        try:
            return vm.sh("true", check=False, timeout=300).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def install_knet(self) -> None:
        """knet from the checkout's tar (the second disk, /dev/vdb) into /opt/knet of every VM."""
        # remount: images built before knet-vm-init did it keep the initramfs's noexec /run, where the
        # agent installs its CNI shim (a pod's sandbox then fails: "knet-cni not found on CNI_PATH")
        script = ("mount -o remount,exec /run && mkdir -p /opt/knet && tar -x -f /dev/vdb -C /opt/knet && "
                  "bash /opt/knet/scripts/vm-image install /opt/knet")
        with ThreadPoolExecutor(len(self.vms)) as pool:
            list(pool.map(lambda vm: vm.sh(script), self.vms))

    def close(self) -> None:
        self.closing = True  # wait_ssh's threads give up
        for vm in self.vms:
            if vm.proc is not None and vm.proc.poll() is None:
                vm.proc.terminate()
        for vm in self.vms:
            if vm.proc is not None:
                try:
                    vm.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    vm.proc.kill()
                    vm.proc.wait()
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)
        for path in self.dir.iterdir():
            path.unlink()
        self.dir.rmdir()


# -- knet on the VMs: init, join, a pod on each worker, and what crosses between them -----------

APP = """---
apiVersion: v1
kind: Pod
metadata: {name: a, labels: {app: a}}
spec:
  nodeSelector: {kubernetes.io/hostname: vm2}
  containers:
  - {name: srv, image: agnhost, ports: [{containerPort: 80}]}
  - {name: tools, image: agnhost, command: [sleep, "3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, labels: {app: b}}
spec:
  nodeSelector: {kubernetes.io/hostname: vm3}
  containers:
  - {name: srv, image: agnhost, ports: [{containerPort: 80}]}
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
JOIN_RE = re.compile(r"^\s*(knet join \S+:6443 --token \S+ --discovery-token-ca-cert-hash sha256:[0-9a-f]{64})\s*$",
                     re.M)
WAIT = 900.0  # generous: knet's processes start under TCG on a shared machine


def wait_for(what: str, fn, timeout: float = WAIT, pause: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(pause)


def get_json(vm: VM, *args: str) -> dict:
    return json.loads(vm.knet("get", *args, "-o", "json").stdout)


def ready(obj: dict) -> bool:
    status = obj.get("status") or {}
    return any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or [])


def from_pod_a(lab: VMLab, what: str, ip: str, port: int) -> str:
    """agnhost's answer to WHAT, asked by pod a (on vm2) of IP:PORT, through `knet exec` on vm1
    (the API server's pods/exec to vm2's kubelet port): the check runs where a lab's would."""
    out = lab.vms[0].knet("exec", "a", "-c", "tools", "--", "sh", "-c", f"echo {what} | nc -w5 {ip} {port}",
                          check=False)
    return out.stdout.strip()


def cross_machine(lab: VMLab, what: str, ip: str, port: int) -> str:
    return wait_for(f"pod a to {ip}:{port}", lambda: from_pod_a(lab, what, ip, port), timeout=300, pause=2)


def progress(figures: dict, key: str, since: float) -> None:
    """Record a step's seconds, and say it at once on stderr (`pytest -s` shows it): a run of many
    minutes should show where it is, and where its time went if it fails."""
    figures[key] = round(time.monotonic() - since, 1)
    print(f"[vms {time.strftime('%H:%M:%S')}] {key} {figures[key]}", file=sys.stderr, flush=True)


def bring_up(lab: VMLab) -> dict:
    """Boot, install, init, join, the app; returns the seconds of each step."""
    figures: dict = {"vms": lab.count, "memory_mb": MEMORY_MB, "accel": "tcg"}
    t = time.monotonic()
    lab.start()
    figures["boot_each_s"] = [round(vm.booted_s, 1) for vm in lab.vms]
    progress(figures, "boot_s", t)
    t = time.monotonic()
    lab.install_knet()
    progress(figures, "install_s", t)
    vm1, workers = lab.vms[0], lab.vms[1:]
    t = time.monotonic()
    out = vm1.knet("init", "--advertise-address", vm1.ip, "--node-name", vm1.name, "--timeout", "1200")
    progress(figures, "init_s", t)
    m = JOIN_RE.search(out.stdout)
    assert m, out.stdout
    join = shlex.split(m[1])[1:]

    def join_one(vm: VM) -> float:
        t = time.monotonic()
        vm.knet(*join, "--node-name", vm.name, "--timeout", "1200")
        return round(time.monotonic() - t, 1)
    t = time.monotonic()
    with ThreadPoolExecutor(len(workers)) as pool:
        figures["join_each_s"] = list(pool.map(join_one, workers))
    wait_for("3 nodes Ready", lambda: sum(map(ready, get_json(vm1, "nodes")["items"])) == lab.count)
    progress(figures, "join_s", t)
    t = time.monotonic()
    vm1.knet("apply", "-f", "-", input=APP)
    for pod in ("a", "b"):
        figures[f"pod_{pod}_ip"] = wait_for(f"pod {pod} Ready", lambda pod=pod: (
            (p := get_json(vm1, "pod", pod)) and ready(p) and p["status"].get("podIP")))
    progress(figures, "pods_ready_s", t)
    t2 = time.monotonic()
    cross_machine(lab, "hostname", figures["pod_b_ip"], 80)
    progress(figures, "first_connection_s", t2)  # from both pods Ready
    progress(figures, "apply_to_first_connection_s", t)
    return figures


def iperf(server: VM, client: VM, address: str, server_netns: str = "", client_netns: str = "") -> int:
    """Bits per second received in a 5-second iperf3 TCP run from CLIENT to SERVER's ADDRESS,
    each in the given namespace of its VM (a pod's) or the VM's own. The pods' sides are entered
    with `ip netns exec` on their own VMs rather than through `knet exec`, so that no API
    stream stays open around the measurement."""
    def inside(netns: str, command: str) -> str:
        return f"ip netns exec {netns} {command}" if netns else command
    server.sh(inside(server_netns, "iperf3 -s -1 -D"))

    def once() -> int:
        out = client.sh(inside(client_netns, f"iperf3 -c {address} -t 5 -J"), check=False).stdout
        try:
            return int(json.loads(out)["end"]["sum_received"]["bits_per_second"])
        except (ValueError, KeyError):
            return 0
    return wait_for(f"iperf3 {client.name} -> {address}", once, timeout=120, pause=2)


def throughput(lab: VMLab) -> dict:
    """VM to VM (vm2 to vm3 on the bridge) against pod a to pod b (the same two VMs, through
    veth, cni0, VXLAN and the bridge), one after the other."""
    vm1, vm2, vm3 = lab.vms
    netns = {pod: f"knet-knet-pod-{get_json(vm1, 'pod', pod)['metadata']['uid'].replace('-', '')[:12]}"
             for pod in ("a", "b")}  # ClusterConfig.pod_netns of `knet init`'s cluster, "knet"
    vm_bps = iperf(vm3, vm2, vm3.ip)
    pod_bps = iperf(vm3, vm2, lab.figures["pod_b_ip"], netns["b"], netns["a"])
    return {"vm_to_vm_bps": vm_bps, "pod_to_pod_bps": pod_bps,
            "pod_to_pod_over_vm_to_vm": round(pod_bps / vm_bps, 3) if vm_bps else None}
