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


def emit(figures: dict) -> None:
    """The last line: one JSON object with every figure, so runs compare."""
    print(json.dumps(figures, sort_keys=True))


def require_root() -> None:
    if os.geteuid() != 0:
        raise SystemExit("benchmarks need root")
