"""Shared bits of the benchmarks: timing, medians, and the closing JSON line."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time


def knet(*args: str, input: str | None = None) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "knet.cli", *args], input=input, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"knet {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out


def timed(fn, *args, **kw) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = fn(*args, **kw)
    return time.perf_counter() - t0, result


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def component_of(pid: int) -> str | None:
    """A knet process's component from its argv: "controlplane", "agent/<node>",
    "runtime/<node>", "dns", "supervisor" (the module after -m, less "knet." and
    "node."); None for anything else (a pod's command)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().decode(errors="replace").split("\0")
    except OSError:
        return None
    module = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "-m"), "")
    if not module.startswith("knet."):
        return None
    name = module.removeprefix("knet.").removeprefix("node.")
    node = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--node"), None)
    return f"{name}/{node}" if node else name


def rss_by_component(pids: list[int]) -> dict[str, float]:
    """MB resident per knet component (VmRSS; processes of one component, two
    coredns replicas say, add up), so a memory figure says which process grew."""
    out: dict[str, float] = {}
    for pid in pids:
        name = component_of(pid)
        if name is not None:
            out[name] = out.get(name, 0.0) + rss_mb([pid])
    return dict(sorted(out.items()))


def per_kind(by_component: dict[str, float]) -> dict[str, float]:
    """rss_by_component's figures added up per kind: every agent's together, every runtime's."""
    out: dict[str, float] = {}
    for name, mb in by_component.items():
        kind = name.split("/", 1)[0]
        out[kind] = out.get(kind, 0.0) + mb
    return out


def emit(figures: dict) -> None:
    """The last line: one JSON object with every figure, so runs compare."""
    print(json.dumps(figures, sort_keys=True))


def require_root() -> None:
    if os.geteuid() != 0:
        raise SystemExit("benchmarks need root")


def per_round_ratios(num: list[float], den: list[float]) -> list[float]:
    """num[i] / den[i]: each ratio compares two paths measured in the same round,
    so a busy minute on the shared machine moves both sides of it."""
    if len(num) != len(den) or not num:
        raise ValueError(f"rounds: need the same non-zero number of each ({len(num)} vs {len(den)})")
    return [n / d for n, d in zip(num, den, strict=True)]


def round_order(paths: list[str], r: int) -> list[str]:
    """Forward on even rounds, backward on odd ones (ABBA): a path is not always
    measured right after the same other one, or always first, as load drifts."""
    return list(paths) if r % 2 == 0 else list(reversed(paths))
