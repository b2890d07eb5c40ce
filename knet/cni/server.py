"""The node agent's half of the thick plugin: serves knet-cni shims on a
unix socket and runs each command in a worker thread (netlink calls block)."""

from __future__ import annotations

import logging
import os
import socket

import trio

from knet.cni.handler import handle

log = logging.getLogger("knet.cni")
SHIM_SOURCE = os.path.join(os.path.dirname(__file__), "shim.py")


def install_shim(bin_dir: str, socket_path: str) -> str:
    """Write the node's knet-cni executable with its agent socket baked in."""
    os.makedirs(bin_dir, exist_ok=True)
    with open(SHIM_SOURCE) as f:
        text = f.read().replace('AGENT_SOCKET = ""', f"AGENT_SOCKET = {socket_path!r}", 1)
    path = os.path.join(bin_dir, "knet-cni")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)
    return path


def decode_request(data: bytes) -> tuple[dict[str, str], str]:
    head, _, stdin = data.partition(b"\0\0")
    env = {}
    for item in head.split(b"\0"):
        if item:
            k, _, v = item.decode().partition("=")
            env[k] = v
    return env, stdin.decode()


async def serve(path: str, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    if os.path.exists(path):
        os.unlink(path)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind(path)
    os.chmod(path, 0o600)
    sock.listen(128)
    limiter = trio.CapacityLimiter(8)

    async def one(stream: trio.SocketStream) -> None:
        async with stream:
            data = bytearray()
            while chunk := await stream.receive_some(65536):
                data += chunk
            env, stdin = decode_request(bytes(data))
            code, out = await trio.to_thread.run_sync(handle, env, stdin, limiter=limiter)
            if code:
                log.warning("CNI %s %s failed: %s", env.get("CNI_COMMAND"), env.get("CNI_CONTAINERID"), out)
            try:
                await stream.send_all(f"{code}\n".encode() + (out + "\n" if out else "").encode())
            except trio.BrokenResourceError:
                pass

    task_status.started()
    await trio.serve_listeners(one, [trio.SocketListener(sock)])
