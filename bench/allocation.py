"""Service creates per second as the cluster's Services grow: the cost of
allocation (ClusterIP, NodePort) at admission. A Registry over a fresh
SqliteStore in this process (no cluster needed), the default cluster's
ranges (10.96.0.0/12, 30000-32767); at each size N, N Services (one in
five NodePort) exist, then `--probe` more are created and timed: creates/s at
that size. The probe Services are deleted again so each size measures N.

Usage: .venv/bin/python bench/allocation.py [--sizes 100,1000,10000] [--probe 200]
The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import emit  # noqa: E402
from knet.api.allocators import ServiceAllocator  # noqa: E402
from knet.api.registry import Registry  # noqa: E402
from knet.api.resources import by_kind  # noqa: E402
from knet.config import default_config  # noqa: E402
from knet.store.sqlite import SqliteStore  # noqa: E402

SVC = by_kind("Service")


def service(name: str, node_port: bool) -> dict:
    spec: dict = {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}
    if node_port:
        spec["type"] = "NodePort"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="100,1000,10000")
    p.add_argument("--probe", type=int, default=200)
    args = p.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    cfg = default_config("bench")
    figures: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        reg = Registry(SqliteStore(os.path.join(tmp, "s.db")),
                       allocators={"Service": ServiceAllocator(cfg.service_subnet, cfg.node_port_range)})
        reg.bootstrap()
        have = 0
        for size in sizes:
            while have < size:
                reg.create(SVC, "default", service(f"s{have}", have % 5 == 0))
                have += 1
            t0 = time.perf_counter()
            for i in range(args.probe):
                reg.create(SVC, "default", service(f"probe{i}", i % 5 == 0))
            rate = args.probe / (time.perf_counter() - t0)
            for i in range(args.probe):
                reg.delete(SVC, "default", f"probe{i}")
            figures[f"creates_per_s_at_{size}"] = round(rate, 1)
            print(f"{size:>6} Services: {rate:8.1f} creates/s", flush=True)
    first, last = figures[f"creates_per_s_at_{sizes[0]}"], figures[f"creates_per_s_at_{sizes[-1]}"]
    figures["ratio_first_to_last"] = round(first / last, 2)
    print(f"creates/s at {sizes[0]} vs {sizes[-1]}: {first} vs {last} ({first / last:.2f}x)")
    emit(figures)


if __name__ == "__main__":
    main()
