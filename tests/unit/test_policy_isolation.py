"""knet.policy.isolation: which NetworkPolicies isolate a pod, which ANP/BANP select it."""

from __future__ import annotations

from knet.policy.isolation import (
    anp_order,
    anp_subject_selects,
    isolation,
    policy_types,
    selected_pods,
    selects,
    subject_pods,
)


def pod(name: str, ns: str = "x", labels: dict | None = None, host_network: bool = False) -> dict:
    spec = {"hostNetwork": True} if host_network else {}
    return {"metadata": {"name": name, "namespace": ns, "labels": labels or {"pod": name}}, "spec": spec}


def ns(name: str, **labels: str) -> dict:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, "ns": name, **labels}}}


def netpol(name: str, ns: str = "x", selector: dict | None = None, **spec) -> dict:
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"podSelector": {} if selector is None else selector, **spec}}


def anp(name: str, priority: int, subject: dict) -> dict:
    return {"metadata": {"name": name}, "spec": {"priority": priority, "subject": subject}}


def test_empty_pod_selector_selects_every_pod_of_its_namespace_only():
    p = netpol("deny", policyTypes=["Ingress"])
    assert selects(p, pod("a"))
    assert selects(p, pod("b", labels={}))
    assert not selects(p, pod("a", ns="y"))


def test_selector_match_labels_and_expressions():
    p = netpol("p", selector={"matchLabels": {"pod": "a"},
                              "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]})
    assert selects(p, pod("a"))
    assert not selects(p, pod("a", labels={"pod": "a", "tier": "db"}))
    assert not selects(p, pod("b"))


def test_host_network_pods_are_never_selected():
    h = pod("h", host_network=True)
    assert not selects(netpol("all"), h)
    assert not anp_subject_selects(anp("a", 1, {"namespaces": {}}), h, ns("x"))
    assert isolation(h, ns("x"), [netpol("all", policyTypes=["Ingress", "Egress"])],
                     [anp("a", 1, {"namespaces": {}})]) == {
        "Ingress": [], "Egress": [], "AdminNetworkPolicy": [], "BaselineAdminNetworkPolicy": []}


def test_policy_types_default_as_the_api_server_does():
    assert policy_types(netpol("p")) == ["Ingress"]
    assert policy_types(netpol("p", egress=[])) == ["Ingress"]
    assert policy_types(netpol("p", egress=[{}])) == ["Ingress", "Egress"]
    assert policy_types(netpol("p", policyTypes=["Egress"], ingress=[{}])) == ["Egress"]


def test_isolation_per_direction_sorted_and_without_duplicates():
    pols = [
        netpol("z-egress", policyTypes=["Egress"]),
        netpol("a-ingress", selector={"matchLabels": {"pod": "a"}}, ingress=[{}]),
        netpol("both", policyTypes=["Ingress", "Egress"]),
        netpol("other-pod", selector={"matchLabels": {"pod": "b"}}, policyTypes=["Ingress"]),
        netpol("other-ns", ns="y", policyTypes=["Ingress", "Egress"]),
    ]
    got = isolation(pod("a"), ns("x"), pols)
    assert got["Ingress"] == ["x/a-ingress", "x/both"]
    assert got["Egress"] == ["x/both", "x/z-egress"]
    assert isolation(pod("c"), ns("x"), pols)["Ingress"] == ["x/both"]
    assert isolation(pod("a", ns="z"), ns("z"), pols) == {
        "Ingress": [], "Egress": [], "AdminNetworkPolicy": [], "BaselineAdminNetworkPolicy": []}


def test_anp_subjects_namespaces_and_pods():
    by_ns = anp("by-ns", 10, {"namespaces": {"matchLabels": {"ns": "x"}}})
    by_pod = anp("by-pod", 5, {"pods": {"namespaceSelector": {"matchLabels": {"ns": "y"}},
                                        "podSelector": {"matchLabels": {"pod": "b"}}}})
    everyone = anp("everyone", 5, {"namespaces": {}})
    assert anp_subject_selects(by_ns, pod("a"), ns("x"))
    assert not anp_subject_selects(by_ns, pod("a", ns="y"), ns("y"))
    assert anp_subject_selects(by_pod, pod("b", ns="y"), ns("y"))
    assert not anp_subject_selects(by_pod, pod("a", ns="y"), ns("y"))
    assert not anp_subject_selects(by_pod, pod("b"), ns("x"))
    # evaluation order: priority, then name
    assert [a["metadata"]["name"] for a in anp_order([by_ns, everyone, by_pod])] == ["by-pod", "everyone", "by-ns"]
    got = isolation(pod("b", ns="y"), ns("y"), [], [by_ns, everyone, by_pod])
    assert got["AdminNetworkPolicy"] == ["by-pod", "everyone"]
    assert got["Ingress"] == [] and got["Egress"] == []


def test_anp_namespace_selector_uses_namespace_labels_not_pod_labels():
    a = anp("a", 1, {"namespaces": {"matchLabels": {"team": "red"}}})
    p = pod("a", labels={"team": "red"})
    assert not anp_subject_selects(a, p, ns("x"))
    assert anp_subject_selects(a, p, ns("x", team="red"))


def test_missing_namespace_object_falls_back_to_the_metadata_name_label():
    a = anp("a", 1, {"namespaces": {"matchLabels": {"kubernetes.io/metadata.name": "x"}}})
    assert anp_subject_selects(a, pod("a"), None)
    assert not anp_subject_selects(a, pod("a", ns="y"), None)


def test_empty_subject_selects_nothing():
    assert not anp_subject_selects(anp("a", 1, {}), pod("a"), ns("x"))


def test_banp_reported_when_its_subject_selects():
    banp = {"metadata": {"name": "default"}, "spec": {"subject": {"namespaces": {"matchLabels": {"ns": "x"}}}}}
    assert isolation(pod("a"), ns("x"), [], [], banp)["BaselineAdminNetworkPolicy"] == ["default"]
    assert isolation(pod("a", ns="y"), ns("y"), [], [], banp)["BaselineAdminNetworkPolicy"] == []


def test_selected_and_subject_pods():
    pods = [pod("a"), pod("b"), pod("a", ns="y"), pod("h", host_network=True)]
    assert [p["metadata"]["name"] for p in selected_pods(netpol("p"), pods)] == ["a", "b"]
    a = anp("a", 1, {"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"pod": "a"}}}})
    got = subject_pods(a, pods, {"x": ns("x"), "y": ns("y")})
    assert [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in got] == [("x", "a"), ("y", "a")]
