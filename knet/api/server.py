"""The API server: Kubernetes-shaped REST over HTTP/1.1 (h11 on trio).

It serves the same paths, verbs, list/watch semantics and Status errors as a
Kubernetes API server, so clients and habits carry over. It listens on a
root-only unix socket (plain HTTP, for knet's own CLI on the host), and over
TLS (knet.api.tls) on the control-plane node's LAN address (node agents, pods
through the `kubernetes` Service) and on a listening socket in the host's
loopback that `knet up` hands down (kubectl). Every request but the health
checks needs a credential: the cluster's bearer token, or, over TLS, a client
certificate from the cluster CA (CN the user, O its groups).
"""

from __future__ import annotations

import collections
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

from knet.api import decode, discovery, errors, selectors, subresources, tablecodec
from knet.api.errors import ApiError
from knet.api.objects import to_json
from knet.api.registry import Registry, filter_event
from knet.api.resources import SERVED, Resource, by_path
from knet.api.watchbuffer import MAX_BYTES as MAX_WATCH_BYTES
from knet.api.watchbuffer import MAX_EVENTS as MAX_WATCH_EVENTS
from knet.api.watchbuffer import Overflowed, WatchBuffer
from knet.store import Event, StoreError, TooLarge

log = logging.getLogger("knet.api")

# The API server's MaxRequestBodyBytes: 3 MiB, twice etcd's 1.5 MiB object limit
# (JSON is larger than the stored form). A larger body is read to its end and
# discarded, so the client, still sending, gets the 413 instead of a broken pipe.
MAX_BODY = 3 * 1024 * 1024
# Past this the body is not worth draining: answer 413 and close the connection.
MAX_DRAIN = 256 * 1024 * 1024
# How long a GET of /knet/v1/progress (every watcher) or a POST of /knet/v1/bookmarks (the caller's
# watches of a resource) has BOOKMARKs sent every 0.1 s rather than every second (knet/api/watchbuffer.py).
PROGRESS_URGES_SECONDS = 1.0
BOOKMARKS_URGE_SECONDS = 1.0
# How long a watch or list from a resourceVersion the store has not reached yet
# waits for it before a 504, as the watch cache's waitUntilFreshAndBlock does.
FRESHNESS_WAIT = 3.0
# The most a watch coroutine encodes into one send: what it holds in memory
# while a slow client's socket is full.
WATCH_CHUNK = 256 * 1024
# The most of one answer handed to the connection at once (see ApiServer._send).
SEND_CHUNK = 64 * 1024
# How long a TLS handshake may take (kube-apiserver's ReadHeaderTimeout is 32 s). Generous: a
# server busy with 100 clients listing 1,000 pods at once takes seconds to get to a new
# connection's handshake, and the client's own timeout decides when it gives up.
HANDSHAKE_TIMEOUT = 30.0


def decode_body(body: bytes, res: Resource | None = None) -> object:
    """Request body bytes to Python values: the one JSON parse path of the
    server (knet/api/decode.py: UTF-8, no NaN, bounded depth, clean 400s).
    Objects of a served kind go through Request.object, which also checks
    types and unknown fields against the schema."""
    return decode.parse_json(body)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    oversize: int = 0  # bytes received past MAX_BODY (then body is empty)
    res: Resource | None = None  # the resource the path names, once routed
    warnings: list[str] = field(default_factory=list)  # sent back as `Warning: 299 - "..."` headers
    user: tuple[str, list[str]] | None = None  # (name, groups) once authenticated; see ApiServer._authorized
    raw_query: str = ""  # the query string as sent: exec repeats `command=` once per argument
    raw_headers: list | None = None  # h11's (name, value) pairs, repeats kept (a SPDY client's protocol versions)
    counted: str = "other"  # its key in ApiServer.request_counts ("PATCH pods/status"), once routed

    def json(self) -> dict:
        """The body as a JSON object, or a 400 that says what is wrong with it:
        never a 500, whatever the bytes (binary, deep, malformed)."""
        if not self.body:
            raise errors.bad_request("the request has no body")
        try:
            value = decode_body(self.body, self.res)
        except Exception as e:
            raise _decode_error(e, self.body) from None
        if not isinstance(value, dict):
            raise errors.bad_request(f"the request body must be a JSON object, not {type(value).__name__}")
        return value

    def object(self, name: str | None = None) -> dict:
        """The body as an object of the routed kind, decoded as kube-apiserver
        decodes it: wrong JSON types refused, unknown fields pruned and refused
        or warned about as the fieldValidation parameter says (Warn by default)."""
        try:
            obj, warnings = decode.decode_body(self.res, self.body, self.method, self.query.get("fieldValidation"), name)
        except Exception as e:
            raise _decode_error(e, self.body) from None
        self.warnings += warnings
        return obj


