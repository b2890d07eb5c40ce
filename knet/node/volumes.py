"""A pod's volumes, made ready on the node before its containers start (kubelet's volume manager).

Each volume's files live under the pod's directory (`<pod>/volumes/<name>`),
so the pod's removal removes them, and are bound where volumeMounts say by
knet.node.mounts. emptyDir is a directory (a tmpfs for medium: Memory, sized
by sizeLimit); hostPath is the host's path after kubelet's type check;
configMap, secret, downwardAPI and projected volumes are written as kubelet's
AtomicWriter writes them (files behind a `..data` symlink that is swapped in
one rename), with items, defaultMode and optional. A projected
serviceAccountToken comes from the API's TokenRequest, bound to the pod: a
token the API will not issue is a FailedMount, as kubelet reports it, never a
made-up one. Errors are kubelet's event messages: `MountVolume.SetUp failed
for volume "x" : configmap "y" not found`.
"""

from __future__ import annotations

import base64
import os
import stat
import time
from collections.abc import Awaitable, Callable

from knet.node import mounts
from knet.node.podspec import field_ref

DEFAULT_MODE = 0o644

Fetch = Callable[[str, str, str], Awaitable[dict | None]]  # (kind, namespace, name) -> object or None if absent
TokenRequest = Callable[[str, str, dict], Awaitable[dict]]  # (namespace, serviceaccount, TokenRequest) -> status


class VolumeError(Exception):
    """A volume that cannot be set up now (the pod waits, the agent retries)."""

    def __init__(self, volume: str, why: str):
        super().__init__(f'MountVolume.SetUp failed for volume "{volume}" : {why}')
        self.volume = volume


def check_host_path(path: str, kind: str) -> None:
    """kubelet's hostPath type check (checkTypeInternal), its messages; the
    OrCreate types make what is missing (a directory 0755, an empty file 0644)."""
    def is_(test) -> bool:
        try:
            return test(os.stat(path).st_mode)
        except OSError:
            return False
    if kind in ("", None):
        return
    if kind == "DirectoryOrCreate" and not os.path.lexists(path):
        os.makedirs(path, 0o755, exist_ok=True)
        return
    if kind == "FileOrCreate" and not os.path.lexists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
        return
    checks = {"DirectoryOrCreate": (stat.S_ISDIR, "a directory"), "Directory": (stat.S_ISDIR, "a directory"),
              "FileOrCreate": (stat.S_ISREG, "a file"), "File": (stat.S_ISREG, "a file"),
              "Socket": (stat.S_ISSOCK, "a socket file"), "CharDevice": (stat.S_ISCHR, "a character device"),
              "BlockDevice": (stat.S_ISBLK, "a block device")}
    if kind not in checks:
        raise ValueError(f"{kind} is an invalid volume type")
    test, what = checks[kind]
    if not is_(test):
        raise ValueError(f"hostPath type check failed: {path} is not {what}")


def write_atomic(directory: str, files: dict[str, tuple[bytes, int]], group: int | None = None) -> None:
    """kubelet's AtomicWriter: the files in a timestamped directory, `..data`
    pointing at it (swapped by one rename, so a reader sees all old or all new),
    and each top-level name a symlink through `..data`."""
    os.makedirs(directory, exist_ok=True)
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()) + str(time.monotonic_ns() % 10**9)
    target = os.path.join(directory, stamp)
    os.mkdir(target, 0o755)
    for rel, (data, mode) in files.items():
        path = os.path.join(target, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)
        if group is not None:
            os.chown(path, -1, group)
    tmp = os.path.join(directory, "..data_tmp")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(stamp, tmp)
    old = os.readlink(os.path.join(directory, "..data")) if os.path.islink(os.path.join(directory, "..data")) else None
    os.replace(tmp, os.path.join(directory, "..data"))
    for top in {rel.split("/")[0] for rel in files}:
        link = os.path.join(directory, top)
        if not os.path.lexists(link):
            os.symlink(os.path.join("..data", top), link)
    if old and old != stamp:
        import shutil

        shutil.rmtree(os.path.join(directory, old), ignore_errors=True)


def _items(volume: str, kind: str, name: str, data: dict[str, bytes], items: list | None, mode: int,
           optional: bool) -> dict[str, tuple[bytes, int]]:
    """A configMap's or secret's keys as files: all keys, or the items named
    (a missing key is an error unless optional)."""
    if not items:
        return {k: (v, mode) for k, v in data.items()}
    out = {}
    for it in items:
        key = it.get("key")
        if key not in data:
            if optional:
                continue
            raise VolumeError(volume, f'configmap references non-existent config key: {key}' if kind == "configmap"
                              else f'references non-existent secret key: {key}')
        out[it.get("path") or key] = (data[key], int(it.get("mode", mode)))
    return out


