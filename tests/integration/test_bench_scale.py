"""bench/scale.py in its smoke sizes (--quick): it runs to the end on a real
cluster and its last line is one JSON object holding every figure the issue
asks for. No duration is asserted, only that each figure was measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.root, pytest.mark.cluster]

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
KEYS = {"step_s", "step_cp_cpu_s", "step_ratio_last_first", "cp_cpu_ratio_last_first", "rss_mb_at_max",
        "rss_mb_per_pod", "rss_mb_idle", "small_deploy_s", "small_pods_per_s", "big_deploy_s", "big_pods_per_s",
        "pods_per_s_ratio_small_big", "get_pod_p50_ms", "get_pod_p99_ms", "get_pod_samples",
        "readiness_slice_writes", "up_three_plus_one_s", "up_4_workers_s", "down_with_max_pods_s",
        "step_cp_controllers_cpu_s", "step_cp_handlers_cpu_s", "step_writes", "cp_loop_lag_p99_ms",
        "rss_mb_at_big", "rss_mb_per_pod_at_big", "rss_kb_per_pod_by_kind_at_big",
        "step_watch_writes", "step_watch_bookmarks", "cp_gc_full_longest_ms", "step_machine_busy_cpu_s"}


def test_scale_bench_quick_reports_every_figure():
    out = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "scale.py"), "--quick"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert KEYS <= set(figures), KEYS - set(figures)
    assert len(figures["step_s"]) == len(figures["step_cp_cpu_s"]) == figures["max"] // figures["step"]
    assert all(w > 0 for w in figures["step_writes"]) and figures["cp_loop_lag_p99_ms"] is not None
    assert figures["get_pod_samples"] > 0 and figures["rss_mb_at_max"] > 0 and figures["rss_mb_at_big"] > 0
    assert figures["readiness_slice_writes"] >= 1  # the change reached the slices
    assert "step seconds, first vs last" in out.stdout  # the ratios side by side
