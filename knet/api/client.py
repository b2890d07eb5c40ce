"""A small synchronous API client for the CLI: stdlib only, so `knet get`
starts in tens of milliseconds (no HTTP library import per call)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from urllib.parse import quote

from knet.api.errors import ApiError
from knet.api.resources import Resource
from knet.paths import state_dir


class NotRunning(RuntimeError):
    pass


def for_cluster(cluster: str) -> Client:
    """A CLI client for a running cluster (unix socket + the root-only token)."""
    sdir = state_dir(cluster)
    try:
        with open(os.path.join(sdir, "token")) as f:
            token = f.read().strip()
    except FileNotFoundError:
        raise NotRunning(f'cluster "{cluster}" is not running (no {sdir}); start it with: knet up'
                         + (f" --cluster {cluster}" if cluster != "knet" else "")) from None
    return Client(token, unix_path=os.path.join(sdir, "api.sock"))


class ProtocolError(OSError):
    """The server's answer was not HTTP/1.1 as expected (or the connection dropped mid-answer)."""


class _Connection:
    """HTTP/1.1 over one socket, just what talking to knet's API server
    needs: Content-Length and chunked bodies, keep-alive. http.client costs
    about 20 ms of imports per CLI call; this costs none."""

    def __init__(self, unix_path: str | None, host: str | None, port: int, timeout: float | None):
        if unix_path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(unix_path)
        else:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rb")

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def send(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> None:
        head = [f"{method} {path} HTTP/1.1", "Host: knet"] + [f"{k}: {v}" for k, v in headers.items()]
        head.append(f"Content-Length: {len(body or b'')}")
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + (body or b""))

    def response(self) -> tuple[int, dict[str, str]]:
        line = self.file.readline()
        if not line:
            raise ProtocolError("the API server closed the connection")
        try:
            status = int(line.split(None, 2)[1])
        except (IndexError, ValueError):
            raise ProtocolError(f"not an HTTP response: {line[:80]!r}") from None
        headers = {}
        while (line := self.file.readline()) not in (b"\r\n", b"\n", b""):
            k, _, v = line.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        return status, headers

    def body(self, headers: dict[str, str]) -> Iterator[bytes]:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(self.file.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.file.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                data = self.file.read(size)
                self.file.readline()
                if len(data) < size:
                    raise ProtocolError("the API server closed the connection mid-answer")
                yield data
        elif "content-length" in headers:
            n = int(headers["content-length"])
            data = self.file.read(n) if n else b""
            if len(data) < n:
                raise ProtocolError("the API server closed the connection mid-answer")
            yield data
        else:
            yield self.file.read()


def urlencode(query: dict) -> str:
    return "&".join(f"{quote(str(k), safe='')}={quote(str(v), safe='')}" for k, v in query.items())


class Client:
    """Talks to one API server over its unix socket (or host:port)."""

    def __init__(self, token: str, unix_path: str | None = None, host: str | None = None, port: int = 6443):
        self.token = token
        self.unix_path = unix_path
        self.host = host
        self.port = port
        self._conn: _Connection | None = None

    def _connection(self, timeout: float | None = 30) -> _Connection:
        return _Connection(self.unix_path, self.host, self.port, timeout)

    def request(self, method: str, path: str, body: dict | None = None, query: dict | None = None,
                content_type: str = "application/json") -> dict:
        if query:
            path += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = self._connection()
            try:
                self._conn.send(method, path, headers, data)
                status, resp_headers = self._conn.response()
                raw = b"".join(self._conn.body(resp_headers))
                if resp_headers.get("connection", "").lower() == "close":
                    self._conn.close()
                    self._conn = None
                break
            except OSError as e:
                self._conn.close()
                self._conn = None
                # A kept-alive connection the server closed is retried once; a refused one is not.
                if attempt or isinstance(e, (FileNotFoundError, ConnectionRefusedError)):
                    raise
        try:
            out = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            raise ApiError(status, "InternalError", raw.decode(errors="replace")) from None
        if status >= 400:
            raise ApiError.from_status(out) if out.get("kind") == "Status" else ApiError(status, "Unknown", str(out))
        return out

    # -- typed helpers -----------------------------------------------------------

    def get(self, res: Resource, namespace: str | None, name: str) -> dict:
        return self.request("GET", res.path(namespace, name))

    def list(self, res: Resource, namespace: str | None = None, label_selector: str | None = None,
             field_selector: str | None = None) -> dict:
        return self.request("GET", res.path(namespace), query={
            "labelSelector": label_selector, "fieldSelector": field_selector})

    def create(self, res: Resource, namespace: str | None, obj: dict) -> dict:
        return self.request("POST", res.path(namespace), obj)

    def update(self, res: Resource, namespace: str | None, name: str, obj: dict, subresource: str = "") -> dict:
        path = res.path(namespace, name) + (f"/{subresource}" if subresource else "")
        return self.request("PUT", path, obj)

    def patch(self, res: Resource, namespace: str | None, name: str, patch: dict) -> dict:
        return self.request("PATCH", res.path(namespace, name), patch, content_type="application/merge-patch+json")

    def delete(self, res: Resource, namespace: str | None, name: str, grace: int | None = None) -> dict:
        return self.request("DELETE", res.path(namespace, name), query={"gracePeriodSeconds": grace})

    def watch(self, res: Resource, namespace: str | None = None, resource_version: str | None = None,
              label_selector: str | None = None, field_selector: str | None = None,
              timeout: float | None = None) -> Iterator[dict]:
        """Yield WatchEvents as dicts until the server ends the stream."""
        query = {"watch": "true", "resourceVersion": resource_version, "labelSelector": label_selector,
                 "fieldSelector": field_selector, "allowWatchBookmarks": "true"}
        path = res.path(namespace) + "?" + urlencode({k: v for k, v in query.items() if v is not None})
        conn = self._connection(timeout)
        try:
            conn.send("GET", path, {"Authorization": f"Bearer {self.token}"}, None)
            status, headers = conn.response()
            if status >= 400:
                raise ApiError.from_status(json.loads(b"".join(conn.body(headers))))
            pending = b""
            for chunk in conn.body(headers):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
            if pending.strip():
                yield json.loads(pending)
        finally:
            conn.close()
