"""The asynchronous API client that node agents and controllers use (trio + h11).

It keeps a few idle keep-alive connections for requests and opens one
connection per watch, as client-go does. Over TCP it speaks TLS and trusts
only the cluster CA (ca_file), as a kubelet does with its kubeconfig.

Requests share at most MAX_CONNECTIONS connections: a hundred pods starting
at once on a node then wait a moment for a connection instead of each paying
for a TLS handshake (on both ends) with a connection closed right after.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import h11
import trio

from knet.api.errors import ApiError
from knet.api.objects import from_json, to_json
from knet.api.resources import Resource


class Disconnected(ConnectionError):
    """The connection to the API server broke mid-request or mid-watch."""


_BROKEN = (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError, OSError)


class _Conn:
    def __init__(self, stream: trio.abc.Stream):
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)

    async def send(self, event: h11.Event) -> None:
        data = self.h11.send(event)
        if data:
            await self.stream.send_all(data)

    async def next_event(self) -> h11.Event:
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                data = await self.stream.receive_some(65536)
                self.h11.receive_data(data)
                continue
            return event


MAX_CONNECTIONS = 8  # concurrent requests; watches have their own connections


class AsyncClient:
    def __init__(self, host: str, port: int, token: str, unix_path: str | None = None, ca_file: str | None = None,
                 handshake_timeout: float = 10.0, cert_file: str | None = None, key_file: str | None = None):
        """token "" with cert_file: the client certificate is the credential (a node agent's)."""
        self.host, self.port, self.token, self.unix_path = host, port, token, unix_path
        self._args = (host, port, token, unix_path, ca_file, handshake_timeout, cert_file, key_file)
        self.handshake_timeout = handshake_timeout  # Go's TLSHandshakeTimeout: 10 s
        self._idle: list[_Conn] = []
        self._slots = trio.Semaphore(MAX_CONNECTIONS)
        self._tls = None
        if ca_file and not unix_path:
            from knet.api.tls import client_context

            self._tls = client_context(ca_file, cert_file, key_file)

    def sibling(self) -> AsyncClient:
        """The same credentials with connections of its own: for what must not queue
        behind a burst of other requests (a node's heartbeat and Lease)."""
        return AsyncClient(*self._args)

    async def _open(self) -> _Conn:
        try:
            if self.unix_path:
                stream = await trio.open_unix_socket(self.unix_path)
            elif self._tls is not None:
                stream = await trio.open_ssl_over_tcp_stream(self.host, self.port, ssl_context=self._tls,
                                                             https_compatible=True)
                with trio.fail_after(self.handshake_timeout):
                    await stream.do_handshake()
            else:
                stream = await trio.open_tcp_stream(self.host, self.port)
        except (OSError, trio.BrokenResourceError, trio.TooSlowError) as e:
            raise Disconnected(f"cannot reach the API server: {e}") from e
        return _Conn(stream)

    def _headers(self, body: bytes | None, content_type: str) -> list[tuple[str, str]]:
        headers = [("Host", self.host or "localhost"), ("Accept", "application/json")]
        if self.token:
            headers.insert(1, ("Authorization", f"Bearer {self.token}"))
        if body is not None:
            headers += [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        else:
            headers.append(("Content-Length", "0"))
        return headers

    async def request(self, method: str, path: str, body: dict | None = None, query: dict | None = None,
                      content_type: str = "application/json") -> dict:
        async with self._slots:
            return await self._request(method, path, body, query, content_type)

    async def _request(self, method: str, path: str, body: dict | None, query: dict | None,
                       content_type: str) -> dict:
        if query:
            path += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        data = to_json(body) if body is not None else None
        for attempt in range(2):
            conn = self._idle.pop() if self._idle else await self._open()
            try:
                await conn.send(h11.Request(method=method, target=path, headers=self._headers(data, content_type)))
                if data:
                    await conn.send(h11.Data(data=data))
                await conn.send(h11.EndOfMessage())
                resp = await conn.next_event()
                raw = bytearray()
                while True:
                    ev = await conn.next_event()
                    if isinstance(ev, h11.Data):
                        raw += ev.data
                    elif isinstance(ev, (h11.EndOfMessage, h11.ConnectionClosed)):
                        break
                break
            except _BROKEN as e:
                await conn.stream.aclose()
                if attempt:
                    raise Disconnected(f"{method} {path}: {e}") from e
        if conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE and len(self._idle) < MAX_CONNECTIONS:
            conn.h11.start_next_cycle()
            self._idle.append(conn)
        else:
            await conn.stream.aclose()
        out = from_json(raw) if raw else {}
        if resp.status_code >= 400:
            if out.get("kind") == "Status":
                raise ApiError.from_status(out)
            raise ApiError(resp.status_code, "Unknown", str(out))
        return out

    async def get(self, res: Resource, namespace: str | None, name: str) -> dict:
        return await self.request("GET", res.path(namespace, name))

    async def list(self, res: Resource, namespace: str | None = None, **query: str) -> dict:
        return await self.request("GET", res.path(namespace), query=query or None)

    async def create(self, res: Resource, namespace: str | None, obj: dict) -> dict:
        return await self.request("POST", res.path(namespace), obj)

    async def update(self, res: Resource, namespace: str | None, name: str, obj: dict,
                     subresource: str = "") -> dict:
        return await self.request("PUT", res.path(namespace, name) + (f"/{subresource}" if subresource else ""), obj)

    async def patch(self, res: Resource, namespace: str | None, name: str, patch: dict,
                    subresource: str = "") -> dict:
        return await self.request("PATCH", res.path(namespace, name) + (f"/{subresource}" if subresource else ""),
                                  patch, content_type="application/merge-patch+json")

    async def delete(self, res: Resource, namespace: str | None, name: str, grace: int | None = None) -> dict:
        return await self.request("DELETE", res.path(namespace, name), query={"gracePeriodSeconds": grace})

    async def watch(self, res: Resource, namespace: str | None = None, resource_version: str | None = None,
                    **query: str) -> AsyncIterator[dict]:
        """Yield WatchEvents (BOOKMARKs included) until the stream ends. Raises
        ApiError (410 when the revision is too old) before the first event."""
        q = {"watch": "true", "allowWatchBookmarks": "true", "resourceVersion": resource_version, **query}
        path = res.path(namespace) + "?" + urlencode({k: v for k, v in q.items() if v is not None})
        try:
            conn = await self._open()
        except OSError as e:
            raise Disconnected(f"watch {path}: {e}") from e
        try:
            await conn.send(h11.Request(method="GET", target=path, headers=self._headers(None, "")))
            await conn.send(h11.EndOfMessage())
            resp = await conn.next_event()
            buf = bytearray()
            if resp.status_code >= 400:
                while True:
                    ev = await conn.next_event()
                    if isinstance(ev, h11.Data):
                        buf += ev.data
                    else:
                        break
                raise ApiError.from_status(json.loads(buf))
            while True:
                ev = await conn.next_event()
                if isinstance(ev, h11.Data):
                    buf += ev.data
                    while b"\n" in buf:
                        line, _, rest = bytes(buf).partition(b"\n")
                        buf = bytearray(rest)
                        if line.strip():
                            yield from_json(line)
                else:
                    return
        except _BROKEN as e:
            raise Disconnected(f"watch {path}: {e}") from e
        finally:
            await conn.stream.aclose()
