"""The API side of policy: NetworkPolicy defaulting, AdminNetworkPolicy and
BaselineAdminNetworkPolicy served at policy.networking.k8s.io/v1alpha1 (decoded
against their Go types, validated as their CRDs validate, worded as the API
server words it), and what `knet get`/`knet describe` say about which policies
select and isolate a pod. Against knet's API server in this process (no root)."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from knet.api.decode import DecodeError, decode_typed
from knet.api.defaults import apply_defaults
from knet.api.errors import ApiError, Invalid
from knet.api.resources import by_kind
from knet.api.validation import validate, validation_errors
from knet.printers import describe, table

ANP, BANP, NETPOL = by_kind("AdminNetworkPolicy"), by_kind("BaselineAdminNetworkPolicy"), by_kind("NetworkPolicy")
PODS, NAMESPACES = by_kind("Pod"), by_kind("Namespace")
NOW = 1_700_000_000.0


def anp(name: str = "a", priority: object = 10, **spec: object) -> dict:
    spec.setdefault("subject", {"namespaces": {}})
    return {"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "AdminNetworkPolicy",
            "metadata": {"name": name}, "spec": {"priority": priority, **spec}}


def banp(name: str = "default", **spec: object) -> dict:
    spec.setdefault("subject", {"namespaces": {}})
    return {"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "BaselineAdminNetworkPolicy",
            "metadata": {"name": name}, "spec": spec}


def netpol(name: str = "p", namespace: str = "default", **spec: object) -> dict:
    spec.setdefault("podSelector", {})
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def messages(obj: dict) -> list[str]:
    return [str(e) for e in validation_errors(apply_defaults(copy.deepcopy(obj)))]


def rule(action: str = "Allow", peers: object = None, key: str = "from", **extra: object) -> dict:
    return {"action": action, key: [{"namespaces": {}}] if peers is None else peers, **extra}


# -- decoding against the v1alpha1 Go types ------------------------------------------------


def test_a_wrong_type_is_named_with_its_v1alpha1_go_type():
    with pytest.raises(DecodeError) as e:
        decode_typed(anp(priority="high"), "AdminNetworkPolicy")
    assert str(e.value) == ("json: cannot unmarshal string into Go struct field "
                            "AdminNetworkPolicySpec.spec.priority of type int32")
    with pytest.raises(DecodeError) as e:
        decode_typed(anp(ingress=[{"action": "Allow", "from": [], "ports": {"portNumber": {"port": 80}}}]),
                     "AdminNetworkPolicy")
    assert str(e.value).endswith("AdminNetworkPolicyIngressRule.spec.ingress.ports of type "
                                 "[]v1alpha1.AdminNetworkPolicyPort")
    with pytest.raises(DecodeError) as e:  # metav1 types stay v1
        decode_typed(anp(subject={"namespaces": []}), "AdminNetworkPolicy")
    assert str(e.value).endswith("of type v1.LabelSelector")


def test_unknown_fields_are_reported_where_the_go_types_lack_them():
    obj = anp(subject={"pod": {}}, ingress=[rule(peers=[{"networks": ["10.0.0.0/8"]}])])
    obj["spec"]["egress"] = [rule(key="to", peers=[{"networks": ["10.0.0.0/8"]}])]
    decoded, strict = decode_typed(obj, "AdminNetworkPolicy")
    # networks is an egress-only peer; the subject has no `pod`
    assert strict == ['unknown field "spec.subject.pod"', 'unknown field "spec.ingress[0].from[0].networks"']
    assert decoded["spec"]["egress"][0]["to"] == [{"networks": ["10.0.0.0/8"]}]
    # A baseline egress peer has no domainNames (the admin one has, experimental)
    _, strict = decode_typed(banp(egress=[rule(key="to", peers=[{"domainNames": ["example.com"]}])]),
                             "BaselineAdminNetworkPolicy")
    assert strict == ['unknown field "spec.egress[0].to[0].domainNames"']
    assert decode_typed(anp(egress=[rule(key="to", peers=[{"domainNames": ["*.example.com"]}])]),
                        "AdminNetworkPolicy")[1] == []


# -- validation, worded as apiextensions words a CRD's schema and CEL rules -----------------


@pytest.mark.parametrize(("obj", "expected"), [
    (anp(priority=1001), ["spec.priority: Invalid value: 1001: spec.priority in body should be less than "
                          "or equal to 1000"]),
    (anp(priority=-1), ["spec.priority: Invalid value: -1: spec.priority in body should be greater than "
                        "or equal to 0"]),
    (anp(priority=None), ["spec.priority: Required value"]),
    (anp(subject={}), ["spec.subject: Invalid value: 0: spec.subject in body should have at least 1 properties"]),
    (anp(subject={"namespaces": {}, "pods": {"namespaceSelector": {}, "podSelector": {}}}),
     ["spec.subject: Too many: 2: must have at most 1 item"]),
    (anp(subject={"pods": {"podSelector": {}}}), ["spec.subject.pods.namespaceSelector: Required value"]),
    (anp(ingress=[rule("Drop")]),
     ['spec.ingress[0].action: Unsupported value: "Drop": supported values: "Allow", "Deny", "Pass"']),
    (anp(ingress=[{"from": [{"namespaces": {}}]}]), ["spec.ingress[0].action: Required value"]),
    (anp(ingress=[rule(peers=[])]),
     ["spec.ingress[0].from: Invalid value: 0: spec.ingress[0].from in body should have at least 1 items"]),
    (anp(ingress=[{"action": "Deny"}]), ["spec.ingress[0].from: Required value"]),
    (anp(ingress=[rule(peers=[{}])]),
     ["spec.ingress[0].from[0]: Invalid value: 0: spec.ingress[0].from[0] in body should have at least "
      "1 properties"]),
    (anp(ingress=[rule()] * 101), ["spec.ingress: Too many: 101: must have at most 100 items"]),
    (anp(ingress=[rule(name="x" * 101)]), ["spec.ingress[0].name: Too long: may not be more than 100 bytes"]),
    (anp(ingress=[rule(ports=[])]),
     ["spec.ingress[0].ports: Invalid value: 0: spec.ingress[0].ports in body should have at least 1 items"]),
    (anp(ingress=[rule(ports=[{"portNumber": {"port": 0}}])]),
     ["spec.ingress[0].ports[0].portNumber.port: Invalid value: 0: spec.ingress[0].ports[0].portNumber.port "
      "in body should be greater than or equal to 1"]),
    (anp(ingress=[rule(ports=[{"portNumber": {"protocol": "ICMP", "port": 8}}])]),
     ['spec.ingress[0].ports[0].portNumber.protocol: Unsupported value: "ICMP": supported values: '
      '"TCP", "UDP", "SCTP"']),
    (anp(ingress=[rule(ports=[{"portNumber": {"protocol": "UDP"}}])]),
     ["spec.ingress[0].ports[0].portNumber.port: Required value"]),
    (anp(ingress=[rule(ports=[{"portRange": {"start": 90, "end": 80}}])]),
     ["spec.ingress[0].ports[0].portRange.end: Invalid value: 80: must be greater than or equal to `start`"]),
    (anp(ingress=[rule(ports=[{"portRange": {"start": 90}}])]),
     ["spec.ingress[0].ports[0].portRange.end: Required value"]),
    (anp(ingress=[rule(ports=[{"namedPort": "http", "portNumber": {"port": 80}}])]),
     ["spec.ingress[0].ports[0]: Too many: 2: must have at most 1 item"]),
    (anp(egress=[rule(key="to", peers=[{"networks": ["10.0.0.0/8", "10.0.0.0/8", "10.1.0.0/33"]}])]),
     ['spec.egress[0].to[0].networks[1]: Duplicate value: "10.0.0.0/8"',
      'spec.egress[0].to[0].networks[2]: Invalid value: "string": Invalid CIDR format provided']),
    (anp(egress=[rule(key="to", peers=[{"networks": [f"10.{i}.0.0/16" for i in range(26)]}])]),
     ["spec.egress[0].to[0].networks: Too many: 26: must have at most 25 items"]),
    (anp(egress=[rule(key="to", peers=[{"nodes": {}}], ports=[{"namedPort": "http"}])]),
     ['spec.egress[0]: Invalid value: "object": networks/nodes/domainNames peer cannot be set with '
      "namedPorts since there are no namedPorts for networks/nodes/domainNames"]),
    (anp(egress=[rule(key="to", peers=[{"domainNames": ["bad_domain"]}])]),
     ['spec.egress[0].to[0].domainNames[0]: Invalid value: "bad_domain": spec.egress[0].to[0].domainNames[0] '
      "in body should match '" + r"^(\*\.)?([a-zA-z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.)+"
      r"[a-zA-z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.?$" + "'"]),
    (anp(subject={"namespaces": {"matchExpressions": [{"key": "a", "operator": "In"}]}}),
     ["spec.subject.namespaces.matchExpressions[0].values: Required value: must be specified when "
      "`operator` is 'In' or 'NotIn'"]),
    (banp(name="baseline"),
     ['metadata.name: Invalid value: "baseline": Only one baseline admin network policy with '
      'metadata.name="default" can be created in the cluster']),
    (banp(ingress=[rule("Pass")]),
     ['spec.ingress[0].action: Unsupported value: "Pass": supported values: "Allow", "Deny"']),
    (banp(egress=[rule(key="to", peers=[{"networks": ["0.0.0.0/0"]}], ports=[{"namedPort": "dns"}])]),
     ['spec.egress[0]: Invalid value: "object": networks/nodes peer cannot be set with namedPorts since '
      "there are no namedPorts for networks/nodes"]),
], ids=lambda v: None)
def test_admin_policy_validation_names_the_field(obj, expected):
    assert messages(obj) == expected


def test_valid_admin_policies_pass_and_defaulting_fills_tcp():
    obj = anp(ingress=[rule("Pass", ports=[{"portNumber": {"port": 80}}, {"portRange": {"start": 1, "end": 2}},
                                           {"portNumber": {"port": 53, "protocol": "UDP"}}, {"namedPort": "x"}])],
              egress=[rule("Deny", key="to", peers=[{"nodes": {}}, {"networks": ["fd00::/8"]},
                                                     {"pods": {"namespaceSelector": {}, "podSelector": {}}}])])
    assert messages(obj) == []
    ports = apply_defaults(obj)["spec"]["ingress"][0]["ports"]
    assert ports == [{"portNumber": {"port": 80, "protocol": "TCP"}},
                     {"portRange": {"start": 1, "end": 2, "protocol": "TCP"}},
                     {"portNumber": {"port": 53, "protocol": "UDP"}}, {"namedPort": "x"}]
    assert messages(banp()) == [] and messages(anp(priority=0)) == [] and messages(anp(priority=1000)) == []


def test_an_invalid_object_raises_one_invalid_listing_every_field():
    with pytest.raises(Invalid) as e:
        validate(apply_defaults(anp(priority=2000, subject={})))
    assert e.value.code == 422
    assert [c["field"] for c in e.value.details["causes"]] == ["spec.priority", "spec.subject"]
    assert e.value.message.startswith('AdminNetworkPolicy "a" is invalid: [spec.priority: ')


# -- NetworkPolicy: SetDefaults_NetworkPolicy and the upstream validation ---------------------


def test_networkpolicy_defaults_as_the_api_server():
    spec = apply_defaults(netpol(egress=[{"ports": [{"port": 53, "protocol": "UDP"}, {"port": 80}]}]))["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["egress"][0]["ports"] == [{"port": 53, "protocol": "UDP"}, {"port": 80, "protocol": "TCP"}]
    # omitempty: empty lists read back as absent, which is what they mean
    spec = apply_defaults(netpol(ingress=[], egress=[{"to": [], "ports": []}]))["spec"]
    assert spec == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "egress": [{}]}
    assert apply_defaults(netpol(egress=[]))["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    # protocol is a pointer in Go: "" is not "unset", so validation refuses it
    assert messages(netpol(ingress=[{"ports": [{"protocol": "", "port": 80}]}])) == [
        'spec.ingress[0].ports[0].protocol: Unsupported value: "": supported values: "TCP", "UDP", "SCTP"']


@pytest.mark.parametrize(("peer_or_port", "expected"), [
    ({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8"]}},
     ['spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "10.0.0.0/8": must be a strict subset of `cidr`']),
    ({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}},
     ['spec.ingress[0].from[0].ipBlock.except[0]: Invalid value: "11.0.0.0/16": must be a strict subset of `cidr`']),
    ({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}, []),
    ({"port": 80, "endPort": 79},
     ["spec.ingress[0].ports[0].endPort: Invalid value: 79: must be greater than or equal to `port`"]),
    ({"endPort": 90},
     ["spec.ingress[0].ports[0].endPort: Invalid value: 90: may not be specified when `port` is not specified"]),
    ({"port": "http", "endPort": 90},
     ["spec.ingress[0].ports[0].endPort: Invalid value: 90: may not be specified when `port` is non-numeric"]),
    ({"port": 80, "endPort": 80}, []),
], ids=lambda v: None)
def test_networkpolicy_ipblock_and_port_range_rules(peer_or_port, expected):
    rule_ = {"ports": [peer_or_port]} if "ipBlock" not in peer_or_port else {"from": [peer_or_port]}
    assert messages(netpol(ingress=[rule_])) == expected


# -- printers ---------------------------------------------------------------------------------


def test_admin_policy_tables_have_the_crds_printer_columns():
    a = anp("tenancy", 5)
    a["metadata"]["creationTimestamp"] = "2023-11-14T22:13:20Z"
    assert table("AdminNetworkPolicy", [a], now=NOW) == "NAME      PRIORITY   AGE\ntenancy   5          0s\n"
    b = banp()
    b["metadata"]["creationTimestamp"] = "2023-11-14T22:03:20Z"
    assert table("BaselineAdminNetworkPolicy", [b], now=NOW) == "NAME      AGE\ndefault   10m\n"


def test_describe_admin_policy_lists_rules_in_order_and_selected_pods():
    a = apply_defaults(anp("tenancy", 5, subject={"pods": {"namespaceSelector": {"matchLabels": {"t": "1"}},
                                                           "podSelector": {}}},
                           ingress=[rule("Pass", name="same-tenant", ports=[{"portNumber": {"port": 80}},
                                                                            {"namedPort": "dns"}]),
                                    rule("Deny")],
                           egress=[rule("Allow", key="to", peers=[{"networks": ["10.0.0.0/8", "fd00::/8"]}],
                                        ports=[{"portRange": {"protocol": "UDP", "start": 5000, "end": 5100}}])]))
    pod = {"metadata": {"name": "web", "namespace": "x"}, "status": {"podIP": "10.244.1.5"}}
    text = describe(a, [], now=NOW, pods=[pod])
    assert text.splitlines() == [
        "Name:         tenancy",
        "Created on:   0001-01-01 00:00:00 +0000 UTC",
        "Labels:       <none>",
        "Annotations:  <none>",
        "Spec:",
        "  Priority:  5 (lower numbers are evaluated first)",
        "  Subject:",
        "    Pods:",
        "      NamespaceSelector:  t=1",
        "      PodSelector:        <all pods>",
        "  Ingress Rules (first match wins):",
        "    same-tenant:  Pass",
        "      Ports:      80/TCP, dns (named port)",
        "      From:",
        "        Namespaces:  <all namespaces>",
        "    ----------",
        "    rule 1:   Deny",
        "      Ports:  <any>",
        "      From:",
        "        Namespaces:  <all namespaces>",
        "  Egress Rules (first match wins):",
        "    rule 0:   Allow",
        "      Ports:  5000-5100/UDP",
        "      To:",
        "        Networks:  10.0.0.0/8, fd00::/8",
        "Selected Pods:",
        "  x/web  10.244.1.5",
        "Events:  <none>",
    ]
    assert "Ingress Rules:  <none> (not affecting ingress traffic)" in describe(banp(), [], now=NOW)


def test_pod_isolation_cells():
    from knet.printers import isolated_cell, policies_cell
    iso = {"Ingress": ["x/deny", "x/allow-web"], "Egress": ["x/deny"], "AdminNetworkPolicy": ["t", "u"],
           "BaselineAdminNetworkPolicy": ["default"]}
    assert isolated_cell(iso) == "Ingress,Egress"
    assert policies_cell(iso) == "deny,allow-web,anp/t,anp/u,banp/default"
    assert isolated_cell({"Ingress": [], "Egress": ["x/e"]}) == "Egress"
    assert isolated_cell(None) == policies_cell(None) == "<none>"


# -- against the API server and the CLI ----------------------------------------------------------


def pod(name: str, namespace: str, **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "agnhost"}]}}


@pytest.fixture
def cluster(server):
    client = server.client()
    for ns in ("x", "y"):
        client.create(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": ns, "labels": {"tenant": "blue" if ns == "x" else "red"}}})
    for ns in ("x", "y"):
        for name in ("a", "b"):
            client.create(PODS, ns, pod(name, ns, pod=name))
    return client


def test_the_server_serves_admin_policies_at_v1alpha1(cluster):
    listed = cluster.request("GET", "/apis/policy.networking.k8s.io/v1alpha1")
    assert sorted((r["name"], r["namespaced"], tuple(r["shortNames"])) for r in listed["resources"]
                  if "/" not in r["name"]) == [
        ("adminnetworkpolicies", False, ("anp",)), ("baselineadminnetworkpolicies", False, ("banp",))]
    groups = {g["name"]: g for g in cluster.request("GET", "/apis")["groups"]}
    assert groups["policy.networking.k8s.io"]["preferredVersion"]["version"] == "v1alpha1"
    created = cluster.create(ANP, None, anp("tenancy", 3, ingress=[rule(ports=[{"portNumber": {"port": 80}}])]))
    assert created["spec"]["ingress"][0]["ports"] == [{"portNumber": {"port": 80, "protocol": "TCP"}}]
    assert "namespace" not in created["metadata"]
    assert cluster.get(ANP, None, "tenancy")["spec"]["priority"] == 3
    cluster.create(BANP, None, banp())
    with pytest.raises(ApiError) as e:
        cluster.create(BANP, None, banp("second"))
    assert e.value.code == 422 and [c["field"] for c in e.value.details["causes"]] == ["metadata.name"]
    assert [b["metadata"]["name"] for b in cluster.list(BANP)["items"]] == ["default"]
    with pytest.raises(ApiError) as e:
        cluster.request("POST", ANP.path(), anp("typed", "high"))
    assert e.value.code == 400 and e.value.message.startswith(
        'AdminNetworkPolicy in version "v1alpha1" cannot be handled as a AdminNetworkPolicy: json: cannot unmarshal')
    with pytest.raises(ApiError) as e:
        cluster.request("POST", ANP.path(), anp("strict", 1, subject={"namespaces": {}, "pod": {}}),
                        query={"fieldValidation": "Strict"})
    assert e.value.code == 400 and e.value.message.endswith('strict decoding error: unknown field "spec.subject.pod"')
    assert [a["metadata"]["name"] for a in cluster.list(ANP)["items"]] == ["tenancy"]


def test_get_netpol_yaml_shows_the_defaults(knet, cluster):
    cluster.create(NETPOL, "x", netpol("egress-dns", "x", egress=[{"ports": [{"port": 53}]}], ingress=[]))
    code, out, _ = knet("get", "netpol", "egress-dns", "-n", "x", "-o", "yaml")
    assert code == 0
    spec = yaml.safe_load(out)["spec"]
    assert spec == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                    "egress": [{"ports": [{"port": 53, "protocol": "TCP"}]}]}


def selected(text: str) -> list[list[str]]:
    """The Selected Pods lines of a description, split into cells."""
    lines = text.splitlines()
    start = lines.index("Selected Pods:") + 1
    return [line.split() for line in lines[start:] if line.startswith("  ")]


def test_get_and_describe_say_which_policies_isolate_and_select(knet, cluster):
    cluster.create(NETPOL, "x", netpol("deny-in", "x", podSelector={"matchLabels": {"pod": "a"}},
                                       policyTypes=["Ingress"]))
    cluster.create(NETPOL, "x", netpol("all-out", "x", policyTypes=["Egress"]))
    cluster.create(ANP, None, anp("blue", 20, subject={"namespaces": {"matchLabels": {"tenant": "blue"}}},
                                  ingress=[rule("Pass")]))
    cluster.create(ANP, None, anp("everyone", 10, ingress=[rule("Allow")]))
    cluster.create(BANP, None, banp(subject={"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels":
                                                                                              {"pod": "b"}}}}))

    code, out, _ = knet("get", "pods", "-A", "-o", "wide")
    assert code == 0
    head, *lines = out.splitlines()
    assert head.split()[-2:] == ["ISOLATED", "POLICIES"] and head.startswith("NAMESPACE   NAME   READY")
    cells = {(row.split()[0], row.split()[1]): row.split()[-2:] for row in lines}
    assert cells == {
        ("x", "a"): ["Ingress,Egress", "deny-in,all-out,anp/everyone,anp/blue"],
        ("x", "b"): ["Egress", "all-out,anp/everyone,anp/blue,banp/default"],
        ("y", "a"): ["<none>", "anp/everyone"],
        ("y", "b"): ["<none>", "anp/everyone,banp/default"],
    }
    assert "ISOLATED" not in knet("get", "pods", "-n", "x")[1]  # only in -o wide

    code, out, _ = knet("describe", "pod", "a", "-n", "x")
    assert code == 0
    assert out.endswith("Network Policies:\n"
                        "  Isolated for Ingress:        deny-in\n"
                        "  Isolated for Egress:         all-out\n"
                        "  AdminNetworkPolicies:        everyone, blue\n"
                        "  BaselineAdminNetworkPolicy:  <none>\n")

    code, out, _ = knet("describe", "netpol", "deny-in", "-n", "x")
    assert code == 0
    lines = out.splitlines()
    assert lines[lines.index("  PodSelector:     pod=a"):] == [
        "  PodSelector:     pod=a",
        "  Allowing ingress traffic:",
        "    <none> (Selected pods are isolated for ingress connectivity)",
        "  Not affecting egress traffic",
        "  Policy Types: Ingress",
        "Selected Pods:",
        "  a  <none>",
    ]
    code, out, _ = knet("describe", "anp", "blue")
    assert code == 0 and selected(out) == [["x/a", "<none>"], ["x/b", "<none>"]]
    code, out, _ = knet("describe", "banp", "default")
    assert code == 0 and selected(out) == [["x/b", "<none>"], ["y/b", "<none>"]]
    code, out, _ = knet("get", "anp")
    assert code == 0 and [line.split()[:2] for line in out.splitlines()] == [
        ["NAME", "PRIORITY"], ["blue", "20"], ["everyone", "10"]]
    code, out, _ = knet("get", "anp", "-o", "json")
    assert json.loads(out)["kind"] == "List"


def test_describe_pod_says_host_network_pods_are_never_selected():
    from knet.policy.isolation import isolation
    host = {"kind": "Pod", "metadata": {"name": "h", "namespace": "x"},
            "spec": {"hostNetwork": True, "containers": [{"name": "c", "image": "i"}]}}
    everything = netpol("deny", "x", policyTypes=["Ingress", "Egress"])
    text = describe(host, [], now=NOW, isolation=isolation(host, None, [everything], [anp()]))
    assert text.endswith("Network Policies:\n"
                         "  Isolated for Ingress:        <none> (hostNetwork pods are never selected: "
                         "their traffic is the node's)\n"
                         "  Isolated for Egress:         <none> (hostNetwork pods are never selected: "
                         "their traffic is the node's)\n"
                         "  AdminNetworkPolicies:        <none>\n"
                         "  BaselineAdminNetworkPolicy:  <none>\n")
    # the same pod without hostNetwork is isolated both ways and selected by the ANP
    host["spec"]["hostNetwork"] = False
    text = describe(host, [], now=NOW, isolation=isolation(host, None, [everything], [anp()]))
    assert "  Isolated for Ingress:        deny\n" in text and "  AdminNetworkPolicies:        a\n" in text
