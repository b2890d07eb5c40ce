"""A small synchronous API client for the CLI: stdlib only, so `knet get`
starts in tens of milliseconds (no HTTP library import per call)."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from urllib.parse import urlencode

from knet.api.errors import ApiError
from knet.api.resources import Resource


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None = 30):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class Client:
    """Talks to one API server over its unix socket (or host:port)."""

    def __init__(self, token: str, unix_path: str | None = None, host: str | None = None, port: int = 6443):
        self.token = token
        self.unix_path = unix_path
        self.host = host
        self.port = port
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self, timeout: float | None = 30) -> http.client.HTTPConnection:
        if self.unix_path:
            return _UnixConnection(self.unix_path, timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

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
                self._conn.request(method, path, body=data, headers=headers)
                resp = self._conn.getresponse()
                raw = resp.read()
                break
            except (OSError, http.client.HTTPException) as e:
                self._conn.close()
                self._conn = None
                # A kept-alive connection the server closed is retried once; a refused one is not.
                if attempt or isinstance(e, (FileNotFoundError, ConnectionRefusedError)):
                    raise
        try:
            out = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            raise ApiError(resp.status, "InternalError", raw.decode(errors="replace")) from None
        if resp.status >= 400:
            raise ApiError.from_status(out) if out.get("kind") == "Status" else ApiError(resp.status, "Unknown", str(out))
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
            conn.request("GET", path, headers={"Authorization": f"Bearer {self.token}"})
            resp = conn.getresponse()
            if resp.status >= 400:
                raise ApiError.from_status(json.loads(resp.read()))
            for line in resp:
                if line.strip():
                    yield json.loads(line)
        finally:
            conn.close()
