"""The API server: Kubernetes-shaped REST over HTTP/1.1 (h11 on trio).

It serves the same paths, verbs, list/watch semantics and Status errors as a
Kubernetes API server, so clients and habits carry over. It listens on a
root-only unix socket (for the CLI on the host) and on the control-plane
node's LAN address (for node agents), both behind a bearer token.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import h11
import trio

from knet.api import errors, selectors
from knet.api.errors import ApiError
from knet.api.registry import Registry, filter_event
from knet.api.resources import RESOURCES, Resource, by_path

log = logging.getLogger("knet.api")

MAX_BODY = 16 * 1024 * 1024


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        if not self.body:
            raise errors.bad_request("the request has no body")
        try:
            return json.loads(self.body)
        except json.JSONDecodeError as e:
            raise errors.bad_request(f"the request body is not valid JSON: {e}") from None


@dataclass
class Route:
    res: Resource
    namespace: str | None
    name: str | None
    subresource: str | None


def parse_path(path: str) -> Route | None:
    """Map a REST path to (resource, namespace, name, subresource) the way the
    Kubernetes API lays paths out."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        candidate = by_path(group, version, rest[2])
        if candidate and candidate.namespaced:
            namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        return None
    res = by_path(group, version, rest[0])
    if res is None:
        return None
    return Route(res, namespace, rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None)


def matcher(query: dict[str, str]) -> Callable[[dict], bool] | None:
    label = query.get("labelSelector")
    fields = query.get("fieldSelector")
    if not label and not fields:
        return None
    ls = selectors.parse_label_selector(label) if label else None
    fs = selectors.parse_field_selector(fields) if fields else None

    def match(obj: dict) -> bool:
        if ls is not None and not ls.matches(obj.get("metadata", {}).get("labels") or {}):
            return False
        return fs is None or fs.matches(obj)

    return match


@dataclass
class Progress:
    """What each component reports it has acted on, for `knet apply --wait`."""

    observed: int = 0
    written: int = 0
    at: float = field(default_factory=time.time)
    error: str = ""  # why the component is behind, when it knows (a failing proxy sync)
    proxy: dict = field(default_factory=dict)  # a node's proxy figures, for `knet status`


