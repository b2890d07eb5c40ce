"""The API server's bounds, measured on a real API server process (the
control plane's ApiServer, Registry and SqliteStore with their defaults, on a
unix socket in a temporary directory; no namespaces needed):

- memory: its RSS (peak and at the end) while 50 watchers that never read
  watch a Node that gets 1,000 100 KB patches (before the bounded watch
  queues, one stalled watcher took the server to 285 MB after 1,200);
- store: the file + WAL size after 20,000 writes to 100 objects, beside the
  live data and what the log would hold without compaction.

Usage: .venv/bin/python bench/apiserver_limits.py [--watchers 50] [--patches 1000]
       [--writes 20000] [--objects 100] [--object-bytes 4000]
The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import emit, rss_mb  # noqa: E402
from knet.api.client import Client  # noqa: E402
from knet.api.resources import by_kind  # noqa: E402

NODES = by_kind("Node")
TOKEN = "bench-token"

SERVER = """
import sys, trio
from knet.api.registry import Registry
from knet.api.server import ApiServer
from knet.store.sqlite import SqliteStore
store = SqliteStore(sys.argv[1])
reg = Registry(store)
reg.bootstrap()
trio.run(ApiServer(reg, sys.argv[3]).serve_unix, sys.argv[2])
"""


def hwm_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def stalled_watch(sock_path: str, rv: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock_path)
    s.sendall(f"GET /api/v1/nodes?watch=true&resourceVersion={rv} HTTP/1.1\r\nHost: x\r\n"
              f"Authorization: Bearer {TOKEN}\r\n\r\n".encode())
    return s  # and never read from


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--watchers", type=int, default=50)
    p.add_argument("--patches", type=int, default=1000)
    p.add_argument("--patch-bytes", type=int, default=100_000)
    p.add_argument("--writes", type=int, default=20000)
    p.add_argument("--objects", type=int, default=100)
    p.add_argument("--object-bytes", type=int, default=4000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="knet-bench-api-") as tmp:
        db, sock = os.path.join(tmp, "store.db"), os.path.join(tmp, "api.sock")
        proc = subprocess.Popen([sys.executable, "-c", SERVER, db, sock, TOKEN])
        try:
            for _ in range(200):
                if os.path.exists(sock):
                    break
                time.sleep(0.05)
            c = Client(TOKEN, unix_path=sock)
            rv = c.create(NODES, None, {"apiVersion": "v1", "kind": "Node",
                                        "metadata": {"name": "n"}})["metadata"]["resourceVersion"]
            base = rss_mb([proc.pid])
            watchers = [stalled_watch(sock, rv) for _ in range(args.watchers)]
            peak = [base]
            done = threading.Event()

            def sample():
                while not done.is_set():
                    peak[0] = max(peak[0], rss_mb([proc.pid]))
                    time.sleep(0.05)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            pad = "z" * args.patch_bytes
            t0 = time.perf_counter()
            for i in range(args.patches):
                c.patch(NODES, None, "n", {"metadata": {"annotations": {"i": str(i), "pad": pad}}})
            patch_s = time.perf_counter() - t0
            done.set()
            sampler.join()
            after = rss_mb([proc.pid])
            watches = c.request("GET", "/knet/v1/progress")["watches"]
            for w in watchers:
                w.close()
            print(f"{args.watchers} stalled watchers, {args.patches} patches of {args.patch_bytes} bytes "
                  f"in {patch_s:.1f}s: API server RSS {base:.0f} MB before, peak {peak[0]:.0f} MB "
                  f"(VmHWM {hwm_mb(proc.pid):.0f} MB), {after:.0f} MB after; "
                  f"{watches['closedBehind']} watchers closed for falling behind")

            objects = [f"o{k}" for k in range(args.objects)]
            for name in objects:
                c.create(NODES, None, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
            written = 0
            t0 = time.perf_counter()
            body = "v" * args.object_bytes
            for i in range(args.writes - args.objects):
                out = c.patch(NODES, None, objects[i % args.objects], {"metadata": {"annotations": {
                    "i": str(i), "pad": body}}})
                written += len(str(out))
            write_s = time.perf_counter() - t0
            store = c.request("GET", "/knet/v1/progress")["store"]
            mib = 1024 * 1024
            print(f"{args.writes} writes to {args.objects} objects of ~{args.object_bytes} bytes in {write_s:.1f}s: "
                  f"store {store['sizeBytes'] / mib:.1f} MiB (file {store['fileBytes'] / mib:.1f} MiB + "
                  f"WAL {store['walBytes'] / mib:.1f} MiB), live data {store['liveBytes'] / mib:.2f} MiB, "
                  f"{store['logEntries']} revisions of history after compacted revision {store['compacted']}; "
                  f"without compaction the log would hold ~{2 * written / mib:.0f} MiB")
        finally:
            proc.terminate()
            proc.wait(10)
    emit({
        "stalled_watchers": args.watchers, "patches": args.patches, "patch_bytes": args.patch_bytes,
        "apiserver_rss_mb_before": round(base, 1), "apiserver_rss_mb_peak": round(peak[0], 1),
        "apiserver_rss_mb_after": round(after, 1), "watchers_closed_behind": watches["closedBehind"],
        "writes": args.writes, "objects": args.objects, "object_bytes": args.object_bytes,
        "store_bytes": store["sizeBytes"], "store_file_bytes": store["fileBytes"],
        "store_wal_bytes": store["walBytes"], "store_live_bytes": store["liveBytes"],
        "store_log_entries": store["logEntries"], "store_compacted_revision": store["compacted"],
        "uncompacted_log_bytes_estimate": 2 * written,
    })


if __name__ == "__main__":
    main()
