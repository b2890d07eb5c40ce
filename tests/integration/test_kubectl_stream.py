"""kubectl logs, exec, attach and port-forward, and the Python client's log,
exec and port-forward, against a live cluster: the API server proxies them
to the kubelet server in the pod's node agent, as on a real cluster."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import queue
import re
import secrets
import select
import shutil
import socket
import struct
import subprocess
import termios
import threading
import time
import urllib.request

import pytest

from knet.api.podlogs import parse_time
from knet.harness.cluster import KUBECTL, Cluster, running

pytestmark = [pytest.mark.root, pytest.mark.cluster]

TRIGGER_DIR = "/tmp"  # the test talks to the containers through files in a hostPath volume under it


@pytest.fixture(scope="module")
def c():
    cluster = Cluster.up(workers=1, restartBackoffSeconds=0.2)
    token = secrets.token_hex(4)
    shared = os.path.join(TRIGGER_DIR, f"knet-stream-{token}")  # a pod sees only what it mounts (issue 15)
    os.makedirs(shared)
    trigger = os.path.join(shared, "trigger")
    counter = os.path.join(shared, "count")
    cluster.trigger, cluster.counter = trigger, counter
    volume = f"volumes: [{{name: shared, hostPath: {{path: {shared}, type: Directory}}}}]"
    mount = f"volumeMounts: [{{name: shared, mountPath: {shared}}}]"
    try:
        cluster.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: talker, labels: {{app: talker}}}}
spec:
  {volume}
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; done; echo to-stderr >&2; sleep 100000"]
  - name: side
    image: busybox
    {mount}
    command: ["sh", "-c", "echo side car;
      while true; do if mv {trigger} {trigger}.taken 2>/dev/null; then cat {trigger}.taken; fi; sleep 0.05; done"]
---
apiVersion: v1
kind: Pod
metadata: {{name: crasher}}
spec:
  {volume}
  containers:
  - name: c
    image: busybox
    {mount}
    command: ["sh", "-c", "n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter};
      echo instance $n; if [ $n -lt 2 ]; then exit 1; fi; sleep 100000"]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: agnhost
        ports: [{{containerPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
""")
        cluster.wait_pod("default", "talker", running)
        cluster.wait_for("the crasher's second instance", lambda: (p := cluster.get("Pod", "default", "crasher"))
                         and running(p) and p["status"]["containerStatuses"][0]["restartCount"] == 1)
        cluster.wait_for("the web pod", lambda: any(running(p) for p in cluster.list("Pod", "default")
                                                    if p["metadata"]["name"].startswith("web-")))
        yield cluster
    finally:
        cluster.down()
        shutil.rmtree(shared, ignore_errors=True)


def web_pod(c) -> str:
    return next(p["metadata"]["name"] for p in c.list("Pod", "default") if p["metadata"]["name"].startswith("web-"))


# -- logs -----------------------------------------------------------------------


def test_logs_of_a_container_its_tail_and_its_options(c):
    out = c.kubectl("logs", "talker", "-c", "main")
    assert out.stdout == "".join(f"line {i}\n" for i in range(1, 6)) + "to-stderr\n"
    assert c.kubectl("logs", "talker", "-c", "main", "--tail", "2").stdout == "line 5\nto-stderr\n"
    assert c.kubectl("logs", "talker", "-c", "main", "--tail", "0").stdout == ""
    assert c.kubectl("logs", "talker", "-c", "side").stdout.startswith("side car\n")
    assert c.kubectl("logs", "talker", "-c", "main", "--limit-bytes", "9").stdout == "line 1\nli"
    stamped = c.kubectl("logs", "talker", "-c", "main", "--timestamps", "--tail", "1").stdout
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z to-stderr\n", stamped), stamped


def test_logs_of_a_pod_with_two_containers_defaults_as_kubectl_does(c):
    # kubectl picks the first container and says so (its default-container logic), then asks for it by name.
    out = c.kubectl("logs", "talker")
    assert out.stdout.startswith("line 1\n")
    assert 'Defaulted container "main"' in out.stderr


