"""The cluster as a picture: a graph model built from API objects, and its renderers.

Pure: plain API dicts in, a model (plain JSON values) out, and text out of the model (DOT for
Graphviz, Mermaid, JSON); only `svg()` runs a program (Graphviz's `dot`). One model feeds every
format, so the picture, the JSON a script reads and the Mermaid pasted into a README never
disagree. Which pods a policy isolates is knet.policy.isolation's answer, the same one `knet get
pods -o wide` and the policy compiler use, never a second reading of the selectors here.

The layout is made for a cluster of a hundred pods to stay readable: the graph runs left to
right, the LAN on the left with a link to each node and the ext host, each node a box holding its
pods grouped by namespace, the pods of a group laid out as a grid (invisible edges chain a column
to the next, so a node with 40 pods is a block, not a line 40 pods long), the nodes one under the
other, the VXLAN tunnels between nodes drawn without moving anything (constraint=false) and the
Services in a block of their own with an edge to each endpoint.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Iterable

from knet.api.resources import by_kind
from knet.policy.isolation import EGRESS, INGRESS, isolation

TYPE_CHECKING = False
if TYPE_CHECKING:
    from knet.api.client import Client
    from knet.config import ClusterConfig

# The overlay as knet.node.network sets it up (a unit test keeps them equal; importing that
# module would bring trio into a CLI call).
VXLAN_VNI = 1
VXLAN_PORT = 8472
VXLAN_DEV = "knet.1"
LAN_BRIDGE = "knet-lan"

FORMATS = ("svg", "dot", "mermaid", "json")


class GraphError(Exception):
    """A picture that cannot be made (no Graphviz for SVG); one line for the user."""


# -- the model -----------------------------------------------------------------------------


def _meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def _key(obj: dict) -> str:
    m = _meta(obj)
    return f"{m.get('namespace') or 'default'}/{m.get('name', '')}"


def _node_ip(node: dict) -> str:
    for a in (node.get("status") or {}).get("addresses") or []:
        if a.get("type") == "InternalIP":
            return a.get("address", "")
    return ""


def _ready(node: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def _role(node: dict) -> str:
    labels = _meta(node).get("labels") or {}
    return "control-plane" if "node-role.kubernetes.io/control-plane" in labels else "worker"


def build(*, nodes: Iterable[dict], pods: Iterable[dict], services: Iterable[dict] = (),
          slices: Iterable[dict] = (), netpols: Iterable[dict] = (), namespaces: Iterable[dict] = (),
          anps: Iterable[dict] = (), banp: dict | None = None, lan: dict | None = None,
          backend: str = "vxlan", cluster: str = "") -> dict:
    """The graph model. `lan`: {"subnet": ..., "ext": ...} from the cluster file (the API has no
    object for the LAN). Everything is sorted, so the same cluster gives the same output."""
    netpols, anps = list(netpols), list(anps)
    ns_objs = {_meta(n).get("name"): n for n in namespaces}
    node_list = []
    for n in sorted(nodes, key=lambda n: _meta(n).get("name", "")):
        node_list.append({"name": _meta(n).get("name", ""), "role": _role(n), "ip": _node_ip(n),
                          "podCIDR": (n.get("spec") or {}).get("podCIDR", ""), "ready": _ready(n)})
    tunnels = []
    if backend == "vxlan":
        with_cidr = [n["name"] for n in node_list if n["podCIDR"]]
        tunnels = [{"a": a, "b": b, "vni": VXLAN_VNI, "port": VXLAN_PORT}
                   for i, a in enumerate(with_cidr) for b in with_cidr[i + 1:]]
    pod_list = []
    by_ip: dict[str, str] = {}
    for p in sorted(pods, key=_key):
        meta, spec, status = _meta(p), p.get("spec") or {}, p.get("status") or {}
        ns = meta.get("namespace") or "default"
        iso = isolation(p, ns_objs.get(ns), netpols, anps, banp)
        entry = {"namespace": ns, "name": meta.get("name", ""), "node": spec.get("nodeName") or "",
                 "ip": status.get("podIP") or "", "phase": status.get("phase") or "Pending",
                 "hostNetwork": bool(spec.get("hostNetwork")),
                 "isolatedBy": {"ingress": iso[INGRESS], "egress": iso[EGRESS]},
                 "adminPolicies": iso["AdminNetworkPolicy"] + iso["BaselineAdminNetworkPolicy"]}
        pod_list.append(entry)
        if entry["ip"] and not entry["hostNetwork"]:
            by_ip[entry["ip"]] = _key(p)
    node_by_ip = {n["ip"]: n["name"] for n in node_list if n["ip"]}
    slices_by_svc: dict[str, list[dict]] = {}
    for s in slices:
        svc = (_meta(s).get("labels") or {}).get("kubernetes.io/service-name")
        if svc:
            slices_by_svc.setdefault(f"{_meta(s).get('namespace') or 'default'}/{svc}", []).append(s)
    svc_list = []
    for s in sorted(services, key=_key):
        spec = s.get("spec") or {}
        endpoints = []
        for sl in sorted(slices_by_svc.get(_key(s), []), key=_key):
            ports = sorted({p.get("port") for p in sl.get("ports") or [] if p.get("port") is not None})
            for ep in sl.get("endpoints") or []:
                ref = ep.get("targetRef") or {}
                for ip in ep.get("addresses") or []:
                    pod = (f"{ref.get('namespace') or _meta(s).get('namespace') or 'default'}/{ref['name']}"
                           if ref.get("kind") == "Pod" and ref.get("name") else by_ip.get(ip))
                    endpoints.append({"ip": ip, "ports": ports, "pod": pod, "node": None if pod else node_by_ip.get(ip),
                                      "ready": (ep.get("conditions") or {}).get("ready") is not False})
        endpoints.sort(key=lambda e: (e["ip"], e["ports"]))
        svc_list.append({
            "namespace": _meta(s).get("namespace") or "default", "name": _meta(s).get("name", ""),
            "type": spec.get("type") or "ClusterIP", "clusterIP": spec.get("clusterIP") or "",
            "ports": [f"{p.get('port')}/{p.get('protocol') or 'TCP'}"
                      + (f" nodePort {p['nodePort']}" if p.get("nodePort") else "") for p in spec.get("ports") or []],
            "endpoints": endpoints})
    policies = []
    for np in sorted(netpols, key=_key):
        k = _key(np)
        policies.append({"namespace": _meta(np).get("namespace") or "default", "name": _meta(np).get("name", ""),
                         "isolates": {"ingress": [f"{p['namespace']}/{p['name']}" for p in pod_list
                                                  if k in p["isolatedBy"]["ingress"]],
                                      "egress": [f"{p['namespace']}/{p['name']}" for p in pod_list
                                                 if k in p["isolatedBy"]["egress"]]}})
    return {"cluster": cluster,
            "lan": {"bridge": LAN_BRIDGE, "subnet": (lan or {}).get("subnet", ""), "ext": (lan or {}).get("ext", "")},
            "overlay": {"backend": backend, "vni": VXLAN_VNI, "port": VXLAN_PORT, "device": VXLAN_DEV}
            if backend == "vxlan" else {"backend": backend},
            "nodes": node_list, "tunnels": tunnels, "pods": pod_list, "services": svc_list, "policies": policies}


def collect(client: Client, cfg: ClusterConfig) -> dict:
    """The model of a running cluster, from its API and its cluster file."""
    def items(kind: str) -> list[dict]:
        return client.list(by_kind(kind), None)["items"]

    banp = next((b for b in items("BaselineAdminNetworkPolicy") if _meta(b).get("name") == "default"), None)
    return build(nodes=items("Node"), pods=items("Pod"), services=items("Service"), slices=items("EndpointSlice"),
                 netpols=items("NetworkPolicy"), namespaces=items("Namespace"), anps=items("AdminNetworkPolicy"),
                 banp=banp, lan={"subnet": cfg.lan_subnet, "ext": cfg.ext_ip}, backend=cfg.backend,
                 cluster=cfg.name)


# -- shared by the renderers ---------------------------------------------------------------


def pod_id(pod: dict) -> str:
    return f"pod:{pod['namespace']}/{pod['name']}"


def svc_id(svc: dict) -> str:
    return f"svc:{svc['namespace']}/{svc['name']}"


def node_id(name: str) -> str:
    return f"node:{name}"


def _isolation_text(pod: dict) -> str:
    """"isolated in: deny-all" (a NetworkPolicy isolates only pods of its own namespace, so the
    policy's name alone says which)."""
    parts = []
    for d, short in (("ingress", "in"), ("egress", "out")):
        if pod["isolatedBy"][d]:
            parts.append(f"{short}: {', '.join(k.split('/', 1)[-1] for k in pod['isolatedBy'][d])}")
    return "isolated " + "; ".join(parts) if parts else ""


def _pod_lines(pod: dict) -> list[str]:
    lines = [pod["name"], pod["ip"] or pod["phase"].lower()]
    if pod["hostNetwork"]:
        lines[1] += " (host)"
    iso = _isolation_text(pod)
    if iso:
        lines.append(iso)
    return lines


def _svc_lines(svc: dict) -> list[str]:
    head = svc["name"] if svc["namespace"] == "default" else f"{svc['namespace']}/{svc['name']}"
    ip = svc["clusterIP"] if svc["clusterIP"] and svc["clusterIP"] != "None" else "headless"
    lines = [head, f"{svc['type']} {ip}", ", ".join(svc["ports"])]
    targets = sorted({p for ep in svc["endpoints"] for p in ep["ports"]})
    if targets:  # on the Service, not on each edge: edge labels would widen the picture per endpoint
        lines.append(f"-> :{','.join(str(p) for p in targets)}")
    return lines


def _node_lines(node: dict, overlay: dict) -> list[str]:
    lines = [f"{node['name']} ({node['role']})" + ("" if node["ready"] else " NotReady"), f"eth0 {node['ip']}"]
    if node["podCIDR"]:
        lines.append(f"podCIDR {node['podCIDR']}")
    if overlay.get("backend") == "vxlan":
        lines.append(f"{overlay['device']} VNI {overlay['vni']}")
    return lines


def _groups(model: dict) -> list[tuple[str, list[tuple[str, list[dict]]]]]:
    """[(node name, [(namespace, pods)])], nodes in the model's order; "" for unscheduled pods."""
    names = [n["name"] for n in model["nodes"]]
    by_node: dict[str, dict[str, list[dict]]] = {}
    for p in model["pods"]:
        node = p["node"] if p["node"] in names else ""
        by_node.setdefault(node, {}).setdefault(p["namespace"], []).append(p)
    out = []
    for node in names + [""]:
        if node in by_node or node:
            out.append((node, sorted(by_node.get(node, {}).items())))
    return out


def row_width(n: int) -> int:
    """Boxes per rank in a group of n (the graph runs left to right, so a rank is a column of
    boxes): a pod's box is about three times as wide as tall, so a group about as wide as tall
    stacks sqrt(n/2) of them, and a hundred pods on three nodes fit a page about 4:3."""
    return max(2, min(8, math.ceil(math.sqrt(n / 2))))


def _endpoint_target(ep: dict) -> str | None:
    if ep["pod"]:
        return f"pod:{ep['pod']}"
    if ep["node"]:
        return node_id(ep["node"])
    return None


# -- DOT -----------------------------------------------------------------------------------


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _label(lines: list[str]) -> str:
    return _q("\n".join(lines)).replace("\n", "\\n")


def to_dot(model: dict) -> str:
    out = [f"digraph {_q('knet ' + model['cluster'] if model['cluster'] else 'knet')} {{",
           '  graph [rankdir=LR, compound=true, fontname="Helvetica", fontsize=11, '
           'nodesep=0.2, ranksep=0.35, labeljust=l];',
           '  node [fontname="Helvetica", fontsize=9, shape=box, style="rounded,filled", fillcolor=white, '
           'margin="0.08,0.03"];',
           '  edge [fontname="Helvetica", fontsize=8, arrowsize=0.6];']
    lan = model["lan"]
    lan_lines = ["LAN " + lan["subnet"], "bridge " + lan["bridge"]]
    out.append(f'  "lan" [label={_label(lan_lines)}, shape=box, style=filled, fillcolor="#e3e8f4"];')
    if lan["ext"]:
        ext_lines = ["ext (outside host)", lan["ext"]]
        out.append(f'  "ext" [label={_label(ext_lines)}, fillcolor="#f2f2f2"];')
        out.append('  "lan" -> "ext" [dir=none];')
    overlay = model["overlay"]
    for node, groups in _groups(model):
        cid = f"cluster_node_{node or 'unscheduled'}"
        out.append(f"  subgraph {_q(cid)} {{")
        out.append(f"    label={_q(node or 'not scheduled')}; style=rounded; color=\"#7a8bb5\";")
        if node:
            nd = next(n for n in model["nodes"] if n["name"] == node)
            out.append(f"    {_q(node_id(node))} [label={_label(_node_lines(nd, overlay))}, shape=box3d, "
                       'style=filled, fillcolor="#dfe9d8"];')
        for ns, pods in groups:
            out.append(f"    subgraph {_q(cid + '_ns_' + ns)} {{")
            out.append(f'      label={_q("namespace " + ns)}; style="rounded,dashed"; color="#999999";')
            for p in pods:
                attrs = ""
                if p["isolatedBy"]["ingress"] or p["isolatedBy"]["egress"]:
                    attrs = ', color="#c0392b", penwidth=2, fillcolor="#fdecea"'
                elif p["phase"] != "Running":
                    attrs = ', fillcolor="#f5f5f5", fontcolor="#777777"'
                out.append(f"      {_q(pod_id(p))} [label={_label(_pod_lines(p))}{attrs}];")
            width = row_width(len(pods))
            for i, p in enumerate(pods[:-width] if len(pods) > width else []):
                out.append(f"      {_q(pod_id(p))} -> {_q(pod_id(pods[i + width]))} [style=invis];")
            out.append("    }")
            if node:  # outside the namespace's subgraph: an edge statement puts both ends in its subgraph
                for p in pods[:width]:
                    out.append(f"    {_q(node_id(node))} -> {_q(pod_id(p))} [style=invis];")
        out.append("  }")
        if node:
            out.append(f'  "lan" -> {_q(node_id(node))} [dir=none, label="eth0"];')
    for t in model["tunnels"]:
        out.append(f"  {_q(node_id(t['a']))} -> {_q(node_id(t['b']))} [dir=both, style=dashed, "
                   f'color="#2e6fd8", fontcolor="#2e6fd8", constraint=false, label="VXLAN {t["vni"]}"];')
    if model["services"]:
        out.append('  subgraph "cluster_services" {')
        out.append('    label="Services"; style=rounded; color="#3c8d5a";')
        svcs = model["services"]
        for s in svcs:
            out.append(f"    {_q(svc_id(s))} [label={_label(_svc_lines(s))}, shape=ellipse, style=filled, "
                       'fillcolor="#e6f4ea"];')
        width = row_width(len(svcs))
        for i, s in enumerate(svcs[:-width] if len(svcs) > width else []):
            out.append(f"    {_q(svc_id(s))} -> {_q(svc_id(svcs[i + width]))} [style=invis];")
        out.append("  }")
    for s in model["services"]:
        for ep in s["endpoints"]:
            target = _endpoint_target(ep)
            if target is None:
                continue
            style = "" if ep["ready"] else ", style=dotted"
            # weight 0, not constraint=false: Graphviz's ranking fails ("trouble in init_rank") on
            # many unconstrained edges between clusters; weight 0 only keeps the Service ranked
            # before its endpoints, which the layout of the node boxes does not feel
            out.append(f"  {_q(svc_id(s))} -> {_q(target)} [color=\"#3c8d5a\", weight=0{style}];")
    if model["policies"]:
        out.append('  subgraph "cluster_policies" {')
        out.append('    label="NetworkPolicies"; style=rounded; color="#c0392b";')
        for pol in model["policies"]:
            lines = [f"{pol['namespace']}/{pol['name']}"]
            for d in ("ingress", "egress"):
                if pol["isolates"][d]:
                    lines.append(f"isolates {len(pol['isolates'][d])} pod(s) for {d}")
            if len(lines) == 1:
                lines.append("selects no pod")
            out.append(f"    {_q('netpol:' + pol['namespace'] + '/' + pol['name'])} [label={_label(lines)}, "
                       'shape=note, style=filled, fillcolor="#fdecea", color="#c0392b"];')
        out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


# -- Mermaid -------------------------------------------------------------------------------


def _m(text: str) -> str:
    """A Mermaid label: quoted, with its own entity for a double quote."""
    return '"' + text.replace('"', "#quot;") + '"'


def to_mermaid(model: dict) -> str:
    ids: dict[str, str] = {}

    def mid(key: str) -> str:
        return ids.setdefault(key, f"n{len(ids)}")

    out = ["flowchart TB"]
    lan = model["lan"]
    out.append(f"  {mid('lan')}[{_m('LAN ' + lan['subnet'] + '<br/>bridge ' + lan['bridge'])}]")
    if lan["ext"]:
        out.append(f"  {mid('ext')}[{_m('ext (outside host)<br/>' + lan['ext'])}]")
        out.append(f"  {mid('lan')} --- {mid('ext')}")
    isolated = []
    for node, groups in _groups(model):
        gid = mid(f"group:{node}")
        out.append(f"  subgraph {gid}[{_m(node or 'not scheduled')}]")
        if node:
            nd = next(n for n in model["nodes"] if n["name"] == node)
            out.append(f"    {mid(node_id(node))}[[{_m('<br/>'.join(_node_lines(nd, model['overlay'])))}]]")
        for ns, pods in groups:
            out.append(f"    subgraph {mid(f'group:{node}:{ns}')}[{_m('namespace ' + ns)}]")
            for p in pods:
                out.append(f"      {mid(pod_id(p))}({_m('<br/>'.join(_pod_lines(p)))})")
                if p["isolatedBy"]["ingress"] or p["isolatedBy"]["egress"]:
                    isolated.append(mid(pod_id(p)))
            out.append("    end")
        out.append("  end")
        if node:
            out.append(f"  {mid('lan')} ---|eth0| {mid(node_id(node))}")
    for t in model["tunnels"]:
        out.append(f"  {mid(node_id(t['a']))} <-.->|VXLAN {t['vni']}| {mid(node_id(t['b']))}")
    for s in model["services"]:
        out.append(f"  {mid(svc_id(s))}([{_m('<br/>'.join(_svc_lines(s)))}])")
    for s in model["services"]:
        for ep in s["endpoints"]:
            target = _endpoint_target(ep)
            if target is not None:
                ports = ",".join(str(p) for p in ep["ports"])
                out.append(f"  {mid(svc_id(s))} -->{'|:' + ports + '|' if ports else ''} {mid(target)}")
    for pol in model["policies"]:
        n = len(set(pol["isolates"]["ingress"]) | set(pol["isolates"]["egress"]))
        out.append(f"  {mid('netpol:' + pol['namespace'] + '/' + pol['name'])}>"
                   f"{_m(pol['namespace'] + '/' + pol['name'] + '<br/>isolates ' + str(n) + ' pod(s)')}]")
    if isolated:
        out.append("  classDef isolated stroke:#c0392b,stroke-width:2px,fill:#fdecea")
        out.append(f"  class {','.join(isolated)} isolated")
    return "\n".join(out) + "\n"


# -- JSON and SVG --------------------------------------------------------------------------


def to_json(model: dict) -> str:
    return json.dumps(model, indent=2) + "\n"


def svg(dot_text: str, timeout: float = 120) -> str:
    """Graphviz's rendering of the DOT text (Debian's graphviz: scripts/setup installs it)."""
    try:
        out = subprocess.run(["dot", "-Tsvg"], input=dot_text, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise GraphError("Graphviz's dot is not installed (apt-get install graphviz; scripts/setup "
                         "installs it), or use -o dot, mermaid or json") from None
    if out.returncode != 0:
        raise GraphError(f"dot -Tsvg failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}")
    return out.stdout


def render(model: dict, fmt: str) -> str:
    if fmt == "json":
        return to_json(model)
    if fmt == "mermaid":
        return to_mermaid(model)
    if fmt == "dot":
        return to_dot(model)
    if fmt == "svg":
        return svg(to_dot(model))
    raise GraphError(f"unknown output format {fmt!r}: one of {', '.join(FORMATS)}")
