"""A lab's life around its cluster: `run` takes the cluster down whatever happens (a failed
check, a failed step, Ctrl-C), and a failed `up` leaves nothing behind. The cluster's bring-up
and removal (knet.cluster.up/down) and the checks' seam are faked: that is the cluster seam."""

from __future__ import annotations

import pytest

import knet.cluster
from knet.lab import session
from knet.lab.checks import Result
from knet.lab.model import LabError, parse

LAB = {"kind": "Lab", "name": "t", "title": "T",
       "cluster": {"kind": "Cluster", "nodes": [{"role": "control-plane"}, {"role": "worker"}]},
       "exercises": [{"text": "one", "checks": [{"field": {"object": "pod/a", "jsonpath": ".x", "value": "1"}}]},
                     {"text": "two", "do": ["knet get pods"],
                      "checks": [{"field": {"object": "pod/a", "jsonpath": ".x", "value": "1"}}]}]}


@pytest.fixture
def cluster(monkeypatch):
    """Records what happened to the lab's cluster."""
    events: list[tuple] = []
    monkeypatch.setattr(knet.cluster, "up", lambda cfg, say, timeout: events.append(("up", cfg.name)) or 0.1)
    monkeypatch.setattr(knet.cluster, "down", lambda name, say: events.append(("down", name)))
    monkeypatch.setattr(session, "_client", lambda name: object())
    monkeypatch.setattr(session, "seam", lambda name: object())
    return events


def lab():
    return parse(LAB, "/nonexistent/t")


def test_run_goes_through_every_exercise_and_takes_the_cluster_down(cluster, monkeypatch):
    monkeypatch.setattr(session, "apply_manifests", lambda lab, client, say, deadline: None)
    steps = []
    monkeypatch.setattr(session, "run_steps", lambda ex, name, cwd, say: steps.append(ex.do) or None)
    verdicts = iter([[Result(True, "a", "1", "1")], [Result(False, "b", "1", "2", "look at: x")]])
    monkeypatch.setattr(session.checks, "run_all", lambda seam, checks: next(verdicts))
    said: list[str] = []
    assert session.run(lab(), "lab-x", say=said.append) == 1
    assert cluster == [("up", "lab-x"), ("down", "lab-x")]
    assert steps == [(), (("knet", "get", "pods"),)]
    assert "  FAIL b" in said and "       expected: 1" in said and "       seen:     2" in said
    assert said[-1].startswith('Lab "t": 1 of 2 checks passed, 1 failed (')


def test_a_failed_step_fails_its_exercise_without_its_checks(cluster, monkeypatch):
    monkeypatch.setattr(session, "apply_manifests", lambda lab, client, say, deadline: None)
    monkeypatch.setattr(session, "run_steps", lambda ex, name, cwd, say: "knet get pods: exit 1" if ex.do else None)
    ran = []
    monkeypatch.setattr(session.checks, "run_all", lambda seam, checks: ran.append(checks) or [Result(True, "a", "", "")])
    said: list[str] = []
    assert session.run(lab(), "lab-x", say=said.append) == 1
    assert len(ran) == 1 and "  FAIL step knet get pods: exit 1" in said
    assert cluster[-1] == ("down", "lab-x")


def test_ctrl_c_during_the_manifests_takes_the_cluster_down(cluster, monkeypatch):
    def interrupted(lab, client, say, deadline):
        raise KeyboardInterrupt
    monkeypatch.setattr(session, "apply_manifests", interrupted)
    with pytest.raises(KeyboardInterrupt):
        session.run(lab(), "lab-x", say=lambda _m: None)
    assert cluster[0] == ("up", "lab-x") and ("down", "lab-x") in cluster[1:]


def test_a_failed_up_leaves_nothing(cluster, monkeypatch):
    def bad(lab, client, say, deadline):
        raise LabError("manifests[0]: error when applying pod/a: invalid")
    monkeypatch.setattr(session, "apply_manifests", bad)
    said: list[str] = []
    with pytest.raises(LabError):
        session.up(lab(), "lab-x", say=said.append)
    assert cluster == [("up", "lab-x"), ("down", "lab-x")]
    assert said[-1] == "✗ the lab's manifests did not come up: manifests[0]: error when applying pod/a: invalid"
