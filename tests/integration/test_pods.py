"""Pods on a real cluster: binding, Pending with a reason, processes with
command/env/securityContext, the pod's hostname and resolv.conf, localhost
between containers, probes, restarts, grace periods, exec and logs."""

from __future__ import annotations

import json
import time

import pytest

from knet.harness.cluster import Cluster, ready, running


@pytest.fixture(scope="module")
def c():
    cluster = Cluster.up(workers=3, restartBackoffSeconds=0.3)
    yield cluster
    cluster.down()


def pod_yaml(name: str, spec: str, labels: str = "") -> str:
    return f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n{labels}spec:\n{spec}"


def status_of(pod: dict, container: str) -> dict:
    return next(s for s in pod["status"]["containerStatuses"] if s["name"] == container)


def test_scheduler_spreads_and_avoids_the_control_plane(c):
    c.apply("".join(f"---\n{pod_yaml(f'spread-{i}', '  containers: [{name: c, image: agnhost}]')}\n" for i in range(6)))
    nodes = [c.get("Pod", "default", f"spread-{i}")["spec"]["nodeName"] for i in range(6)]
    assert "control-plane" not in nodes
    # Fewest pods first, counting every pod on the node (the cluster DNS's too): the six
    # fill the workers up to one another, so no worker has two pods more than another.
    on = [p["spec"].get("nodeName") for p in c.list("Pod")]  # every namespace
    totals = [on.count(w) for w in ("worker-1", "worker-2", "worker-3")]
    assert max(totals) - min(totals) <= 1, totals
    events = c.knet("describe", "pod", "spread-0").stdout
    assert "Scheduled" in events and "Successfully assigned default/spread-0 to" in events
    c.knet("delete", "pod", "--all", "-l", "app!=nothing", "--wait")


def test_node_name_and_toleration_reach_the_control_plane(c):
    c.apply(pod_yaml("pinned", "  nodeName: worker-3\n  containers: [{name: c, image: agnhost}]\n"))
    assert c.get("Pod", "default", "pinned")["spec"]["nodeName"] == "worker-3"
    c.apply(pod_yaml("on-cp", "  nodeSelector: {node-role.kubernetes.io/control-plane: ''}\n"
                     "  tolerations: [{key: node-role.kubernetes.io/control-plane, operator: Exists, "
                     "effect: NoSchedule}]\n  containers: [{name: c, image: agnhost}]\n"))
    assert c.get("Pod", "default", "on-cp")["spec"]["nodeName"] == "control-plane"
    c.wait_pod("default", "on-cp", running)


def test_pod_that_fits_nowhere_stays_pending_with_a_reason(c):
    c.apply(pod_yaml("nowhere", "  nodeSelector: {disk: ssd}\n  containers: [{name: c, image: agnhost}]\n"))
    pod = c.wait_pod("default", "nowhere", lambda p: any(
        x["type"] == "PodScheduled" and x["status"] == "False" for x in p["status"].get("conditions", [])))
    cond = next(x for x in pod["status"]["conditions"] if x["type"] == "PodScheduled")
    assert pod["status"]["phase"] == "Pending" and cond["reason"] == "Unschedulable"
    assert cond["message"] == ("0/4 nodes are available: 1 node(s) had untolerated taint "
                               "{node-role.kubernetes.io/control-plane: }, 3 node(s) didn't match Pod's node "
                               "affinity/selector.")
    assert "FailedScheduling" in c.knet("describe", "pod", "nowhere").stdout
    assert "Pending" in c.knet("get", "pod", "nowhere").stdout


SECURITY_DEMO = """apiVersion: v1
kind: Pod
metadata:
  name: security-context-demo
spec:
  securityContext:
    runAsUser: 1000
    runAsGroup: 3000
    fsGroup: 2000
  containers:
  - name: sec-ctx-demo
    image: busybox:1.28
    command: [ "sh", "-c", "sleep 1h" ]
    env:
    - {name: GREETING, value: hello}
    - {name: MESSAGE, value: "$(GREETING) from $(POD_NAME)"}
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    securityContext:
      allowPrivilegeEscalation: false
"""