def _decode_error(e: Exception, body: bytes) -> ApiError:
    """Whatever decoding a body raised, as the 400 it is: the decoder's own
    ApiError as it is, anything else (a decoder bug included) as BadRequest
    with what went wrong, so no body can make the server answer 500."""
    if isinstance(e, ApiError):
        return e
    if isinstance(e, UnicodeDecodeError):
        return errors.bad_request(
            f"the request body is not UTF-8 JSON: invalid byte 0x{body[e.start]:02x} at offset {e.start}")
    if isinstance(e, RecursionError):
        return errors.bad_request("the request body is nested too deeply to decode")
    if isinstance(e, json.JSONDecodeError):
        return errors.bad_request(f"the request body is not valid JSON: {e}")
    log.warning("decoding a request body failed: %r", e)
    return errors.bad_request(f"the request body cannot be decoded: {e}")


class _Abort(Exception):
    """The response cannot be finished (a watcher closed for falling behind,
    with its socket full): drop the connection."""


def _int_param(value: object, name: str) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise errors.bad_request(f"{name}: Invalid value: {errors.render_value(value)}: must be an integer") from None


def resource_version(query: dict[str, str]) -> int | None:
    """The resourceVersion a list or watch asks for; None for none (or "0": any)."""
    rv = query.get("resourceVersion")
    if not rv or rv == "0":
        return None
    if not rv.isdigit():
        raise errors.bad_request(f"resourceVersion: Invalid value: {errors.render_value(rv)}: "
                                 "must be a non-negative integer")
    return int(rv)


INITIAL_EVENTS_END = "k8s.io/initial-events-end"


def watch_list_mode(query: dict[str, str]) -> bool | None:
    """sendInitialEvents as the API server validates it (ListOptions): None
    when not given; given, it needs resourceVersionMatch=NotOlderThan and
    bookmarks allowed, since the client learns the initial events are over
    only from the bookmark that ends them."""
    value = query.get("sendInitialEvents")
    match = query.get("resourceVersionMatch")
    if value is None:
        if match and query.get("watch") in ("true", "1"):
            raise errors.Invalid("ListOptions", "", [errors.FieldError(
                "resourceVersionMatch", "Forbidden", None,
                "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided")])
        return None
    if value not in ("true", "false", "1", "0"):
        raise errors.bad_request(f"sendInitialEvents: Invalid value: {errors.render_value(value)}: must be a boolean")
    if match != "NotOlderThan":
        raise errors.Invalid("ListOptions", "", [errors.FieldError(
            "resourceVersionMatch", "Forbidden", None,
            "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan")])
    if query.get("allowWatchBookmarks") not in ("true", "1"):
        raise errors.Invalid("ListOptions", "", [errors.FieldError(
            "allowWatchBookmarks", "Forbidden", None, "sendInitialEvents requires setting allowWatchBookmarks to true")])
    return value in ("true", "1")


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
    policy: dict = field(default_factory=dict)  # a node's policy engine figures, for `knet status`


# What /version says: a release of the Kubernetes minor knet follows, so kubectl
# (v1.37) finds no version skew to warn about.
VERSION = {"major": "1", "minor": "37", "gitVersion": "v1.37.0", "gitCommit": "knet", "gitTreeState": "clean",
           "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25.0", "compiler": "gc",
           "platform": "linux/amd64"}

# Request bodies knet does not read as they are. client-go sends CBOR when its ClientsPreferCBOR gate
# is on and falls back to JSON for good after one 415 (rest.requestClientContentConfigProvider).
# Its typed clients send protobuf with no fallback: those bodies are decoded (knet.api.protobuf) when
# they map exactly onto JSON, else 415. Anything else goes to the JSON decoder and its 400s.
BINARY_MEDIA_TYPES = frozenset({"application/cbor", "application/apply-patch+cbor", "application/cbor-seq",
                                "application/vnd.kubernetes.protobuf"})
PATCH_MEDIA_TYPES = ("application/json-patch+json", "application/merge-patch+json",
                     "application/strategic-merge-patch+json", "application/apply-patch+yaml")
# Users the bearer token stands for (kubeadm's admin).
ADMIN = ("kubernetes-admin", ["system:masters", "system:authenticated"])
# The one path read without credentials, as kubeadm's discovery reads it (RBAC still decides).
ANONYMOUS = ("system:anonymous", ["system:unauthenticated"])
CLUSTER_INFO_PATH = "/api/v1/namespaces/kube-public/configmaps/cluster-info"


