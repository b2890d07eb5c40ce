"""The policy engine's sync loop against the nftables fake (no root, no API
server, virtual time), with the real Compiler: the first sync writes the
table whole, later ones only what events changed (nothing for no change),
a burst of events is one transaction, a failed transaction is reported and
followed by a full sync, the periodic resync repairs a table changed behind
the engine's back, an API without the admin-policy kinds does not hold
NetworkPolicy up, and a partial sync leaves the same table a full one makes."""

import policy_tracer  # P-rules' packet tracer, run over what the fake received
import trio
import trio.testing

from knet.api.informer import Informer
from knet.api.resources import by_kind
from knet.net.nftfake import FakeNft
from knet.policy.rules import TABLE, Compiler
from knet.policy.sync import KINDS, OPTIONAL_GRACE, PolicyEngine

NODE = "w1"


def namespace(name, **labels):
    return {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **labels}}}


def pod(ns, name, ip, node=NODE, **labels):
    return {"metadata": {"namespace": ns, "name": name, "uid": f"uid-{ns}-{name}", "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "c", "ports": [{"containerPort": 80}]}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}}


def node(name, ip):
    return {"metadata": {"name": name}, "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}


def netpol(ns, name, spec):
    spec = {"policyTypes": ["Ingress"], **spec}
    return {"metadata": {"namespace": ns, "name": name}, "spec": spec}


DENY_ALL = {"podSelector": {}}
ALLOW_CLIENTS = {"podSelector": {"matchLabels": {"app": "server"}},
                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}],
                              "ports": [{"protocol": "TCP", "port": 80}]}]}


FROM_TEAM_B = {"podSelector": {"matchLabels": {"app": "server"}},
               "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "b"}}}],
                            "ports": [{"protocol": "TCP", "port": 81}]}]}
SERVER, NEAR, FAR, OTHER = "10.244.1.2", "10.244.1.3", "10.244.2.3", "10.244.2.4"


def world():
    return {
        "Namespace": [namespace("pa", team="a"), namespace("pb", team="b")],
        "Node": [node("w1", "192.168.56.11"), node("w2", "192.168.56.12")],
        "Pod": [pod("pa", "server", "10.244.1.2", app="server"), pod("pa", "near", "10.244.1.3", role="client"),
                pod("pa", "far", "10.244.2.3", node="w2", role="client"),
                pod("pb", "other", "10.244.2.4", node="w2", role="other")],
        "NetworkPolicy": [], "AdminNetworkPolicy": [], "BaselineAdminNetworkPolicy": [],
    }


async def in_place(fn, *args):
    return fn(*args)


class Rig:
    """A policy engine over informers the test feeds, writing to a FakeNft."""

    def __init__(self, resync=1e6, kinds=KINDS):
        self.informers = {k: Informer(None, by_kind(k)) for k in kinds}
        self.nft = FakeNft()
        self.reports = 0
        self.engine = PolicyEngine(self.informers, self.nft, NODE, on_synced=self._synced, resync=resync,
                                   run_sync=in_place)

    def _synced(self):
        self.reports += 1

    async def load(self, objects, rv):
        for kind, items in objects.items():
            if kind in self.informers:
                await self.informers[kind].replace(items, rv)

    async def event(self, kind, etype, obj, rv):
        """One write, as the API server's watches deliver it: the event to its kind's
        informer and a BOOKMARK at the same revision to every other one."""
        for k, informer in self.informers.items():
            if k == kind:
                await informer.handle(etype, obj, rv)
            elif informer.has_synced():
                await informer.handle("BOOKMARK", {"metadata": {"resourceVersion": str(rv)}}, rv)

    async def next_sync(self, action=None):
        """Do `action` (a coroutine), then wait until the engine has run one more sync pass."""
        before = (self.engine.syncs, self.reports)
        if action is not None:
            await action
        while (self.engine.syncs, self.reports) == before:
            await trio.sleep(0.01)

    def table(self):
        return self.nft.table("inet", TABLE)

    def trace(self, src, dst, port=80, proto="tcp"):
        """A new connection's first packet through this node's (w1's) table."""
        return policy_tracer.trace(self.table(), src, dst, port, proto, local_node_ips=("192.168.56.11",))


def run(main):
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def model(nft):
    """The fake's table as comparable plain data: chains (hook, rules) and sets (spec, elements)."""
    t = nft.table("inet", TABLE)
    return ({name: (c.hook, sorted(c.rules)) for name, c in t.chains.items()},
            {name: (s.kind, s.spec, dict(s.elements)) for name, s in t.sets.items()})


def full_of(objects, node=NODE):
    """The table a fresh engine's first sync makes from `objects`."""
    compiler = Compiler(node)
    for kind, items in objects.items():
        for obj in items:
            compiler.upsert(kind, obj)
    nft = FakeNft()
    nft.run(compiler.full())
    return model(nft)


