"""Every shipped lab, run as CI runs it: `knet lab run LAB` (its cluster up, every exercise's
commands typed and checks run, its cluster down). Then a lab made to fail, through up / check /
down and through run: a failing check says what it expected, what it saw and what to look at,
exits 1, and the cluster goes also then.

The labs run two at a time (each mostly waits: pods starting, probes timing out, a rollout), each
on a cluster name of its own, so the module costs about its two longest labs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from knet.harness.cluster import unique_name
from knet.lab.catalog import shipped
from knet.lab.model import load
from knet.paths import state_dir

pytestmark = [pytest.mark.root, pytest.mark.cluster]

LABS = [load(folder).name for folder in shipped()]
PARALLEL = 2
RUN_TIMEOUT = 240


def knet(*args: str, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "knet.cli", *args], capture_output=True, text=True, timeout=timeout)


def gone(cluster: str) -> bool:
    """Nothing of the cluster left: no state directory, no network namespace by its names."""
    names = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    return not os.path.exists(state_dir(cluster)) and not any(n.startswith(f"knet-{cluster}-") for n in names)


class Runs:
    """`knet lab run` of each lab in the background, PARALLEL at a time; results by lab."""

    def __init__(self, labs: list[str]) -> None:
        self.clusters = {lab: unique_name("lab") for lab in labs}
        self.results: dict[str, subprocess.CompletedProcess | BaseException] = {}
        self.done = {lab: threading.Event() for lab in labs}
        self.slots = threading.Semaphore(PARALLEL)
        self.threads = [threading.Thread(target=self._run, args=(lab,), daemon=True) for lab in labs]
        for t in self.threads:
            t.start()

    def _run(self, lab: str) -> None:
        with self.slots:
            try:
                self.results[lab] = knet("lab", "run", lab, "--cluster", self.clusters[lab])
            except BaseException as e:  # a timeout: the test says so
                self.results[lab] = e
            finally:
                self.done[lab].set()

    def result(self, lab: str) -> subprocess.CompletedProcess | BaseException:
        self.done[lab].wait(RUN_TIMEOUT * (len(self.done) // PARALLEL + 1))
        return self.results.get(lab, TimeoutError(f"lab {lab} did not finish"))

    def close(self) -> None:
        for t in self.threads:
            t.join(RUN_TIMEOUT)
        for cluster in self.clusters.values():  # whatever a killed run left
            if not gone(cluster):
                knet("down", "--cluster", cluster)


@pytest.fixture(scope="module", autouse=True)
def runs():
    """Started before the module's first test, so the failing lab's test overlaps the runs."""
    r = Runs(LABS)
    try:
        yield r
    finally:
        r.close()


def test_the_labs_are_shipped():
    assert {"pods", "services", "security", "rollout"} <= set(LABS)
    out = knet("lab", "list")
    assert out.returncode == 0, out.stderr
    rows = out.stdout.splitlines()
    assert rows[0].split()[:3] == ["NAME", "TITLE", "EXERCISES"]
    assert [r.split()[0] for r in rows[1:]] == LABS


FAILING = """\
kind: Lab
title: A lab with a wrong expectation
cluster:
  kind: Cluster
  nodes: [{role: control-plane}, {role: worker}]
manifests:
- apiVersion: v1
  kind: Pod
  metadata: {name: a}
  spec: {containers: [{name: c, image: agnhost, ports: [{containerPort: 80}]}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: b}
  spec: {containers: [{name: c, image: agnhost, ports: [{containerPort: 80}]}]}
exercises:
- text: a reaches b
  checks:
  - probe: {from: a, to: b, port: 80, expect: connected}
- text: the lab's author thinks b is closed
  checks:
  - probe: {from: a, to: b, port: 80, expect: blocked}
  - field: {object: pod/b, jsonpath: .status.phase, value: Running}
"""


def test_a_failing_check_says_what_it_expected_and_saw_and_the_cluster_goes_also_then(tmp_path):
    folder = tmp_path / "wrong"
    folder.mkdir()
    (folder / "lab.yaml").write_text(FAILING)
    cluster = unique_name("lab")
    try:
        out = knet("lab", "up", str(folder), "--cluster", cluster)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "Exercise 1 of 2" in out.stdout and "a reaches b" in out.stdout
        assert f"knet lab check wrong --cluster {cluster} --exercise 1" in out.stdout
        assert not gone(cluster)
        out = knet("lab", "check", str(folder), "--cluster", cluster, "--exercise", "1")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "PASS probe default/a -> default/b TCP/80: connected" in out.stdout
        assert "Exercise 2 of 2" in out.stdout.split("1 of 1 checks passed")[1]  # the next one, printed
        out = knet("lab", "check", str(folder), "--cluster", cluster)
        assert out.returncode == 1, out.stdout + out.stderr
        lines = out.stdout.splitlines()
        at = lines.index("  FAIL probe default/a -> default/b TCP/80")
        assert lines[at + 1].split() == ["expected:", "blocked"]
        assert lines[at + 2].split()[:2] == ["seen:", "connected"]
        assert lines[at + 3].strip() == f"look at: knet --cluster {cluster} trace a --to b:80"
        assert out.stdout.rstrip().endswith("2 of 3 checks passed, 1 failed")
        out = knet("lab", "check", str(folder), "--cluster", cluster, "--exercise", "3")
        assert out.returncode == 1 and out.stderr.strip() == \
            "error: --exercise: invalid value 3: lab wrong has exercises 1 to 2"
        out = knet("lab", "down", str(folder), "--cluster", cluster)
        assert out.returncode == 0 and gone(cluster), out.stdout + out.stderr
        out = knet("lab", "check", str(folder), "--cluster", cluster)
        assert out.returncode == 1 and "is not running" in out.stderr
        out = knet("lab", "run", str(folder), "--cluster", cluster)
        assert out.returncode == 1, out.stdout + out.stderr
        assert 'Lab "wrong": 2 of 3 checks passed, 1 failed' in out.stdout
        assert gone(cluster)
    finally:
        if not gone(cluster):
            knet("down", "--cluster", cluster)


def test_a_bad_lab_file_changes_nothing(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "lab.yaml").write_text(FAILING.replace("port: 80, expect: blocked", "port: 0, expect: blocked"))
    cluster = unique_name("lab")
    out = knet("lab", "run", str(folder), "--cluster", cluster, timeout=30)
    assert out.returncode == 1
    assert out.stderr.strip() == ("error: exercises[1].checks[0].probe.port: Invalid value: 0: must be between 1 "
                                  "and 65535, inclusive")
    assert out.stdout == "" and gone(cluster)


@pytest.mark.parametrize("lab", LABS)
def test_a_shipped_lab_runs_clean(runs, lab):
    out = runs.result(lab)
    if isinstance(out, BaseException):
        raise out
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "FAIL" not in text, text
    n = len([c for e in load(os.path.join(os.path.dirname(shipped()[0]), _folder(lab))).exercises for c in e.checks])
    assert f'Lab "{lab}": {n} of {n} checks passed' in text, text
    assert gone(runs.clusters[lab])


def _folder(lab: str) -> str:
    return next(os.path.basename(f) for f in shipped() if load(f).name == lab)
