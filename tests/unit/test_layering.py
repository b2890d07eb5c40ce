"""knet's import graph against its layers (docs/architecture.md, "Packages").

Every engine is one package, a pure core and a thin kernel edge, and the shared kernel edge
(knet.net) is at the bottom: a module reaches the kernel through knet.net or its own package's
edge, never through a package above it, and nothing imports upwards. This reads every module's imports from its source (ast: nothing is
imported, so it needs no root and no kernel), including the ones made lazily inside a function,
because a lazy import is as much a dependency as one at the top; only imports under
`if TYPE_CHECKING:` are left out of the pure-core rule (no kernel code runs for a type hint).

The tables below are the design: change them only with docs/architecture.md.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KNET = REPO / "knet"

# Bottom to top. A module may import its own package and any package in a lower layer; packages in
# the same layer are siblings and never import each other. "knet" alone is the package's
# __init__ (the version), not everything under it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # plain values: the version, where state lives
    ("base", ("knet", "knet.paths")),
    # the kernel edge: netlink, nftables (the seam and its fake), namespaces, mounts, processes
    ("kernel", ("knet.net",)),
    # the store (SQLite, revisions, the event log); the cluster file and the names derived from it
    ("state", ("knet.store", "knet.config")),
    # the Kubernetes-shaped API: objects, strategies and validation, the server and registry over
    # the store, the clients, reflectors and informers
    ("api", ("knet.api",)),
    # what acts on the API: the controllers, one package per node engine (each a pure core and a
    # thin kernel edge), and the CLI's tables
    ("engines", ("knet.controllers", "knet.proxy", "knet.cni", "knet.policy", "knet.dns",
                 "knet.printers")),
    # the processes that compose them: the node agent and runtime, the control plane, the supervisor;
    # and knet.trace, which explains a traced packet from the engines' rules (their names and comments);
    # knet.capture (tcpdump in a cluster's namespace) and knet.graph (the cluster drawn, with the pods
    # each policy isolates, from knet.policy.isolation), which read a cluster to show it
    ("processes", ("knet.node", "knet.controlplane", "knet.supervisor", "knet.trace", "knet.capture",
                   "knet.graph")),
    # bringing a cluster up and down
    ("cluster", ("knet.cluster",)),
    # this machine as one node of a cluster (knet init/join/reset), over the cluster's lifecycle
    ("machine", ("knet.machine",)),
    # what a user or a test drives
    ("top", ("knet.cli", "knet.harness")),
    # labs: whole clusters driven with the CLI's pieces (apply, jsonpath) and the probe engine
    ("labs", ("knet.lab",)),
    # the `knet lab` command over them (main.py names it by string, as every command)
    ("lab command", ("knet.cli.lab",)),
]

# Pure cores: they never import the kernel edge, neither directly nor through another knet module
# (everything they import is pure too), so each is tested without root.
PURE: tuple[str, ...] = (
    "knet", "knet.paths",
    "knet.store",
    "knet.api",
    "knet.controllers",
    "knet.printers",
    "knet.proxy.model", "knet.proxy.rules", "knet.proxy.tracker",
    "knet.cni.spec", "knet.cni.ipam",
    "knet.trace.events", "knet.trace.explain", "knet.trace.model",
    "knet.graph", "knet.policy.isolation",
)

# The kernel's own bindings: pure cores never import them, and the nftables one only its seam
# (knet.net.nft, the one interface for "run this transaction, list this table", and its fake).
KERNEL_LIBS: tuple[str, ...] = ("pyroute2", "nftables")
SEAMS: dict[str, tuple[str, ...]] = {"nftables": ("knet.net",)}

# Scripts outside the package and what they must not import: a benchmark measures an engine from
# its own package and the kernel through knet.net, never through the agent that composes them.
OUTSIDE: dict[str, tuple[str, ...]] = {
    "bench": ("knet.node", "knet.cli"),
}


@dataclass(frozen=True)
class Import:
    path: Path
    line: int
    source: str
    target: str
    typing_only: bool

    def where(self) -> str:
        path = self.path.relative_to(REPO) if self.path.is_relative_to(REPO) else self.path
        return f"{path}:{self.line}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def knet_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(KNET.rglob("*.py")) if "__pycache__" not in p.parts}


def _typing_only_nodes(tree: ast.AST) -> set[int]:
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            t = node.test
            name = t.id if isinstance(t, ast.Name) else t.attr if isinstance(t, ast.Attribute) else None
            if name == "TYPE_CHECKING":
                for stmt in node.body:
                    out.update(id(n) for n in ast.walk(stmt))
    return out


def imports_of(path: Path, source: str, modules: dict[str, Path]) -> list[Import]:
    """The knet modules and kernel bindings `path` imports, each resolved to the module itself
    where it is one (`from knet.net import ns` is an import of knet.net.ns, not of knet.net)."""
    tree = ast.parse(path.read_text(), str(path))
    typing_only = _typing_only_nodes(tree)
    package = source if path.name == "__init__.py" else source.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]
        for t in targets:
            if t.split(".")[0] in ("knet", *KERNEL_LIBS):
                out.append(Import(path, node.lineno, source, t, id(node) in typing_only))
    return sorted(out, key=lambda i: (i.line, i.target))


def _matches(entry: str, module: str) -> bool:
    return module == entry or (entry != "knet" and module.startswith(entry + "."))


def place(module: str) -> tuple[int, str] | None:
    """(layer index, the table entry) of a module: the longest entry that names it."""
    best = None
    for i, (_, entries) in enumerate(LAYERS):
        for e in entries:
            if _matches(e, module) and (best is None or len(e) > len(best[1])):
                best = (i, e)
    return best


def _is_kernel(module: str) -> bool:
    return any(_matches(e, module) for e in ("knet.net", *KERNEL_LIBS))


def is_pure(module: str) -> bool:
    return any(_matches(e, module) for e in PURE)


@functools.cache
def all_imports() -> tuple[Import, ...]:
    modules = knet_modules()
    return tuple(imp for name, path in modules.items() for imp in imports_of(path, name, modules))


def layering_violations(imports: Iterable[Import]) -> list[str]:
    out = []
    for imp in imports:
        src, dst = place(imp.source), place(imp.target)
        if src is None or dst is None:
            continue  # reported by test_every_module_has_a_layer
        (si, se), (di, de) = src, dst
        if se == de:
            continue  # inside one package: its own business
        if di > si:
            out.append(f"{imp.where()}: {imp.source} ({LAYERS[si][0]}) imports {imp.target} "
                       f"from the layer above it ({LAYERS[di][0]})")
        elif di == si:
            out.append(f"{imp.where()}: {imp.source} imports {imp.target}: siblings in "
                       f"layer {LAYERS[si][0]} never import each other")
    return out


def purity_violations(imports: Iterable[Import]) -> list[str]:
    return [f"{imp.where()}: {imp.source} is a pure core and imports {imp.target}, "
            + ("the kernel edge" if _is_kernel(imp.target) else "which is not pure")
            for imp in imports
            if is_pure(imp.source) and not imp.typing_only and not is_pure(imp.target)]


def seam_violations(imports: Iterable[Import]) -> list[str]:
    return [f"{imp.where()}: {imp.source} imports {imp.target}: only {', '.join(owners)} may"
            for imp in imports for lib, owners in SEAMS.items()
            if _matches(lib, imp.target) and not any(_matches(o, imp.source) for o in owners)]


def outside_violations() -> list[str]:
    modules = knet_modules()
    out = []
    for folder, banned in OUTSIDE.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            for imp in imports_of(path, module_name(path), modules):
                for b in banned:
                    if _matches(b, imp.target):
                        out.append(f"{imp.where()}: {folder}/ imports {imp.target}")
    return out


def test_every_module_has_a_layer():
    assert [m for m in knet_modules() if place(m) is None] == []


def test_the_tables_name_only_what_exists():
    modules = knet_modules()
    entries = [e for _, es in LAYERS for e in es] + list(PURE) + [b for bs in OUTSIDE.values() for b in bs]
    assert [e for e in entries if not any(_matches(e, m) for m in modules)] == []
    assert [f for f in OUTSIDE if not (REPO / f).is_dir()] == []


def test_imports_only_go_down():
    assert layering_violations(all_imports()) == []


def test_pure_cores_never_reach_the_kernel_edge():
    assert purity_violations(all_imports()) == []


def test_nftables_is_reached_only_through_its_seam():
    assert seam_violations(all_imports()) == []


def test_benchmarks_reach_engines_and_the_kernel_from_their_own_packages():
    assert outside_violations() == []


# The checker itself, on imports made to break each rule.

def _imports(tmp_path: Path, name: str, text: str) -> list[Import]:
    p = tmp_path / "mod.py"
    p.write_text(text)
    return imports_of(p, name, knet_modules())


def test_imports_are_resolved_to_modules_with_their_lines(tmp_path):
    imps = _imports(tmp_path, "knet.proxy.fake", (
        "import os\n"
        "from knet.net import ns\n"
        "from knet.api.objects import is_true\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from knet.net.nft import Interface\n"
        "def f():\n"
        "    import knet.node.agent\n"
        "from . import rules\n"
        "from .. import paths\n"))
    assert [(i.line, i.target, i.typing_only) for i in imps] == [
        (2, "knet.net.ns", False), (3, "knet.api.objects", False), (6, "knet.net.nft", True),
        (8, "knet.node.agent", False), (9, "knet.proxy.rules", False), (10, "knet.paths", False)]


def test_the_rules_catch_what_they_forbid(tmp_path):
    assert place("knet.nonexistent") is None  # "knet" names only the package's own __init__
    up = _imports(tmp_path, "knet.api.server", "from knet.node import agent\n")
    assert layering_violations(up) == [f"{tmp_path}/mod.py:1: knet.api.server (api) imports "
                                       "knet.node.agent from the layer above it (processes)"]
    sibling = _imports(tmp_path, "knet.proxy.sync", "from knet.cni import spec\n")
    assert layering_violations(sibling) == [f"{tmp_path}/mod.py:1: knet.proxy.sync imports "
                                            "knet.cni.spec: siblings in layer engines never import each other"]
    own = _imports(tmp_path, "knet.proxy.sync", "from knet.proxy import extras\nfrom knet.net import nft\n")
    assert layering_violations(own) == []
    kernel = _imports(tmp_path, "knet.proxy.rules", "from knet.net import nft\nimport knet.config\n")
    assert purity_violations(kernel) == [
        f"{tmp_path}/mod.py:1: knet.proxy.rules is a pure core and imports knet.net.nft, the kernel edge",
        f"{tmp_path}/mod.py:2: knet.proxy.rules is a pure core and imports knet.config, which is not pure"]
    binding = _imports(tmp_path, "knet.api.server", "from pyroute2 import IPRoute\n")
    assert purity_violations(binding) == [
        f"{tmp_path}/mod.py:1: knet.api.server is a pure core and imports pyroute2, the kernel edge"]
    assert layering_violations(binding) == []
    nft = _imports(tmp_path, "knet.node.network", "def f():\n    import nftables\n")
    assert seam_violations(nft) == [f"{tmp_path}/mod.py:2: knet.node.network imports nftables: only knet.net may"]
    hint = _imports(tmp_path, "knet.proxy.rules", "import typing\nif typing.TYPE_CHECKING:\n    import knet.net.nft\n")
    assert purity_violations(hint) == []