def test_first_sync_is_full_then_only_what_events_changed():
    async def main():
        rig = Rig()
        objs = world()
        async with trio.open_nursery() as n:
            n.start_soon(rig.engine.run)
            await rig.next_sync(rig.load(objs, 10))
            assert rig.engine.full_syncs == 1 and rig.engine.synced == 10
            assert len(rig.nft.transactions) == 1 and rig.table() is not None
            assert rig.engine.last_ops == rig.engine.compiler.ops(rig.nft.transactions[0]) > 0
            assert rig.trace(FAR, SERVER) == "accept"

            deny = netpol("pa", "deny-all", DENY_ALL)
            await rig.next_sync(rig.event("NetworkPolicy", "ADDED", deny, 11))
            assert len(rig.nft.transactions) == 2 and rig.engine.full_syncs == 1 and rig.engine.synced == 11
            partial = rig.nft.transactions[1]
            assert f"delete table inet {TABLE}" not in partial and f"flush table inet {TABLE}" not in partial
            assert rig.engine.last_ops > 0
            objs["NetworkPolicy"] = [deny]
            assert model(rig.nft) == full_of(objs)  # the partial sync made what a full one makes
            assert rig.trace(FAR, SERVER) == "drop" and rig.trace(NEAR, SERVER) == "drop" and rig.trace(FAR, NEAR) == "drop"

            await rig.next_sync(rig.event("NetworkPolicy", "MODIFIED", dict(deny), 12))
            assert len(rig.nft.transactions) == 2 and rig.engine.last_ops == 0  # no change, no transaction
            assert rig.engine.synced == 12  # yet the revision is reached: `apply --wait` returns

            allow = netpol("pa", "allow-clients", ALLOW_CLIENTS)
            from_b = netpol("pa", "from-team-b", FROM_TEAM_B)
            await rig.next_sync(rig.event("NetworkPolicy", "ADDED", allow, 13))
            policy_ops = rig.engine.last_ops
            objs["NetworkPolicy"] = [deny, allow]
            assert model(rig.nft) == full_of(objs)
            assert rig.trace(FAR, SERVER) == "accept" and rig.trace(FAR, SERVER, 81) == "drop"

            moved = pod("pb", "other", "10.244.2.4", node="w2", role="client")  # a podSelector alone: pa's pods only
            await rig.next_sync(rig.event("Pod", "MODIFIED", moved, 14))
            assert rig.engine.last_ops == 0 and len(rig.nft.transactions) == 3
            left = pod("pa", "near", "10.244.1.3", role="gone")  # no longer a peer of allow-clients
            await rig.next_sync(rig.event("Pod", "MODIFIED", left, 15))
            assert 0 < rig.engine.last_ops <= policy_ops
            assert rig.trace(NEAR, SERVER) == "drop" and rig.trace(FAR, SERVER) == "accept"
            objs["Pod"] = [moved if p["metadata"]["name"] == "other" else left if p["metadata"]["name"] == "near"
                           else p for p in objs["Pod"]]
            assert model(rig.nft) == full_of(objs)

            relabelled = namespace("pb", team="c")  # the pb pods leave FROM_TEAM_B's peers
            await rig.next_sync(rig.event("NetworkPolicy", "ADDED", from_b, 16))
            assert rig.trace(OTHER, SERVER, 81) == "accept"
            await rig.next_sync(rig.event("Namespace", "MODIFIED", relabelled, 17))
            assert rig.engine.last_ops > 0 and rig.trace(OTHER, SERVER, 81) == "drop"
            objs["Namespace"] = [namespace("pa", team="a"), relabelled]
            objs["NetworkPolicy"].append(from_b)
            assert model(rig.nft) == full_of(objs)

            await rig.next_sync(rig.event("NetworkPolicy", "DELETED", allow, 18))
            assert rig.trace(FAR, SERVER) == "drop"
            await rig.next_sync(rig.event("NetworkPolicy", "DELETED", deny, 19))
            assert rig.trace(FAR, NEAR) == "accept" and rig.trace(FAR, SERVER) == "drop"  # from_b isolates the server
            await rig.next_sync(rig.event("Pod", "DELETED", objs["Pod"][0], 20))
            objs["NetworkPolicy"], objs["Pod"] = [from_b], objs["Pod"][1:]
            assert model(rig.nft) == full_of(objs)
            assert rig.engine.full_syncs == 1 and rig.engine.synced == 20
            n.cancel_scope.cancel()

    run(main)


