"""knet-<cluster> in the user's kubeconfig (knet.api.kubeconfig): merged beside
the user's own entries, replaced in place on a second up, taken out exactly
on down; the file written atomically with its mode kept."""

from __future__ import annotations

import base64
import os

import yaml

from knet.api import kubeconfig as kc

USERS_OWN = {
    "apiVersion": "v1", "kind": "Config", "preferences": {"colors": True},
    "clusters": [{"name": "prod", "cluster": {"server": "https://prod:6443"}}],
    "users": [{"name": "me", "user": {"token": "t"}}],
    "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "me", "namespace": "web"}}],
    "current-context": "prod",
    "extensions": [{"name": "x", "extension": {"a": 1}}],
}


def ours(cluster: str = "lab", port: int = 40001) -> dict:
    return kc.config_for(cluster, f"https://127.0.0.1:{port}", b"CA", b"CERT", b"KEY")


def test_config_for_embeds_credentials_as_kind_does():
    doc = ours()
    assert doc["current-context"] == "knet-lab"
    assert doc["clusters"] == [{"name": "knet-lab", "cluster": {
        "server": "https://127.0.0.1:40001", "certificate-authority-data": base64.b64encode(b"CA").decode()}}]
    assert doc["users"][0]["user"] == {"client-certificate-data": base64.b64encode(b"CERT").decode(),
                                       "client-key-data": base64.b64encode(b"KEY").decode()}
    assert doc["contexts"] == [{"name": "knet-lab", "context": {"cluster": "knet-lab", "user": "knet-lab"}}]


def test_merge_keeps_the_users_entries_and_makes_ours_current():
    merged = kc.merge(USERS_OWN, ours())
    assert merged["current-context"] == "knet-lab"
    assert [c["name"] for c in merged["clusters"]] == ["prod", "knet-lab"]
    assert [u["name"] for u in merged["users"]] == ["me", "knet-lab"]
    assert merged["preferences"] == {"colors": True} and merged["extensions"] == USERS_OWN["extensions"]
    assert USERS_OWN["current-context"] == "prod" and len(USERS_OWN["clusters"]) == 1  # input untouched


def test_merge_again_replaces_in_place():
    once = kc.merge(kc.merge(USERS_OWN, ours(port=1)), ours("other", 2))
    again = kc.merge(once, ours(port=3))
    assert [c["name"] for c in again["clusters"]] == ["prod", "knet-lab", "knet-other"]
    assert again["clusters"][1]["cluster"]["server"] == "https://127.0.0.1:3"
    assert again["current-context"] == "knet-lab"


def test_merge_into_nothing():
    doc = kc.merge({}, ours())
    assert doc["apiVersion"] == "v1" and doc["kind"] == "Config"
    assert kc.merge(None, ours()) == doc


def test_remove_takes_out_exactly_ours():
    merged = kc.merge(kc.merge(USERS_OWN, ours("other", 2)), ours())
    out = kc.remove(merged, "knet-lab")
    assert [c["name"] for c in out["clusters"]] == ["prod", "knet-other"]
    assert [c["name"] for c in out["contexts"]] == ["prod", "knet-other"]
    assert out["current-context"] == ""  # it was ours: unset, as kind leaves it
    # Not current: the current context stays.
    back = kc.merge(USERS_OWN, ours(), make_current=False)
    assert kc.remove(back, "knet-lab") == USERS_OWN
    assert kc.remove(USERS_OWN, "knet-lab") == USERS_OWN


def test_default_path():
    assert kc.default_path({"KUBECONFIG": "/a/one:/b/two"}) == "/a/one"
    assert kc.default_path({"KUBECONFIG": ":/b/two"}) == "/b/two"
    assert kc.default_path({}) == os.path.join(os.path.expanduser("~"), ".kube", "config")


def test_update_writes_the_file_atomically_keeping_its_mode(tmp_path):
    path = tmp_path / "kube" / "config"
    kc.update(str(path), lambda d: kc.merge(d, ours()))  # the directory is made
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.stat(path.parent).st_mode & 0o777 == 0o700
    path.write_text(yaml.safe_dump(USERS_OWN))
    os.chmod(path, 0o640)
    kc.update(str(path), lambda d: kc.merge(d, ours()))
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert kc.read(str(path)) == kc.merge(USERS_OWN, ours())
    kc.update(str(path), lambda d: kc.remove(d, "knet-lab"))
    assert kc.read(str(path)) == {**USERS_OWN, "current-context": ""}  # ours was current
    assert sorted(os.listdir(path.parent)) == ["config"]  # no temporary file left


def test_read(tmp_path):
    assert kc.read(str(tmp_path / "missing")) == {}
    (tmp_path / "empty").write_text("")
    assert kc.read(str(tmp_path / "empty")) == {}
    (tmp_path / "list").write_text("- a\n")
    try:
        kc.read(str(tmp_path / "list"))
    except ValueError as e:
        assert "not a kubeconfig" in str(e)
    else:
        raise AssertionError("a list at the top was read as a kubeconfig")
