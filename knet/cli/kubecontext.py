"""A kubeconfig context as the CLI's API client: kubectl's way to name a cluster anywhere.

`knet up` reaches its own cluster by name (a unix socket and a root-only token on this
machine). A cluster elsewhere (a `knet init` machine, a Vagrant VM, a namespace cluster seen
from a machine without root) is named the way kubectl names it: a context of the kubeconfig,
whose cluster entry gives the server and the CA and whose user entry gives a client
certificate or a token. This module reads them as client-go's clientcmd does:

- the files: `--kubeconfig PATH` alone (it must exist), else every file of $KUBECONFIG
  (missing ones skipped), else ~/.kube/config;
- merged: the first file to name a cluster, user or context keeps it, the first
  current-context wins;
- a relative path in a file (certificate-authority, client-certificate, client-key,
  tokenFile) is relative to the folder of the file that holds it;
- `-data` fields (base64 PEM) and file fields are both read; when an entry has both, the
  data wins, as kubectl says ("certificate-authority-data will override").

Reading and resolving are pure (dicts in, a Credentials out) for the unit tests; ssl is
imported only when a context's client is made, and YAML only for a file that is not JSON,
so nothing here costs the CLI's start-up when no context is named.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass

from knet.cli.common import CliError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from knet.api.client import Client

SECTIONS = (("clusters", "cluster"), ("users", "user"), ("contexts", "context"))
PATH_FIELDS = {"cluster": ("certificate-authority",), "user": ("client-certificate", "client-key", "tokenFile")}


class KubeconfigError(CliError):
    """The kubeconfig cannot give a client: the message names the file, the entry and the field."""


@dataclass
class Merged:
    """The files merged: each entry by name, with the folder of the file that defined it."""
    files: list[str]
    clusters: dict[str, dict]
    users: dict[str, dict]
    contexts: dict[str, dict]
    current_context: str = ""


@dataclass
class Credentials:
    context: str
    server: str
    host: str
    port: int
    tls: bool                      # https (else plain http: no CA, no client certificate)
    ca_pem: bytes | None = None    # None: the system's roots (or insecure)
    insecure: bool = False         # insecure-skip-tls-verify
    tls_server_name: str | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    token: str = ""
    namespace: str | None = None


# -- which files ------------------------------------------------------------------------------


def paths(explicit: str | None = None, env: dict[str, str] | None = None) -> tuple[list[str], bool]:
    """The files to read in precedence order, and whether they must exist (--kubeconfig)."""
    if explicit:
        return [explicit], True
    env = os.environ if env is None else env
    listed: list[str] = []
    for part in (env.get("KUBECONFIG") or "").split(os.pathsep):
        if part and part not in listed:
            listed.append(part)
    if listed:
        return listed, False
    home = env.get("HOME") or os.path.expanduser("~")
    return [os.path.join(home, ".kube", "config")], False


def read_file(path: str) -> dict:
    """One kubeconfig file decoded ({} when empty); JSON without YAML's import cost."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except IsADirectoryError:
        raise KubeconfigError(f"kubeconfig {path}: is a directory, not a file") from None
    text = raw.decode("utf-8", errors="replace")
    if not text.strip():
        return {}
    try:
        doc = json.loads(text) if text.lstrip().startswith("{") else _yaml(text)
    except ValueError as e:
        raise KubeconfigError(f"kubeconfig {path}: not valid YAML or JSON ({' '.join(str(e).split())[:160]})") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise KubeconfigError(f"kubeconfig {path}: expected a mapping (kind: Config), got {type(doc).__name__}")
    return doc


def _yaml(text: str):
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(str(e)) from None


def merge(docs: list[tuple[str, dict]]) -> Merged:
    """Files (path, decoded) in precedence order into one view, as clientcmd merges them."""
    out = Merged([p for p, _ in docs], {}, {}, {})
    for path, doc in docs:
        base = os.path.dirname(os.path.abspath(path))
        for section, key in SECTIONS:
            entries = doc.get(section) or []
            if not isinstance(entries, list):
                raise KubeconfigError(f"kubeconfig {path}: {section}: expected a list, got {type(entries).__name__}")
            for i, entry in enumerate(entries):
                if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
                    raise KubeconfigError(f"kubeconfig {path}: {section}[{i}].name: Required value")
                body = entry.get(key) or {}
                if not isinstance(body, dict):
                    raise KubeconfigError(f"kubeconfig {path}: {section}[{i}].{key}: expected a mapping")
                table = getattr(out, section)
                if entry["name"] not in table:  # the first file to set a name keeps it
                    table[entry["name"]] = _local_paths(body, key, base)
        if not out.current_context and isinstance(doc.get("current-context"), str):
            out.current_context = doc["current-context"]
    return out