class ApiServer:
    def __init__(self, registry: Registry, token: str, version: str = "v1.31.0-knet"):
        self.registry = registry
        self.token = token.encode()
        self.version = version
        self.progress: dict[str, Progress] = {}
        self._watchers = 0

    # -- listeners ---------------------------------------------------------------

    async def serve_tcp(self, host: str, port: int, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(port, host=host)
        task_status.started()
        await trio.serve_listeners(self._handle_stream, listeners)

    async def serve_unix(self, path: str, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        if os.path.exists(path):
            os.unlink(path)
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            await sock.bind(path)
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        sock.listen(128)
        task_status.started()
        await trio.serve_listeners(self._handle_stream, [trio.SocketListener(sock)])

    # -- HTTP --------------------------------------------------------------------

    async def _handle_stream(self, stream: trio.abc.Stream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                req = await self._read_request(conn, stream)
                if req is None:
                    return
                await self._dispatch(conn, stream, req)
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                try:
                    conn.start_next_cycle()
                except h11.LocalProtocolError:
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError, h11.ProtocolError):
            return
        finally:
            with trio.move_on_after(1):
                await stream.aclose()

    async def _read_request(self, conn: h11.Connection, stream: trio.abc.Stream) -> Request | None:
        head = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                if not data and conn.their_state is h11.IDLE and head is None:
                    return None
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    raise h11.RemoteProtocolError("body too large")
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                return None
        target = urlsplit(head.target.decode())
        query = {k: v[-1] for k, v in parse_qs(target.query).items()}
        headers = {k.decode().lower(): v.decode() for k, v in head.headers}
        return Request(head.method.decode(), target.path, query, headers, bytes(body))

    async def _send(self, conn: h11.Connection, stream: trio.abc.Stream, code: int, body: dict) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        await stream.send_all(conn.send(h11.Response(status_code=code, headers=headers)))
        await stream.send_all(conn.send(h11.Data(data=data)))
        await stream.send_all(conn.send(h11.EndOfMessage()))

    def _authorized(self, req: Request) -> bool:
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return False
        return hmac.compare_digest(auth[7:].strip().encode(), self.token)

    async def _dispatch(self, conn: h11.Connection, stream: trio.abc.Stream, req: Request) -> None:
        try:
            if req.path in ("/healthz", "/readyz", "/livez"):
                return await self._send(conn, stream, 200, {"status": "ok"})
            if not self._authorized(req):
                raise ApiError(401, "Unauthorized", "Unauthorized")
            if req.method == "GET" and req.query.get("watch") in ("true", "1"):
                route = parse_path(req.path)
                if route is None or route.name:
                    raise errors.not_found("path", req.path)
                return await self._watch(conn, stream, req, route)
            code, body = self.handle(req)
            await self._send(conn, stream, code, body)
        except ApiError as e:
            await self._send(conn, stream, e.code, e.status())
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise
        except Exception as e:  # a bug must surface to the client and the log, not hang it
            log.exception("internal error serving %s %s", req.method, req.path)
            await self._send(conn, stream, 500, ApiError(500, "InternalError", f"internal error: {e}").status())

    # -- REST --------------------------------------------------------------------

    def handle(self, req: Request) -> tuple[int, dict]:
        """Serve one non-watch request; returns (HTTP code, JSON body)."""
        if req.path == "/version":
            return 200, {"major": "1", "minor": "31", "gitVersion": self.version, "platform": "linux/amd64"}
        if req.path.startswith("/knet/v1/"):
            return self._knet(req)
        if req.path in ("/api", "/apis") or req.path.count("/") <= 3 and parse_path(req.path + "/x") is None:
            discovery = self._discovery(req.path)
            if discovery is not None:
                return 200, discovery
        route = parse_path(req.path)
        if route is None:
            raise errors.not_found("path", req.path)
        reg, res, ns, name = self.registry, route.res, route.namespace, route.name
        if res.namespaced and name and ns is None:
            raise errors.not_found("path", req.path)
        m = req.method
        if name is None:
            if m == "GET":
                items, rev = reg.list(res, ns, matcher(req.query))
                return 200, {"kind": res.list_kind, "apiVersion": res.api_version,
                             "metadata": {"resourceVersion": str(rev)}, "items": items}
            if m == "POST":
                if res.namespaced and ns is None:
                    raise errors.ApiError(405, "MethodNotAllowed", "POST needs a namespace in the path")
                return 201, reg.create(res, ns, req.json(), dry_run=req.query.get("dryRun") == "All")
            if m == "DELETE":
                items, _ = reg.list(res, ns, matcher(req.query))
                for obj in items:
                    try:
                        reg.delete(res, obj["metadata"].get("namespace"), obj["metadata"]["name"])
                    except ApiError as e:
                        if e.code != 404:
                            raise
                return 200, {"kind": res.list_kind, "apiVersion": res.api_version, "metadata": {}, "items": items}
        else:
            sub = route.subresource
            if sub == "binding" and res.kind == "Pod" and m == "POST":
                target = (req.json().get("target") or {}).get("name")
                if not target:
                    raise errors.Invalid("Binding", name, [errors.FieldError("target.name", "Required value")])
                return 201, reg.bind(ns, name, target)
            if sub == "eviction" and res.kind == "Pod" and m == "POST":
                # policy/v1 Eviction: a graceful delete (no PodDisruptionBudgets yet).
                body = req.json() if req.body else {}
                grace = (body.get("deleteOptions") or {}).get("gracePeriodSeconds")
                reg.delete(res, ns, name, grace)
                return 201, {"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}
            if m == "GET":
                return 200, reg.get(res, ns, name)
            dry = req.query.get("dryRun") == "All"
            if m == "PUT":
                return 200, reg.update(res, ns, name, req.json(), sub, dry_run=dry)
            if m == "PATCH":
                return 200, reg.patch(res, ns, name, req.json(), sub, dry_run=dry)
            if m == "DELETE":
                grace = req.query.get("gracePeriodSeconds")
                if grace is None and req.body:
                    grace = req.json().get("gracePeriodSeconds")
                return 200, reg.delete(res, ns, name, int(grace) if grace is not None else None)
        raise errors.ApiError(405, "MethodNotAllowed", f"{m} is not allowed on {req.path}")

    def _discovery(self, path: str) -> dict | None:
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"]}
        if path == "/apis":
            groups = sorted({r.group for r in RESOURCES if r.group})
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
                 "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"}} for g in groups]}
        parts = [p for p in path.split("/") if p]
        gv = parts[1] if parts[0] == "api" and len(parts) == 2 else "/".join(parts[1:3]) if len(parts) == 3 else None
        if gv is None:
            return None
        found = [r for r in RESOURCES if r.api_version == gv]
        if not found:
            return None
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": [
            {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
             "shortNames": list(r.short_names),
             "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]}
            for r in found]}

    def _knet(self, req: Request) -> tuple[int, dict]:
        """knet's own endpoints: progress reports for `apply --wait`."""
        if req.path == "/knet/v1/progress":
            if req.method == "POST":
                body = req.json()
                component = body.get("component")
                if not isinstance(component, str) or not component:
                    raise errors.bad_request("component is required")
                p = self.progress.setdefault(component, Progress())
                p.observed = max(p.observed, int(body.get("observed", 0)))
                p.written = max(p.written, int(body.get("written", 0)))
                p.error = str(body.get("error") or "")
                if isinstance(body.get("proxy"), dict):
                    p.proxy = body["proxy"]
                p.at = time.time()
                return 200, {"status": "ok"}
            if req.method == "GET":
                return 200, {"revision": self.registry.store.revision(), "components": {
                    k: {"observed": v.observed, "written": v.written, "at": v.at, "error": v.error, "proxy": v.proxy}
                    for k, v in self.progress.items()}}
        raise errors.not_found("path", req.path)

    # -- watch -------------------------------------------------------------------

    async def _watch(self, conn: h11.Connection, stream: trio.abc.Stream, req: Request, route: Route) -> None:
        """Stream WatchEvents: the history after resourceVersion (or the current
        objects as ADDED when none is given), then every change, with BOOKMARKs so
        clients learn the revision even when nothing they watch changed."""
        match = matcher(req.query)
        bookmarks = req.query.get("allowWatchBookmarks") in ("true", "1")
        timeout = float(req.query.get("timeoutSeconds") or math.inf)
        send_ch, recv_ch = trio.open_memory_channel(math.inf)
        prefix_events = self.registry
        unsubscribe = prefix_events.store.subscribe(send_ch.send_nowait)
        try:
            rv = req.query.get("resourceVersion")
            initial: list[tuple[str, dict, int]] = []
            if rv and rv != "0":
                for ev in self.registry.history(route.res, route.namespace, int(rv)):
                    out = filter_event(ev, match)
                    if out:
                        initial.append((out[0], out[1], ev.revision))
                last = max(int(rv), self.registry.store.revision())
            else:
                items, last = self.registry.list(route.res, route.namespace, match)
                initial = [("ADDED", o, last) for o in items]
            await stream.send_all(conn.send(h11.Response(status_code=200, headers=[
                ("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")])))
            chunk = b"".join(self._event_line(t, o) for t, o, _ in initial)
            if bookmarks:
                chunk += self._bookmark(route.res, last)
            if chunk:
                await stream.send_all(conn.send(h11.Data(data=chunk)))
            prefix = self._prefix(route)
            with trio.move_on_after(timeout):
                while True:
                    ev = await recv_ch.receive()
                    lines = []
                    pending = 0
                    for e in [ev, *self._drain(recv_ch)]:
                        if e.revision <= last:
                            continue
                        last = e.revision
                        if not e.key.startswith(prefix):
                            pending = e.revision
                            continue
                        out = filter_event(e, match)
                        if out:
                            lines.append(self._event_line(*out))
                            pending = 0
                        else:
                            pending = e.revision
                    if pending and bookmarks:
                        lines.append(self._bookmark(route.res, pending))
                    if lines:
                        await stream.send_all(conn.send(h11.Data(data=b"".join(lines))))
            await stream.send_all(conn.send(h11.EndOfMessage()))
        finally:
            unsubscribe()

    @staticmethod
    def _drain(ch: trio.MemoryReceiveChannel) -> list:
        out = []
        while True:
            try:
                out.append(ch.receive_nowait())
            except trio.WouldBlock:
                return out

    @staticmethod
    def _prefix(route: Route) -> str:
        from knet.api.registry import prefix_for
        return prefix_for(route.res, route.namespace)

    @staticmethod
    def _event_line(kind: str, obj: dict) -> bytes:
        return json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode() + b"\n"

    @staticmethod
    def _bookmark(res: Resource, rev: int) -> bytes:
        return json.dumps({"type": "BOOKMARK", "object": {
            "kind": res.kind, "apiVersion": res.api_version,
            "metadata": {"resourceVersion": str(rev)}}}).encode() + b"\n"
