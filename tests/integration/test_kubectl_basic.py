"""The real kubectl (v1.37) and the official Python client against a live
cluster, with nothing but the kubeconfig `knet up` wrote: HTTPS on the host's
loopback, the cluster CA, the admin's client certificate. Typed clients'
protobuf creates, watches that end their initial events (rollout status,
wait, delete), 401s, the listener surviving a control-plane restart and a
stop/start on the same port, and `down` taking exactly its entries out of
the kubeconfig."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest
import yaml

from knet.api import kubeconfig as kc
from knet.cluster import component_pid, down, start, stop
from knet.harness.cluster import KUBECTL, Cluster

pytestmark = [pytest.mark.root, pytest.mark.cluster]

USERS_OWN = {"name": "prod", "cluster": {"server": "https://prod.example:6443"}}


@pytest.fixture(scope="module")
def c():
    cluster = Cluster.up(workers=1)
    try:
        yield cluster
    finally:
        cluster.down()


def config(c: Cluster) -> dict:
    with open(c.kubeconfig) as f:
        return yaml.safe_load(f)


def server_url(c: Cluster) -> str:
    return config(c)["clusters"][0]["cluster"]["server"]


def test_the_kubeconfig_up_wrote(c):
    doc = config(c)
    name = f"knet-{c.name}"
    assert doc["current-context"] == name
    assert [x["name"] for x in doc["contexts"]] == [name]
    url = server_url(c)
    assert url.startswith("https://127.0.0.1:")
    assert os.stat(c.kubeconfig).st_mode & 0o777 == 0o600
    printed = c.knet("kubeconfig").stdout
    assert yaml.safe_load(printed)["clusters"][0]["cluster"]["server"] == url
    assert f"kubectl: {url} (context {name}" in c.knet("status").stdout


def test_version_without_skew_warning(c):
    out = c.kubectl("version")
    assert "Server Version: v1.37." in out.stdout
    assert "WARNING" not in out.stderr, out.stderr
    v = json.loads(c.kubectl("version", "-o", "json").stdout)["serverVersion"]
    assert (v["major"], v["minor"]) == ("1", "37")


def test_api_resources_and_get_with_no_flags(c):
    names = {line.split()[0] for line in c.kubectl("api-resources", "--no-headers").stdout.splitlines()}
    assert {"pods", "services", "deployments", "namespaces", "nodes"} <= names
    nodes = c.kubectl("get", "nodes", "-o", "name").stdout.split()
    assert sorted(nodes) == ["node/control-plane", "node/worker-1"]
    pods = c.kubectl("get", "pods", "-A", "-o", "json").stdout
    assert {p["metadata"]["namespace"] for p in json.loads(pods)["items"]} == {"kube-system"}


def test_create_namespace_deployment_service_through_protobuf(c):
    """kubectl's typed clients send these as protobuf (no JSON fallback)."""
    c.kubectl("create", "namespace", "kb")
    c.kubectl("create", "deployment", "web", "-n", "kb", "--image=agnhost", "--port=80", "--replicas=2")
    c.kubectl("create", "service", "clusterip", "web", "-n", "kb", "--tcp=80:8080")
    assert c.get("Namespace", None, "kb") is not None
    dep = c.get("Deployment", "kb", "web")
    assert dep["spec"]["replicas"] == 2
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert (container["name"], container["image"]) == ("agnhost", "agnhost")
    assert container["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    svc = c.get("Service", "kb", "web")
    assert svc["spec"]["ports"][0]["port"] == 80 and svc["spec"]["ports"][0]["targetPort"] == 8080
    assert svc["spec"]["selector"] == {"app": "web"}


def test_rollout_status_wait_and_delete_do_not_hang(c):
    # Each of these watches with sendInitialEvents: without the bookmark that ends the initial
    # events it would wait for ever (here: until the subprocess timeout fails the test).
    out = c.kubectl("rollout", "status", "deploy/web", "-n", "kb", "--timeout=60s", timeout=90)
    assert 'deployment "web" successfully rolled out' in out.stdout
    out = c.kubectl("wait", "--for=condition=Ready", "pod", "-l", "app=web", "-n", "kb", "--timeout=60s", timeout=90)
    assert out.stdout.count("condition met") == 2
    first = c.kubectl("get", "pods", "-n", "kb", "-o", "name").stdout.split()[0]
    out = c.kubectl("delete", "-n", "kb", first, "--timeout=60s", timeout=90)
    assert "deleted" in out.stdout
    assert c.get("Pod", "kb", first.split("/")[1]) is None


def raw_https(c: Cluster, token: str | None) -> tuple[int, dict]:
    """GET /api/v1/pods over TLS trusting only the cluster CA, with no client certificate."""
    ctx = ssl.create_default_context(cafile=os.path.join(c.cfg.state_dir, "pki", "ca.crt"))
    req = urllib.request.Request(server_url(c) + "/api/v1/pods",
                                 headers={"Authorization": f"Bearer {token}"} if token is not None else {})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def test_wrong_or_missing_credentials_get_401(c, tmp_path):
    for token in (None, "nope"):
        code, body = raw_https(c, token)
        assert code == 401
        assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
    real = open(os.path.join(c.cfg.state_dir, "token")).read().strip()
    assert raw_https(c, real)[0] == 200
    # kubectl with a kubeconfig whose token is wrong (with no credentials at all, kubectl asks for a
    # username before sending anything: the raw requests above cover that case).
    doc = config(c)
    doc["users"][0]["user"] = {"token": "nope"}
    path = tmp_path / "bad"
    path.write_text(yaml.safe_dump(doc))
    out = subprocess.run([KUBECTL, "--kubeconfig", str(path), "get", "pods"], capture_output=True, text=True,
                         timeout=30, stdin=subprocess.DEVNULL)
    assert out.returncode == 1
    assert "error: You must be logged in to the server (Unauthorized)" in out.stderr, out.stderr


def test_a_client_certificate_from_another_ca_is_refused(c, tmp_path):
    from knet.api import tls

    other = tls.write_pki(str(tmp_path), c.cfg.control_plane.ip, c.cfg.service_subnet, c.cfg.dns_domain)
    ctx = tls.client_context(os.path.join(c.cfg.state_dir, "pki", "ca.crt"), other.admin_crt, other.admin_key)
    port = int(server_url(c).rsplit(":", 1)[1])
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(b"GET /api/v1/pods HTTP/1.1\r\nHost: x\r\n\r\n")
                answer = s.recv(100)  # TLS 1.3: the server's refusal comes after the client's handshake
        except (ssl.SSLError, ConnectionResetError):
            pass
    assert answer == b""  # no HTTP answer at all, not even a 401: the handshake failed
    # The same request with the cluster's own admin certificate is answered.
    mine = tls.pki_paths(c.cfg.state_dir)
    ours = tls.client_context(mine.ca_crt, mine.admin_crt, mine.admin_key)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ours.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(b"GET /api/v1/pods HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 200 ")


def test_python_client_lists_namespaces_over_tls(c):
    from kubernetes import client
    from kubernetes import config as kconfig

    api = client.CoreV1Api(kconfig.new_client_from_config(config_file=c.kubeconfig))
    names = {ns.metadata.name for ns in api.list_namespace().items}
    assert {"default", "kube-system", "kb"} <= names
    assert api.api_client.configuration.host == server_url(c)


def test_host_listener_survives_a_control_plane_restart(c):
    """The supervisor keeps the host's listening socket and hands it to the new control plane."""
    url = server_url(c)
    os.kill(component_pid(c.name, "control-plane"), signal.SIGKILL)
    c.wait_for("control plane back", lambda: c.kubectl("get", "ns", "kb", check=False, timeout=20).returncode == 0,
               timeout=30, interval=0.2)
    assert server_url(c) == url


def test_a_new_supervisor_takes_the_listener_from_the_running_control_plane(c):
    """A supervisor killed while the control plane runs: `knet start` cannot bind the port (the
    control plane holds it), so the new supervisor takes a copy from the control plane (pidfd_getfd)
    and hands it on when the control plane restarts."""
    from knet.cluster import supervisor_pid

    url = server_url(c)
    os.kill(supervisor_pid(c.name), signal.SIGKILL)
    c.wait_for("supervisor gone", lambda: supervisor_pid(c.name) is None)
    start(c.name, say=lambda _m: None)
    assert server_url(c) == url
    os.kill(component_pid(c.name, "control-plane"), signal.SIGKILL)
    c.wait_for("control plane back", lambda: c.kubectl("get", "ns", "kb", check=False, timeout=20).returncode == 0,
               timeout=30, interval=0.2)


def test_stop_and_start_keep_the_port(c):
    url = server_url(c)
    stop(c.name, say=lambda _m: None)
    assert c.kubectl("get", "nodes", check=False, timeout=20).returncode != 0
    start(c.name, say=lambda _m: None)
    assert server_url(c) == url
    assert "node/worker-1" in c.kubectl("get", "nodes", "-o", "name").stdout.split()


def test_down_removes_exactly_its_entries(c):
    """Last: it deletes the module's cluster."""
    kc.update(c.kubeconfig, lambda d: {**d, "clusters": [*d["clusters"], USERS_OWN]})
    down(c.name, say=lambda _m: None)
    doc = config(c)
    assert doc["clusters"] == [USERS_OWN]
    assert doc["users"] == [] and doc["contexts"] == []
    assert doc["current-context"] == ""
