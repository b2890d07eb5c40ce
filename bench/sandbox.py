"""A box for Mininet, the benchmarks' reference, so that its clean-up cannot reach the host.

Mininet's clean-up (`mn -c`, and `mn` itself after any error) is written for a
throw-away VM: it runs `rm -f /tmp/*.log /tmp/*.out`, `killall ping mnexec ...`,
`pkill -9 -f mininet:`, deletes every link named like `x-eth0` and every OVS
bridge, `rm -f ~/.ssh/mn/*`, and raises host sysctls (kernel.pty.max ...).
Run bare as root it lost other programs' files. In the box it is harmless:

  - an unprivileged user (nobody), so outside the box it owns nothing and has
    no capability: no host sysctl, module, OVS socket or root-owned file;
  - its own user namespace in which it is root, so it can still build veths,
    bridges and per-host namespaces;
  - its own network namespace (its "root" netns, where Mininet puts the
    switch, is the box's), pid namespace (killall/pkill see only the box, and
    every box process dies with the box's init), and mount namespace with
    private propagation and a tmpfs on /tmp (HOME points there too).

When the box's init exits, or the caller dies (--kill-child), the kernel kills
everything inside and frees its namespaces: nothing to clean up after.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

NOBODY = 65534
MARK = "knet-sandbox:"
BOX_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

# The box's init: its own /tmp first (or nothing runs), then the command, timed
# inside so the figure excludes setting the box up.
_INIT = (
    "mount -t tmpfs -o mode=1777 knet-sandbox /tmp && cd /tmp || exit 97\n"
    's=$(date +%s%N); "$@"; rc=$?; e=$(date +%s%N)\n'
    f'echo "{MARK} rc=$rc ns=$((e - s))" >&2\n'
    "exit $rc\n"
)


def box_argv(argv: list[str], uid: int = NOBODY) -> list[str]:
    """The command line that runs argv inside a fresh box as `uid` (root inside)."""
    if not argv:
        raise ValueError("argv: Required value")
    if uid == 0:
        raise ValueError("uid: must not be 0 (root outside the box is what the box is for)")
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs",
            "env", "-i", f"PATH={BOX_PATH}", "HOME=/tmp", "LANG=C.UTF-8",
            "unshare", "--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child",
            "--mount-proc", "--mount", "--propagation", "private",
            "--", "sh", "-c", _INIT, "knet-sandbox", *argv]


@dataclass
class BoxResult:
    code: int
    seconds: float | None  # the command's own time inside the box; None if it never ran
    stdout: str
    stderr: str


def parse_report(stderr: str) -> tuple[int, float] | None:
    """The (exit code, seconds) the box's init reported, or None if it never got that far."""
    for line in reversed(stderr.splitlines()):
        if line.startswith(MARK):
            fields = dict(f.split("=", 1) for f in line[len(MARK):].split())
            return int(fields["rc"]), int(fields["ns"]) / 1e9
    return None


def run_boxed(argv: list[str], timeout: float = 600) -> BoxResult:
    out = subprocess.run(box_argv(argv), capture_output=True, text=True, cwd="/", timeout=timeout)
    report = parse_report(out.stderr)
    if report is None:
        return BoxResult(out.returncode or 1, None, out.stdout, out.stderr)
    return BoxResult(report[0], report[1], out.stdout, out.stderr)


def mininet_argv(hosts: int) -> list[str]:
    """Mininet building `hosts` hosts on one Linux bridge, no controller, then tearing down."""
    return ["mn", "--switch", "lxbr", "--controller", "none", "--topo", f"single,{hosts}", "--test", "none"]