def test_seed_security_context_example_runs_as_written(c):
    c.apply(SECURITY_DEMO)
    c.wait_pod("default", "security-context-demo", running)
    ident = c.exec_pod("default", "security-context-demo", ["id"]).stdout
    assert "uid=1000" in ident and "gid=3000" in ident and "2000" in ident
    out = c.exec_pod("default", "security-context-demo",
                     ["sh", "-c", "ps -o user,args -C sleep | grep -c 'sleep 1h'; grep NoNewPrivs /proc/self/status; "
                      "echo $GREETING; hostname; cat /etc/hostname"]).stdout.split("\n")
    assert out[1].split() == ["NoNewPrivs:", "1"]
    assert out[2:5] == ["hello", "security-context-demo", "security-context-demo"]
    # The container process itself runs as 1000:3000 with no_new_privs (read from /proc, not from exec).
    pod = c.get("Pod", "default", "security-context-demo")
    pid = int(status_of(pod, "sec-ctx-demo")["containerID"].removeprefix("knet://"))
    proc_status = open(f"/proc/{pid}/status").read()
    assert "\nUid:\t1000\t1000\t1000\t1000" in proc_status and "\nGid:\t3000\t3000\t3000\t3000" in proc_status
    assert "NoNewPrivs:\t1" in proc_status


def test_env_expansion_and_logs(c):
    c.apply(pod_yaml("envy", """  restartPolicy: Never
  containers:
  - name: main
    image: agnhost
    command: ["sh", "-c", "echo $MESSAGE; echo line2"]
    env:
    - {name: GREETING, value: hi}
    - {name: MESSAGE, value: "$(GREETING) $(NOPE) $$(GREETING)"}
"""))
    c.wait_pod("default", "envy", lambda p: p["status"]["phase"] == "Succeeded")
    assert c.knet("logs", "envy").stdout == "hi $(NOPE) $(GREETING)\nline2\n"
    pod = c.get("Pod", "default", "envy")
    term = status_of(pod, "main")["state"]["terminated"]
    assert term["exitCode"] == 0 and term["reason"] == "Completed"


def test_pod_has_its_own_namespaces_hostname_and_resolv_conf(c):
    c.apply(pod_yaml("nsdemo", "  containers: [{name: c, image: agnhost, command: [sleep, '300']}]\n"))
    c.wait_pod("default", "nsdemo", running)
    out = c.exec_pod("default", "nsdemo", ["sh", "-c", "hostname; cat /etc/resolv.conf; ip -o link | wc -l"])
    lines = out.stdout.splitlines()
    assert lines[0] == "nsdemo"
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in lines
    assert "nameserver 10.96.0.10" in lines and "options ndots:5" in lines
    assert lines[-1] == "2"  # lo and eth0: the namespace is the pod's own
    pod = c.knet("get", "pod", "nsdemo", "-o", "json").stdout
    netns = json.loads(pod)["metadata"]["annotations"]["knet.dev/netns"]
    import subprocess
    assert netns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    host = subprocess.run(["hostname"], capture_output=True, text=True).stdout.strip()
    assert host != "nsdemo"
    # IPv4 pods: eth0 has no IPv6 (its link-local chatter would be flooded to every pod on the
    # node, knet.net.ns.IPV6_DEFAULT); lo keeps ::1 for what binds or resolves localhost there.
    addrs = c.exec_pod("default", "nsdemo", ["ip", "-o", "addr"]).stdout
    assert [line.split()[1] for line in addrs.splitlines() if " inet6 " in line] == ["lo"]
    assert "inet6 ::1/128" in addrs and any(" eth0 " in line and " inet " in line for line in addrs.splitlines())


