"""The Node authorizer's "its own" checks read an index kept from the
store's pod events (issue 14): the work per check (store reads, pods
decoded) is the same with 10 pods as with 400, and the index follows
bindings, spec changes and deletions as the store does."""

from __future__ import annotations

import pytest

from knet.api import bootstrappolicy, rbac
from knet.api.authz import User
from knet.api.nodeauthz import NodeAuthorizer
from knet.api.registry import Registry
from knet.api.resources import by_kind
from knet.store.sqlite import SqliteStore

PODS = by_kind("Pod")
NODE = User("system:node:worker-1", ("system:nodes", "system:authenticated"))


class CountingStore:
    """The real store, counting the values read through it (each one a
    decode for whoever asked): a check that walked the namespace's pods
    would read one per pod."""

    def __init__(self, store):
        self._store = store
        self.reads = 0

    def get(self, key):
        found = self._store.get(key)
        self.reads += found is not None
        return found

    def list(self, prefix):
        rows, rev = self._store.list(prefix)
        self.reads += len(rows)
        return rows, rev

    def __getattr__(self, name):
        return getattr(self._store, name)


@pytest.fixture
def setup(tmp_path):
    store = CountingStore(SqliteStore(str(tmp_path / "s.db")))
    reg = Registry(store)
    reg.bootstrap()
    bootstrappolicy.bootstrap(reg)
    node = NodeAuthorizer(store)
    return reg, store, node, rbac.Authorizer(store, node)


def _pod(reg, name, node, **spec):
    return reg.create(PODS, "default", {"metadata": {"name": name}, "spec": {
        "nodeName": node, "containers": [{"name": "c", "image": "i"}], **spec}})


def _filler(reg, n: int) -> None:
    """n pods, half on worker-1, each with a Secret, a ConfigMap and a ServiceAccount of its own."""
    for i in range(n):
        _pod(reg, f"p{i}", f"worker-{1 + i % 2}", serviceAccountName=f"sa{i}",
             volumes=[{"name": "s", "secret": {"secretName": f"s{i}"}},
                      {"name": "c", "configMap": {"name": f"c{i}"}}])


CHECKS = [  # (method, path, allowed) for worker-1 with the filler's pods
    ("GET", "/api/v1/namespaces/default/secrets/s0", True),
    ("GET", "/api/v1/namespaces/default/secrets/s1", False),  # p1 is on worker-2
    ("GET", "/api/v1/namespaces/default/configmaps/c2", True),
    ("GET", "/api/v1/namespaces/default/configmaps/nobody", False),
    ("POST", "/api/v1/namespaces/default/serviceaccounts/sa4/token", True),
    ("POST", "/api/v1/namespaces/default/serviceaccounts/sa5/token", False),
    ("PATCH", "/api/v1/namespaces/default/pods/p6/status", True),
    ("PATCH", "/api/v1/namespaces/default/pods/p7/status", False),
    ("DELETE", "/api/v1/namespaces/default/pods/p8", True),
]


def _work_per_check(reg, store, node, az) -> tuple[int, int]:
    """Values read from the store and pods decoded by the Node authorizer over CHECKS, after a first check."""
    node.graph.refers("worker-1", "default", "secrets", "warm-up")  # the one listing, at the first check
    reads, decodes = store.reads, node.graph.decodes
    for method, path, allowed in CHECKS:
        assert az.check(NODE, rbac.request_info(method, path, {}))[0] is allowed, path
    return store.reads - reads, node.graph.decodes - decodes


def test_the_work_per_check_does_not_grow_with_the_pods(tmp_path):
    work = {}
    for n in (10, 400):
        store = CountingStore(SqliteStore(str(tmp_path / f"{n}.db")))
        reg = Registry(store)
        reg.bootstrap()
        bootstrappolicy.bootstrap(reg)
        node = NodeAuthorizer(store)
        az = rbac.Authorizer(store, node)
        _filler(reg, n)
        az.check(NODE, rbac.request_info("GET", "/api/v1/namespaces/default/secrets/s0", {}))  # RBAC's cache too
        work[n] = _work_per_check(reg, store, node, az)
        assert node.graph.builds == 1
    assert work[10] == work[400]
    assert work[400][1] == 0  # no pod decoded by a check


def test_writes_after_the_first_check_keep_the_index_without_listing_again(setup):
    reg, store, node, az = setup
    _filler(reg, 4)
    assert az.check(NODE, rbac.request_info("GET", "/api/v1/namespaces/default/secrets/s0", {}))[0]
    decodes = node.graph.decodes
    _pod(reg, "late", "worker-1", volumes=[{"name": "s", "secret": {"secretName": "late-s"}}])
    assert az.check(NODE, rbac.request_info("GET", "/api/v1/namespaces/default/secrets/late-s", {}))[0]
    # a status write leaves the edges as they were; the watches' decode of the event is shared
    pod = reg.get(PODS, "default", "late")
    pod["status"] = {"phase": "Running"}
    reg.update(PODS, "default", "late", pod)
    assert az.check(NODE, rbac.request_info("GET", "/api/v1/namespaces/default/secrets/late-s", {}))[0]
    assert node.graph.builds == 1 and node.graph.decodes - decodes <= 2


def test_the_index_follows_deletion_and_a_second_pod_naming_the_same_secret(setup):
    reg, _, _, az = setup
    secret = rbac.request_info("GET", "/api/v1/namespaces/default/secrets/shared", {})
    assert not az.check(NODE, secret)[0]
    for name in ("a", "b"):
        _pod(reg, name, "worker-1", volumes=[{"name": "s", "secret": {"secretName": "shared"}}])
    assert az.check(NODE, secret)[0]
    reg.delete(PODS, "default", "a", grace=0)  # as the agent does once its pod stopped
    assert az.check(NODE, secret)[0]  # b still names it
    reg.delete(PODS, "default", "b", grace=0)
    assert not az.check(NODE, secret)[0]
    assert not az.check(NODE, rbac.request_info("PATCH", "/api/v1/namespaces/default/pods/b/status", {}))[0]


def test_a_pod_bound_after_the_first_check_is_indexed_at_its_binding(setup):
    reg, _, _, az = setup
    reg.create(PODS, "default", {"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "c", "image": "i", "env": [
            {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}]}]}})
    cm = rbac.request_info("GET", "/api/v1/namespaces/default/configmaps/cm", {})
    status = rbac.request_info("PATCH", "/api/v1/namespaces/default/pods/p/status", {})
    assert not az.check(NODE, cm)[0] and not az.check(NODE, status)[0]
    reg.bind("default", "p", "worker-1")
    assert az.check(NODE, cm)[0] and az.check(NODE, status)[0]
    assert not az.check(User("system:node:worker-2", NODE.groups), cm)[0]