def _local_paths(body: dict, key: str, base: str) -> dict:
    """A relative path is relative to the file that names it (clientcmd's ResolveLocalPaths)."""
    body = dict(body)
    for field in PATH_FIELDS.get(key, ()):
        value = body.get(field)
        if isinstance(value, str) and value and not os.path.isabs(value):
            body[field] = os.path.join(base, value)
    return body


def load(explicit: str | None = None, env: dict[str, str] | None = None) -> Merged:
    files, required = paths(explicit, env)
    docs = []
    for path in files:
        try:
            docs.append((path, read_file(path)))
        except FileNotFoundError:
            if required:
                raise KubeconfigError(f"--kubeconfig: {path}: no such file") from None
        except PermissionError:
            raise KubeconfigError(f"kubeconfig {path}: permission denied") from None
    merged = merge(docs)
    merged.files = files
    return merged


# -- one context ----------------------------------------------------------------------------


def _b64(value: object, where: str) -> bytes:
    if not isinstance(value, str):
        raise KubeconfigError(f"{where}: expected a base64 string")
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KubeconfigError(f"{where}: illegal base64 data") from None


def _file(path: object, where: str) -> bytes:
    if not isinstance(path, str):
        raise KubeconfigError(f"{where}: expected a path")
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise KubeconfigError(f"{where}: unable to read {path}: {(e.strerror or str(e)).lower()}") from None


def _data_or_file(body: dict, field: str, where: str) -> bytes | None:
    """field-data (base64) over field (a file), as kubectl: the data overrides."""
    if body.get(f"{field}-data"):
        return _b64(body[f"{field}-data"], f"{where}.{field}-data")
    if body.get(field):
        return _file(body[field], f"{where}.{field}")
    return None


