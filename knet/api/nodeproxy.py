"""pods/log, exec, attach and portforward: proxied to the pod's kubelet.

kube-apiserver serves none of these itself. It checks the request (the pod
exists and has a node, the container is the pod's, the log options are
valid), then forwards it to the kubelet of the pod's node, at the node's
InternalIP and status.daemonEndpoints.kubeletEndpoint.Port (10250), and
splices the two connections: a log streams back as the kubelet writes it,
and an upgraded exec or port-forward connection (WebSocket, or SPDY) carries
bytes both ways untouched until either end closes. The kubelet (knet's is in
the node agent: knet.node.kubeletserver) requires the credential only the API
server holds. The request's own checks are answered here as Status errors,
with upstream's words, before anything is forwarded.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, quote, urlencode

import h11
import trio

from knet.api import errors, podlogs
from knet.api.errors import ApiError

log = logging.getLogger("knet.api")

STREAMING = frozenset({"log", "exec", "attach", "portforward"})
KUBELET_PORT = 10250
DIAL_TIMEOUT = 10.0
CHUNK = 64 * 1024
# What of the client's request the kubelet needs to complete an upgrade itself.
_FORWARDED = ("upgrade", "connection", "sec-websocket-key", "sec-websocket-version", "sec-websocket-protocol",
              "x-stream-protocol-version", "origin")
_BROKEN = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


def handles(route) -> bool:
    """This request is one of a pod's streaming subresources."""
    return bool(route is not None and route.res.kind == "Pod" and route.name and route.subresource in STREAMING)


def pick_container(pod: dict, name: str | None) -> str:
    """The container a request means, as the API server's validateContainer
    picks it: the only one when none is named, else a 400 listing them."""
    pod_name = pod["metadata"]["name"]
    containers = [c["name"] for c in pod["spec"].get("containers") or []]
    if not name:
        if len(containers) == 1:
            return containers[0]
        if not containers:
            raise errors.bad_request(f"the server could not find a container in pod {pod_name}")
        message = f"a container name must be specified for pod {pod_name}, choose one of: [{' '.join(containers)}]"
        init = [c["name"] for c in pod["spec"].get("initContainers") or []]
        if init:
            message += f" or one of the init containers: [{' '.join(init)}]"
        raise errors.bad_request(message)
    if name not in containers and name not in [c["name"] for c in pod["spec"].get("initContainers") or []]:
        raise errors.bad_request(f"container {name} is not valid for pod {pod_name}")
    return name


def kubelet_path(pod: dict, sub: str, method: str, query: dict[str, str], raw_query: str) -> str | None:
    """The kubelet path the request becomes; None for a log of a pod on no
    node yet (an empty log, as upstream answers)."""
    ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    where = f"{quote(ns, safe='')}/{quote(name, safe='')}"
    if sub == "log":
        if method != "GET":
            raise errors.ApiError(405, "MethodNotAllowed", f"the server does not allow this method on the requested "
                                  f"resource: {method} pods/log")
        opts = podlogs.parse_options(query, name)
        container = pick_container(pod, opts.container)
        if not pod["spec"].get("nodeName"):
            return None
        return f"/containerLogs/{where}/{quote(container, safe='')}?{urlencode(opts.to_query())}"
    if method not in ("GET", "POST"):
        raise errors.ApiError(405, "MethodNotAllowed", f"the server does not allow this method on the requested "
                              f"resource: {method} pods/{sub}")
    if not pod["spec"].get("nodeName"):
        raise errors.bad_request(f"pod {name} does not have a host assigned")
    pairs = parse_qsl(raw_query, keep_blank_values=True)
    if sub == "portforward":
        return f"/portForward/{where}?{urlencode(pairs)}"
    container = pick_container(pod, query.get("container"))
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        raise errors.bad_request(f"cannot {'exec into' if sub == 'exec' else 'attach to'} a container in a "
                                 f"completed pod; current phase is {phase}")
    rest = urlencode([(k, v) for k, v in pairs if k != "container"])
    return f"/{sub}/{where}/{quote(container, safe='')}?{rest}"


def kubelet_address(node: dict) -> tuple[str, int]:
    status = node.get("status") or {}
    ip = next((a.get("address") for a in status.get("addresses") or [] if a.get("type") == "InternalIP"), None)
    if not ip:
        raise ApiError(500, "InternalError", f'node "{node["metadata"]["name"]}" has no InternalIP address')
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or KUBELET_PORT
    return ip, int(port)


def request_head(method: str, path: str, host: str, port: int, token: str, headers: list[tuple[str, str]]) -> bytes:
    """The request to the kubelet: our credential, never the client's, and of
    the client's headers those an upgrade needs, each as often as it came
    (a SPDY client offers each protocol version in a header of its own)."""
    names = {k for k, _ in headers}
    upgrade = "upgrade" in names and any(k == "connection" and "upgrade" in v.lower() for k, v in headers)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", f"Authorization: Bearer {token}"]
    for name, value in headers:
        if name in _FORWARDED and (upgrade or name not in ("upgrade", "connection")):
            lines.append(f"{name}: {value}")
    if not upgrade:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def serve(server, conn: h11.Connection, stream: trio.abc.Stream, req, route) -> None:
    """Check the request, then hand the connection to the pod's kubelet.
    Errors before anything is forwarded are raised as ApiError (the server
    answers them); afterwards the connection is the kubelet's to finish."""
    from knet.api.resources import by_kind

    registry = server.registry
    pod = registry.get(route.res, route.namespace, route.name)
    path = kubelet_path(pod, route.subresource, req.method, req.query, getattr(req, "raw_query", ""))
    if path is None:
        await stream.send_all(conn.send(h11.Response(status_code=200, headers=[
            ("Content-Type", "text/plain"), ("Content-Length", "0")])))
        await stream.send_all(conn.send(h11.EndOfMessage()))
        return
    node = registry.get(by_kind("Node"), None, pod["spec"]["nodeName"])
    host, port = kubelet_address(node)
    try:
        with trio.fail_after(DIAL_TIMEOUT):
            kubelet = await trio.open_tcp_stream(host, port)
    except (OSError, trio.TooSlowError) as e:
        raise ApiError(500, "InternalError",
                       f"error dialing backend: dial tcp {host}:{port}: {getattr(e, 'strerror', None) or e}") from None
    try:
        leftover, _ = conn.trailing_data
        raw = getattr(req, "raw_headers", None)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw] if raw else list(req.headers.items())
        token = getattr(server, "kubelet_token", None) or server.token.decode()  # the kubelet client's credential
        await kubelet.send_all(request_head(req.method, path, host, port, token, headers)
                               + bytes(leftover))
        await splice(stream, kubelet)
    except _BROKEN:
        pass
    finally:
        with trio.move_on_after(1):
            await kubelet.aclose()


async def splice(client: trio.abc.Stream, kubelet: trio.SocketStream) -> None:
    """Bytes both ways until the kubelet ends (its answer is complete) or the
    client goes away (the kubelet then sees its end of input: a followed log
    stops, an exec's command is killed)."""
    async with trio.open_nursery() as nursery:
        async def down() -> None:
            try:
                while data := await kubelet.receive_some(CHUNK):
                    await client.send_all(data)
            except _BROKEN:
                pass
            nursery.cancel_scope.cancel()

        async def up() -> None:
            try:
                while data := await client.receive_some(CHUNK):
                    await kubelet.send_all(data)
                await kubelet.send_eof()
            except _BROKEN:
                nursery.cancel_scope.cancel()

        nursery.start_soon(down)
        nursery.start_soon(up)
