"""A controller's failure on an object becomes a Warning Event on it (and a
warning log line), never only a debug line: the EndpointSlice controller's
refused slice on the Service, a refused pod on its owner, a crash while
syncing one object. Repeats fold into one Event whose count grows."""

from __future__ import annotations

import logging

from knet.api.registry import Registry
from knet.api.resources import by_kind
from knet.controllers import endpointslice
from knet.controllers.base import View
from knet.controllers.events import (
    MAX_MESSAGE,
    REPEAT_WRITE_SECONDS,
    SIMILAR_MAX,
    Recorder,
    make_event,
)
from knet.controlplane import reconcile
from knet.store.sqlite import SqliteStore

SERVICES, PODS, EVENTS, SLICES = (by_kind(k) for k in ("Service", "Pod", "Event", "EndpointSlice"))


def registry(tmp_path) -> Registry:
    r = Registry(SqliteStore(str(tmp_path / "c.db")))
    r.bootstrap()
    return r


def service(name: str, ports: int) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name},
                     "ports": [{"name": f"p{i}", "port": 1000 + i, "protocol": "TCP"} for i in range(ports)]}}


def serving_pod(reg, app: str) -> None:
    """A Running, Ready pod with an IP, as its node agent would report it."""
    pod = reg.create(PODS, "default", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{app}-1", "labels": {"app": app}},
        "spec": {"nodeName": "w1", "containers": [{"name": "c", "image": "knet/builtin"}]}})
    pod["status"] = {"phase": "Running", "podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}],
                     "conditions": [{"type": "Ready", "status": "True"}]}
    reg.update(PODS, "default", pod["metadata"]["name"], pod, "status")


def warnings(reg) -> list[dict]:
    return [e for e in reg.list(EVENTS, "default")[0] if e["type"] == "Warning"]


def test_a_service_with_more_ports_than_a_slice_holds_gets_a_warning_event(tmp_path, caplog):
    reg = registry(tmp_path)
    big = reg.create(SERVICES, "default", service("big", 101))  # a Service may have any number of ports
    reg.create(SERVICES, "default", service("small", 2))
    serving_pod(reg, "big")
    serving_pod(reg, "small")
    with caplog.at_level(logging.WARNING, logger="knet.controllers"):
        endpointslice.sync(View(reg))
    [ev] = warnings(reg)
    assert ev["reason"] == "FailedToUpdateEndpointSlices"
    assert ev["involvedObject"]["uid"] == big["metadata"]["uid"]
    assert ev["message"].startswith("Error updating Endpoint Slices for Service default/big: ")
    assert "ports" in ev["message"] and "100" in ev["message"]
    assert any("FailedToUpdateEndpointSlices" in r.getMessage() for r in caplog.records)
    # The other Service still got its slice.
    names = {s["metadata"]["labels"]["kubernetes.io/service-name"] for s in reg.list(SLICES, "default")[0]}
    assert names == {"small"}


def test_repeated_failures_fold_into_one_event(tmp_path):
    reg = registry(tmp_path)
    reg.create(SERVICES, "default", service("big", 101))
    serving_pod(reg, "big")
    for _ in range(5):
        reconcile(reg)
    [ev] = warnings(reg)
    assert ev["count"] == 1  # repeats within REPEAT_WRITE_SECONDS are counted, not written


def test_a_refused_pod_is_a_failure_of_its_owner(tmp_path):
    reg = registry(tmp_path)
    rs = reg.create(by_kind("ReplicaSet"), "default", {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "knet/builtin"}]}}}})
    view = View(reg)
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"generateName": "web-", "ownerReferences": [
               {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": rs["metadata"]["uid"],
                "controller": True}]},
           "spec": {"containers": [{"name": "c"}]}}  # no image: refused
    assert view.create("Pod", "default", pod) is None
    [ev] = warnings(reg)
    assert (ev["reason"], ev["involvedObject"]["kind"], ev["involvedObject"]["uid"]) == (
        "FailedCreate", "ReplicaSet", rs["metadata"]["uid"])
    assert ev["message"].startswith("Error creating Pod web-: ") and "image" in ev["message"]


def test_a_crash_while_syncing_one_object_is_an_event_and_the_rest_go_on(tmp_path):
    reg = registry(tmp_path)
    a = reg.create(SERVICES, "default", service("a", 1))
    view, done = View(reg), []
    for svc in (a, reg.create(SERVICES, "default", service("b", 1))):
        with view.guard(svc, "test-controller"):
            if svc["metadata"]["name"] == "a":
                raise KeyError("spec")
            done.append(svc["metadata"]["name"])
    assert done == ["b"]
    [ev] = warnings(reg)
    assert (ev["reason"], ev["involvedObject"]["name"]) == ("FailedSync", "a")
    assert ev["message"] == "error syncing Service default/a: KeyError: 'spec'"


class FakeEvents:
    """The store edge of a Recorder."""

    def __init__(self):
        self.created, self.bumps, self.t = [], [], 0.0

    def create(self, namespace, event):
        self.created.append(event)
        return True

    def bump(self, namespace, name, count, last, message):
        self.bumps.append((name, count, message))
        return True


def test_recorder_counts_repeats_and_rewrites_them_at_most_every_few_seconds():
    fake = FakeEvents()
    rec = Recorder(fake.create, fake.bump, clock=lambda: fake.t)
    obj = {"kind": "Service", "metadata": {"name": "s", "namespace": "default", "uid": "u1", "resourceVersion": "5"}}
    assert rec.record(obj, "Warning", "FailedX", "boom", "c")
    for _ in range(3):
        assert not rec.record(obj, "Warning", "FailedX", "boom", "c")
    fake.t = REPEAT_WRITE_SECONDS + 1
    assert rec.record(obj, "Warning", "FailedX", "boom", "c")
    name = fake.created[0]["metadata"]["name"]
    assert len(fake.created) == 1 and fake.bumps == [(name, 5, "boom")]
    # A changed object (a re-apply) hears at once; another message is another Event.
    assert rec.record({**obj, "metadata": {**obj["metadata"], "resourceVersion": "6"}}, "Warning", "FailedX", "boom", "c")
    assert fake.bumps[-1] == (name, 6, "boom")
    assert rec.record(obj, "Warning", "FailedX", "other", "c")
    assert len(fake.created) == 2


def test_recorder_combines_an_objects_ever_changing_messages():
    fake = FakeEvents()
    rec = Recorder(fake.create, fake.bump, clock=lambda: fake.t)
    obj = {"kind": "Service", "metadata": {"name": "s", "namespace": "default", "uid": "u1"}}
    for i in range(SIMILAR_MAX + 5):
        rec.record(obj, "Warning", "FailedX", f"slice s-{i} is invalid", "c")
    assert len(fake.created) == SIMILAR_MAX + 1
    combined = fake.created[-1]
    assert combined["message"] == f"(combined from similar events): slice s-{SIMILAR_MAX} is invalid"
    fake.t = REPEAT_WRITE_SECONDS + 1
    assert rec.record(obj, "Warning", "FailedX", "slice s-99 is invalid", "c")
    assert fake.bumps == [(combined["metadata"]["name"], 6, "(combined from similar events): slice s-99 is invalid")]


def test_event_messages_are_truncated():
    ev = make_event({"kind": "Service", "metadata": {"name": "s"}}, "Warning", "FailedX", "x" * 8_000_000, "c")
    assert len(ev["message"]) == MAX_MESSAGE and ev["message"].endswith("... (truncated)")
