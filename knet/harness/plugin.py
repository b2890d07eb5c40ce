"""knet's pytest plugin: network tests against a real knet cluster, as
Mininet's Python API lets one write them. pytest loads it by itself once knet
is installed (the `pytest11` entry point `knet`); `-p no:knet` leaves it out.

Fixtures (nothing happens until a test asks for one):

- ``knet_cluster`` (module scope): a cluster of its own for the test module,
  with a unique name (modules and runs go side by side), from the cluster file
  named by ``@pytest.mark.knet_cluster(file=...)`` (or ``doc={...}``), else
  ``--knet-cluster-file`` / the ini option ``knet_cluster_file``, else the
  default three+one; taken down after the module, also when a test fails.
  It is a knet.harness.cluster.Cluster (``kubectl()``, ``knet()``, ``get()``).
- ``apply(manifests, wait=True)``: YAML text, dicts or paths; returns once
  every node agent has acted on them (`knet apply --wait`).
- ``pod(name)`` -> a Pod handle (ip, node, exec()) once it runs with an IP;
  ``node(name)`` -> a node's or `ext`'s handle.

apply, pod and node are module-scoped like the cluster, so a module's own
fixtures can use them too.

The helpers (probe, reachability, send, sniff, dns, trace) are plain
functions in knet.harness. When a test that sniffed fails, what each capture
saw is written to a pcap file named in the report (``--knet-pcap-dir``).

This module is imported by every pytest run on a machine with knet, knet's
own unprivileged suite included: it imports pytest and the standard library
only, and touches nothing until a fixture is used.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

DEFAULT_PCAP_DIR = "knet-pcap"  # under pytest's base temporary directory


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("knet", "knet network tests (knet.harness)")
    group.addoption("--knet-cluster-file", metavar="FILE", default=None,
                    help="the cluster file (kind-style, as `knet up -f`) for the knet_cluster fixture; "
                         "default: the ini option knet_cluster_file, else three+one")
    group.addoption("--knet-pcap-dir", metavar="DIR", default=None,
                    help="where a failed test's captures are written as pcap files "
                         "(default: <pytest's base temp>/knet-pcap)")
    parser.addini("knet_cluster_file", "the cluster file for the knet_cluster fixture (relative to the rootdir)",
                  default="")
    parser.addini("knet_pcap_dir", "where a failed test's captures are written as pcap files", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "knet_cluster(file=None, doc=None): the cluster file (a path relative to "
                                       "the test module) or document for the module's knet_cluster")
    config.addinivalue_line("markers", "knet: the test uses a knet cluster (the knet_cluster fixture); needs root")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "knet_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker("knet")


# -- fixtures -------------------------------------------------------------------------------


def _refuse(message: str) -> None:
    pytest.fail(message, pytrace=False)


def _cluster_doc(request: pytest.FixtureRequest) -> dict | None:
    """The cluster document the module asks for: its marker, then the option, then the ini."""
    marker = request.node.get_closest_marker("knet_cluster")
    path: Path | None = None
    if marker is not None:
        unknown = set(marker.kwargs) - {"file", "doc"}
        if unknown or marker.args:
            _refuse(f"knet_cluster marker: takes file= or doc= only, got "
                    f"{', '.join(sorted(unknown)) or repr(marker.args)}")
        if marker.kwargs.get("doc") is not None:
            doc = marker.kwargs["doc"]
            if not isinstance(doc, dict):
                _refuse(f"knet_cluster marker: doc must be a mapping, got {type(doc).__name__}")
            return dict(doc)
        if marker.kwargs.get("file"):
            path = Path(request.node.path).parent / marker.kwargs["file"]
    config = request.config
    if path is None and config.getoption("knet_cluster_file"):
        path = Path(config.invocation_params.dir) / config.getoption("knet_cluster_file")
    if path is None and config.getini("knet_cluster_file"):
        path = Path(config.rootpath) / config.getini("knet_cluster_file")
    if path is None:
        return None
    from knet.api.manifests import ManifestError, read_yaml

    try:
        doc, problem = read_yaml(str(path)), None
    except (ManifestError, OSError) as e:
        doc, problem = None, f"knet cluster file {path}: {e}"
    if problem:  # out of the except block: one line, without the error it replaces
        _refuse(problem)
    if not isinstance(doc, (dict, type(None))):
        _refuse(f"knet cluster file {path}: expected a mapping (kind: Cluster), got {type(doc).__name__}")
    return dict(doc or {})


@pytest.fixture(scope="module")
def knet_cluster(request: pytest.FixtureRequest) -> Iterator:
    """A knet cluster for this module (see the module docstring)."""
    from knet.config import ConfigError, parse_cluster
    from knet.harness.cluster import Cluster, unique_name

    doc = _cluster_doc(request)
    if doc is not None:
        doc.pop("name", None)  # one name per module, whatever the file says, so runs can go side by side
    name = unique_name("kh")
    try:
        parse_cluster(doc, name)  # a bad file is its own error, with or without root
        problem = None
    except ConfigError as e:
        problem = f"knet cluster file: {e}"
    if problem:
        _refuse(problem)
    if os.geteuid() != 0:
        _refuse(f"knet_cluster needs root (network namespaces, nftables) and this runs as uid {os.geteuid()}: "
                    "run pytest as root (sudo .venv/bin/python -m pytest ...)")
    cluster = Cluster.up(doc, name=name)
    try:
        yield cluster
    finally:
        cluster.down()


@pytest.fixture(scope="module")
def apply(knet_cluster):
    """apply(manifests, wait=True) -> knet apply's output lines.

    manifests: YAML text, a dict (one object), a list of dicts, or a path
    (str or Path: a file, or a folder's *.yaml/*.yml/*.json in name order),
    or a list of those."""
    from knet.harness.manifests import manifest_text

    def apply(manifests, wait: bool = True) -> list[str]:
        out = knet_cluster.apply(manifest_text(manifests), wait=wait)
        return out.stdout.splitlines()
    return apply


@pytest.fixture(scope="module")
def pod(knet_cluster):
    """pod(name, namespace=None, timeout=30) -> Pod, once it is Running with an
    IP; name is "web" (namespace default) or "shop/web"."""
    from knet.harness.handles import POD_TIMEOUT, get_pod

    def pod(name: str, namespace: str | None = None, timeout: float = POD_TIMEOUT):
        return get_pod(knet_cluster, name, namespace, timeout)
    return pod


@pytest.fixture(scope="module")
def node(knet_cluster):
    """node(name) -> Host: a node ("worker-1") or "ext", the outside host."""
    from knet.harness.handles import get_host

    def node(name: str):
        return get_host(knet_cluster, name)
    return node


# -- a failed test's captures as pcap files ----------------------------------------------------------


def _pcap_dir(config: pytest.Config) -> Path:
    chosen = config.getoption("knet_pcap_dir") or config.getini("knet_pcap_dir")
    if chosen:
        return Path(config.invocation_params.dir) / chosen
    factory = getattr(config, "_tmp_path_factory", None)  # tmp_path's; absent with -p no:tmpdir
    if factory is not None:
        return Path(factory.getbasetemp()) / DEFAULT_PCAP_DIR
    import tempfile

    return Path(tempfile.gettempdir()) / f"{DEFAULT_PCAP_DIR}-{os.getuid()}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:120] or "test"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator:
    report = yield
    net = sys.modules.get("knet.harness.net")  # no capture can exist before the helpers were imported
    if net is None:
        return report
    sniffers = net.take_sniffers()
    if not report.failed or not sniffers:
        return report
    lines = []
    folder = _pcap_dir(item.config)
    folder.mkdir(parents=True, exist_ok=True)
    for n, s in enumerate(sniffers):
        s.stop()
        path = folder / f"{_slug(item.nodeid)}-{report.when}-{n}-{_slug(str(s.on))}.pcap"
        s.write_pcap(str(path))
        lines.append(f"{s!r}: {path}")
    report.sections.append(("knet captures (pcap)", "\n".join(lines)))
    return report
