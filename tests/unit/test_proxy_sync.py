"""The proxy's sync loop against the nftables fake (no root, no API server,
virtual time): the first sync writes the table whole, later ones only what
events changed, a failed transaction is followed by a full sync, the
periodic resync repairs a table changed behind the proxy's back, and
packets are traced over what the fake actually received."""

import trio
import trio.testing
from test_proxy_rules import trace_table  # the packet tracer, run over the fake's table

from knet.api.informer import Informer
from knet.api.resources import by_kind
from knet.net.nftfake import FakeNft
from knet.proxy.model import service_ports
from knet.proxy.rules import TABLE, per_service
from knet.proxy.sync import Proxy
from knet.proxy.tracker import ChangeTracker

SUBNET = "10.244.0.0/16"


def svc(name, ip, port=80, proto="TCP", **spec):
    return {"metadata": {"namespace": "default", "name": name},
            "spec": {"clusterIP": ip, "ports": [{"port": port, "protocol": proto}], **spec}}


def eps(name, *ips, port=8080, proto="TCP", node="w1"):
    return {"metadata": {"namespace": "default", "name": name + "-x", "labels": {"kubernetes.io/service-name": name}},
            "ports": [{"name": "", "port": port, "protocol": proto}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}, "nodeName": node} for ip in ips]}


def ready_node(name):
    return {"metadata": {"name": name}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}


class RecordingExtras:
    def __init__(self):
        self.announced: list[tuple[set, set]] = []
        self.cleared: list[set] = []
        self.health: dict[int, object] = {}

    def announce(self, want, have):
        self.announced.append((set(want), set(have)))

    def clear_udp_conntrack(self, pairs):
        self.cleared.append(set(pairs))

    async def serve_health(self, port, local_endpoints):
        self.health[port] = local_endpoints
        try:
            await trio.sleep_forever()
        finally:
            del self.health[port]


async def in_place(fn, *args):
    return fn(*args)


class Rig:
    """A proxy over informers the test feeds, writing to a FakeNft."""

    def __init__(self, resync=1e6, node="w1"):
        self.services = Informer(None, by_kind("Service"))
        self.slices = Informer(None, by_kind("EndpointSlice"))
        self.nodes = Informer(None, by_kind("Node"))
        self.nft = FakeNft()
        self.extras = RecordingExtras()
        self.reports = 0
        self.proxy = Proxy(self.services, self.slices, self.nft, SUBNET, nodes=self.nodes, node=node,
                           on_synced=self._synced, resync=resync, extras=self.extras, run_sync=in_place)

    def _synced(self):
        self.reports += 1

    def trace(self, daddr, dport, saddr="10.244.5.5", proto="tcp"):
        return trace_table(self.nft.table("ip", TABLE), saddr, daddr, dport, proto)

    async def next_sync(self, action=None):
        """Do `action` (a coroutine), then wait until the proxy has run one more sync pass."""
        before = (self.proxy.syncs, self.reports)
        if action is not None:
            await action
        while (self.proxy.syncs, self.reports) == before:
            await trio.sleep(0.01)


def run(main):
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_first_sync_is_full_then_only_what_events_changed():
    async def main():
        rig = Rig()
        async with trio.open_nursery() as n:
            n.start_soon(rig.proxy.run)
            await rig.services.replace([svc("web", "10.96.0.10")], 10)
            await rig.next_sync(rig.slices.replace([eps("web", "10.244.1.2")], 11))
            assert rig.proxy.full_syncs == 1 and rig.proxy.synced == 10
            first = rig.nft.transactions[0]
            assert len(rig.nft.transactions) == 1 and first.startswith(f"add table ip {TABLE}\nflush table")
            assert rig.trace("10.96.0.10", 80) == {("dnat", "10.244.1.2:8080", False): 1}

            await rig.next_sync(rig.slices.handle("MODIFIED", eps("web", "10.244.1.2", "10.244.2.3"), 12))
            assert len(rig.nft.transactions) == 2 and rig.proxy.full_syncs == 1
            partial = rig.nft.transactions[1]
            assert "flush table" not in partial and all(f" ip {TABLE} " in c for c in partial.splitlines())
            assert rig.proxy.last_ops == len(partial.splitlines())
            assert set(rig.trace("10.96.0.10", 80).values()) == {0.5}

            await rig.next_sync(rig.slices.handle("MODIFIED", eps("web", "10.244.1.2", "10.244.2.3"), 13))
            assert len(rig.nft.transactions) == 2 and rig.proxy.last_ops == 0  # no change, no transaction

            await rig.next_sync(rig.services.handle("ADDED", svc("db", "10.96.0.11", 5432), 14))
            await rig.next_sync(rig.slices.handle("ADDED", eps("db", "10.244.3.3", port=5432), 15))
            assert rig.proxy.synced == 14 and rig.proxy.full_syncs == 1
            assert rig.trace("10.96.0.11", 5432) == {("dnat", "10.244.3.3:5432", False): 1}

            await rig.next_sync(rig.services.handle("DELETED", svc("web", "10.96.0.10"), 16))
            assert rig.trace("10.96.0.10", 80) == {("accept",): 1}  # no rule for it any more
            assert not [c for c in rig.nft.table("ip", TABLE).chains if c.startswith("svc-")
                        and c != service_ports([svc("db", "10.96.0.11", 5432)],
                                               [eps("db", "10.244.3.3", port=5432)])[0].chain]
            n.cancel_scope.cancel()

    run(main)


