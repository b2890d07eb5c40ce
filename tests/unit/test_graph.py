"""knet graph's model and renderers on a synthetic 100-pod cluster (tests/unit/graph_objects.py):
every format parses (SVG as XML after Graphviz, DOT through `dot -Tsvg`, JSON, Mermaid's
structure), every pod IP appears once, every Service edge goes to exactly its endpoints, the
isolation marks are knet.policy.isolation's, and 100 pods lay out as a page, not a strip."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest
from graph_objects import cluster

from knet import capture, graph
from knet.cli.common import CliError
from knet.cli.graph import output_format

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def objects() -> dict:
    return cluster(100, 10)


@pytest.fixture(scope="module")
def model(objects) -> dict:
    return graph.build(**objects)


@pytest.fixture(scope="module")
def svg_root(model) -> ET.Element:
    return ET.fromstring(graph.svg(graph.to_dot(model)))


def _count_ip(text: str, ip: str) -> int:
    return len(re.findall(rf"(?<![\d.]){re.escape(ip)}(?![\d])", text))


def _expected_edges(objects: dict) -> set[tuple[str, str]]:
    """Service -> pod pairs straight from the EndpointSlices (not through the model)."""
    out = set()
    for sl in objects["slices"]:
        svc = f"svc:{sl['metadata']['namespace']}/{sl['metadata']['labels']['kubernetes.io/service-name']}"
        for ep in sl["endpoints"]:
            ref = ep["targetRef"]
            out.add((svc, f"pod:{ref['namespace']}/{ref['name']}"))
    return out


def test_the_model_holds_every_node_pod_service_and_tunnel(objects, model):
    assert [n["name"] for n in model["nodes"]] == ["control-plane", "worker-1", "worker-2", "worker-3"]
    assert model["nodes"][1] == {"name": "worker-1", "role": "worker", "ip": "192.168.56.11",
                                 "podCIDR": "10.244.1.0/24", "ready": True}
    assert len(model["tunnels"]) == 6  # a full mesh of four nodes with a podCIDR
    assert sorted(p["ip"] for p in model["pods"]) == sorted(p["status"]["podIP"] for p in objects["pods"])
    assert len(model["services"]) == 20
    assert sum(len(s["endpoints"]) for s in model["services"]) == 100


def test_isolation_is_the_policy_engine_answer(model):
    shop = [p for p in model["pods"] if p["namespace"] == "shop"]
    other = [p for p in model["pods"] if p["namespace"] != "shop"]
    assert shop and all(p["isolatedBy"] == {"ingress": ["shop/default-deny"], "egress": []} for p in shop)
    assert all(p["isolatedBy"] == {"ingress": [], "egress": []} for p in other)
    (pol,) = model["policies"]
    assert sorted(pol["isolates"]["ingress"]) == sorted(f"shop/{p['name']}" for p in shop)
    assert pol["isolates"]["egress"] == []


def test_dot_goes_through_graphviz_and_every_pod_ip_appears_once(model, svg_root):
    dot = graph.to_dot(model)
    texts = "\n".join(t.text or "" for t in svg_root.iter(f"{SVG}text"))
    mermaid = graph.to_mermaid(model)
    for p in model["pods"]:
        assert (_count_ip(dot, p["ip"]), _count_ip(texts, p["ip"]), _count_ip(mermaid, p["ip"])) == (1, 1, 1), p


def test_every_service_edge_goes_to_its_endpoints(objects, model, svg_root):
    edges = set()
    for g in svg_root.iter(f"{SVG}g"):
        if g.get("class") == "edge":
            a, _, b = g.find(f"{SVG}title").text.partition("->")
            if a.startswith("svc:"):
                edges.add((a, b))
    assert edges == _expected_edges(objects)
    ids = {}
    mermaid = graph.to_mermaid(model)
    for m in re.finditer(r"^\s+(n\d+)[\[(]{1,2}\"([^\"]*)", mermaid, re.M):
        ids[m[1]] = m[2].split("<br/>")[0]
    drawn = {(ids[a], ids[b]) for a, b in re.findall(r"^\s+(n\d+) -->(?:\|[^|]*\|)? (n\d+)$", mermaid, re.M)}
    svc_names = {f"svc:{s['namespace']}/{s['name']}": s for s in model["services"]}
    assert len(drawn) == len(_expected_edges(objects))
    assert all(b.startswith("p") for _a, b in drawn) and len(svc_names) == 20


def test_a_hundred_pods_lay_out_as_a_page_not_a_strip(svg_root):
    width, height = (float(svg_root.get(k).removesuffix("pt")) for k in ("width", "height"))
    assert 1 / 4 <= width / height <= 4, (width, height)


def test_pods_of_a_group_are_in_a_grid(model):
    """Invisible edges chain each pod to the one a column later, so rows of row_width() form."""
    dot = graph.to_dot(model)
    group = [p for p in model["pods"] if p["node"] == "worker-1" and p["namespace"] == "default"]
    width = graph.row_width(len(group))
    assert 2 <= width < len(group)
    chained = re.findall(r'"pod:default/(p\d+)" -> "pod:default/(p\d+)" \[style=invis\]', dot)
    names = [p["name"] for p in group]
    assert [(a, b) for a, b in chained if a in names] == [(names[i], names[i + width])
                                                          for i in range(len(names) - width)]


def test_mermaid_and_json_parse(model):
    text = graph.to_mermaid(model)
    lines = text.splitlines()
    assert lines[0] == "flowchart TB"
    assert sum(x.strip().startswith("subgraph ") for x in lines) == sum(x.strip() == "end" for x in lines) > 0
    defined = re.findall(r"^\s+(n\d+)[\[(>]", text, re.M) + re.findall(r"^\s+subgraph (n\d+)\[", text, re.M)
    assert len(defined) == len(set(defined))
    assert json.loads(graph.to_json(model)) == model


def test_labels_are_quoted_for_each_format():
    nodes = [{"metadata": {"name": "w"}, "spec": {"podCIDR": "10.244.1.0/24"}, "status": {}}]
    pods = [{"metadata": {"namespace": "default", "name": 'we"ird\\'}, "spec": {"nodeName": "w"},
             "status": {"podIP": "10.244.1.2", "phase": "Running"}}]
    m = graph.build(nodes=nodes, pods=pods, lan={"subnet": "192.168.56.0/24", "ext": "192.168.56.1"})
    ET.fromstring(graph.svg(graph.to_dot(m)))
    assert '"we#quot;ird\\' in graph.to_mermaid(m)


def test_hostgw_has_no_tunnels_and_unscheduled_pods_have_a_box(objects):
    pending = {"metadata": {"namespace": "default", "name": "waiting"}, "spec": {}, "status": {"phase": "Pending"}}
    m = graph.build(**{**objects, "pods": objects["pods"][:3] + [pending]}, backend="host-gw")
    assert m["tunnels"] == [] and m["overlay"] == {"backend": "host-gw"}
    dot = graph.to_dot(m)
    assert '"cluster_node_unscheduled"' in dot and '"pod:default/waiting" [label="waiting\\npending"' in dot


def test_the_overlay_constants_are_the_node_network_ones():
    from knet.node import network
    assert (graph.VXLAN_VNI, graph.VXLAN_PORT, graph.VXLAN_DEV) == (network.VNI, network.VXLAN_PORT,
                                                                     network.VXLAN_DEV)
    assert (capture.VXLAN_PORT, capture.VXLAN_DEV) == (network.VXLAN_PORT, network.VXLAN_DEV)


def test_the_output_format_comes_from_o_then_the_file_name():
    assert output_format(None, None) == "dot"
    assert output_format(None, "/tmp/x.svg") == "svg"
    assert output_format(None, "x.mmd") == "mermaid"
    assert output_format("json", "x.svg") == "json"
    with pytest.raises(CliError, match="cannot tell the format"):
        output_format(None, "x.png")