def test_a_burst_of_events_is_one_transaction():
    async def main():
        rig = Rig()
        objs = world()
        async with trio.open_nursery() as n:
            n.start_soon(rig.engine.run)
            await rig.next_sync(rig.load(objs, 10))

            async def burst():
                for i in range(20):
                    await rig.event("NetworkPolicy", "ADDED", netpol("pa", f"p{i}", ALLOW_CLIENTS), 11 + i)

            await rig.next_sync(burst())
            assert len(rig.nft.transactions) == 2 and rig.engine.synced == 30
            objs["NetworkPolicy"] = [netpol("pa", f"p{i}", ALLOW_CLIENTS) for i in range(20)]
            assert model(rig.nft) == full_of(objs)
            n.cancel_scope.cancel()

    run(main)


def test_a_failed_transaction_is_reported_and_followed_by_a_full_sync():
    async def main():
        rig = Rig()
        objs = world()
        async with trio.open_nursery() as n:
            n.start_soon(rig.engine.run)
            await rig.next_sync(rig.load(objs, 10))
            before = model(rig.nft)
            rig.nft.fail_next("Could not process rule: No such file or directory")
            deny = netpol("pa", "deny-all", DENY_ALL)
            await rig.next_sync(rig.event("NetworkPolicy", "ADDED", deny, 11))
            assert "No such file or directory" in rig.engine.last_error and rig.engine.synced == 10
            assert model(rig.nft) == before  # the failed transaction changed nothing
            assert rig.reports == 2  # the failure itself is reported, for `apply --wait` to name
            await rig.next_sync()  # a second later, by itself: the whole table again
            assert rig.engine.full_syncs == 2 and rig.engine.last_error == "" and rig.engine.synced == 11
            objs["NetworkPolicy"] = [deny]
            assert model(rig.nft) == full_of(objs)
            n.cancel_scope.cancel()

    run(main)


def test_the_periodic_resync_repairs_a_table_changed_behind_the_engines_back():
    async def main():
        rig = Rig(resync=5)
        objs = world()
        objs["NetworkPolicy"] = [netpol("pa", "deny-all", DENY_ALL), netpol("pa", "allow", ALLOW_CLIENTS)]
        async with trio.open_nursery() as n:
            n.start_soon(rig.engine.run)
            await rig.next_sync(rig.load(objs, 10))
            good = model(rig.nft)
            t = rig.table()
            chain = next(name for name, c in t.chains.items() if c.rules and not c.hook)
            rig.nft.run(f"flush chain inet {TABLE} {chain}\nadd chain inet {TABLE} left-by-hand\n")
            assert model(rig.nft) != good
            sent = len(rig.nft.transactions)
            await rig.next_sync()  # nothing changed in the API: the resync's doing
            assert rig.engine.full_syncs == 2 and len(rig.nft.transactions) == sent + 1
            assert model(rig.nft) == good
            n.cancel_scope.cancel()

    run(main)


def test_an_api_without_the_admin_policy_kinds_does_not_hold_network_policy_up():
    async def main():
        rig = Rig()
        objs = world()
        objs["NetworkPolicy"] = [netpol("pa", "deny-all", DENY_ALL)]
        del objs["AdminNetworkPolicy"], objs["BaselineAdminNetworkPolicy"]
        async with trio.open_nursery() as n:
            n.start_soon(rig.engine.run)
            start = trio.current_time()
            await rig.next_sync(rig.load(objs, 10))  # the ANP and BANP informers never list (a 404)
            assert trio.current_time() - start >= OPTIONAL_GRACE
            assert rig.engine.synced == 10 and rig.engine.full_syncs == 1
            assert rig.engine.waiting_for == ["AdminNetworkPolicy", "BaselineAdminNetworkPolicy"]
            assert model(rig.nft) == full_of(objs)
            await rig.next_sync(rig.informers["AdminNetworkPolicy"].replace([], 12))  # served after all
            await rig.next_sync(rig.informers["BaselineAdminNetworkPolicy"].replace([], 12))
            assert rig.engine.waiting_for == [] and rig.engine.synced == 10  # the NP informer is at 10 still
            await rig.next_sync(rig.event("NetworkPolicy", "BOOKMARK", {"metadata": {}}, 12))
            assert rig.engine.synced == 12
            n.cancel_scope.cancel()

    run(main)


def test_a_missing_required_kind_is_a_clear_error():
    try:
        Rig(kinds=("Pod", "Namespace", "NetworkPolicy"))
    except ValueError as e:
        assert "Node" in str(e)
    else:
        raise AssertionError("an engine without a Node informer was made")


def test_status_figures():
    async def main():
        rig = Rig()
        objs = world()
        objs["NetworkPolicy"] = [netpol("pa", "deny-all", DENY_ALL), netpol("pa", "allow", ALLOW_CLIENTS)]
        async with trio.open_nursery() as n:
            n.start_soon(rig.engine.run)
            await rig.next_sync(rig.load(objs, 10))
            status = rig.engine.status()
            assert status == {"policies": 2, "syncs": 1, "fullSyncs": 1, "lastOps": rig.engine.last_ops}
            n.cancel_scope.cancel()

    run(main)
