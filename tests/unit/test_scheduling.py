from collections import Counter

from knet.controllers.scheduling import choose_node, tolerates, why_not


def node(name, labels=None, taints=None, ready=True, unschedulable=False):
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": {"taints": taints or [], "unschedulable": unschedulable},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
NODES = [node("control-plane", {"node-role.kubernetes.io/control-plane": ""}, [CP_TAINT]),
         node("w1", {"zone": "a"}), node("w2", {"zone": "b"})]


def pod(**spec):
    return {"metadata": {"name": "p"}, "spec": spec}


def test_fewest_pods_wins_and_ties_go_by_name():
    assert choose_node(pod(), NODES, Counter({"w1": 2, "w2": 1})) == ("w2", "")
    assert choose_node(pod(), NODES, Counter()) == ("w1", "")


def test_control_plane_taint_needs_a_toleration():
    only_cp = pod(nodeSelector={"node-role.kubernetes.io/control-plane": ""})
    name, msg = choose_node(only_cp, NODES, Counter())
    assert name is None
    assert msg == ("0/3 nodes are available: 1 node(s) had untolerated taint "
                   "{node-role.kubernetes.io/control-plane: }, 2 node(s) didn't match Pod's node affinity/selector.")
    tolerant = pod(nodeSelector={"node-role.kubernetes.io/control-plane": ""},
                   tolerations=[{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}])
    assert choose_node(tolerant, NODES, Counter())[0] == "control-plane"


def test_tolerations_match_like_kubernetes():
    taint = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    assert tolerates([{"operator": "Exists"}], taint)
    assert tolerates([{"key": "dedicated", "operator": "Equal", "value": "gpu"}], taint)
    assert not tolerates([{"key": "dedicated", "operator": "Equal", "value": "cpu"}], taint)
    assert not tolerates([{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}], taint)
    assert tolerates([{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}], taint)


def test_required_node_affinity_operators():
    def aff(*exprs):
        return pod(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": list(exprs)}]}}})
    assert why_not(aff({"key": "zone", "operator": "In", "values": ["a"]}), NODES[1]) is None
    assert why_not(aff({"key": "zone", "operator": "In", "values": ["a"]}), NODES[2]) is not None
    assert why_not(aff({"key": "zone", "operator": "NotIn", "values": ["a"]}), NODES[2]) is None
    assert why_not(aff({"key": "zone", "operator": "Exists"}), NODES[1]) is None
    assert why_not(aff({"key": "zone", "operator": "DoesNotExist"}), NODES[1]) is not None
    gt = node("big", {"cores": "16"})
    assert why_not(aff({"key": "cores", "operator": "Gt", "values": ["8"]}), gt) is None
    assert why_not(aff({"key": "cores", "operator": "Lt", "values": ["8"]}), gt) is not None


def test_not_ready_and_cordoned_nodes_are_skipped():
    nodes = [node("w1", ready=False), node("w2", unschedulable=True)]
    name, msg = choose_node(pod(), nodes, Counter())
    assert name is None
    assert msg == "0/2 nodes are available: 1 node(s) were not ready, 1 node(s) were unschedulable."


def _dns_pod(name, ns="kube-system", **spec):
    return {"metadata": {"name": name, "namespace": ns, "labels": {"k8s-app": "kube-dns"}}, "spec": spec}


COREDNS_ANTI = {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
    "weight": 100, "podAffinityTerm": {
        "labelSelector": {"matchExpressions": [{"key": "k8s-app", "operator": "In", "values": ["kube-dns"]}]},
        "topologyKey": "kubernetes.io/hostname"}}]}}
HOSTS = [node(n, {"kubernetes.io/hostname": n, "zone": z}) for n, z in (("w1", "a"), ("w2", "a"), ("w3", "b"))]


def test_preferred_anti_affinity_keeps_replicas_apart_before_fewest_pods():
    second = _dns_pod("coredns-2", affinity=COREDNS_ANTI)
    placed = {"w1": [_dns_pod("coredns-1")], "w2": [pod(), pod()]}
    counts = Counter({"w1": 1, "w2": 2})
    # w3 is emptiest anyway; without w3, w2's two pods weigh less than a kube-dns pod on w1.
    assert choose_node(second, HOSTS, counts, placed)[0] == "w3"
    assert choose_node(second, HOSTS[:2], counts, placed)[0] == "w2"
    # Without the preference, fewest pods decides; a matching pod in another namespace does not count.
    assert choose_node(_dns_pod("other"), HOSTS[:2], counts, placed)[0] == "w1"
    assert choose_node(_dns_pod("x", ns="default", affinity=COREDNS_ANTI), HOSTS[:2], counts, placed)[0] == "w1"


def test_anti_affinity_topology_is_every_node_sharing_the_key():
    zone_anti = {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
        "weight": 10, "podAffinityTerm": {"labelSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                                          "topologyKey": "zone", "namespaceSelector": {}}}]}}
    placed = {"w1": [_dns_pod("coredns-1", ns="elsewhere")]}
    counts = Counter({"w1": 1, "w3": 5})
    # w2 shares zone a with w1: both are avoided, though w2 is empty and w3 holds five pods.
    assert choose_node(_dns_pod("n", affinity=zone_anti), HOSTS, counts, placed)[0] == "w3"


def test_a_full_node_is_too_many_pods():
    full = {"metadata": {"name": "w1"}, "spec": {},
            "status": {"allocatable": {"pods": "2"}, "conditions": [{"type": "Ready", "status": "True"}]}}
    roomy = {**full, "metadata": {"name": "w2"}, "status": {**full["status"], "allocatable": {"pods": "110"}}}
    assert choose_node(pod(), [full, roomy], Counter({"w1": 2, "w2": 50})) == ("w2", "")
    assert choose_node(pod(), [full], Counter({"w1": 2})) == (None, "0/1 nodes are available: 1 Too many pods.")
