"""Mininet, the benchmarks' reference, built and cleaned up in its box leaves the host alone.

Bare, `mn -c` runs `rm -f /tmp/*.log /tmp/*.out`, `killall ping ...` and
`pkill -9 -f mininet:` host-wide. The sentinels below are exactly what it would
destroy; the box's own probe shows the clean-up really ran, inside.
"""

import os
import secrets
import subprocess
import sys
import time

# Appended, not put first: bench/dns.py must not shadow dnspython's package for the tests after these.
sys.path.append(os.path.join(os.path.dirname(__file__), "..", "..", "bench"))

import sandbox  # noqa: E402

# Runs inside the box: Mininet builds and tears down two hosts, then its full
# clean-up runs over a probe file in the box's /tmp; the box reports its namespaces.
BOX_SCRIPT = """set -e
{mn}
touch /tmp/knet-probe.log /tmp/knet-probe.out
mn -c
if [ -e /tmp/knet-probe.log ] || [ -e /tmp/knet-probe.out ]; then echo probe-kept; else echo probe-removed; fi
for n in net pid mnt user; do echo "ns $n $(readlink /proc/self/ns/$n)"; done
"""


def _sentinel_process(comm: str, tag: str) -> subprocess.Popen:
    """A sleeping process named `comm` (what killall matches) whose command line carries `tag`."""
    code = f"import ctypes, time; ctypes.CDLL(None).prctl(15, {comm.encode()!r}, 0, 0, 0); time.sleep(300)"
    proc = subprocess.Popen([sys.executable, "-c", code, tag])
    deadline = time.monotonic() + 10
    while True:
        with open(f"/proc/{proc.pid}/comm") as f:
            if f.read().strip() == comm:
                return proc
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"sentinel process never took the name {comm}")
        time.sleep(0.01)


def test_mininet_build_and_cleanup_in_the_box_leave_host_files_processes_and_sysctls():
    token = secrets.token_hex(4)
    files = [f"/tmp/knet-sentinel-{token}.log", f"/tmp/knet-sentinel-{token}.out"]
    procs = []
    try:
        for path in files:
            with open(path, "w") as f:
                f.write("keep me\n")
        # What `killall ping` and `pkill -9 -f mininet:` would hit on the host.
        procs = [_sentinel_process("ping", f"knet-sentinel-{token}"),
                 _sentinel_process("knet-sentinel", f"mininet:knet-sentinel-{token}")]
        with open("/proc/sys/kernel/pty/max") as f:
            pty_max = f.read()

        script = BOX_SCRIPT.format(mn=" ".join(sandbox.mininet_argv(2)))
        out = sandbox.run_boxed(["sh", "-c", script], timeout=120)

        assert out.code == 0, out.stderr[-3000:]
        assert "Cleanup complete" in out.stderr
        assert "probe-removed" in out.stdout  # the clean-up's rm ran, on the box's /tmp
        box_ns = dict(line.split()[1:] for line in out.stdout.splitlines() if line.startswith("ns "))
        for kind in ("net", "pid", "mnt", "user"):
            assert box_ns[kind] != os.readlink(f"/proc/self/ns/{kind}"), kind
        for path in files:
            with open(path) as f:
                assert f.read() == "keep me\n"
        assert [p.poll() for p in procs] == [None, None]
        with open("/proc/sys/kernel/pty/max") as f:
            assert f.read() == pty_max  # Mininet's fixLimits raises it to 20000 when it can
    finally:
        for p in procs:
            p.kill()
            p.wait()
        for path in files:
            if os.path.exists(path):
                os.unlink(path)