def test_containers_of_a_pod_share_localhost(c):
    c.apply(pod_yaml("duo", """  containers:
  - name: server
    image: agnhost
    ports: [{containerPort: 8080}, {containerPort: 5353, protocol: UDP}]
  - name: client
    image: agnhost
    command: ["sleep", "300"]
"""))
    c.wait_pod("default", "duo", ready)
    tcp = c.exec_pod("default", "duo", ["sh", "-c", "echo hostname | nc -q1 127.0.0.1 8080"], container="client")
    assert tcp.stdout.strip() == "duo"
    udp = c.exec_pod("default", "duo", ["sh", "-c", "echo x | nc -u -w1 127.0.0.1 5353"], container="client")
    assert udp.stdout.strip() == "default/duo"
    http = c.exec_pod("default", "duo", ["sh", "-c", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -q1 127.0.0.1 8080"])
    assert http.stdout.startswith("HTTP/1.1 200 OK") and http.stdout.rstrip().endswith("default/duo")


def test_readiness_probes_gate_ready(c):
    c.apply(pod_yaml("probed", """  containers:
  - name: web
    image: agnhost
    ports: [{containerPort: 80, name: http}]
    readinessProbe:
      httpGet: {path: /healthz, port: http}
      periodSeconds: 1
  - name: flag
    image: agnhost
    command: ["sh", "-c", "sleep 300"]
    readinessProbe:
      exec: {command: ["test", "-f", "/tmp/knet-ready-flag-probed"]}
      periodSeconds: 1
  - name: tcp
    image: agnhost
    command: ["sleep", "300"]
    readinessProbe:
      tcpSocket: {port: 9999}
      periodSeconds: 1
"""))
    pod = c.wait_pod("default", "probed", lambda p: status_of(p, "web")["ready"])
    assert not ready(pod) and not status_of(pod, "tcp")["ready"]
    # The flag in the container's own /tmp (a pod's /tmp is its own, issue 15): the exec probe sees it there.
    assert c.exec_pod("default", "probed", ["touch", "/tmp/knet-ready-flag-probed"], container="flag").returncode == 0
    c.wait_pod("default", "probed", lambda p: status_of(p, "flag")["ready"])
    assert c.exec_pod("default", "probed", ["rm", "/tmp/knet-ready-flag-probed"], container="flag").returncode == 0
    pod = c.get("Pod", "default", "probed")
    assert not ready(pod)  # the tcp container has nothing on 9999
    c.wait_pod("default", "probed", lambda p: not status_of(p, "flag")["ready"])


def test_liveness_failure_restarts_the_container(c):
    c.apply(pod_yaml("liveness", """  containers:
  - name: main
    image: agnhost
    command: ["sleep", "300"]
    livenessProbe:
      exec: {command: ["false"]}
      periodSeconds: 1
      failureThreshold: 2
"""))
    pod = c.wait_pod("default", "liveness", lambda p: status_of(p, "main")["restartCount"] >= 1, timeout=20)
    last = status_of(pod, "main")["lastState"]["terminated"]
    assert last["exitCode"] == 137
    assert "Unhealthy" in c.knet("describe", "pod", "liveness").stdout


@pytest.mark.parametrize("policy,code,phase,restarts", [
    ("Always", 0, "Running", True), ("OnFailure", 1, "Running", True), ("OnFailure", 0, "Succeeded", False),
    ("Never", 3, "Failed", False)])
def test_restart_policies(c, policy, code, phase, restarts):
    name = f"rp-{policy.lower()}-{code}"
    c.apply(pod_yaml(name, f"  restartPolicy: {policy}\n  containers: [{{name: m, image: agnhost, command: [sh, -c, 'exit {code}']}}]\n"))
    if restarts:
        pod = c.wait_pod("default", name, lambda p: status_of(p, "m")["restartCount"] >= 2, timeout=20)
        assert status_of(pod, "m")["lastState"]["terminated"]["exitCode"] == code
    else:
        pod = c.wait_pod("default", name, lambda p: p["status"]["phase"] == phase)
        time.sleep(1)
        pod = c.get("Pod", "default", name)
        assert status_of(pod, "m")["restartCount"] == 0
        assert status_of(pod, "m")["state"]["terminated"]["exitCode"] == code
    assert pod["status"]["phase"] == phase


def test_crash_loop_shows_back_off(c):
    c.apply(pod_yaml("crashy", "  containers: [{name: m, image: agnhost, command: [sh, -c, 'exit 2']}]\n"))
    c.wait_pod("default", "crashy", lambda p: status_of(p, "m")["restartCount"] >= 2, timeout=20)
    c.wait_for("CrashLoopBackOff", lambda: "CrashLoopBackOff" in c.knet("get", "pod", "crashy").stdout, timeout=10)


def test_grace_period_sigterm_then_sigkill(c):
    stubborn = """  terminationGracePeriodSeconds: 2
  containers:
  - name: m
    image: agnhost
    command: ["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"]
"""
    polite = """  terminationGracePeriodSeconds: 30
  containers:
  - name: m
    image: agnhost
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]
"""
    c.apply(pod_yaml("stubborn", stubborn) + "---\n" + pod_yaml("polite", polite))
    c.wait_pod("default", "stubborn", running)
    c.wait_pod("default", "polite", running)
    t0 = time.monotonic()
    c.knet("delete", "pod", "polite")
    c.wait_gone("Pod", "default", "polite", timeout=10)
    polite_took = time.monotonic() - t0
    t0 = time.monotonic()
    out = c.knet("delete", "pod", "stubborn")
    assert 'pod "stubborn" deleted' in out.stdout
    assert c.get("Pod", "default", "stubborn")["metadata"].get("deletionTimestamp")
    assert "Terminating" in c.knet("get", "pod", "stubborn").stdout
    c.wait_gone("Pod", "default", "stubborn", timeout=10)
    stubborn_took = time.monotonic() - t0
    # What the times show, without an upper bound a loaded machine could break: the polite pod
    # went on SIGTERM (well inside its 30 s grace period: wait_gone's 10 s), the stubborn one only
    # once its 2 s grace period was over, and then for good (SIGKILL: a TERM-ignoring loop ended).
    assert polite_took < 10 and stubborn_took >= 1.8, (polite_took, stubborn_took)


def test_deleted_pod_leaves_no_namespace_process_or_file(c):
    import os
    import subprocess

    c.apply(pod_yaml("tidy", "  containers: [{name: m, image: agnhost, command: [sh, -c, 'sleep 300 & sleep 300']}]\n"))
    pod = c.wait_pod("default", "tidy", running)
    netns = pod["metadata"]["annotations"]["knet.dev/netns"]
    sdir = c.pod_sandbox_dir(pod)
    assert os.path.isdir(sdir)
    c.knet("delete", "pod", "tidy", "--wait")
    c.wait_gone("Pod", "default", "tidy")
    assert netns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not os.path.exists(sdir)


def test_get_output_formats(c):
    c.apply(pod_yaml("fmt", "  containers: [{name: c, image: agnhost}]\n", labels="  labels: {app: fmt}\n"))
    as_json = json.loads(c.knet("get", "pods", "-l", "app=fmt", "-o", "json").stdout)
    assert as_json["kind"] == "List" and [p["metadata"]["name"] for p in as_json["items"]] == ["fmt"]
    import yaml
    as_yaml = yaml.safe_load(c.knet("get", "po", "fmt", "-o", "yaml").stdout)
    assert as_yaml["kind"] == "Pod" and as_yaml["metadata"]["name"] == "fmt"
    assert c.knet("get", "po", "-l", "app=fmt", "-o", "name").stdout == "pod/fmt\n"
    wide = c.knet("get", "pods", "fmt", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    every = c.knet("get", "pods", "-A").stdout.splitlines()
    assert every[0].startswith("NAMESPACE")
    missing = c.knet("get", "pods", "-n", "kube-public", check=False)
    assert "No resources found in kube-public namespace." in missing.stderr


def test_exec_on_node_and_ext_and_logs_of_components(c):
    out = c.exec_node("worker-2", ["ip", "-o", "-4", "addr", "show", "eth0"])
    assert "192.168.56.12/24" in out.stdout
    ext = c.knet("exec", "ext", "--", "ping", "-c1", "-W1", "192.168.56.11")
    assert ext.returncode == 0
    assert "registered" in c.knet("logs", "node/worker-1").stdout
    assert "serving on" in c.knet("logs", "control-plane").stdout
    bad = c.knet("exec", "no-such-pod", "--", "true", check=False)
    assert bad.returncode != 0 and "not found" in bad.stderr


def test_apply_is_idempotent_and_all_or_nothing(c):
    doc = pod_yaml("idem", "  containers: [{name: c, image: agnhost}]\n")
    assert "pod/idem created" in c.apply(doc).stdout
    assert "pod/idem unchanged" in c.apply(doc).stdout
    bad = doc.replace("idem", "idem2") + "---\napiVersion: v1\nkind: Service\nmetadata: {name: broken}\n" \
        "spec: {ports: [{port: 70000}]}\n"
    out = c.apply(bad, check=False)
    assert out.returncode != 0
    assert "spec.ports[0].port: Invalid value: 70000" in out.stderr
    assert c.get("Pod", "default", "idem2") is None  # nothing of the file was applied