def split_server(server: str, where: str) -> tuple[bool, str, int]:
    """(https?, host, port) of a server URL; an error naming the field for anything else."""
    scheme, sep, rest = server.partition("://")
    if not sep or scheme not in ("https", "http"):
        raise KubeconfigError(f"{where}.server: Invalid value: {server!r}: expected https://HOST[:PORT]")
    hostport = rest.split("/", 1)[0]
    if "/" in rest and rest.split("/", 1)[1].strip("/"):
        raise KubeconfigError(f"{where}.server: Invalid value: {server!r}: a path after the address is not supported")
    if hostport.startswith("["):
        host, _, tail = hostport[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port_text = hostport.partition(":")
    if not host:
        raise KubeconfigError(f"{where}.server: Invalid value: {server!r}: no host")
    try:
        port = int(port_text) if port_text else (443 if scheme == "https" else 80)
    except ValueError:
        raise KubeconfigError(f"{where}.server: Invalid value: {server!r}: bad port") from None
    if not 0 < port < 65536:
        raise KubeconfigError(f"{where}.server: Invalid value: {server!r}: bad port")
    return scheme == "https", host, port


def resolve(merged: Merged, context: str | None = None) -> Credentials:
    """The context (or the current one) with its cluster and user, every field read."""
    files = ", ".join(merged.files) or "no file"
    name = context or merged.current_context
    if not name:
        raise KubeconfigError(f"no context named and no current-context in the kubeconfig ({files}): "
                              "name one with --context")
    ctx = merged.contexts.get(name)
    if ctx is None:
        known = ", ".join(sorted(merged.contexts)) or "none"
        raise KubeconfigError(f'context "{name}" does not exist in the kubeconfig ({files}; contexts: {known})')
    cluster_name, user_name = ctx.get("cluster"), ctx.get("user")
    if not cluster_name:
        raise KubeconfigError(f'context "{name}": cluster was not specified')
    cluster = merged.clusters.get(cluster_name)
    if cluster is None:
        raise KubeconfigError(f'context "{name}": cluster "{cluster_name}" was not found in the kubeconfig ({files})')
    user: dict = {}
    if user_name:
        if user_name not in merged.users:
            raise KubeconfigError(f'context "{name}": user "{user_name}" was not found in the kubeconfig ({files})')
        user = merged.users[user_name]
    cwhere, uwhere = f'clusters["{cluster_name}"]', f'users["{user_name}"]'
    server = cluster.get("server")
    if not isinstance(server, str) or not server:
        raise KubeconfigError(f'{cwhere}.server: Required value: no server found for cluster "{cluster_name}"')
    tls, host, port = split_server(server, cwhere)
    for unsupported in ("exec", "auth-provider"):
        if user.get(unsupported):
            raise KubeconfigError(f"{uwhere}.{unsupported}: not supported by knet (a client certificate or a token is)")
    if user.get("username") or user.get("password"):
        raise KubeconfigError(f"{uwhere}.username: basic authentication is not supported by knet's API "
                              "(a client certificate or a token is)")
    token = user.get("token") or ""
    if not token and user.get("tokenFile"):
        token = _file(user["tokenFile"], f"{uwhere}.tokenFile").decode(errors="replace").strip()
    if not isinstance(token, str):
        raise KubeconfigError(f"{uwhere}.token: expected a string")
    cert = _data_or_file(user, "client-certificate", uwhere)
    key = _data_or_file(user, "client-key", uwhere)
    if cert is not None and key is None:
        raise KubeconfigError(f"{uwhere}: client-key-data or client-key must be specified to use the client certificate")
    if key is not None and cert is None:
        raise KubeconfigError(f"{uwhere}: client-certificate-data or client-certificate must be specified "
                              "with the client key")
    ca = _data_or_file(cluster, "certificate-authority", cwhere)
    namespace = ctx.get("namespace") if isinstance(ctx.get("namespace"), str) else None
    return Credentials(name, server, host, port, tls, ca, bool(cluster.get("insecure-skip-tls-verify")),
                       cluster.get("tls-server-name") or None, cert, key, token, namespace or None)


# -- the client -------------------------------------------------------------------------------


def ssl_context(creds: Credentials):
    """The TLS client side of a context: the cluster's CA (or the system's), the user's
    certificate and key. A key given as data never touches the disk: it is loaded from a
    memory file (ssl reads certificates only from paths)."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    where = f'context "{creds.context}"'
    if creds.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif creds.ca_pem is not None:
        try:
            ctx.load_verify_locations(cadata=creds.ca_pem.decode("ascii", errors="replace"))
        except (ssl.SSLError, ValueError) as e:
            raise KubeconfigError(f"{where}: certificate-authority: not a PEM certificate ({_ssl_why(e)})") from None
    else:
        ctx.load_default_certs()
    if creds.cert_pem is not None and creds.key_pem is not None:
        fds = [_memory_file("knet-client-cert", creds.cert_pem), _memory_file("knet-client-key", creds.key_pem)]
        try:
            ctx.load_cert_chain(f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}")
        except ssl.SSLError as e:
            raise KubeconfigError(f"{where}: client-certificate/client-key: not a certificate and its private "
                                  f"key ({_ssl_why(e)})") from None
        finally:
            for fd in fds:
                os.close(fd)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def _ssl_why(e: Exception) -> str:
    return str(getattr(e, "reason", None) or e).lower().replace("_", " ")


def _memory_file(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def client_from(creds: Credentials) -> Client:
    from knet.api.client import Client

    client = Client(creds.token, host=creds.host, port=creds.port)
    if creds.tls:
        client.tls = ssl_context(creds)
        client.server_hostname = creds.tls_server_name or creds.host
    client.context = creds.context
    client.context_namespace = creds.namespace  # kubectl's default for -n under this context
    return client


def client_for(context: str | None, kubeconfig: str | None = None, env: dict[str, str] | None = None) -> Client:
    """The client for a context of the kubeconfig (--context, else its current-context).
    Made lazily: nothing is dialled until the first request."""
    return client_from(resolve(load(kubeconfig, env), context))


def check_access(client: Client) -> None:
    """One request, so that a wrong server or credential is one clear error before any work:
    unreachable, TLS refused, 401 (the credential is not the cluster's) or 403 (it may not)."""
    from knet.api.client import ProtocolError, TlsFailed, Unreachable
    from knet.api.errors import ApiError

    where = f'context "{client.context}" ({client.host}:{client.port})'
    try:
        client.request("GET", f"/api/v1/namespaces/{getattr(client, 'context_namespace', None) or 'default'}")
    except (Unreachable, TlsFailed) as e:
        raise CliError(str(e)) from None
    except ProtocolError as e:
        raise CliError(f"{where}: {e} (is it an API server over {'TLS' if client.tls else 'plain HTTP'}?)") from None
    except ApiError as e:
        if e.code == 401:
            raise CliError(f"{where}: the API server refused the credentials (401 Unauthorized): the context's user "
                           "holds no certificate or token of this cluster") from None
        if e.code == 403:
            raise CliError(f"{where}: the context's user may not read the cluster (403 Forbidden: {e.message})") from None
        if e.code != 404:
            raise
