"""The shared informer against a scripted API (no server, no root): the first
listing then events reach every consumer's handlers, the cache and its
indexes follow, a 410 Gone relists and reconciles what was missed, and a
failing handler neither starves the others nor loses its objects."""

import copy
import math

import trio
import trio.testing

from knet.api.errors import ApiError
from knet.api.informer import (
    NAMESPACE,
    SERVICE_NAME,
    EventHandler,
    Informer,
    Informers,
    by_service_name,
)
from knet.api.resources import by_kind

SERVICES = by_kind("Service")


def svc(ns, name, port=80):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": ns, "name": name},
            "spec": {"ports": [{"port": port}]}}


class ScriptedApi:
    """list and watch over objects the test writes; `expire()` ends every
    watch and makes the next one answer 410, as a server past its window does."""

    def __init__(self):
        self.objects: dict[str, dict] = {}
        self.rv = 100
        self.lists = 0
        self.watches: list[trio.MemorySendChannel] = []
        self.gone = False

    def write(self, etype, obj, *, quietly=False):
        self.rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        key = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
        if etype == "DELETED":
            self.objects.pop(key)
        else:
            self.objects[key] = obj
        if not quietly:
            for w in self.watches:
                w.send_nowait({"type": etype, "object": copy.deepcopy(obj)})

    def bookmark(self):
        self.rv += 1
        for w in self.watches:
            w.send_nowait({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": str(self.rv)}}})

    def expire(self):
        self.gone = True
        for w in self.watches:
            w.close()
        self.watches = []

    async def list(self, res, namespace=None, **query):
        self.lists += 1
        return {"metadata": {"resourceVersion": str(self.rv)}, "items": copy.deepcopy(list(self.objects.values()))}

    async def watch(self, res, namespace=None, resource_version=None, **query):
        if self.gone:
            self.gone = False
            raise ApiError(410, "Expired", "too old resource version")
        send, recv = trio.open_memory_channel(math.inf)
        self.watches.append(send)
        async for ev in recv:
            yield ev


class Recorder:
    def __init__(self, fail_on: str | None = None):
        self.seen: list[tuple] = []
        self.fail_on = fail_on

    def handler(self) -> EventHandler:
        def note(kind, obj, old=None):
            name = obj["metadata"]["name"]
            if name == self.fail_on:
                self.fail_on = None  # fails once
                raise RuntimeError("this consumer failed")
            self.seen.append((kind, name) if old is None else (kind, name, old["metadata"]["resourceVersion"]))

        async def on_revision(rv):  # a coroutine handler is awaited
            await trio.sleep(0)
            self.seen.append(("rv", rv))

        return EventHandler(on_add=lambda o: note("add", o), on_update=lambda old, new: note("update", new, old),
                            on_delete=lambda o: note("delete", o), on_revision=on_revision)


async def until(cond):
    while not cond():
        await trio.sleep(0.01)


def run(main):
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_first_listing_then_events_reach_every_consumer_and_the_indexes():
    async def main():
        api = ScriptedApi()
        api.write("ADDED", svc("a", "web"))
        api.write("ADDED", svc("b", "db"))
        inf = Informer(api, SERVICES)
        one, two = Recorder(), Recorder()
        inf.add_handler(one.handler())
        inf.add_handler(two.handler())
        async with trio.open_nursery() as n:
            inf.start(n)
            await inf.wait_synced()
            assert inf.has_synced() and inf.revision == 102
            assert sorted(one.seen[:2]) == [("add", "db"), ("add", "web")] and one.seen[2] == ("rv", 102)
            assert [o["metadata"]["name"] for o in inf.by_index(NAMESPACE, "a")] == ["web"]
            await until(lambda: api.watches)
            api.write("MODIFIED", svc("a", "web", 81))
            api.write("DELETED", svc("b", "db"))
            api.write("ADDED", svc("a", "api"))
            api.bookmark()
            await until(lambda: inf.revision == 106)
            assert one.seen[3:] == [("update", "web", "101"), ("rv", 103), ("delete", "db"), ("rv", 104),
                                    ("add", "api"), ("rv", 105), ("rv", 106)]
            assert two.seen == one.seen
            assert inf.get("a", "web")["spec"]["ports"] == [{"port": 81}] and inf.get("b", "db") is None
            assert sorted(o["metadata"]["name"] for o in inf.by_index(NAMESPACE, "a")) == ["api", "web"]
            assert inf.by_index(NAMESPACE, "b") == []
            n.cancel_scope.cancel()

    run(main)


def test_a_410_relists_and_reconciles_what_the_watch_missed():
    async def main():
        api = ScriptedApi()
        api.write("ADDED", svc("a", "kept"))
        api.write("ADDED", svc("a", "gone"))
        inf = Informer(api, SERVICES)
        rec = Recorder()
        inf.add_handler(rec.handler())
        async with trio.open_nursery() as n:
            inf.start(n)
            await until(lambda: api.watches)
            api.expire()  # the stream ends; while no one watches, one object goes and one comes
            api.write("DELETED", svc("a", "gone"), quietly=True)
            api.write("ADDED", svc("a", "new"), quietly=True)
            await until(lambda: api.lists == 2 and inf.revision == 104)
            assert inf.listings == 2
            assert sorted(o["metadata"]["name"] for o in inf.list()) == ["kept", "new"]
            relist = rec.seen[3:]
            assert relist[0] == ("delete", "gone")
            assert sorted(relist[1:3]) == [("add", "new"), ("update", "kept", "101")]
            assert relist[3] == ("rv", 104)
            n.cancel_scope.cancel()

    run(main)


def test_a_failing_handler_does_not_starve_the_others_and_gets_its_objects_again():
    async def main():
        api = ScriptedApi()
        inf = Informer(api, SERVICES)
        flaky, steady = Recorder(fail_on="web"), Recorder()
        inf.add_handler(flaky.handler())
        inf.add_handler(steady.handler())
        async with trio.open_nursery() as n:
            inf.start(n)
            await until(lambda: api.watches)
            api.write("ADDED", svc("a", "web"))
            await until(lambda: api.lists == 2 and ("rv", 101) in flaky.seen)
            assert steady.seen[1:3] == [("add", "web"), ("rv", 101)]  # heard at once, despite the failure
            assert ("add", "web") not in flaky.seen
            assert ("update", "web", "101") in flaky.seen  # from the relist that followed
            n.cancel_scope.cancel()

    run(main)


def test_one_informer_per_kind_and_indexes_added_twice_are_one():
    informers = Informers(api=None)
    assert informers.for_kind("Service") is informers.for_kind("Service")
    assert informers.for_kind("Pod", fieldSelector="spec.nodeName=w1") is not informers.for_kind("Pod")
    slices = informers.for_kind("EndpointSlice")
    slices.add_index(SERVICE_NAME, by_service_name)
    slices.add_index(SERVICE_NAME, by_service_name)
    try:
        slices.add_index(SERVICE_NAME, lambda o: [])
        raise AssertionError("a second function under the same index name was taken")
    except ValueError as e:
        assert SERVICE_NAME in str(e)


def test_slices_are_found_by_their_service_before_and_after_a_relabel():
    async def main():
        inf = Informer(api=None, res=by_kind("EndpointSlice"))
        inf.add_index(SERVICE_NAME, by_service_name)

        def eps(name, service):
            return {"metadata": {"namespace": "a", "name": name, "labels": {"kubernetes.io/service-name": service}}}

        await inf.replace([eps("web-1", "web"), eps("web-2", "web")], 5)
        assert [o["metadata"]["name"] for o in inf.by_index(SERVICE_NAME, "a/web")] == ["web-1", "web-2"]
        await inf.handle("MODIFIED", eps("web-2", "api"), 6)
        assert [o["metadata"]["name"] for o in inf.by_index(SERVICE_NAME, "a/web")] == ["web-1"]
        assert [o["metadata"]["name"] for o in inf.by_index(SERVICE_NAME, "a/api")] == ["web-2"]
        await inf.handle("DELETED", eps("web-1", "web"), 7)
        assert inf.by_index(SERVICE_NAME, "a/web") == []

    trio.run(main)


def test_wait_revision_returns_once_the_cache_holds_what_was_written_before_it():
    """A pod seen at revision N by another informer: the Service cache is waited on until it
    reflects N (an event or a bookmark), so a Service written just before the pod is in it."""
    async def main():
        api = ScriptedApi()
        inf = Informer(api, SERVICES)
        async with trio.open_nursery() as n:
            inf.start(n)
            await inf.wait_synced()
            await until(lambda: api.watches)
            await inf.wait_revision(inf.revision)  # already there: no wait
            done = []

            async def waiter(rv):
                await inf.wait_revision(rv)
                done.append((rv, inf.get("a", "web") is not None))

            n.start_soon(waiter, 101)
            n.start_soon(waiter, 102)
            await trio.sleep(1)
            assert done == []
            api.write("ADDED", svc("a", "web"))  # revision 101
            await until(lambda: len(done) == 1)
            assert done == [(101, True)]
            api.bookmark()  # revision 102: another kind's write, seen as a bookmark
            await until(lambda: len(done) == 2)
            assert done[1] == (102, True) and inf._revision_waiters == []
            n.cancel_scope.cancel()

    run(main)


def test_a_transform_shapes_what_the_cache_and_every_handler_hold():
    """client-go's SetTransform: the listing, each event and the final state of a deleted
    object all pass through it; the full objects are kept nowhere."""
    def ports_only(obj):
        return {"metadata": {k: obj["metadata"][k] for k in ("namespace", "name", "resourceVersion")},
                "spec": {"ports": obj["spec"]["ports"]}}

    async def main():
        api = ScriptedApi()
        api.write("ADDED", svc("a", "web"))
        inf = Informer(api, SERVICES, transform=ports_only)
        rec = Recorder()
        inf.add_handler(rec.handler())
        heard = []
        inf.add_handler(EventHandler(on_add=heard.append, on_update=lambda old, new: heard.append((old, new)),
                                     on_delete=heard.append))
        async with trio.open_nursery() as n:
            inf.start(n)
            await inf.wait_synced()
            await until(lambda: api.watches)
            api.write("MODIFIED", svc("a", "web", 81))
            api.write("ADDED", svc("a", "api"))
            api.write("DELETED", svc("a", "api"))
            await until(lambda: inf.revision == 104)
            assert rec.seen == [("add", "web"), ("rv", 101), ("update", "web", "101"), ("rv", 102),
                                ("add", "api"), ("rv", 103), ("delete", "api"), ("rv", 104)]
            assert inf.list() == [{"metadata": {"namespace": "a", "name": "web", "resourceVersion": "102"},
                                   "spec": {"ports": [{"port": 81}]}}]
            objs = [o for h in heard for o in (h if isinstance(h, tuple) else (h,))]
            assert len(objs) == 5 and all("kind" not in o and set(o) == {"metadata", "spec"} for o in objs)
            n.cancel_scope.cancel()

    run(main)


def test_a_transformed_informer_is_not_the_plain_one():
    informers = Informers(api=None)

    def slim(obj):
        return obj

    assert informers.for_kind("Pod", transform=slim) is informers.for_kind("Pod", transform=slim)
    assert informers.for_kind("Pod", transform=slim) is not informers.for_kind("Pod")
    assert informers.for_kind("Pod", transform=slim).transform is slim and informers.for_kind("Pod").transform is None


def test_a_waiter_asks_the_server_for_bookmarks_at_most_every_urge_gap():
    """wait_revision tells the server a client waits (POST /knet/v1/bookmarks for its
    resource): idle watches send BOOKMARKs once a second otherwise. A burst of waits (a
    rollout's pod starts) asks once per URGE_GAP, not once per pod."""
    class AskingApi(ScriptedApi):
        def __init__(self):
            super().__init__()
            self.asked: list[dict] = []

        async def request(self, method, path, body=None, query=None):
            assert (method, path) == ("POST", "/knet/v1/bookmarks")
            self.asked.append(body)
            return {"status": "ok"}

    async def main():
        api = AskingApi()
        inf = Informer(api, SERVICES)
        async with trio.open_nursery() as n:
            inf.start(n)
            await inf.wait_synced()
            await until(lambda: api.watches)
            await inf.wait_revision(inf.revision)  # already there: nothing to ask
            assert api.asked == []
            for _ in range(20):  # 20 pod starts in 0.2 s, each behind the cache
                n.start_soon(inf.wait_revision, inf.revision + 1)
                await trio.sleep(0.01)
            assert api.asked == [{"resource": "services"}]
            api.bookmark()
            await until(lambda: not inf._revision_waiters)
            await trio.sleep(1)
            n.start_soon(inf.wait_revision, inf.revision + 1)
            await until(lambda: len(api.asked) == 2)
            api.bookmark()
            await until(lambda: not inf._revision_waiters)
            n.cancel_scope.cancel()

    run(main)
