"""The names `knet trace` reads: the comments the proxy and policy rules put
on the rules and elements a packet meets (knet.trace.explain parses them)."""

from __future__ import annotations

import re

from knet.net.nftfake import FakeNft
from knet.policy.rules import TABLE as POLICY_TABLE
from knet.policy.rules import Compiler
from knet.proxy.model import Endpoint, ServicePort
from knet.proxy.rules import LADDER_MAX, desired, full
from knet.trace import explain

SUBNET = "10.244.0.0/16"


def sp(n: int, **kw) -> ServicePort:
    eps = tuple(Endpoint(f"10.244.1.{i}", 8080, "worker-1") for i in range(1, n + 1))
    return ServicePort("shop", "web", "http", "tcp", "10.96.0.20", 80, kw.pop("node_port", None), (), eps, **kw)


def rules(ports) -> list[str]:
    fake = FakeNft()
    fake.run(full(desired(ports, SUBNET, "worker-1")))
    return [r for c in fake.table("ip", "knet-proxy").chains.values() for r in c.rules]


def test_an_endpoint_chains_dnat_names_its_service_port_and_place():
    for n, kw in ((LADDER_MAX + 2, {}), (2, {"affinity_seconds": 60})):
        dnats = [r for r in rules([sp(n, **kw)]) if "dnat to" in r]
        found = sorted(re.search(r'dnat to (\S+) comment "shop/web:80/tcp endpoint (\d+) of (\d+)"', r).groups()
                       for r in dnats)
        assert sorted((f"10.244.1.{i}:8080", str(i), str(n)) for i in range(1, n + 1)) == found, kw


def test_a_ladder_is_named_once_on_its_chains_first_rule_and_its_dnats_in_endpoint_order():
    """knet trace numbers a ladder's DNAT by its place among the chain's DNATs
    (knet.trace.explain.Explainer.ladder_place): they must come in endpoint
    order, after the rule naming the service port."""
    local = ServicePort("shop", "web", "http", "tcp", "10.96.0.20", 80, 30080, (),
                        tuple(Endpoint(f"10.244.1.{i}", 8080, "worker-1" if i < 3 else "worker-2") for i in (1, 2, 3)),
                        etp_local=True)
    fake = FakeNft()
    fake.run(full(desired([local], SUBNET, "worker-1")))
    chains = {n: c.rules for n, c in fake.table("ip", "knet-proxy").chains.items() if n.startswith(("svc-", "ext-"))}
    assert len(chains) == 2
    for name, rules_ in chains.items():
        assert rules_[0].endswith(' comment "shop/web:80/tcp"'), name
        dnats = [r for r in rules_ if "dnat to" in r]
        assert all("comment" not in r for r in dnats)
        want = [1, 2] if name.startswith("ext-") else [1, 2, 3]  # the external chain: this node's endpoints only
        assert [r.split("dnat to ")[1] for r in dnats] == [f"10.244.1.{i}:8080" for i in want]


def test_a_service_without_endpoints_is_named_on_its_map_elements():
    text = full(desired([sp(0, node_port=30080)], SUBNET, "worker-1"))
    assert 'add element ip knet-proxy no-endpoint-services { 10.96.0.20 . tcp . 80 comment "shop/web:80/tcp" ' \
           ': goto reject-chain }' in text
    assert '{ tcp . 30080 comment "shop/web:80/tcp" : goto reject-chain }' in text
    fake = FakeNft()
    fake.run(text)  # the fake keys elements without their comment, as nft does
    assert "10.96.0.20 . tcp . 80" in fake.table("ip", "knet-proxy").sets["no-endpoint-services"].elements


def test_a_local_policy_without_local_endpoints_names_the_drop():
    only_remote = ServicePort("shop", "web", "http", "tcp", "10.96.0.20", 80, 30080, (),
                              (Endpoint("10.244.2.1", 8080, "worker-2"),), etp_local=True)
    drops = [r for r in rules([only_remote]) if r.startswith("drop")]
    assert drops == ['drop comment "shop/web:80/tcp no local endpoint"']


def test_a_pods_isolation_chain_names_each_policy_it_jumps_to():
    c = Compiler("worker")
    c.upsert("Namespace", {"kind": "Namespace", "metadata": {"name": "shop"}})
    c.upsert("Pod", {"kind": "Pod", "metadata": {"namespace": "shop", "name": "db", "labels": {"app": "db"}},
              "spec": {"nodeName": "worker", "containers": [{"name": "c"}]},
              "status": {"phase": "Running", "podIP": "10.244.1.5"}})
    for name in ("default-deny", "allow-api"):
        c.upsert("NetworkPolicy", {"kind": "NetworkPolicy", "metadata": {"namespace": "shop", "name": name},
                  "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}})
    fake = FakeNft()
    fake.run(c.full())
    chain = next(ch for n, ch in fake.table("inet", POLICY_TABLE).chains.items() if re.fullmatch(r"ingress-[0-9a-f]{12}", n))
    assert sorted(r.split(" comment ")[1] for r in chain.rules[:-1]) == ['"shop/allow-api"', '"shop/default-deny"']
    assert chain.rules[-1] == 'drop comment "shop/db ingress isolated"'


def test_the_explainer_knows_the_policy_table_by_its_name():
    assert explain.POLICY_TABLE == POLICY_TABLE
