"""knet describe of a Service and a Deployment against the real kubectl's
output for the same objects: tests/data/kubectl/describe-svc-deploy.json holds
what a live knet cluster served (kubectl get -o json) and what kubectl v1.37
printed for `describe svc web` (two ports, four endpoints: `+ 1 more...`,
NodePort, ClientIP affinity, Local traffic policy) and `describe deploy web`
(after a rollout: Old/NewReplicaSet, named ports, env, nine events of a few
seconds), with the moment kubectl finished as `now` for the events' ages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from knet.printers import describe

CASES = json.loads((Path(__file__).parent.parent / "data" / "kubectl" / "describe-svc-deploy.json").read_text())


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    """kubectl ran in UTC; describe prints local time."""
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("case", CASES["cases"], ids=lambda c: c["describe"])
def test_describe_is_byte_for_byte_kubectls(case):
    text = describe(case["object"], case["events"], now=case["now"],
                    endpoint_slices=case.get("endpoint_slices"), replica_sets=case.get("replica_sets"))
    assert text == case["kubectl"]


def test_the_fixture_shows_what_it_is_for():
    svc, deploy = (c["kubectl"] for c in CASES["cases"])
    assert " + 1 more...\n" in svc and "NodePort:                 metrics  " in svc
    assert "OldReplicaSets:  web-" in deploy and "(0/0 replicas created)" in deploy
    assert deploy.count("ScalingReplicaSet") == 9
