"""A small synchronous API client for the CLI: stdlib only, so `knet get`
starts in tens of milliseconds (no HTTP library import per call)."""

from __future__ import annotations

import errno
import json
import os
import socket
from collections.abc import Callable, Iterator

from knet.api.errors import ApiError
from knet.api.resources import Resource
from knet.paths import state_dir


class NotRunning(RuntimeError):
    pass


class Unreachable(ConnectionError):
    """Nothing answers at the API server's address: the cluster is stopped,
    still starting, or its control plane died. (An OSError, so code that
    polls for a starting server keeps catching it.)"""


def for_cluster(cluster: str) -> Client:
    """A CLI client for a running cluster (unix socket + the root-only token)."""
    sdir = state_dir(cluster)
    try:
        with open(os.path.join(sdir, "token")) as f:
            token = f.read().strip()
    except FileNotFoundError:
        raise NotRunning(f'cluster "{cluster}" is not running (no {sdir}); start it with: knet up'
                         + (f" --cluster {cluster}" if cluster != "knet" else "")) from None
    client = Client(token, unix_path=os.path.join(sdir, "api.sock"))
    client.cluster = cluster
    return client


class TlsFailed(ConnectionError):
    """The TLS handshake failed: the server's certificate is not the CA's (or not for the address
    dialled), or the server refused the client's certificate."""


class ProtocolError(OSError):
    """The server's answer was not HTTP/1.1 as expected (or the connection dropped mid-answer)."""


# What a send or read on a kept-alive connection meets when the server has closed it while idle.
_IDLE_CLOSED = (BrokenPipeError, ConnectionResetError, ProtocolError)


def warning_text(header: str) -> str:
    """The text of one `Warning: 299 - "text"` header (RFC 7234's warn-code,
    agent, quoted text), as kubectl prints it; a header of another shape as it is."""
    code, _, rest = header.partition(" ")
    agent, _, quoted = rest.partition(" ")
    if code.isdigit() and quoted.startswith('"'):
        end = len(quoted)
        i = 1
        out = []
        while i < end:
            ch = quoted[i]
            if ch == "\\" and i + 1 < end:
                out.append(quoted[i + 1])
                i += 2
                continue
            if ch == '"':
                break
            out.append(ch)
            i += 1
        return "".join(out)
    return header


class _Connection:
    """HTTP/1.1 over one socket, just what talking to knet's API server
    needs: Content-Length and chunked bodies, keep-alive. http.client costs
    about 20 ms of imports per CLI call; this costs none."""

    def __init__(self, unix_path: str | None, host: str | None, port: int, timeout: float | None,
                 tls=None, server_hostname: str | None = None):
        if unix_path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            try:
                self.sock.connect(unix_path)
            except OSError:
                self.sock.close()
                raise
        else:
            self.sock = socket.create_connection((host, port), timeout=timeout)
            if tls is not None:  # an ssl.SSLContext (a kubeconfig's server): the handshake happens here
                try:
                    self.sock = tls.wrap_socket(self.sock, server_hostname=server_hostname or host)
                except BaseException:
                    self.sock.close()
                    raise
        self.file = self.sock.makefile("rb")
        self.used = False  # True once an answer came on it: a kept-alive connection the server may since have closed

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def send(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> None:
        head = [f"{method} {path} HTTP/1.1", "Host: knet"] + [f"{k}: {v}" for k, v in headers.items()]
        head.append(f"Content-Length: {len(body or b'')}")
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + (body or b""))

    def response(self) -> tuple[int, dict[str, str]]:
        """The status and headers; a header sent more than once (Warning) has
        its values joined by "\n", which no header value can hold."""
        line = self.file.readline()
        if not line:
            raise ProtocolError("the API server closed the connection")
        try:
            status = int(line.split(None, 2)[1])
        except (IndexError, ValueError):
            raise ProtocolError(f"not an HTTP response: {line[:80]!r}") from None
        headers: dict[str, str] = {}
        while (line := self.file.readline()) not in (b"\r\n", b"\n", b""):
            k, _, v = line.decode("latin-1").partition(":")
            k, v = k.strip().lower(), v.strip()
            headers[k] = f"{headers[k]}\n{v}" if k in headers else v
        self.used = True
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


# RFC 3986's unreserved characters: urllib.parse.quote(text, safe="") leaves exactly these.
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def quote(text: str) -> str:
    """Percent-encode all but the unreserved characters (urllib.parse, with
    the ipaddress module it imports, is ~4 ms of every CLI call's start)."""
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in text.encode())


def urlencode(query: dict) -> str:
    return "&".join(f"{quote(str(k))}={quote(str(v))}" for k, v in query.items())


