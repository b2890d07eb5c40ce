#!/usr/bin/python3 -IS
"""knet-cni as the node agent installs it: the thick plugin's thin half.

Standard library C modules only (no json, no socket module: each costs
milliseconds at start-up), so a CNI call costs little more than an
interpreter start. It forwards its CNI_* environment and stdin to the node
agent's socket and prints what the agent answers. The agent writes this
file into the node's CNI bin directory with AGENT_SOCKET filled in.

Wire format: request `K=V\\0K=V\\0\\0<stdin>`, reply `<exit code>\\n<stdout>`.
"""

import _socket
import os
import sys

AGENT_SOCKET = ""


def main() -> int:
    env = b"".join(f"{k}={v}".encode() + b"\0" for k, v in os.environ.items() if k.startswith("CNI_"))
    data = sys.stdin.buffer.read() if os.environ.get("CNI_COMMAND") != "VERSION" or not sys.stdin.isatty() else b""
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        s.connect(AGENT_SOCKET)
        s.sendall(env + b"\0" + data)
        s.shutdown(_socket.SHUT_WR)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError as e:
        sys.stdout.write('{"cniVersion": "1.1.0", "code": 11, "msg": "try again later", '
                         f'"details": "the node agent at {AGENT_SOCKET} is not answering: {e.strerror}"}}\n')
        return 1
    finally:
        s.close()
    reply = b"".join(chunks)
    code, _, out = reply.partition(b"\n")
    sys.stdout.buffer.write(out)
    return int(code or b"1")


if __name__ == "__main__":
    sys.exit(main())
