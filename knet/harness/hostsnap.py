"""A snapshot of the host's root network namespace, to prove knet never touches it.

Links, addresses, routes (all tables, both families), the nftables ruleset and
every sysctl under /proc/sys/net, taken with the same tools a person would use.
"""

from __future__ import annotations

import os
import subprocess

VOLATILE = ("nf_conntrack_count",)


def _run(*argv: str) -> str:
    out = subprocess.run(argv, capture_output=True, text=True)
    return out.stdout + (f"[exit {out.returncode}] {out.stderr}" if out.returncode else "")


def _sysctls() -> dict[str, str]:
    out = {}
    for root, _dirs, files in os.walk("/proc/sys/net"):
        for name in files:
            if name in VOLATILE:
                continue
            path = os.path.join(root, name)
            try:
                with open(path) as f:
                    out[path] = f.read()
            except OSError:
                pass
    return out


def snapshot() -> dict[str, object]:
    return {
        "links": _run("ip", "-d", "-o", "link", "show"),
        "addresses": _run("ip", "-o", "addr", "show"),
        "routes4": _run("ip", "-4", "route", "show", "table", "all"),
        "routes6": _run("ip", "-6", "route", "show", "table", "all"),
        "rules": _run("ip", "rule", "show"),
        "nft": _run("nft", "list", "ruleset"),
        "sysctls": _sysctls(),
    }


def diff(before: dict, after: dict) -> list[str]:
    """Human-readable differences, empty when the host is as it was."""
    problems = []
    for key in before:
        if key == "sysctls":
            for path, value in before[key].items():
                if after[key].get(path) != value:
                    problems.append(f"{path}: {value.strip()} -> {str(after[key].get(path)).strip()}")
            for path in set(after[key]) - set(before[key]):
                problems.append(f"{path}: new")
        elif before[key] != after[key]:
            problems.append(f"{key} changed:\n--- before\n{before[key]}\n--- after\n{after[key]}")
    return problems