def media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def unsupported_media_type(req: Request) -> ApiError | None:
    """The 415 a body in a format knet does not decode gets, worded as the API
    server's negotiation error, so clients fall back to JSON. A protobuf
    create or update (a review, an eviction too), or a delete's DeleteOptions, is read as the JSON it
    stands for, when it maps exactly."""
    if not req.body or media_type(req.headers.get("content-type", "")) not in BINARY_MEDIA_TYPES:
        return None
    if (media_type(req.headers["content-type"]) == "application/vnd.kubernetes.protobuf"
            and req.method in ("POST", "PUT", "DELETE")):
        from knet.api import protobuf

        try:
            obj = protobuf.decode(req.body)
            if req.method == "DELETE" and obj["kind"] != "DeleteOptions":
                raise protobuf.Unsupported(f"a {obj['kind']} as a delete's body")
            req.body = json.dumps(obj, separators=(",", ":")).encode()
        except protobuf.Unsupported as e:
            log.info("refused a protobuf body for %s %s: %s", req.method, req.path, e)
        except protobuf.Malformed as e:
            return errors.bad_request(f"the request body is not a protobuf object: {e}")
        else:
            req.headers["content-type"] = "application/json"
            return None
    accepted = PATCH_MEDIA_TYPES if req.method == "PATCH" else ("application/json", "application/yaml")
    return ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                    f"accepted media types include: {', '.join(accepted)}")


def not_acceptable(req: Request) -> ApiError | None:
    """406 for an Accept header that allows no JSON at all (protobuf alone):
    a list with JSON anywhere in it, as client-go sends
    ("application/vnd.kubernetes.protobuf,application/json"), is answered in JSON."""
    accept = req.headers.get("accept")
    if not accept or not (req.path.startswith("/api/") or req.path.startswith("/apis/")):
        return None
    for part in accept.split(","):
        mt = media_type(part)
        if mt in ("application/json", "*/*", "application/*", "") or mt.endswith("+json"):
            return None
    return ApiError(406, "NotAcceptable", "only the following media types are accepted: application/json")


