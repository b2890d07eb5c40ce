"""The cluster's entry in the user's kubeconfig, as kind keeps `kind-<cluster>`.

`knet up` merges a cluster, a user and a context named `knet-<cluster>`
into the first file of $KUBECONFIG (or ~/.kube/config) and makes it
current; `knet down` takes exactly those three out again (and the
current-context, when it was ours). Everything else in the file (the
user's other clusters, preferences, extensions) is kept as it was. The
file is written whole to a temporary file and renamed over the old one,
under a lock on its directory, so a reader never sees half a file and two
`knet up`s at once lose neither entry.

merge/remove are pure functions over the decoded document; the file
handling is apart from them.
"""

from __future__ import annotations

import base64
import copy
import os

SECTIONS = (("clusters", "cluster"), ("users", "user"), ("contexts", "context"))


def context_name(cluster: str) -> str:
    return f"knet-{cluster}"


def config_for(cluster: str, server: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> dict:
    """A whole kubeconfig for one cluster (what `knet kubeconfig` prints),
    credentials embedded as kind embeds them (the admin's client certificate)."""
    name = context_name(cluster)

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)}}],
        "users": [{"name": name, "user": {"client-certificate-data": b64(cert_pem),
                                          "client-key-data": b64(key_pem)}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }


def merge(existing: dict | None, ours: dict, make_current: bool = True) -> dict:
    """`existing` with every named entry of `ours` added or replaced in place
    (an entry of the same name is ours from an earlier `up`), and ours made
    current. `existing` is not changed."""
    out = copy.deepcopy(existing) if existing else {}
    out.setdefault("apiVersion", "v1")
    out.setdefault("kind", "Config")
    out.setdefault("preferences", {})
    for section, _ in SECTIONS:
        entries = [e for e in (out.get(section) or []) if isinstance(e, dict)]
        for entry in ours.get(section) or []:
            for i, e in enumerate(entries):
                if e.get("name") == entry["name"]:
                    entries[i] = copy.deepcopy(entry)
                    break
            else:
                entries.append(copy.deepcopy(entry))
        out[section] = entries
    if make_current and ours.get("current-context"):
        out["current-context"] = ours["current-context"]
    return out


def remove(existing: dict, name: str) -> dict:
    """`existing` without the cluster, user and context called `name`; the
    current-context is unset when it was that one (as kind leaves it)."""
    out = copy.deepcopy(existing)
    for section, _ in SECTIONS:
        if section in out and isinstance(out[section], list):
            out[section] = [e for e in out[section] if not (isinstance(e, dict) and e.get("name") == name)]
    if out.get("current-context") == name:
        out["current-context"] = ""
    return out


def default_path(env: dict[str, str] | None = None) -> str:
    """Where kubectl writes: the first file of $KUBECONFIG, else ~/.kube/config."""
    env = os.environ if env is None else env
    for part in (env.get("KUBECONFIG") or "").split(os.pathsep):
        if part:
            return part
    return os.path.join(os.path.expanduser("~"), ".kube", "config")


# -- the file ------------------------------------------------------------------------------


def read(path: str) -> dict:
    """The kubeconfig at path ({} when there is none or it is empty)."""
    import yaml

    try:
        with open(path) as f:
            doc = yaml.safe_load(f)
    except FileNotFoundError:
        return {}
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ValueError(f"{path} is not a kubeconfig (a {type(doc).__name__} at the top, not a mapping)")
    return doc


def _locked(path: str):
    import fcntl

    d = os.path.dirname(os.path.abspath(path))
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def write(path: str, doc: dict) -> None:
    """Atomically: a temporary file beside it, renamed over it; the old file's
    mode is kept, a new one is 0600 (it holds a private key)."""
    import yaml

    try:
        mode = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600
    tmp = f"{path}.knet-{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(doc, f, default_flow_style=False, sort_keys=False)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def update(path: str, fn) -> dict:
    """Read, change with fn, and write back the kubeconfig at path, under a
    lock on its directory (made 0700 when it does not exist yet, as ~/.kube)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    fd = _locked(path)
    try:
        doc = fn(read(path))
        write(path, doc)
        return doc
    finally:
        os.close(fd)