class Client:
    """Talks to one API server over its unix socket (or host:port)."""

    def __init__(self, token: str, unix_path: str | None = None, host: str | None = None, port: int = 6443):
        self.token = token
        self.unix_path = unix_path
        self.host = host
        self.port = port
        # TLS to host:port (a kubeconfig context: knet.cli.kubecontext makes the ssl.SSLContext, so
        # ssl is imported only when a context needs it) and the name the server's certificate must hold.
        self.tls = None
        self.server_hostname: str | None = None
        self.context: str | None = None  # the kubeconfig context this client was made from, named in errors
        self._conn: _Connection | None = None
        self.cluster: str | None = None  # named in the error when the server is not reachable
        # kubectl's default (KEP-2885): an unknown or duplicate field is a 400, not a warning. None
        # leaves it to the server (Warn). The CLI sets Strict; components' and tests' clients choose.
        self.field_validation: str | None = None
        self.on_warning: Callable[[str], None] | None = None  # each Warning header's text, as it comes

    def _connection(self, timeout: float | None = 30) -> _Connection:
        try:
            return _Connection(self.unix_path, self.host, self.port, timeout, self.tls, self.server_hostname)
        except (FileNotFoundError, ConnectionRefusedError, ConnectionResetError, TimeoutError) as e:
            raise Unreachable(self._unreachable(e)) from None
        except OSError as e:
            if e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ECONNABORTED, errno.EADDRNOTAVAIL):
                raise Unreachable(self._unreachable(e)) from None
            if self.tls is not None and type(e).__module__ == "ssl":  # ssl.SSLError, without importing ssl here
                raise TlsFailed(self._tls_failed(e)) from None
            raise

    def _tls_failed(self, e: OSError) -> str:
        why = getattr(e, "verify_message", None) or getattr(e, "reason", None) or str(e)
        whose = f' of context "{self.context}"' if self.context else ""
        return (f"TLS with the API server{whose} at {self.host}:{self.port} failed ({str(why).lower()}): "
                "check the certificate-authority and client certificate it names")

    def _unreachable(self, e: OSError) -> str:
        where = self.unix_path or f"{self.host}:{self.port}"
        why = "no such socket" if isinstance(e, FileNotFoundError) else (e.strerror or str(e)).lower()
        if self.context:
            return (f'the API server of context "{self.context}" is not reachable at {where} ({why}): '
                    "is the cluster running, and is this its address?")
        if self.cluster:
            flag = f" --cluster {self.cluster}" if self.cluster != "knet" else ""
            return (f'the API server of cluster "{self.cluster}" is not reachable at {where} ({why}): '
                    f"is the cluster running? Check with: knet status{flag}")
        return f"the API server is not reachable at {where} ({why})"

    def request(self, method: str, path: str, body: dict | None = None, query: dict | None = None,
                content_type: str = "application/json") -> dict:
        if self.field_validation and method in ("POST", "PUT", "PATCH"):
            query = {"fieldValidation": self.field_validation, **(query or {})}
        if query:
            path += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        data = json.dumps(body).encode() if body is not None else None
        headers = {**self.auth_headers(), "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = self._connection()
            conn = self._conn
            reused, answered = conn.used, False
            try:
                status, resp_headers = self._exchange(conn, method, path, headers, data)
                answered = True
                raw = b"".join(conn.body(resp_headers))
                if resp_headers.get("connection", "").lower() == "close":
                    conn.close()
                    self._conn = None
                break
            except OSError as e:
                conn.close()
                self._conn = None
                # Retried once: a kept-alive connection that the server closed while it sat idle, before
                # any of this request was answered. A new connection that fails is an error, not a retry.
                if not attempt and reused and not answered and isinstance(e, _IDLE_CLOSED):
                    continue
                if isinstance(e, (ProtocolError, Unreachable)):
                    raise
                raise ProtocolError(f"talking to the API server ({method} {path.split('?')[0]}): "
                                    f"{(e.strerror or str(e)).lower()}") from None
        if "warning" in resp_headers and self.on_warning is not None:
            for w in resp_headers["warning"].split("\n"):
                self.on_warning(warning_text(w))
        try:
            out = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            raise ApiError(status, "InternalError", raw.decode(errors="replace")) from None
        if status >= 400:
            raise ApiError.from_status(out) if out.get("kind") == "Status" else ApiError(status, "Unknown", str(out))
        return out

    def auth_headers(self) -> dict[str, str]:
        """The bearer token, when there is one (a kubeconfig user may have only a client certificate)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def text(self, path: str, query: dict | None = None, timeout: float | None = 30) -> str:
        """A GET whose answer is text, not JSON (pods/log); an error answer is the Status it carries."""
        if query:
            path += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        conn = self._connection(timeout)
        try:
            conn.send("GET", path, {**self.auth_headers(), "Accept": "*/*"}, None)
            status, headers = conn.response()
            raw = b"".join(conn.body(headers))
        finally:
            conn.close()
        if status >= 400:
            try:
                out = json.loads(raw)
            except ValueError:
                out = {}
            if out.get("kind") == "Status":
                raise ApiError.from_status(out)
            raise ApiError(status, "Unknown", raw.decode(errors="replace")[:200])
        return raw.decode(errors="replace")

    def _exchange(self, conn: _Connection, method: str, path: str, headers: dict[str, str],
                  data: bytes | None) -> tuple[int, dict[str, str]]:
        """Send the request and read the answer's head. A server that refuses a
        request before reading all of it (413 for a body over its limit) answers
        and closes: the send then fails (broken pipe, reset) with the answer
        already in our receive buffer, so it is read before anything is concluded."""
        try:
            conn.send(method, path, headers, data)
        except (BrokenPipeError, ConnectionResetError, TimeoutError) as sent:
            try:
                conn.sock.settimeout(2)
                return conn.response()
            except OSError:
                pass
            if conn.used and not isinstance(sent, TimeoutError):
                raise  # maybe a kept-alive connection the server closed while idle: the caller retries
            size = f" of {len(data):,} bytes" if data else ""
            raise ProtocolError(f"the API server closed the connection while the request{size} was being sent "
                                "(and gave no answer)") from None
        try:
            return conn.response()
        except TimeoutError:
            raise ProtocolError("the API server did not answer within "
                                f"{conn.sock.gettimeout():g}s ({method} {path.split('?')[0]})") from None

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
            conn.send("GET", path, self.auth_headers(), None)
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
