"""The Kubernetes channel protocols over WebSocket, pure.

exec, attach and the Python client's port-forward speak them: every binary
message is one byte naming a channel, then data. For exec and attach the
channels are stdin 0, stdout 1, stderr 2, error 3 and resize 4; from
v4.channel.k8s.io the error channel carries a Status JSON (a non-zero exit
as a NonZeroExitCode cause kubectl exits with), and v5.channel.k8s.io adds
the close message (255, channel) that ends one channel, so stdin can end
without ending the connection. Port-forward (v4.channel.k8s.io, the
protocol kubelet's websocket port-forward serves) has two channels per
port, data 2i and error 2i+1, each opened by a message carrying the port
as two little-endian bytes.
"""

from __future__ import annotations

import json
import shlex

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V3 = "v3.channel.k8s.io"
V2 = "v2.channel.k8s.io"
V1 = "channel.k8s.io"
EXEC_PROTOCOLS = (V5, V4, V3, V2, V1)
PORTFORWARD_PROTOCOLS = (V4, V1)
# kubectl's port-forward runs SPDY/3.1 inside a WebSocket offering this protocol (client-go's tunneling dialer).
SPDY_TUNNEL = "SPDY/3.1+portforward.k8s.io"

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255


def offered(header: str | None) -> list[str]:
    """The subprotocols a Sec-WebSocket-Protocol header (or several, joined) offers, in order."""
    return [p.strip() for p in (header or "").split(",") if p.strip()]


def negotiate(client: list[str], supported: tuple[str, ...]) -> str | None:
    """The first protocol the client offers that the server supports, as
    apimachinery's wsstream picks it; None when there is none in common."""
    for p in client:
        if p in supported:
            return p
    return None


def frame(channel: int, data: bytes = b"") -> bytes:
    return bytes((channel,)) + data


def close_frame(channel: int) -> bytes:
    """v5's end of one channel."""
    return bytes((CLOSE, channel))


def parse(message: bytes, protocol: str) -> tuple[int, bytes] | None:
    """(channel, data) of a message; (CLOSE, bytes([channel])) for a v5
    close; None for an empty message (ignored, as upstream does)."""
    if not message:
        return None
    return message[0], bytes(message[1:])


def parse_resize(data: bytes) -> tuple[int, int] | None:
    """(columns, rows) from a resize message ({"Width": w, "Height": h});
    None for one that is not that."""
    try:
        size = json.loads(data)
        width, height = int(size["Width"]), int(size["Height"])
    except (ValueError, TypeError, KeyError):
        return None
    if not (0 <= width < 65536 and 0 <= height < 65536):
        return None
    return width, height


def exit_status(code: int, command: list[str]) -> dict:
    """The error channel's Status for a command that ended with `code` (v4+)."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    message = (f"command terminated with non-zero exit code: error executing command "
               f"[{' '.join(shlex.quote(a) for a in command)}], exit code {code}")
    return {"metadata": {}, "status": "Failure", "message": message, "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def error_status(message: str) -> dict:
    """The error channel's Status for a command that could not run at all."""
    return {"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError",
            "details": {"causes": [{"message": message}]}, "code": 500}


def error_message(status: dict, protocol: str) -> bytes:
    """What the error channel carries: the Status JSON from v4, before it the
    bare message (and nothing for success)."""
    if protocol in (V5, V4):
        return json.dumps(status, separators=(",", ":")).encode()
    if status.get("status") == "Success":
        return b""
    return str(status.get("message", "")).encode()


def port_prefix(port: int) -> bytes:
    """The first message on each port-forward channel: the port, little-endian."""
    return port.to_bytes(2, "little")