def test_a_failed_transaction_is_reported_and_followed_by_a_full_sync():
    async def main():
        rig = Rig()
        async with trio.open_nursery() as n:
            n.start_soon(rig.proxy.run)
            await rig.services.replace([svc("web", "10.96.0.10")], 10)
            await rig.next_sync(rig.slices.replace([eps("web", "10.244.1.2")], 10))
            rig.nft.fail_next("Could not process rule: No such file or directory")
            await rig.next_sync(rig.services.handle("ADDED", svc("db", "10.96.0.11", 5432), 11))
            assert "No such file or directory" in rig.proxy.last_error and rig.proxy.synced == 10
            assert rig.trace("10.96.0.11", 5432) == {("accept",): 1}  # the failed transaction changed nothing
            assert rig.reports == 2  # the failure itself is reported, for `apply --wait` to name
            await rig.next_sync()  # a second later, by itself: the whole table again
            assert rig.proxy.full_syncs == 2 and rig.proxy.last_error == ""
            assert rig.nft.transactions[-1].startswith(f"add table ip {TABLE}\nflush table")
            assert rig.trace("10.96.0.11", 5432) == {("reject",): 1}  # no endpoint yet: refused at once
            assert rig.trace("10.96.0.10", 80) == {("dnat", "10.244.1.2:8080", False): 1}
            n.cancel_scope.cancel()

    run(main)


def test_the_periodic_resync_repairs_a_table_changed_behind_the_proxys_back():
    async def main():
        rig = Rig(resync=5)
        async with trio.open_nursery() as n:
            n.start_soon(rig.proxy.run)
            await rig.services.replace([svc("web", "10.96.0.10")], 10)
            await rig.next_sync(rig.slices.replace([eps("web", "10.244.1.2")], 10))
            chain = service_ports([svc("web", "10.96.0.10")], [eps("web", "10.244.1.2")])[0].chain
            rig.nft.run(f"flush chain ip {TABLE} {chain}\ndelete element ip {TABLE} service-ips "
                        f"{{ 10.96.0.10 . tcp . 80 }}\nadd chain ip {TABLE} left-by-hand\n")
            assert rig.trace("10.96.0.10", 80) == {("accept",): 1}
            sent = len(rig.nft.transactions)
            await rig.next_sync()  # nothing changed in the API: the resync's doing
            assert rig.proxy.full_syncs == 2 and len(rig.nft.transactions) == sent + 1
            assert rig.trace("10.96.0.10", 80) == {("dnat", "10.244.1.2:8080", False): 1}
            assert "left-by-hand" not in rig.nft.table("ip", TABLE).chains
            n.cancel_scope.cancel()

    run(main)


def test_kernel_extras_udp_conntrack_lb_announcement_and_health_checks():
    async def main():
        rig = Rig()
        lb = svc("lb", "10.96.0.20", type="LoadBalancer", externalTrafficPolicy="Local", healthCheckNodePort=31000)
        lb["spec"]["ports"][0]["nodePort"] = 30020
        lb["status"] = {"loadBalancer": {"ingress": [{"ip": "192.168.56.200"}]}}
        async with trio.open_nursery() as n:
            n.start_soon(rig.proxy.run)
            await rig.nodes.replace([ready_node("w1")], 5)
            await rig.services.replace([svc("dns", "10.96.0.53", 53, "UDP"), lb], 10)
            await rig.next_sync(rig.slices.replace([eps("dns", "10.244.1.5", "10.244.2.5", port=53, proto="UDP"),
                                                    eps("lb", "10.244.1.7", port=80)], 10))
            assert rig.extras.announced == [({"192.168.56.200"}, set())]  # the only ready node answers for it
            assert set(rig.extras.health) == {31000} and rig.extras.health[31000]() == 1
            await rig.next_sync(rig.slices.handle("MODIFIED", eps("dns", "10.244.1.5", port=53, proto="UDP"), 11))
            assert rig.extras.cleared == [{("10.96.0.53", "10.244.2.5")}]
            assert rig.trace("10.96.0.53", 53, proto="udp") == {("dnat", "10.244.1.5:53", False): 1}
            await rig.next_sync(rig.services.handle("DELETED", lb, 12))
            await trio.sleep(0.01)
            assert rig.extras.health == {}
            assert rig.extras.announced[-1] == (set(), {"192.168.56.200"})
            n.cancel_scope.cancel()

    run(main)


