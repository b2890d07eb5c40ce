"""The API server as the cluster runs it: auth over the LAN, a kill -9 and
restart that loses no acknowledged write, watches that resume across it, and
the corpus of invalid manifests, each rejected with its field and nothing stored."""

from __future__ import annotations

import glob
import os
import signal
import time

import pytest
import yaml

from knet.api.client import Client
from knet.api.errors import ApiError
from knet.api.resources import RESOURCES, by_kind
from knet.cluster import component_pid, start_component
from knet.harness.cluster import Cluster

DATA = os.path.join(os.path.dirname(__file__), "..", "data")
PODS, SVC = by_kind("Pod"), by_kind("Service")


@pytest.fixture(scope="module")
def c():
    cluster = Cluster.up(workers=1)
    yield cluster
    cluster.down()


PROBE = """
import http.client, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])  # the cluster CA only, the address checked against the SANs
conn = http.client.HTTPSConnection("192.168.56.10", 6443, timeout=5, context=ctx)
conn.request("GET", "/api/v1/pods", headers={"Authorization": "Bearer " + sys.argv[1]} if sys.argv[1] else {})
print(conn.getresponse().status)
"""


def test_lan_api_needs_the_token(c):
    token = open(os.path.join(c.cfg.state_dir, "token")).read().strip()
    ca = os.path.join(c.cfg.state_dir, "pki", "ca.crt")
    assert oct(os.stat(os.path.join(c.cfg.state_dir, "token")).st_mode & 0o777) == "0o600"
    assert oct(os.stat(os.path.join(c.cfg.state_dir, "api.sock")).st_mode & 0o777) == "0o600"
    for given, code in (("", "401"), ("nope", "401"), (token, "200")):
        out = c.exec_node("worker-1", ["python3", "-c", PROBE, given, ca])
        assert out.stdout.strip() == code, out.stderr


def test_restart_loses_no_acknowledged_write_and_watch_resumes(c):
    client = c.client
    start_rv = client.list(SVC, "default")["metadata"]["resourceVersion"]
    acked = []
    for i in range(30):
        out = client.create(SVC, "default", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s{i}"},
                                             "spec": {"ports": [{"port": 80}]}})
        acked.append(out["metadata"]["name"])
    mid_rv = client.get(SVC, "default", "s14")["metadata"]["resourceVersion"]
    os.kill(component_pid(c.name, "control-plane"), signal.SIGKILL)
    with pytest.raises((OSError, ApiError)):
        Client(client.token, unix_path=client.unix_path).list(SVC, "default")
    start_component(c.cfg, "control-plane")
    fresh = Client(client.token, unix_path=client.unix_path)
    c.wait_for("API back", lambda: _alive(fresh), timeout=10)
    names = {s["metadata"]["name"] for s in fresh.list(SVC, "default")["items"]}
    assert set(acked) <= names
    # A watch from a revision before the crash replays exactly what came after it.
    seen = []
    for ev in fresh.watch(SVC, "default", resource_version=mid_rv, timeout=5):
        if ev["type"] == "ADDED":
            seen.append(ev["object"]["metadata"]["name"])
        if len(seen) == 15:
            break
    assert seen == [f"s{i}" for i in range(15, 30)]
    assert int(start_rv) < int(mid_rv)
    # The node agents reconnect on their own and keep the node Ready.
    c.wait_for("agents back", lambda: c.nodes_ready() == {"control-plane": "True", "worker-1": "True"}, timeout=15)
    c.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: after-restart}\nspec: {containers: [{name: c, image: agnhost}]}\n")
    c.wait_pod("default", "after-restart", lambda p: p["status"].get("phase") == "Running")
    for name in acked:
        fresh.delete(SVC, "default", name)
    c.knet("delete", "pod", "after-restart")
    c.wait_gone("Pod", "default", "after-restart")


def _alive(client: Client) -> bool:
    try:
        client.request("GET", "/version")
        return True
    except (OSError, ApiError):
        time.sleep(0.02)
        return False


def corpus() -> list[str]:
    return sorted(glob.glob(os.path.join(DATA, "invalid", "*.yaml")))


def test_corpus_is_large_enough():
    assert len(corpus()) >= 50


@pytest.mark.parametrize("path", corpus(), ids=os.path.basename)
def test_invalid_manifest_is_rejected_with_its_field_and_nothing_stored(c, path):
    with open(path) as f:
        text = f.read()
    field = text.splitlines()[0].removeprefix("# field:").strip()
    obj = yaml.safe_load(text)
    before = stored(c)
    out = c.knet("apply", "-f", path, check=False)
    assert out.returncode != 0, out.stdout
    assert field in out.stderr, out.stderr
    assert "nothing was applied" in out.stderr
    assert stored(c) == before
    name = (obj.get("metadata") or {}).get("name")
    if name:
        kind = obj.get("kind")
        res = by_kind(kind)
        if res is not None:
            ns = (obj["metadata"].get("namespace") or "default") if res.namespaced else None
            with pytest.raises(ApiError) as e:
                c.client.get(res, ns, name)
            assert e.value.code == 404


def stored(c) -> dict:
    """Every stored object but Nodes, Leases and Events (heartbeats and components
    write those on their own), by revision."""
    out = {}
    for res in RESOURCES:
        if res.kind in ("Node", "Lease", "Event"):
            continue
        for obj in c.client.list(res, None)["items"]:
            m = obj["metadata"]
            out[(res.kind, m.get("namespace"), m["name"])] = m["resourceVersion"]
    return out
