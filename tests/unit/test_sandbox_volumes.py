"""Volumes as kubelet prepares them: the hostPath type check, AtomicWriter's layout, configMap/secret/
downwardAPI/projected files, and FailedMount's words."""

from __future__ import annotations

import os
import socket

import pytest
import trio

from knet.node import volumes


def test_host_path_type_check(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    volumes.check_host_path(str(tmp_path), "Directory")
    volumes.check_host_path(str(f), "File")
    volumes.check_host_path(str(tmp_path / "nothing"), "")  # no type: no check
    with pytest.raises(ValueError, match=f"hostPath type check failed: {f} is not a directory"):
        volumes.check_host_path(str(f), "Directory")
    with pytest.raises(ValueError, match=f"hostPath type check failed: {tmp_path} is not a file"):
        volumes.check_host_path(str(tmp_path), "FileOrCreate")
    with pytest.raises(ValueError, match="is not a socket file"):
        volumes.check_host_path(str(f), "Socket")
    with pytest.raises(ValueError, match="Sideways is an invalid volume type"):
        volumes.check_host_path(str(f), "Sideways")


def test_or_create_types_make_what_is_missing(tmp_path):
    volumes.check_host_path(str(tmp_path / "d" / "e"), "DirectoryOrCreate")
    assert (tmp_path / "d" / "e").is_dir()
    volumes.check_host_path(str(tmp_path / "new"), "FileOrCreate")
    assert (tmp_path / "new").is_file()
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(tmp_path / "sock"))
    volumes.check_host_path(str(tmp_path / "sock"), "Socket")
    s.close()


def test_atomic_writer_layout_and_update(tmp_path):
    d = str(tmp_path / "vol")
    volumes.write_atomic(d, {"a": (b"1", 0o644), "sub/b": (b"2", 0o400)})
    assert os.readlink(os.path.join(d, "a")) == "..data/a" and open(os.path.join(d, "a")).read() == "1"
    assert open(os.path.join(d, "sub", "b")).read() == "2"
    assert oct(os.stat(os.path.join(d, "sub", "b")).st_mode & 0o777) == "0o400"
    first = os.readlink(os.path.join(d, "..data"))
    volumes.write_atomic(d, {"a": (b"3", 0o644)})
    assert open(os.path.join(d, "a")).read() == "3" and not os.path.exists(os.path.join(d, first))


POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "x"}},
       "spec": {"containers": [{"name": "c", "resources": {"limits": {"memory": "64Mi"}}}],
                "serviceAccountName": "robot"}}


def run_prepare(tmp_path, volume: dict, objects: dict, token=None):
    pod = {**POD, "spec": {**POD["spec"], "volumes": [volume]}}

    async def fetch(kind, ns, name):
        return objects.get((kind, ns, name))

    async def no_token(ns, sa, req):
        raise RuntimeError('the server could not find the requested resource')

    trio.run(volumes.prepare, pod, str(tmp_path), fetch, token or no_token)
    return str(tmp_path / "volumes" / volume["name"])


def test_config_map_items_and_secret_default_mode(tmp_path):
    cm = {"data": {"color": "blue", "size": "L"}}
    d = run_prepare(tmp_path, {"name": "v", "configMap": {"name": "cm", "items": [{"key": "color", "path": "x/c"}]}},
                    {("ConfigMap", "ns", "cm"): cm})
    assert open(os.path.join(d, "x", "c")).read() == "blue" and not os.path.exists(os.path.join(d, "size"))
    d = run_prepare(tmp_path, {"name": "s", "secret": {"secretName": "s", "defaultMode": 0o400}},
                    {("Secret", "ns", "s"): {"data": {"pw": "aHVudGVyMg=="}}})
    assert open(os.path.join(d, "pw")).read() == "hunter2"
    assert os.stat(os.path.join(d, "pw")).st_mode & 0o777 == 0o400


def test_missing_objects_are_failedmount_unless_optional(tmp_path):
    with pytest.raises(volumes.VolumeError, match='MountVolume.SetUp failed for volume "v" : configmap "gone" '
                                                  'not found'):
        run_prepare(tmp_path, {"name": "v", "configMap": {"name": "gone"}}, {})
    with pytest.raises(volumes.VolumeError, match='secret "gone" not found'):
        run_prepare(tmp_path, {"name": "w", "secret": {"secretName": "gone"}}, {})
    d = run_prepare(tmp_path, {"name": "o", "configMap": {"name": "gone", "optional": True}}, {})
    assert os.path.isdir(d)


def test_downward_api_and_projected_token(tmp_path):
    d = run_prepare(tmp_path, {"name": "d", "downwardAPI": {"items": [
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory"}}]}}, {})
    assert [open(os.path.join(d, f)).read() for f in ("name", "labels", "mem")] == ["p", 'app="x"', "64Mi"]
    asked = []

    async def token(ns, sa, req):
        asked.append((ns, sa, req["spec"]["boundObjectRef"]))
        return {"token": "jwt.for.pod"}
    vol = {"name": "kube-api-access-x", "projected": {"sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}}
    d = run_prepare(tmp_path, vol, {}, token)
    assert open(os.path.join(d, "token")).read() == "jwt.for.pod" and open(os.path.join(d, "namespace")).read() == "ns"
    assert asked == [("ns", "robot", {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u1"})]
    with pytest.raises(volumes.VolumeError, match='volume "kube-api-access-y" : failed to fetch token'):
        run_prepare(tmp_path, {**vol, "name": "kube-api-access-y"}, {})


def test_refresh_period():
    def pod(*volumes):
        return {"spec": {"volumes": list(volumes)}}
    token = {"name": "t", "projected": {"sources": [{"serviceAccountToken": {"expirationSeconds": 600}},
                                                    {"configMap": {"name": "kube-root-ca.crt"}}]}}
    assert volumes.refresh_period(pod(token)) == 480.0  # 80% of the token's life, as kubelet renews it
    assert volumes.refresh_period(pod({"name": "c", "configMap": {"name": "x"}})) == 60.0
    assert volumes.refresh_period(pod({"name": "e", "emptyDir": {}})) is None
