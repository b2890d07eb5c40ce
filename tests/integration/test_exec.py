"""`knet exec` and a container enter a pod the same way (knet.node.enter):
the same network and UTS namespaces, the same hostname, /etc/resolv.conf,
/etc/hosts and /etc/hostname (the pod's, not the host's), the same identity
and working directory. And exec refuses a sandbox whose files are not all
there instead of silently showing the host's."""

from __future__ import annotations

import os
import subprocess

import pytest

from knet.harness.cluster import Cluster
from knet.node.sandbox import sandbox_for

# What a process sees of the pod. Between markers, so the container's log and exec's output
# compare line by line; the mount namespace is left out (each process gets one of its own).
VIEW = ("echo '# hostname'; hostname; echo '# /etc/hostname'; cat /etc/hostname; "
        "echo '# resolv.conf'; cat /etc/resolv.conf; echo '# hosts'; cat /etc/hosts; "
        "echo '# namespaces'; readlink /proc/self/ns/net /proc/self/ns/uts; "
        "echo '# identity'; id -u; id -g; id -G; pwd; echo '# end'")

POD = """\
apiVersion: v1
kind: Pod
metadata: {name: viewer}
spec:
  hostname: box
  subdomain: lab
  hostAliases: [{ip: 10.1.2.3, hostnames: [db.example, db]}]
  dnsConfig: {searches: [example.test], options: [{name: edns0}]}
  securityContext: {runAsUser: 1000, runAsGroup: 3000, supplementalGroups: [4000]}
  containers:
  - name: c
    image: agnhost
    workingDir: /tmp
    command: [sh, -c, "VIEW; sleep 3600"]
""".replace("VIEW", VIEW)


@pytest.fixture(scope="module")
def c():
    with Cluster.up(workers=1) as cluster:
        yield cluster


def view(text: str) -> str:
    return text[text.index("# hostname"):text.index("# end")]


def test_exec_sees_the_pod_as_its_container_does(c):
    c.apply(POD)
    pod = c.wait_pod("default", "viewer", lambda p: p["status"].get("phase") == "Running")
    c.wait_for("the container's view in its log", lambda: "# end" in c.knet("logs", "viewer").stdout)
    container = view(c.knet("logs", "viewer").stdout)
    exec_ = c.exec_pod("default", "viewer", ["sh", "-c", VIEW])
    assert exec_.returncode == 0, exec_.stderr
    assert view(exec_.stdout) == container
    # ... and that view is the pod's, not the host's.
    lines = container.splitlines()
    assert lines[1] == "box" and lines[3] == "box"
    assert "search default.svc.cluster.local svc.cluster.local cluster.local example.test" in lines
    assert "options ndots:5 edns0" in lines
    assert f"{pod['status']['podIP']}\tbox.lab.default.svc.cluster.local\tbox" in lines and "10.1.2.3\tdb.example\tdb" in lines
    sb = sandbox_for(c.cfg, pod["spec"]["nodeName"], pod["metadata"]["uid"])
    net, uts = lines[lines.index("# namespaces") + 1:lines.index("# identity")]
    assert net == f"net:[{os.stat(sb.netns_path).st_ino}]" and uts == f"uts:[{os.stat(sb.uts_path).st_ino}]"
    assert lines[lines.index("# identity") + 1:] == ["1000", "3000", "3000 4000", "/tmp"]
    host = subprocess.run(["hostname"], capture_output=True, text=True).stdout.strip()
    assert host != "box"


def test_exec_refuses_a_sandbox_without_its_files(c):
    """Before knet.node.enter, exec skipped a bind whose file was missing and ran with the
    host's file in its place; now a sandbox must be whole to be entered."""
    c.apply(POD.replace("name: viewer", "name: partial"))
    pod = c.wait_pod("default", "partial", lambda p: p["status"].get("phase") == "Running")
    sb = sandbox_for(c.cfg, pod["spec"]["nodeName"], pod["metadata"]["uid"])
    os.unlink(sb.hostname_file)
    out = c.exec_pod("default", "partial", ["cat", "/etc/hostname"])
    assert (out.returncode, out.stdout) == (1, "")
    assert out.stderr == "error: pod partial has no sandbox yet (phase Running)\n"
