"""Tests are selected by what they need, not by the folder they are in.

Markers (registered in pyproject.toml):

- ``root``: needs root (network namespaces, nftables, mounts, /run/knet).
- ``cluster``: brings up a knet cluster (knet.harness.cluster.Cluster); implies ``root``.

Every test under tests/integration builds namespaces, so it gets ``root`` here; a test whose
module uses ``Cluster`` (whatever its folder) gets ``cluster`` too. That is decided by module,
not by fixture, because several modules bring clusters up inside the test body. A unit test that
needs root carries the marker itself. So ``pytest -m "not root"`` runs every pure test as an
ordinary user, and ``-m "not cluster"`` leaves out the slow ones.

A root test run without root fails at once with one line saying so, before its fixtures run,
rather than as a permission error deep in a fixture; the other tests still run.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

INTEGRATION = Path(__file__).parent / "integration"
VM = Path(__file__).parent / "vm"

# `knet up` merges its context into $KUBECONFIG's first file (or ~/.kube/config): a test that brings a
# cluster up through the CLI must never write to the machine's own. Every test process gets a kubeconfig
# of its own in a temporary directory (the harness's Cluster uses one per cluster on top of that).
_KUBEDIR = tempfile.mkdtemp(prefix="knet-tests-kube-")
os.environ["KUBECONFIG"] = os.path.join(_KUBEDIR, "config")
os.environ["KUBECACHEDIR"] = os.path.join(_KUBEDIR, "cache")  # kubectl's discovery/OpenAPI cache, not ~/.kube/cache


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_KUBEDIR, ignore_errors=True)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """tests/vm (marker ``vm``) boots QEMU VMs for minutes: collected only when named on the
    command line (``pytest tests/vm``), never by ``pytest`` or ``pytest tests``."""
    if collection_path != VM:
        return None
    here = config.invocation_params.dir
    named = (Path(here, arg.split("::")[0]).resolve() for arg in config.args)
    return None if any(p == VM or p.is_relative_to(VM) for p in named) else True


def _uses_cluster(module: object) -> bool:
    # Looked up, not imported: the conftest must not depend on the harness importing cleanly, and a
    # module that uses Cluster has imported it by the time its tests are collected.
    harness = sys.modules.get("knet.harness.cluster")
    if harness is None or module is None:
        return False
    return any(v is harness.Cluster or v is harness for v in vars(module).values())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = item.getparent(pytest.Module)
        if module is not None and _uses_cluster(module.obj):
            item.add_marker(pytest.mark.cluster)
        if item.path.is_relative_to(INTEGRATION) or item.get_closest_marker("cluster"):
            item.add_marker(pytest.mark.root)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("root") is not None and os.geteuid() != 0:
        need = "a knet cluster" if item.get_closest_marker("cluster") else "root"
        pytest.fail(f"this test needs {need} (network namespaces, nftables, mounts) and runs as uid "
                    f"{os.geteuid()}: run it as root, or leave it out with -m \"not root\"",
                    pytrace=False)
