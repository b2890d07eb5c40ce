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


def test_split_server():
    assert split_server("https://10.0.0.1:6443", "c") == (True, "10.0.0.1", 6443)
    assert split_server("https://api.example", "c") == (True, "api.example", 443)
    assert split_server("http://h", "c") == (False, "h", 80)
    assert split_server("https://[fd00::1]:6443/", "c") == (True, "fd00::1", 6443)
    assert split_server("https://[fd00::1]", "c") == (True, "fd00::1", 443)
    for bad in ("https://h:0", "https://h:x", "https://h/prefix", "ftp://h", "https://"):
        with pytest.raises(KubeconfigError, match=r"c\.server: Invalid value"):
            split_server(bad, "c")
