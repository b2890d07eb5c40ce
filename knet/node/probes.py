"""Liveness and readiness probes run from the node agent, as kubelet runs them.

tcpSocket and httpGet connect from inside the pod's network namespace (to
the pod's address once it has one, to 127.0.0.1 until then); exec runs the
command inside the pod with the container's identity.
"""

from __future__ import annotations

import socket
import subprocess

import trio

from knet.net import ns
from knet.node.sandbox import Sandbox


def resolve_port(port: int | str, container: dict) -> int:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"port {port!r} is not a named port of container {container.get('name')}")


async def _connect(sb: Sandbox, host: str, port: int) -> trio.SocketStream:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with ns.entered(net=sb.netns_path):
        raw = socket.socket(family, socket.SOCK_STREAM)
    raw.setblocking(False)
    sock = trio.socket.from_stdlib_socket(raw)
    try:
        await sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)


async def probe_once(probe: dict, sb: Sandbox, pod: dict, container: dict, env: dict[str, str],
                     pod_ip: str | None = None) -> tuple[bool, str]:
    """One probe attempt within timeoutSeconds: (succeeded, message for events)."""
    timeout = float(probe.get("timeoutSeconds", 1))
    host = pod_ip or "127.0.0.1"
    try:
        with trio.fail_after(timeout):
            if "tcpSocket" in probe:
                t = probe["tcpSocket"]
                stream = await _connect(sb, t.get("host") or host, resolve_port(t["port"], container))
                await stream.aclose()
                return True, ""
            if "httpGet" in probe:
                h = probe["httpGet"]
                port = resolve_port(h["port"], container)
                stream = await _connect(sb, h.get("host") or host, port)
                async with stream:
                    headers = "".join(f"{x['name']}: {x['value']}\r\n" for x in h.get("httpHeaders") or [])
                    await stream.send_all(
                        f"GET {h.get('path', '/')} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/knet\r\n"
                        f"{headers}Connection: close\r\n\r\n".encode())
                    data = b""
                    while b"\r\n" not in data:
                        chunk = await stream.receive_some(4096)
                        if not chunk:
                            break
                        data += chunk
                parts = data.split(b"\r\n", 1)[0].split()
                code = int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0
                if 200 <= code < 400:
                    return True, ""
                return False, f"HTTP probe failed with statuscode: {code}"
            if "exec" in probe:
                from knet.node.containers import spawn_exec
                code, output = await spawn_exec(sb, pod, container, env, probe["exec"].get("command") or [])
                if code == 0:
                    return True, ""
                return False, f"command {probe['exec'].get('command')} exited with {code}: {output[:200]}"
    except trio.TooSlowError:
        return False, f"probe timed out after {timeout:g}s"
    except (OSError, ValueError, subprocess.SubprocessError) as e:
        return False, str(e)
    return False, "probe has no handler"