async def _source_files(volume: str, src: dict, pod: dict, fetch: Fetch, token: TokenRequest,
                        default_mode: int, node_ip: str) -> dict[str, tuple[bytes, int]]:
    ns = pod["metadata"]["namespace"]
    if "configMap" in src or "secret" in src:
        is_cm = "configMap" in src
        ref = src["configMap"] if is_cm else src["secret"]
        name = ref.get("name" if is_cm else "secretName", ref.get("name", ""))
        optional = bool(ref.get("optional"))
        obj = await fetch("ConfigMap" if is_cm else "Secret", ns, name)
        kind = "configmap" if is_cm else "secret"
        if obj is None:
            if optional:
                return {}
            raise VolumeError(volume, f'{kind} "{name}" not found')
        data = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
        if is_cm:
            data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        else:
            data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
            data.update({k: str(v).encode() for k, v in (obj.get("stringData") or {}).items()})
        mode = int(ref.get("defaultMode", default_mode))
        return _items(volume, kind, name, data, ref.get("items"), mode, optional)
    if "downwardAPI" in src:
        out = {}
        for it in src["downwardAPI"].get("items") or []:
            value = ""
            if it.get("fieldRef"):
                path = it["fieldRef"].get("fieldPath", "")
                m = pod["metadata"]
                if path in ("metadata.labels", "metadata.annotations"):
                    pairs = m.get(path.split(".")[1]) or {}
                    value = "\n".join(f'{k}="{v}"' for k, v in sorted(pairs.items()))
                else:
                    value = field_ref(pod, path, node_ip)
            elif it.get("resourceFieldRef"):
                ref = it["resourceFieldRef"]
                c = next((c for c in pod["spec"]["containers"] if c["name"] == ref.get("containerName")),
                         pod["spec"]["containers"][0])
                kind, _, res = ref.get("resource", "").partition(".")
                value = str(((c.get("resources") or {}).get(kind) or {}).get(res, "0"))
            out[it["path"]] = (value.encode(), int(it.get("mode", default_mode)))
        return out
    if "serviceAccountToken" in src:
        sat = src["serviceAccountToken"]
        m = pod["metadata"]
        sa = pod["spec"].get("serviceAccountName") or "default"
        req = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
               "spec": {"audiences": [sat["audience"]] if sat.get("audience") else [],
                        "expirationSeconds": int(sat.get("expirationSeconds", 3607)),
                        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": m["name"], "uid": m["uid"]}}}
        try:
            status = await token(ns, sa, req)
        except Exception as e:
            raise VolumeError(volume, f"failed to fetch token: {getattr(e, 'message', None) or e}") from None
        return {sat.get("path") or "token": (str(status.get("token", "")).encode(), default_mode)}
    return {}


def refresh_period(pod: dict) -> float | None:
    """How often the pod's API-backed volumes are written again: 80% of the
    shortest token lifetime (kubelet renews a token past 80% of its TTL), else
    a minute when configMaps or secrets are mounted (kubelet's sync period), else never."""
    ttls, api = [], False
    for v in pod["spec"].get("volumes") or []:
        sources = (v.get("projected") or {}).get("sources") or []
        api = api or "configMap" in v or "secret" in v or any("configMap" in s or "secret" in s for s in sources)
        ttls += [int(s["serviceAccountToken"].get("expirationSeconds", 3607)) for s in sources
                 if "serviceAccountToken" in s]
    if ttls:
        return max(10.0, 0.8 * min(ttls))
    return 60.0 if api else None


async def prepare(pod: dict, sb_dir: str, fetch: Fetch, token: TokenRequest, node_ip: str = "") -> None:
    """Make every volume of the pod ready; VolumeError names the first that is not."""
    psc = pod["spec"].get("securityContext") or {}
    group = psc.get("fsGroup")
    for v in pod["spec"].get("volumes") or []:
        name = v["name"]
        path = os.path.join(sb_dir, "volumes", name)
        if "hostPath" in v:
            try:
                check_host_path(v["hostPath"]["path"], v["hostPath"].get("type") or "")
            except (ValueError, OSError) as e:
                raise VolumeError(name, str(e)) from None
            continue
        if "emptyDir" in v:
            if not os.path.isdir(path):
                os.makedirs(path)
                if (v["emptyDir"] or {}).get("medium") == "Memory":
                    size = (v["emptyDir"] or {}).get("sizeLimit")
                    from knet.node.cgroups import quantity

                    opts = "mode=777" + (f",size={int(quantity(size))}" if size else "")
                    mounts.mount("tmpfs", path, "tmpfs", mounts.MS_NOSUID | mounts.MS_NODEV, opts)
                os.chmod(path, 0o777)
                if group is not None:  # kubelet's SetVolumeOwnership: the fsGroup's, setgid
                    os.chown(path, -1, int(group))
                    os.chmod(path, 0o2777)
            continue
        sources = []
        default_mode = DEFAULT_MODE
        for kind in ("configMap", "secret", "downwardAPI"):
            if kind in v:
                sources.append({kind: v[kind]})
                default_mode = int(v[kind].get("defaultMode", DEFAULT_MODE))
        if "projected" in v:
            default_mode = int(v["projected"].get("defaultMode", DEFAULT_MODE))
            sources += v["projected"].get("sources") or []
        if not sources:
            os.makedirs(path, exist_ok=True)  # a kind knet does not serve: an empty directory
            continue
        files: dict[str, tuple[bytes, int]] = {}
        for src in sources:
            files.update(await _source_files(name, src, pod, fetch, token, default_mode, node_ip))
        write_atomic(path, files, int(group) if group is not None else None)