class ApiServer:
    def __init__(self, registry: Registry, token: str, version: str = VERSION["gitVersion"], tls=None):
        self.registry = registry
        self.token = token.encode()
        self.version = version
        self.tls = tls  # ssl.SSLContext for the TCP listeners (knet.api.tls.server_context), or None
        # Identity (issue 15): knet.api.rbac.Authorizer (None: every authenticated user may do anything, as
        # the unit tests' servers), the ServiceAccount token authenticator and signer (knet/api/serviceaccounts.py).
        self.authorizer = None
        self.token_authenticator = None
        self.signer = None
        self.kubelet_token: str | None = None  # what nodeproxy shows kubelets; the admin token if None
        self.node_credentials = None  # bootstrap tokens and joining machines' certificates (knet.api.bootstraptoken)
        self.progress: dict[str, Progress] = {}
        # Watch figures for `knet status` and the tests: open watches, those
        # closed for falling behind, and the fullest any watcher's queue got.
        # sent/events/bookmarks: the watch streams' writes (each a TLS record and a send) and what they carried.
        self.watch_stats = {"open": 0, "closedBehind": 0, "peakBufferedBytes": 0, "sent": 0, "events": 0, "bookmarks": 0}
        self.watch_buffers: set[WatchBuffer] = set()
        self.watch_max_events = MAX_WATCH_EVENTS
        self.watch_max_bytes = MAX_WATCH_BYTES
        # Requests served, by verb and resource ("PATCH pods/status", "WATCH services"): what a
        # benchmark diffs around a step to see which clients' traffic grows with the cluster.
        self.request_counts: collections.Counter = collections.Counter()
        self.request_cpu: collections.Counter = collections.Counter()  # CPU seconds in handle() by the same keys
        # More figures for /knet/v1/progress's "stats", by name (the controllers' time per controller).
        self.stats_sources: dict[str, Callable[[], dict]] = {}

    # -- listeners ---------------------------------------------------------------

    async def serve_tcp(self, host: str, port: int, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(port, host=host)
        task_status.started()
        await trio.serve_listeners(self._handle_tcp, listeners)

    async def serve_socket(self, sock: socket.socket, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Serve on a listening socket made elsewhere: the host's loopback
        listener, bound in the host's namespace by `knet up` and passed down."""
        sock.setblocking(False)
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
        task_status.started()
        await trio.serve_listeners(self._handle_tcp, [listener])

    async def _handle_tcp(self, stream: trio.abc.Stream) -> None:
        """A TCP connection: TLS first when the server has a context. A client
        that does not finish its handshake in HANDSHAKE_TIMEOUT, or fails it,
        is dropped."""
        if self.tls is None:
            return await self._handle_stream(stream)
        tls = trio.SSLStream(stream, self.tls, server_side=True, https_compatible=True)
        try:
            with trio.fail_after(HANDSHAKE_TIMEOUT):
                await tls.do_handshake()
        except (trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
            log.debug("TLS handshake failed: %s", e)
            with trio.move_on_after(1):
                await stream.aclose()
            return
        from knet.api.tls import identity

        await self._handle_stream(tls, identity(tls.getpeercert()))

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

    async def _handle_stream(self, stream: trio.abc.Stream, peer: tuple[str, list[str]] | None = None) -> None:
        """One connection (peer: who its client certificate says it is). Nothing
        a client sends may escape from here: an exception out of a handler would
        stop trio.serve_listeners, and with it the API server."""
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                try:
                    req = await self._read_request(conn, stream)
                except h11.RemoteProtocolError as e:
                    await self._reject(conn, stream, e.error_status_hint, f"malformed HTTP request: {e}")
                    return
                if req is None:
                    return
                if peer is not None:
                    req.user = (peer[0], [*peer[1], "system:authenticated"])
                await self._dispatch(conn, stream, req)
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                try:
                    conn.start_next_cycle()
                except h11.LocalProtocolError:
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError, h11.ProtocolError, _Abort):
            return
        except Exception:
            log.exception("connection handler failed")
            return
        finally:
            with trio.move_on_after(1):
                await stream.aclose()

    async def _reject(self, conn: h11.Connection, stream: trio.abc.Stream, code: int, message: str) -> None:
        """Answer a request h11 could not parse (when a response can still be sent)."""
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        reason = "RequestEntityTooLarge" if code == 413 else "BadRequest"
        try:
            await self._send(conn, stream, code, ApiError(code, reason, message).status(), close=True)
            await self._linger(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError, h11.ProtocolError):
            pass

    @staticmethod
    async def _linger(stream: trio.abc.Stream) -> None:
        """Close as a web server's lingering close does: a socket closed with
        unread data resets the connection, and the client, still sending,
        loses the answer it was sent. So: end our side, then read and discard
        what the client still sends, for a while, before closing."""
        try:
            await stream.send_eof()
        except (AttributeError, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return
        with trio.move_on_after(2):
            drained = 0
            while drained < MAX_DRAIN and (data := await stream.receive_some(65536)):
                drained += len(data)

    async def _read_request(self, conn: h11.Connection, stream: trio.abc.Stream) -> Request | None:
        head = None
        body = bytearray()
        received = 0
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
                # raw_items: one list of the pairs (iterating h11's Headers, a Sequence, calls
                # __getitem__ per pair: 3-8% of the control plane's CPU in a rollout's profile).
                pairs = event.headers.raw_items()
                declared = next((v for k, v in reversed(pairs) if k.lower() == b"content-length"), None)
                if declared is not None and int(declared) > MAX_DRAIN:
                    # Not worth reading: answer now and close.
                    await self._send(conn, stream, 413, errors.request_too_large(MAX_BODY).status(), close=True)
                    await self._linger(stream)
                    raise _Abort()
            elif isinstance(event, h11.Data):
                received += len(event.data)
                if received <= MAX_BODY:
                    body += event.data
                elif received > MAX_DRAIN:
                    await self._send(conn, stream, 413, errors.request_too_large(MAX_BODY).status(), close=True)
                    await self._linger(stream)
                    raise _Abort()
                else:
                    body.clear()  # read on to the end, keeping nothing
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                return None
        target = urlsplit(head.target.decode("utf-8", errors="replace"))
        query = {k: v[-1] for k, v in parse_qs(target.query).items()}
        raw = [(k.lower(), v) for k, v in pairs]  # as iterating h11's Headers gives them
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in raw}
        return Request(head.method.decode("latin-1"), target.path, query, headers, bytes(body),
                       oversize=received if received > MAX_BODY else 0, raw_query=target.query,
                       raw_headers=raw)

    async def _send(self, conn: h11.Connection, stream: trio.abc.Stream, code: int, body: dict,
                    close: bool = False, warnings: list[str] = ()) -> None:
        data = to_json(body)
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        headers += [("Warning", decode.warning_header(w)) for w in warnings]
        if close:
            headers.append(("Connection", "close"))
        # One write for a small answer (over TLS: one record, not three); a large one in slices, so
        # what a connection holds encrypted and unsent stays bounded (100 clients listing 1,000 pods
        # at once otherwise hold each list twice over, plain and encrypted).
        head = conn.send(h11.Response(status_code=code, headers=headers))
        if len(data) <= SEND_CHUNK:
            return await stream.send_all(head + conn.send(h11.Data(data=data)) + conn.send(h11.EndOfMessage()))
        await stream.send_all(head)
        view = memoryview(data)
        for i in range(0, len(data), SEND_CHUNK):
            await stream.send_all(conn.send(h11.Data(data=view[i:i + SEND_CHUNK])))
        await stream.send_all(conn.send(h11.EndOfMessage()))

    def _authorized(self, req: Request) -> bool:
        """Authenticate as the API server's union of authenticators: a verified
        client certificate (already in req.user), else the bearer token."""
        if req.user is not None:
            return True
        auth = req.headers.get("authorization", "")
        if (not auth and req.method == "GET" and req.path == CLUSTER_INFO_PATH and self.authorizer is not None
                and self.node_credentials is not None):  # kubeadm's discovery: RBAC says who may read it
            req.user = ANONYMOUS
            return True
        if auth[:7].lower() != "bearer ":  # the scheme is case-insensitive (the Python client sends "bearer")
            return False
        if hmac.compare_digest(auth[7:].strip().encode(), self.token):
            req.user = ADMIN
            return True
        if self.node_credentials is not None and (user := self.node_credentials.authenticate(auth[7:].strip())):
            req.user = (user[0], [*user[1], "system:authenticated"])  # a bootstrap token (id.secret): a joining machine
            return True
        if self.token_authenticator is not None:  # a ServiceAccount's JWT
            req.user = self.token_authenticator.authenticate(auth[7:].strip())
            return req.user is not None
        return False

    async def _dispatch(self, conn: h11.Connection, stream: trio.abc.Stream, req: Request) -> None:
        try:
            if req.path in ("/healthz", "/readyz", "/livez"):
                return await self._send(conn, stream, 200, {"status": "ok"})
            if not self._authorized(req):
                raise ApiError(401, "Unauthorized", "Unauthorized")
            if self.authorizer is not None:  # impersonation, then RBAC: a 403 in Kubernetes' words
                from knet.api.rbac import authorize_request
                req.user = authorize_request(self.authorizer, req)
            if req.oversize:
                raise errors.request_too_large(MAX_BODY)
            if (refused := unsupported_media_type(req) or not_acceptable(req)) is not None:
                raise refused
            if "/pods/" in req.path:  # log, exec, attach, portforward: proxied to the pod's kubelet
                from knet.api import nodeproxy
                if nodeproxy.handles(route := parse_path(req.path)):
                    return await nodeproxy.serve(self, conn, stream, req, route)
            if req.path.startswith("/openapi/"):  # OpenAPI v2/v3 documents, encoded once (knet/api/openapi.py)
                from knet.api import openapi
                code, headers, data = openapi.serve(req.method, req.path, req.query, req.headers)
                await stream.send_all(conn.send(h11.Response(status_code=code, headers=headers)))
                if data:
                    await stream.send_all(conn.send(h11.Data(data=data)))
                return await stream.send_all(conn.send(h11.EndOfMessage()))
            if req.method == "GET" and (agg := discovery.serve_aggregated(req.path, req.headers.get("accept", ""),
                                                                         SERVED)):  # apidiscovery.k8s.io/v2
                await stream.send_all(conn.send(h11.Response(status_code=200, headers=agg[0])))
                await stream.send_all(conn.send(h11.Data(data=agg[1])))
                return await stream.send_all(conn.send(h11.EndOfMessage()))
            if req.method == "GET" and req.query.get("watch") in ("true", "1"):
                route = parse_path(req.path)
                if route is None or route.name:
                    raise errors.not_found("path", req.path)
                return await self._watch(conn, stream, req, route)
            if req.method == "GET" and "resourceVersion" in req.query:
                await self._await_revision(resource_version(req.query))
            cpu = time.thread_time()
            code, body = self.handle(req)
            body = tablecodec.respond(req, code, body)  # a Table when the client asks for one
            self.request_cpu[req.counted] += time.thread_time() - cpu
            trio.lowlevel.current_task().name = f"api {req.counted}"  # what knet/api/looplag.py's StepTimer reports
            await self._send(conn, stream, code, body, warnings=req.warnings)
        except ApiError as e:
            await self._send(conn, stream, e.code, e.status(), warnings=req.warnings)
        except (trio.BrokenResourceError, trio.ClosedResourceError, _Abort):
            raise
        except RecursionError:  # an object nested deeper than the server's own code can follow
            await self._send(conn, stream, 400, errors.bad_request("the object is nested too deeply").status())
        except TooLarge as e:
            await self._send(conn, stream, 413, errors.object_too_large(e.size, e.limit).status())
        except StoreError as e:
            log.warning("store refused %s %s: %s", req.method, req.path, e)
            await self._send(conn, stream, 409, ApiError(409, "Conflict", str(e)).status())
        except Exception as e:  # a bug must surface to the client and the log, not hang it
            log.exception("internal error serving %s %s", req.method, req.path)
            await self._send(conn, stream, 500, ApiError(500, "InternalError", f"internal error: {e}").status())

    # -- REST --------------------------------------------------------------------

    def handle(self, req: Request) -> tuple[int, dict]:
        """Serve one non-watch request; returns (HTTP code, JSON body)."""
        if req.path in ("/version", "/version/"):
            return 200, {**VERSION, "gitVersion": self.version}
        if req.path.startswith("/knet/v1/"):
            return self._knet(req)
        if req.path in ("/.well-known/openid-configuration", "/openid/v1/jwks") and self.signer is not None:
            from knet.api.serviceaccounts import discovery_document
            return 200, discovery_document(self.signer, req.path, req.headers.get("host", ""))
        if req.path in ("/api", "/apis") or req.path.count("/") <= 3 and parse_path(req.path + "/x") is None:
            discovery = self._discovery(req.path)
            if discovery is not None:
                return 200, discovery
        route = parse_path(req.path)
        if route is None:
            raise errors.not_found("path", req.path)
        req.res = route.res
        reg, res, ns, name = self.registry, route.res, route.namespace, route.name
        req.counted = (f"{'LIST' if name is None and req.method == 'GET' else req.method} {res.plural}"
                       f"{'/' + route.subresource if route.subresource else ''}")
        self.request_counts[req.counted] += 1
        if res.namespaced and name and ns is None:
            raise errors.not_found("path", req.path)
        m = req.method
        answered = subresources.serve(self, req, route)  # scale, reviews, unknown subresources
        if answered is not None:
            return answered
        if name is None:
            if m == "GET":
                items, rev = reg.list(res, ns, matcher(req.query))
                return 200, {"kind": res.list_kind, "apiVersion": res.api_version,
                             "metadata": {"resourceVersion": str(rev)}, "items": items}
            if m == "POST":
                if res.namespaced and ns is None:
                    raise errors.ApiError(405, "MethodNotAllowed", "POST needs a namespace in the path")
                return 201, reg.create(res, ns, req.object(), dry_run=req.query.get("dryRun") == "All",
                                       manager=self._manager(req))
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
                reg.delete(res, ns, name, _int_param(grace, "deleteOptions.gracePeriodSeconds")
                           if grace is not None else None)
                return 201, {"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}
            if m == "GET":
                return 200, reg.get(res, ns, name)
            dry = req.query.get("dryRun") == "All"
            if m == "PUT":
                return 200, reg.update(res, ns, name, req.object(name), sub, dry_run=dry, manager=self._manager(req))
            if m == "PATCH":
                from knet.api import patch  # JSON, merge, strategic patches and server-side apply
                return patch.serve(reg, req, res, ns, name, sub)
            if m == "DELETE":
                grace = req.query.get("gracePeriodSeconds")
                if grace is None and req.body:
                    grace = req.json().get("gracePeriodSeconds")
                return 200, reg.delete(res, ns, name, _int_param(grace, "gracePeriodSeconds") if grace is not None else None)
        raise errors.ApiError(405, "MethodNotAllowed", f"{m} is not allowed on {req.path}")

    @staticmethod
    def _manager(req: Request) -> str | None:
        """The field manager of a create or update, as upstream's
        managerOrUserAgent; None (untracked) for knet's own clients, which
        send neither: the controllers' and agents' writes stay cheap."""
        from knet.api.patch import manager_name

        if not req.query.get("fieldManager") and not req.headers.get("user-agent"):
            return None
        return manager_name(req.query.get("fieldManager"), req.headers.get("user-agent")) or None

    def _discovery(self, path: str) -> dict | None:
        return discovery.document(path, SERVED)

    def _knet(self, req: Request) -> tuple[int, dict]:
        """knet's own endpoints: progress reports for `apply --wait`."""
        if req.path == "/knet/v1/nodecredentials" and req.method == "POST" and self.node_credentials is not None:
            from knet.api.bootstraptoken import BootstrapError

            try:
                return 201, self.node_credentials.issue(req.user, req.json())
            except BootstrapError as e:
                raise errors.bad_request(str(e)) from None
        if req.path == "/knet/v1/bookmarks" and req.method == "POST":
            # An informer waits for its cache to reach a revision (wait_revision): its watches of
            # the resource send BOOKMARKs every 0.1 s for a while, not every second.
            resource = req.json().get("resource")
            if not isinstance(resource, str) or not resource:
                raise errors.bad_request("resource is required")
            user = getattr(req.user, "name", None)
            urged = [b for b in self.watch_buffers if b.resource == resource and b.user == user]
            if urged:
                until = trio.current_time() + BOOKMARKS_URGE_SECONDS
                for buffer in urged:
                    buffer.urge(until)
            return 200, {"status": "ok", "watches": len(urged)}
        if req.path == "/knet/v1/progress":
            if req.method == "POST":
                body = req.json()
                component = body.get("component")
                if not isinstance(component, str) or not component:
                    raise errors.bad_request("component is required")
                p = self.progress.setdefault(component, Progress())
                p.observed = max(p.observed, _int_param(body.get("observed", 0), "observed"))
                p.written = max(p.written, _int_param(body.get("written", 0), "written"))
                p.error = str(body.get("error") or "")
                if isinstance(body.get("proxy"), dict):
                    p.proxy = body["proxy"]
                if isinstance(body.get("policy"), dict):
                    p.policy = body["policy"]
                p.at = time.time()
                return 200, {"status": "ok"}
            if req.method == "GET":
                store = self.registry.store
                # A reader of progress waits for the agents to reach the newest revision: every
                # watcher sends BOOKMARKs every 0.1 s for a while (knet/api/watchbuffer.py).
                # (?urge=false: a monitor's read, e.g. bench/scale.py's, waits for nobody; and only inside
                # trio: handle() is called bare in unit tests)
                if self.watch_buffers and req.query.get("urge") != "false":
                    until = trio.current_time() + PROGRESS_URGES_SECONDS
                    for buffer in self.watch_buffers:
                        buffer.urge(until)
                return 200, {"revision": store.revision(), "components": {
                    k: {"observed": v.observed, "written": v.written, "at": v.at, "error": v.error, "proxy": v.proxy,
                        "policy": v.policy}
                    for k, v in self.progress.items()},
                    "store": store.stats() if hasattr(store, "stats") else {},
                    "watches": dict(self.watch_stats), "requests": dict(self.request_counts),
                    "requestCPU": {k: round(v, 4) for k, v in self.request_cpu.items()},
                    "stats": {name: source() for name, source in self.stats_sources.items()}}
        raise errors.not_found("path", req.path)

    # -- watch -------------------------------------------------------------------

    async def _await_revision(self, rv: int | None) -> None:
        """Wait, up to FRESHNESS_WAIT, until the store has reached `rv`; then a
        504 "Too large resource version", as the watch cache answers a client
        that asks for a revision from the future (instead of silence)."""
        store = self.registry.store
        if rv is None or rv <= store.revision():
            return
        with trio.move_on_after(FRESHNESS_WAIT):
            while store.revision() < rv:
                await trio.sleep(0.02)
            return
        raise errors.too_large_resource_version(rv, store.revision())

    async def _watch(self, conn: h11.Connection, stream: trio.abc.Stream, req: Request, route: Route) -> None:
        """Stream WatchEvents: the history after resourceVersion (or the current
        objects as ADDED when none is given), then every change, with BOOKMARKs so
        clients learn the revision even when nothing they watch changed.

        Each watcher's queue is bounded (WatchBuffer): one whose client stops
        reading is closed once it falls too far behind, and its client watches
        again from its last resourceVersion, or lists again after 410 Gone."""
        match = matcher(req.query)
        bookmarks = req.query.get("allowWatchBookmarks") in ("true", "1")
        encode = tablecodec.watch_encoder(req, route.res) or self._event_line  # Tables if asked
        initial_events = watch_list_mode(req.query)
        try:
            timeout = float(req.query.get("timeoutSeconds") or math.inf)
        except ValueError:
            raise errors.bad_request(f"timeoutSeconds: Invalid value: {errors.render_value(req.query['timeoutSeconds'])}"
                                     ": must be a number of seconds") from None
        rv = resource_version(req.query)
        await self._await_revision(rv)
        store = self.registry.store
        prefix = self._prefix(route)
        self.request_counts[f"WATCH {route.res.plural}"] += 1
        trio.lowlevel.current_task().name = f"api WATCH {route.res.plural}"
        scope = trio.CancelScope()
        buffer = WatchBuffer(scope.cancel, self.watch_max_events, self.watch_max_bytes, prefix=prefix,
                             bookmarks=bookmarks, user=getattr(req.user, "name", None), resource=route.res.plural)
        unsubscribe = store.subscribe(buffer.push)
        self.watch_buffers.add(buffer)
        self.watch_stats["open"] += 1
        try:
            with scope:
                if initial_events is True or (rv is None and initial_events is None):
                    # The current objects as ADDED: a watch from "now" (legacy), or WatchList's
                    # initial events (from any revision at least rv, which _await_revision ensured).
                    items, last = self.registry.list(route.res, route.namespace, match)
                    initial = ((last, ("ADDED", o)) for o in items)
                elif rv is not None:
                    initial = ((ev.revision, filter_event(ev, match)) for ev in self.registry.history(
                        route.res, route.namespace, rv))
                    last = max(rv, store.revision())
                else:  # sendInitialEvents=false from "now": changes only
                    initial, last = iter(()), store.revision()
                await stream.send_all(conn.send(h11.Response(status_code=200, headers=[
                    ("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")])))
                if initial_events:
                    tail = self._bookmark(route.res, last, initial_events_end=True)
                else:
                    tail = self._bookmark(route.res, last) if bookmarks else b""
                await self._send_lines(conn, stream, (encode(*out) for _, out in initial if out), tail)
                buffer.sent(last, bool(tail))
                with trio.move_on_after(timeout):
                    while True:
                        # The buffer holds only events under the prefix; the others advanced
                        # buffer.skipped, told with a BOOKMARK when one is due (knet/api/watchbuffer.py).
                        lines = []
                        for e in await buffer.take(WATCH_CHUNK):
                            if e.revision <= last:
                                continue
                            last = e.revision
                            out = filter_event(e, match)
                            if out:
                                lines.append(encode(*out) if encode is not self._event_line
                                             else self._shared_line(e, out))
                                buffer.sent(e.revision, False)
                            else:
                                buffer.skip(e.revision)
                        events = len(lines)
                        if buffer.bookmark_due():
                            lines.append(self._bookmark(route.res, buffer.skipped))
                            buffer.sent(buffer.skipped, True)
                        if lines:
                            stats = self.watch_stats
                            stats["sent"] += 1
                            stats["events"] += events
                            stats["bookmarks"] += len(lines) - events
                            await stream.send_all(conn.send(h11.Data(data=b"".join(lines))))
                await stream.send_all(conn.send(h11.EndOfMessage()))
        except Overflowed:
            pass
        finally:
            unsubscribe()
            self.watch_buffers.discard(buffer)
            self.watch_stats["open"] -= 1
            self.watch_stats["peakBufferedBytes"] = max(self.watch_stats["peakBufferedBytes"], buffer.peak_bytes)
        if buffer.overflowed:
            self.watch_stats["closedBehind"] += 1
            log.warning("closing the watch of %s: its client fell %d events or %d bytes behind",
                        req.path, buffer.max_events, buffer.max_bytes)
            raise _Abort()

    @staticmethod
    async def _send_lines(conn: h11.Connection, stream: trio.abc.Stream, lines, tail: bytes) -> None:
        """Send lines in chunks of about WATCH_CHUNK, encoding each chunk only
        when the previous one is sent: a long history or listing never sits
        in memory whole, encoded, for a client that reads slowly."""
        chunk: list[bytes] = []
        size = 0
        for line in lines:
            chunk.append(line)
            size += len(line)
            if size >= WATCH_CHUNK:
                await stream.send_all(conn.send(h11.Data(data=b"".join(chunk))))
                chunk, size = [], 0
        chunk.append(tail)
        data = b"".join(chunk)
        if data:
            await stream.send_all(conn.send(h11.Data(data=data)))

    @staticmethod
    def _prefix(route: Route) -> str:
        from knet.api.registry import prefix_for
        return prefix_for(route.res, route.namespace)

    def _shared_line(self, event: Event, out: tuple[str, dict]) -> bytes:
        """An event's line, encoded once for every plain watch that sends it (the
        object is the event's shared decoding, so its identity names it)."""
        memo = event.__dict__.setdefault("_lines", {})
        key = (out[0], id(out[1]))
        line = memo.get(key)
        if line is None:
            line = memo[key] = self._event_line(*out)
        return line

    @staticmethod
    def _event_line(kind: str, obj: dict) -> bytes:
        return to_json({"type": kind, "object": obj}) + b"\n"

    @staticmethod
    def _bookmark(res: Resource, rev: int, initial_events_end: bool = False) -> bytes:
        """A BOOKMARK: only the revision, in an object of the watched kind. The
        one that ends WatchList's initial events says so in an annotation, as
        the watch cache marks it (k8s.io/initial-events-end)."""
        meta: dict = {"resourceVersion": str(rev)}
        if initial_events_end:
            meta["annotations"] = {INITIAL_EVENTS_END: "true"}
        return json.dumps({"type": "BOOKMARK", "object": {
            "kind": res.kind, "apiVersion": res.api_version, "metadata": meta}}).encode() + b"\n"
