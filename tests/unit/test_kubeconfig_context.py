"""knet.cli.kubecontext: which kubeconfig files, how they merge, and one context resolved,
as client-go's clientcmd does it (the files are real, in tmp_path; nothing is dialled)."""

from __future__ import annotations

import base64
import json
import os

import pytest

from knet.cli.kubecontext import KubeconfigError, load, paths, resolve, split_server


def write(path, doc) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return str(path)


def config(name: str, server: str = "https://10.0.0.1:6443", user: dict | None = None, cluster: dict | None = None,
           current: str | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": name, "cluster": {"server": server, **(cluster or {})}}],
            "users": [{"name": name, "user": user if user is not None else {"token": f"token-of-{name}"}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            **({"current-context": current} if current is not None else {})}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- which files ---------------------------------------------------------------------------------


def test_paths_follow_kubectl(tmp_path):
    assert paths("/x/explicit", {"KUBECONFIG": "/a:/b"}) == (["/x/explicit"], True)
    assert paths(None, {"KUBECONFIG": "/a::/b:/a"}) == (["/a", "/b"], False)  # empty parts and repeats dropped
    assert paths(None, {"HOME": str(tmp_path)}) == ([str(tmp_path / ".kube" / "config")], False)
    assert paths(None, {"KUBECONFIG": "", "HOME": "/home/u"}) == (["/home/u/.kube/config"], False)


def test_explicit_file_must_exist_but_listed_ones_may_be_missing(tmp_path):
    with pytest.raises(KubeconfigError, match=r"--kubeconfig: .*/nope: no such file"):
        load(str(tmp_path / "nope"))
    a = write(tmp_path / "a", config("one", current="one"))
    merged = load(None, {"KUBECONFIG": f"{tmp_path / 'missing'}{os.pathsep}{a}"})
    assert list(merged.contexts) == ["one"] and merged.current_context == "one"


# -- merging ---------------------------------------------------------------------------------------


def test_first_file_keeps_a_name_and_sets_current_context(tmp_path):
    a = write(tmp_path / "a", config("shared", server="https://first:6443", current="shared"))
    b_doc = config("shared", server="https://second:6443", current="other")
    b_doc["clusters"].append({"name": "other", "cluster": {"server": "https://other:6443"}})
    b_doc["users"].append({"name": "other", "user": {"token": "t-other"}})
    b_doc["contexts"].append({"name": "other", "context": {"cluster": "other", "user": "other"}})
    b = write(tmp_path / "b", b_doc)
    merged = load(None, {"KUBECONFIG": f"{a}{os.pathsep}{b}"})
    assert merged.current_context == "shared"                      # a's, the first to set one
    assert merged.clusters["shared"]["server"] == "https://first:6443"
    assert resolve(merged, "other").host == "other"                 # b's own entries are there too
    creds = resolve(merged)
    assert (creds.context, creds.host, creds.port, creds.token) == ("shared", "first", 6443, "token-of-shared")

    # The other order: b's current-context and b's "shared" win.
    merged = load(None, {"KUBECONFIG": f"{b}{os.pathsep}{a}"})
    assert merged.current_context == "other"
    assert merged.clusters["shared"]["server"] == "https://second:6443"


def test_a_file_without_current_context_leaves_it_to_the_next(tmp_path):
    a = write(tmp_path / "a", config("one"))
    b = write(tmp_path / "b", config("two", current="two"))
    assert load(None, {"KUBECONFIG": f"{a}{os.pathsep}{b}"}).current_context == "two"


def test_yaml_and_json_files(tmp_path):
    (tmp_path / "y").write_text("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://h'}\n"
                                "users:\n- name: u\n  user: {token: abc}\ncontexts:\n- name: x\n  context: "
                                "{cluster: c, user: u, namespace: team-a}\ncurrent-context: x\n")
    creds = resolve(load(str(tmp_path / "y")))
    assert (creds.host, creds.port, creds.tls, creds.token, creds.namespace) == ("h", 443, True, "abc", "team-a")
    (tmp_path / "empty").write_text("")
    with pytest.raises(KubeconfigError, match=r"no context named and no current-context"):
        resolve(load(str(tmp_path / "empty")))
    (tmp_path / "bad").write_text("clusters: [unclosed")
    with pytest.raises(KubeconfigError, match=r"kubeconfig .*/bad: not valid YAML or JSON"):
        load(str(tmp_path / "bad"))
    (tmp_path / "list").write_text("[1, 2]")
    with pytest.raises(KubeconfigError, match=r"expected a mapping \(kind: Config\), got list"):
        load(str(tmp_path / "list"))


# -- paths and data ---------------------------------------------------------------------------------


def test_relative_paths_are_relative_to_their_own_file(tmp_path):
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.crt").write_bytes(b"CA FROM FILE")
    (tmp_path / "certs" / "me.crt").write_bytes(b"CERT FROM FILE")
    (tmp_path / "certs" / "me.key").write_bytes(b"KEY FROM FILE")
    (tmp_path / "certs" / "token").write_text("tok-from-file\n")
    doc = config("ctx", current="ctx", cluster={"certificate-authority": "certs/ca.crt"},
                 user={"client-certificate": "certs/me.crt", "client-key": "certs/me.key", "tokenFile": "certs/token"})
    path = write(tmp_path / "conf" / ".." / "kubeconfig", doc)  # its folder is tmp_path
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    cwd = os.getcwd()
    os.chdir(elsewhere)  # not where the paths are relative to
    try:
        creds = resolve(load(path))
    finally:
        os.chdir(cwd)
    assert (creds.ca_pem, creds.cert_pem, creds.key_pem, creds.token) == \
        (b"CA FROM FILE", b"CERT FROM FILE", b"KEY FROM FILE", "tok-from-file")


def test_data_overrides_the_file(tmp_path):
    doc = config("ctx", current="ctx",
                 cluster={"certificate-authority": "/nonexistent/ca", "certificate-authority-data": b64(b"CA DATA")},
                 user={"client-certificate": "/nonexistent/crt", "client-certificate-data": b64(b"CERT DATA"),
                       "client-key": "/nonexistent/key", "client-key-data": b64(b"KEY DATA")})
    creds = resolve(load(write(tmp_path / "k", doc)))
    assert (creds.ca_pem, creds.cert_pem, creds.key_pem, creds.token) == (b"CA DATA", b"CERT DATA", b"KEY DATA", "")


def test_errors_name_the_entry_and_field(tmp_path):
    def fails(doc: dict, context: str | None, pattern: str) -> None:
        with pytest.raises(KubeconfigError, match=pattern):
            resolve(load(write(tmp_path / "k", doc)), context)

    fails(config("a", current="a"), "b", r'context "b" does not exist in the kubeconfig \(.*/k; contexts: a\)')
    doc = config("a")
    doc["contexts"][0]["context"]["user"] = "ghost"
    fails(doc, "a", r'context "a": user "ghost" was not found')
    doc = config("a")
    doc["contexts"][0]["context"]["cluster"] = "ghost"
    fails(doc, "a", r'context "a": cluster "ghost" was not found')
    fails(config("a", user={"client-certificate-data": b64(b"x")}), "a",
          r'users\["a"\]: client-key-data or client-key must be specified')
    fails(config("a", user={"client-key-data": "not base64!"}), "a",
          r'users\["a"\]\.client-key-data: illegal base64 data')
    fails(config("a", user={"client-certificate": "/nonexistent/c.crt", "client-key-data": b64(b"k")}), "a",
          r'users\["a"\]\.client-certificate: unable to read /nonexistent/c.crt: no such file')
    fails(config("a", user={"exec": {"command": "aws"}}), "a", r'users\["a"\]\.exec: not supported by knet')
    fails(config("a", user={"username": "u", "password": "p"}), "a", r"basic authentication is not supported")
    fails(config("a", server=""), "a", r'clusters\["a"\]\.server: Required value')
    fails(config("a", server="10.0.0.1:6443"), "a", r'clusters\["a"\]\.server: Invalid value: .*expected https://')


def test_the_contexts_namespace_is_the_default_for_n(tmp_path):
    import argparse

    from knet.cli.common import connect

    doc = config("lab", current="lab")
    doc["contexts"][0]["context"]["namespace"] = "shop"
    path = write(tmp_path / "config", doc)
    args = argparse.Namespace(context=None, kubeconfig_file=path, namespace=None)
    assert connect(args).context_namespace == "shop" and args.namespace == "shop"
    args = argparse.Namespace(context=None, kubeconfig_file=path, namespace="default")  # -n given: it wins
    connect(args)
    assert args.namespace == "default"
    doc["contexts"][0]["context"].pop("namespace")
    args = argparse.Namespace(context=None, kubeconfig_file=write(tmp_path / "plain", doc), namespace=None)
    connect(args)
    assert args.namespace is None  # each command's own default ("default") then


def test_split_server():
    assert split_server("https://10.0.0.1:6443", "c") == (True, "10.0.0.1", 6443)
    assert split_server("https://api.example", "c") == (True, "api.example", 443)
    assert split_server("http://h", "c") == (False, "h", 80)
    assert split_server("https://[fd00::1]:6443/", "c") == (True, "fd00::1", 6443)
    assert split_server("https://[fd00::1]", "c") == (True, "fd00::1", 443)
    for bad in ("https://h:0", "https://h:x", "https://h/prefix", "ftp://h", "https://"):
        with pytest.raises(KubeconfigError, match=r"c\.server: Invalid value"):
            split_server(bad, "c")


# -- the client: a real TLS handshake on 127.0.0.1 ---------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """An HTTPS server on 127.0.0.1 with a certificate of its own CA, asking for a client
    certificate; it answers every GET with the client certificate's CN."""
    import socket
    import ssl
    import threading

    from knet.api import tls

    ca_key, ca_crt = tls.make_ca()
    srv_key, srv_crt = tls.make_cert(ca_key, ca_crt, "kube-apiserver", ips=["127.0.0.1"], server=True)
    cli_key, cli_crt = tls.make_cert(ca_key, ca_crt, "tester", ("testers",))
    d = str(tmp_path_factory.mktemp("pki"))
    for name, data in (("srv.crt", srv_crt), ("srv.key", srv_key), ("ca.crt", ca_crt)):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(d, "srv.crt"), os.path.join(d, "srv.key"))
    ctx.load_verify_locations(os.path.join(d, "ca.crt"))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            try:
                raw.settimeout(10)  # the handshake too: a client that stops must not hold this thread
                with ctx.wrap_socket(raw, server_side=True) as conn:
                    head = _request_head(conn)
                    if head is None:
                        continue
                    peer = tls.identity(conn.getpeercert())
                    body = json.dumps({"kind": "Namespace", "user": peer[0] if peer else None,
                                       "bearer": b"authorization: bearer" in head.lower()}).encode()
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            except (OSError, ssl.SSLError):
                raw.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield {"port": listener.getsockname()[1], "ca": ca_crt, "crt": cli_crt, "key": cli_key}
    stop.set()
    thread.join(timeout=30)
    listener.close()


def _request_head(conn) -> bytes | None:
    """The request's head, which may come in pieces; None when the client left first (a
    recv of b"" repeats forever: waiting for the head on it would hang the fixture)."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        head += chunk
    return head


def test_a_context_speaks_tls_with_its_ca_and_client_certificate(tls_server, tmp_path):
    from knet.cli.kubecontext import client_for

    doc = config("c", server=f"https://127.0.0.1:{tls_server['port']}", current="c",
                 cluster={"certificate-authority-data": b64(tls_server["ca"])},
                 user={"client-certificate-data": b64(tls_server["crt"]), "client-key-data": b64(tls_server["key"])})
    client = client_for(None, write(tmp_path / "k", doc))
    assert client.request("GET", "/api/v1/namespaces/default") == {"kind": "Namespace", "user": "tester",
                                                                   "bearer": False}  # no empty "Bearer " sent


def test_a_wrong_ca_or_key_is_named(tls_server, tmp_path):
    from knet.api import tls
    from knet.api.client import TlsFailed
    from knet.cli.kubecontext import client_for

    _, other_ca = tls.make_ca("another")
    doc = config("c", server=f"https://127.0.0.1:{tls_server['port']}", current="c",
                 cluster={"certificate-authority-data": b64(other_ca)}, user={"token": "t"})
    with pytest.raises(TlsFailed, match=r'TLS with the API server of context "c" at 127.0.0.1:\d+ failed \(.+\): '
                                        r"check the certificate-authority"):
        client_for(None, write(tmp_path / "k", doc)).request("GET", "/api/v1/namespaces/default")
    doc = config("c", server=f"https://127.0.0.1:{tls_server['port']}", current="c",
                 cluster={"certificate-authority-data": b64(tls_server["ca"])},
                 user={"client-certificate-data": b64(tls_server["crt"]), "client-key-data": b64(b"not a key")})
    with pytest.raises(KubeconfigError, match=r'context "c": client-certificate/client-key: not a certificate and '
                                              r"its private key"):
        client_for(None, write(tmp_path / "k2", doc))
