"""knet-cni, the CNI plugin executable: a thin shim.

It answers VERSION itself and otherwise hands the request (its CNI_*
environment and stdin) to the node agent over the unix socket named by the
config's `agentSocket`, as Cilium's and Multus's thick plugins do, so a call
costs a stdlib-only interpreter start rather than importing netlink
libraries. Without an agent socket it runs the same handler in-process, so
the plugin also stands alone (driven by cnitool-style env and stdin).
"""

from __future__ import annotations

import json
import os
import socket
import sys


def _reply(code: int, out: str) -> int:
    if out:
        sys.stdout.write(out if out.endswith("\n") else out + "\n")
    sys.stdout.flush()
    return code


def call_agent(path: str, env: dict[str, str], stdin: str) -> tuple[int, str]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    try:
        s.sendall(json.dumps({"env": env, "stdin": stdin}).encode())
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    finally:
        s.close()
    reply = json.loads(b"".join(chunks))
    return reply["code"], reply["stdout"]


def main() -> int:
    from knet.cni import spec

    env = {k: v for k, v in os.environ.items() if k.startswith("CNI_")}
    command = env.get("CNI_COMMAND", "")
    stdin = "" if command == "VERSION" and sys.stdin.isatty() else sys.stdin.read()
    if command == "VERSION":
        conf = spec.parse_config(stdin, "VERSION")
        version = conf.get("cniVersion") if conf.get("cniVersion") in spec.SUPPORTED else "1.1.0"
        return _reply(0, json.dumps({"cniVersion": version, "supportedVersions": spec.SUPPORTED}))
    agent = None
    try:
        agent = json.loads(stdin).get("agentSocket")
    except (json.JSONDecodeError, AttributeError):
        pass
    if agent:
        try:
            return _reply(*call_agent(agent, env, stdin))
        except OSError as e:
            err = spec.CniError(spec.TRY_AGAIN_LATER, "try again later", f"the node agent at {agent} is not answering: {e}")
            return _reply(1, json.dumps(err.to_json()))
    from knet.cni.handler import handle

    return _reply(*handle(env, stdin))


if __name__ == "__main__":
    sys.exit(main())