def test_the_tracker_recomputes_only_the_services_events_name():
    async def main():
        services, slices = Informer(None, by_kind("Service")), Informer(None, by_kind("EndpointSlice"))
        tracker = ChangeTracker(services, slices, SUBNET, "w1")
        services.add_handler(tracker.service_handler())
        slices.add_handler(tracker.slice_handler())
        await services.replace([svc(f"s{i}", f"10.96.1.{i}") for i in (1, 2)], 5)
        await slices.replace([eps(f"s{i}", f"10.244.2.{i}") for i in (1, 2)], 5)
        first = tracker.recompute()
        assert len(first) == 2 and all(first.values())
        assert tracker.recompute() == {}  # no event, nothing recomputed
        moved = eps("s2", "10.244.9.9")
        await slices.handle("MODIFIED", moved, 6)
        assert tracker.dirty == {"default/s2"}
        changes = tracker.recompute()
        assert changes == per_service(service_ports([svc("s2", "10.96.1.2")], [moved]), SUBNET, "w1")
        await services.handle("DELETED", svc("s1", "10.96.1.1"), 7)
        gone = tracker.recompute()
        assert list(gone.values()) == [None] and "default/s1" not in tracker.ports
        assert [sp.name for sp in tracker.all_ports()] == ["s2"]

    trio.run(main)


def test_a_burst_of_endpoint_changes_is_synced_at_most_once_per_min_interval():
    """A Service filling up pod by pod (issue 14): each sync rewrites its chains
    whole, so syncs are spaced by min_interval; the first change after a quiet
    spell still goes at once, and the last state of the burst is what is synced."""
    async def main():
        rig = Rig()
        async with trio.open_nursery() as n:
            n.start_soon(rig.proxy.run)
            await rig.services.replace([svc("web", "10.96.0.10")], 10)
            await rig.next_sync(rig.slices.replace([eps("web", "10.244.1.1")], 11))
            await trio.sleep(1)  # quiet
            start = rig.proxy.syncs
            await rig.next_sync(rig.slices.handle("MODIFIED", eps("web", "10.244.1.1", "10.244.1.2"), 12))
            assert rig.proxy.syncs == start + 1 and rig.proxy.seen["EndpointSlice"] == 12
            ips = ["10.244.1.1", "10.244.1.2"]
            for i in range(3, 53):  # 50 changes, 10 ms apart
                ips.append(f"10.244.1.{i}")
                await rig.slices.handle("MODIFIED", eps("web", *ips), 10 + i)
                await trio.sleep(0.01)
            await trio.sleep(1)  # the burst's last sync is due by then
            burst = rig.proxy.syncs - start - 1
            assert 1 <= burst <= 7  # 0.5 s of changes: not one sync per change
            assert rig.proxy.seen["EndpointSlice"] == 62 and rig.proxy.synced == 10  # (the Services' revision)
            assert set(rig.trace("10.96.0.10", 80)) == {("dnat", f"{ip}:8080", False) for ip in ips}
            n.cancel_scope.cancel()

    run(main)


def test_bookmarks_move_the_synced_revision_without_a_sync():
    """The watches' BOOKMARKs (tens per pod started anywhere in the cluster) move
    the informers' revisions and nothing else: `synced` follows at once, with no
    recompute, no walk of the service ports and no transaction (issue 14)."""
    async def main():
        rig = Rig()
        async with trio.open_nursery() as n:
            n.start_soon(rig.proxy.run)
            await rig.services.replace([svc("web", "10.96.0.10")], 10)
            await rig.next_sync(rig.slices.replace([eps("web", "10.244.1.1")], 10))
            syncs, sent = rig.proxy.syncs, len(rig.nft.transactions)
            for rv in range(11, 61):
                await rig.services.handle("BOOKMARK", {}, rv)
                await rig.slices.handle("BOOKMARK", {}, rv)
                await trio.sleep(0.01)
            await trio.sleep(0.01)
            assert rig.proxy.synced == 60 and rig.proxy.revision_only >= 1
            assert rig.proxy.syncs == syncs and len(rig.nft.transactions) == sent
            await rig.next_sync(rig.slices.handle("MODIFIED", eps("web", "10.244.1.1", "10.244.1.2"), 61))
            assert rig.proxy.syncs == syncs + 1 and len(rig.nft.transactions) == sent + 1
            assert set(rig.trace("10.96.0.10", 80).values()) == {0.5}
            n.cancel_scope.cancel()

    run(main)
