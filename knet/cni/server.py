"""The node agent's half of the thick plugin: serves knet-cni shims on a
unix socket and runs each command in a worker thread (netlink calls block)."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import time

import trio

from knet.cni.handler import handle

log = logging.getLogger("knet.cni")
SHIM_SOURCE = os.path.join(os.path.dirname(__file__), "shim.py")
SHIM_BINARY = os.path.join(os.path.dirname(__file__), "knet-cni-shim")  # built from shim.c by scripts/setup


def install_shim(bin_dir: str, socket_path: str) -> str:
    """Put the node's knet-cni executable in bin_dir: the compiled shim when
    setup built one (it finds the socket at bin_dir/../agent.sock), else the
    Python shim with the socket path written into it."""
    os.makedirs(bin_dir, exist_ok=True)
    path = os.path.join(bin_dir, "knet-cni")
    tmp = path + ".tmp"
    compiled_ok = os.path.realpath(socket_path) == os.path.join(os.path.dirname(os.path.realpath(bin_dir)),
                                                                "agent.sock")
    if os.access(SHIM_BINARY, os.X_OK) and compiled_ok:
        shutil.copyfile(SHIM_BINARY, tmp)
    else:
        with open(SHIM_SOURCE) as f:
            text = f.read().replace('AGENT_SOCKET = ""', f"AGENT_SOCKET = {socket_path!r}", 1)
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
            t0 = time.perf_counter()
            code, out = await trio.to_thread.run_sync(handle, env, stdin, limiter=limiter)
            log.debug("CNI %s took %.1f ms", env.get("CNI_COMMAND"), (time.perf_counter() - t0) * 1000)
            if code:
                log.warning("CNI %s %s failed: %s", env.get("CNI_COMMAND"), env.get("CNI_CONTAINERID"), out)
            try:
                await stream.send_all(f"{code}\n".encode() + (out + "\n" if out else "").encode())
            except trio.BrokenResourceError:
                pass

    task_status.started()
    await trio.serve_listeners(one, [trio.SocketListener(sock)])


def main(argv: list[str] | None = None) -> None:
    """Serve knet-cni on its own (tests and benchmarks): the node agent's CNI
    half without the rest of the agent. Run it inside the node's namespace."""
    import argparse

    p = argparse.ArgumentParser(prog="knet-cni-server")
    p.add_argument("--socket", required=True)
    p.add_argument("--shim-dir", help="also install the knet-cni shim pointing at this socket here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if os.environ.get("KNET_CNI_DEBUG") else logging.WARNING)
    if args.shim_dir:
        install_shim(args.shim_dir, args.socket)
    trio.run(serve, args.socket)


if __name__ == "__main__":
    main()