def test_logs_errors_as_upstream(c):
    out = c.kubectl("logs", "talker", "-c", "nope", check=False)
    assert out.returncode == 1
    assert "container nope is not valid for pod talker" in out.stderr
    out = c.kubectl("logs", "nosuchpod", check=False)
    assert out.returncode == 1 and 'pods "nosuchpod" not found' in out.stderr
    out = c.kubectl("logs", "talker", "-c", "main", "--previous", check=False)
    assert out.returncode == 1
    assert 'previous terminated container "main" in pod "talker" not found' in out.stderr
    # The API server validates the options before anything reaches the node.
    raw = c.kubectl("get", "--raw", "/api/v1/namespaces/default/pods/talker/log?container=main&tailLines=-1",
                    check=False)
    assert raw.returncode == 1 and "tailLines: Invalid value: -1: must be greater than or equal to 0" in raw.stderr


def test_logs_previous_shows_the_instance_before_the_restart(c):
    assert c.kubectl("logs", "crasher").stdout == "instance 2\n"
    assert c.kubectl("logs", "crasher", "--previous").stdout == "instance 1\n"


def test_logs_follow_sees_a_new_line(c):
    marker = f"marker-{secrets.token_hex(4)}"
    env = {**os.environ, "KUBECONFIG": c.kubeconfig}
    proc = subprocess.Popen([KUBECTL, "logs", "-f", "talker", "-c", "side", "--limit-bytes", "9"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.wait()
    assert proc.stdout.read() == "side car\n"  # a followed log ends at limitBytes
    proc = subprocess.Popen([KUBECTL, "logs", "-f", "talker", "-c", "side", "--tail", "1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline()  # the tail first: the follow is under way
        with open(c.trigger + ".tmp", "w") as f:
            f.write(marker + "\n")
        os.rename(c.trigger + ".tmp", c.trigger)
        assert proc.stdout.readline() == marker + "\n"
        assert proc.poll() is None  # still following
    finally:
        proc.kill()
        proc.wait()


def write_and_see(c, line: str) -> None:
    """Have the side container print `line` and wait until its log has it. The container takes the
    trigger by renaming it (it used to cat, then rm: a trigger renamed into place between the two,
    by the next test under load, was removed unprinted)."""
    with open(c.trigger + ".tmp", "w") as f:
        f.write(line + "\n")
    os.rename(c.trigger + ".tmp", c.trigger)
    c.wait_for(line, lambda: line in c.kubectl("logs", "talker", "-c", "side").stdout)


def test_logs_since_and_timestamps_are_each_lines_own(c):
    before, after = f"before-{secrets.token_hex(3)}", f"after-{secrets.token_hex(3)}"
    write_and_see(c, before)
    # sinceTime goes over the wire in whole seconds (metav1.Time): the lines are a second apart or more.
    time.sleep(1.2)
    cut = int(time.time()) + 1
    while time.time() <= cut:
        time.sleep(0.05)
    write_and_see(c, after)
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(cut))
    out = c.kubectl("logs", "talker", "-c", "side", f"--since-time={since}").stdout
    assert after in out and before not in out and "side car" not in out
    stamped = {line.split(" ", 1)[1]: parse_time(line.split(" ", 1)[0])
               for line in c.kubectl("logs", "talker", "-c", "side", "--timestamps").stdout.splitlines()}
    assert stamped[before] < cut <= stamped[after]


# -- exec -----------------------------------------------------------------------


# kubectl 1.37 execs over WebSockets (v5.channel.k8s.io); with this set it uses SPDY/3.1, as older clients
# and client-go's SPDY executor do.
TRANSPORTS = pytest.mark.parametrize("spdy", [False, True], ids=["websocket", "spdy"])


@TRANSPORTS
def test_exec_stdout_stderr_and_exit_code(c, spdy, monkeypatch):
    if spdy:
        monkeypatch.setenv("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")
    out = c.kubectl("exec", "talker", "-c", "main", "--", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert out.returncode == 3
    assert out.stdout == "out\n"
    assert "err\n" in out.stderr and "command terminated with exit code 3" in out.stderr
    ok = c.kubectl("exec", "talker", "-c", "main", "--", "true", check=False)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "", "")


def test_exec_runs_inside_the_pod(c):
    # The pod's hostname (its UTS namespace) and its interface (its network namespace).
    pod = c.get("Pod", "default", "talker")
    assert c.kubectl("exec", "talker", "-c", "main", "--", "hostname").stdout == "talker\n"
    addrs = c.kubectl("exec", "talker", "-c", "main", "--", "ip", "-o", "-4", "addr", "show", "eth0").stdout
    assert f"inet {pod['status']['podIP']}/" in addrs


@TRANSPORTS
def test_exec_with_stdin(c, spdy, monkeypatch):
    if spdy:
        monkeypatch.setenv("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")
    data = "".join(f"row {i}\n" for i in range(2000))  # larger than one message each way
    out = c.kubectl("exec", "-i", "talker", "-c", "main", "--", "sh", "-c", "cat; echo done", input=data)
    assert out.stdout == data + "done\n"


@TRANSPORTS
def test_exec_with_a_terminal(c, spdy, monkeypatch):
    """kubectl exec -it from a terminal: the command gets a terminal of its
    own, sized as kubectl's (the resize channel), and its exit code."""
    if spdy:
        monkeypatch.setenv("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 99, 0, 0))
    env = {**os.environ, "KUBECONFIG": c.kubeconfig}
    script = 'while read x; do [ "$x" = q ] && exit 5; tty; stty size; done'
    proc = subprocess.Popen([KUBECTL, "exec", "-it", "talker", "-c", "main", "--", "sh", "-c", script],
                            stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    out = b""
    try:
        deadline = time.monotonic() + 20
        while b"33 99" not in out and time.monotonic() < deadline:  # until kubectl's size has reached it
            os.write(master, b"size\r")
            ready, _, _ = select.select([master], [], [], 1)
            if ready:
                out += os.read(master, 4096)
        os.write(master, b"q\r")
        assert proc.wait(timeout=20) == 5
        # (The terminal's echo of what is typed may come between the command's lines.)
        assert b"33 99\r\n" in out and re.search(rb"/dev/pts/\d+\r\n", out), out
    finally:
        proc.kill()
        proc.wait()
        os.close(master)


def test_exec_copies_files_out_and_in(c, tmp_path):
    # kubectl cp is tar through exec: binary stdout one way, stdin the other.
    src = tmp_path / "in.bin"
    src.write_bytes(bytes(range(256)) * 300)
    remote = f"/tmp/knet-cp-{secrets.token_hex(4)}.bin"
    try:
        c.kubectl("cp", str(src), f"default/talker:{remote}", "-c", "main")
        c.kubectl("cp", f"default/talker:{remote}", str(tmp_path / "out.bin"), "-c", "main")
        assert (tmp_path / "out.bin").read_bytes() == src.read_bytes()
    finally:
        if os.path.exists(remote):
            os.unlink(remote)


def processes_with(argv: list[str]) -> list[int]:
    wanted = "\0".join(argv).encode() + b"\0"
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read() == wanted:
                    found.append(int(pid))
        except OSError:
            pass
    return found


@TRANSPORTS
def test_exec_ends_the_command_when_the_client_goes_away(c, spdy, monkeypatch):
    if spdy:
        monkeypatch.setenv("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")
    argv = ["sleep", f"1000.{secrets.randbelow(10**6)}"]  # a command line no other process has
    env = {**os.environ, "KUBECONFIG": c.kubeconfig}
    proc = subprocess.Popen([KUBECTL, "exec", "talker", "-c", "main", "--", *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        c.wait_for("the command to run", lambda: processes_with(argv))
    finally:
        proc.kill()
        proc.wait()
    c.wait_for("the command to end with its client", lambda: not processes_with(argv))


def test_exec_errors_as_upstream(c):
    out = c.kubectl("exec", "talker", "-c", "nope", "--", "true", check=False)
    assert out.returncode == 1 and "container nope is not valid for pod talker" in out.stderr
    out = c.kubectl("exec", "nosuchpod", "--", "true", check=False)
    assert out.returncode == 1 and 'pods "nosuchpod" not found' in out.stderr
    out = c.kubectl("exec", "talker", "-c", "main", "--", "no-such-command-here", check=False)
    assert out.returncode != 0
    assert 'exec: "no-such-command-here": executable file not found in $PATH' in out.stderr


def test_attach_follows_the_containers_output(c):
    marker = f"attached-{secrets.token_hex(4)}"
    env = {**os.environ, "KUBECONFIG": c.kubeconfig}
    proc = subprocess.Popen([KUBECTL, "attach", "talker", "-c", "side"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        seen = []
        deadline = time.monotonic() + 20
        # attach shows output from when it is under way: the marker is written again until it is seen.
        while marker + "\n" not in seen and time.monotonic() < deadline:
            with open(c.trigger + ".tmp", "w") as f:
                f.write(marker + "\n")
            os.rename(c.trigger + ".tmp", c.trigger)
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                pass
        assert marker + "\n" in seen
        assert proc.poll() is None  # attached until the container ends
    finally:
        proc.kill()
        proc.wait()


def read_until(fd: int, wanted: bytes, timeout: float = 20) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while wanted not in out and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                out += os.read(fd, 4096)
            except OSError:  # the terminal hung up: kubectl is gone
                break
    return out


def test_run_with_stdin_and_its_exit_code(c):
    # kubectl run -i: a pod with stdin (stdinOnce), attached with its input; --rm deletes it after.
    out = c.kubectl("run", "-i", "--rm", "--restart=Never", "reader", "--image=busybox", "--",
                    "sh", "-c", "read x; echo got $x; exit 3", input="hello\n", check=False)
    assert out.returncode == 3, out
    assert out.stdout.startswith("got hello\n")
    c.wait_gone("Pod", "default", "reader")


def test_run_an_interactive_shell(c):
    # kubectl run -it ... -- sh: the debugging shell people start to look at a cluster's network.
    master, slave = pty.openpty()
    env = {**os.environ, "KUBECONFIG": c.kubeconfig}
    proc = subprocess.Popen([KUBECTL, "run", "-it", "--rm", "--restart=Never", "shell", "--image=busybox",
                             "--", "sh"], stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    try:
        read_until(master, b"try pressing enter")  # attached
        os.write(master, b"echo $((6*7)); tty\r")
        out = read_until(master, b"/dev/pts/")
        assert b"\r\n42\r\n/dev/pts/" in out, out  # run by a shell on a terminal of its own
        os.write(master, b"exit 4\r")
        read_until(master, b"deleted")
        assert proc.wait(timeout=30) == 4
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
    c.wait_gone("Pod", "default", "shell")


# -- port-forward ---------------------------------------------------------------


def forwarded_get(c, target: str, remote: int, pod_port: int, path: str = "/") -> str:
    """Run `kubectl port-forward TARGET :REMOTE`, make one HTTP request through
    it, and return the answer's body."""
    env = {**os.environ, "KUBECONFIG": c.kubeconfig}
    proc = subprocess.Popen([KUBECTL, "port-forward", target, f":{remote}", "--address", "127.0.0.1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)", line)
        assert m, (line, proc.stderr.read() if proc.poll() is not None else "")
        assert int(m[2]) == pod_port
        with urllib.request.urlopen(f"http://127.0.0.1:{m[1]}{path}", timeout=10) as r:
            return r.read().decode()
    finally:
        proc.kill()
        proc.wait()


def test_port_forward_to_a_pod(c):
    pod = web_pod(c)
    assert forwarded_get(c, f"pod/{pod}", 8080, 8080) == f"default/{pod}\n"


def test_port_forward_to_a_service_and_a_deployment(c):
    # kubectl resolves both to a pod, and the Service's port to the pod's targetPort.
    pod = web_pod(c)
    assert forwarded_get(c, "svc/web", 80, 8080) == f"default/{pod}\n"
    assert forwarded_get(c, "deploy/web", 8080, 8080) == f"default/{pod}\n"


def test_port_forward_over_spdy_itself(c):
    # kubectl's fallback for API servers without the WebSocket tunnel: the connection upgraded to SPDY/3.1.
    pod = web_pod(c)
    os.environ["KUBECTL_PORT_FORWARD_WEBSOCKETS"] = "false"
    try:
        assert forwarded_get(c, f"pod/{pod}", 8080, 8080) == f"default/{pod}\n"
    finally:
        del os.environ["KUBECTL_PORT_FORWARD_WEBSOCKETS"]


def test_port_forward_to_a_closed_port_says_why(c):
    env = {**os.environ, "KUBECONFIG": c.kubeconfig}
    proc = subprocess.Popen([KUBECTL, "port-forward", f"pod/{web_pod(c)}", ":9"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        m = re.match(r"Forwarding from 127\.0\.0\.1:(\d+)", proc.stdout.readline())
        assert m
        with socket.create_connection(("127.0.0.1", int(m[1])), timeout=10) as s:
            s.settimeout(10)
            try:
                got = s.recv(100)
            except ConnectionResetError:
                got = b""
            assert got == b""  # the forwarded connection ends: nothing listens there
        proc.wait(timeout=20)  # kubectl 1.37 gives up on an error from the pod's side
        err = proc.stderr.read()
        assert "error forwarding port 9 to pod" in err and "connection refused" in err
    finally:
        proc.kill()
        proc.wait()


# -- the Python client ----------------------------------------------------------


@pytest.fixture(scope="module")
def core(c):
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(config_file=c.kubeconfig))


def test_python_client_reads_a_log(core):
    assert core.read_namespaced_pod_log("talker", "default", container="main", tail_lines=2) == "line 5\nto-stderr\n"


def test_python_client_exec_stream_and_exit_code(core):
    from kubernetes.stream import stream

    out = stream(core.connect_get_namespaced_pod_exec, "talker", "default", container="main",
                 command=["sh", "-c", "echo hi; echo oops >&2"], stderr=True, stdin=False, stdout=True, tty=False,
                 _preload_content=False)
    out.run_forever(timeout=20)
    assert (out.read_stdout(), out.read_stderr(), out.returncode) == ("hi\n", "oops\n", 0)
    ws = stream(core.connect_get_namespaced_pod_exec, "talker", "default", container="main",
                command=["sh", "-c", "read x; echo got $x; exit 7"], stderr=True, stdin=True, stdout=True,
                tty=False, _preload_content=False)
    ws.write_stdin("value\n")
    ws.run_forever(timeout=20)
    assert ws.read_stdout() == "got value\n"
    assert ws.returncode == 7


def test_python_client_exec_with_a_terminal(core):
    from kubernetes.stream import stream

    ws = stream(core.connect_get_namespaced_pod_exec, "talker", "default", container="main",
                command=["sh", "-c", "tty; read x; stty size"], stderr=False, stdin=True, stdout=True, tty=True,
                _preload_content=False)
    ws.write_channel(4, json.dumps({"Width": 123, "Height": 45}))  # resize, then the line `read` waits for
    ws.write_stdin("go\n")
    ws.run_forever(timeout=20)
    lines = ws.read_stdout().split("\r\n")  # the terminal's line endings; its echo of "go" comes when it will
    assert sorted(re.sub(r"\d+$", "N", line) if line.startswith("/dev/pts/") else line for line in lines) == [
        "", "/dev/pts/N", "45 123", "go"], lines
    assert ws.returncode == 0


def test_python_client_port_forward(c, core):
    from kubernetes.stream import portforward

    pod = web_pod(c)
    pf = portforward(core.connect_get_namespaced_pod_portforward, pod, "default", ports="8080")
    s = pf.socket(8080)
    s.settimeout(10)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    got = b""
    while chunk := s.recv(4096):
        got += chunk
    s.close()
    assert got.endswith(f"default/{pod}\n".encode()), got


# -- the kubelet port -----------------------------------------------------------


PROBE = """
import socket, sys
s = socket.create_connection((sys.argv[1], 10250), timeout=5)
auth = f"Authorization: Bearer {sys.argv[2]}\\r\\n" if len(sys.argv) > 2 else ""
s.sendall(f"GET /containerLogs/default/talker/main HTTP/1.1\\r\\nHost: x\\r\\n{auth}\\r\\n".encode())
print(s.recv(200).split(b"\\r\\n")[0].decode())
"""


def test_a_pod_cannot_use_the_kubelet_port_without_credentials(c):
    node_ip = c.get("Pod", "default", "talker")["status"]["hostIP"]
    for extra in ([], ["not-the-token"]):
        out = c.kubectl("exec", "talker", "-c", "main", "--", "python3", "-c", PROBE, node_ip, *extra)
        assert out.stdout == "HTTP/1.1 401 \n"
