"""Shared informers, as client-go's: one list+watch per kind per process,
a cache of the objects with indexes, and handlers that several consumers
add, so the proxy, the pod runtime's Service variables and (next) the
policy engine and DNS read one copy of the Services instead of each
opening a watch of its own.

Built on knet.api.reflector (list, watch from the revision, resume, list
again after 410 Gone). The cache is updated before any handler hears of a
change, so a handler may read it. A listing is delivered as client-go's
Replace is: each object that went is a delete, each new one an add, and
every one still there an update (old and new may be equal), so a consumer
that missed something is brought back in line by a relist. After a
listing and after each event (BOOKMARKs included) `on_revision` says which
revision the cache now reflects: what `knet apply --wait` waits for.

An informer may be given a transform (client-go's SetTransform): each
object is passed through it before the cache or any handler sees it, so a
consumer that reads a few fields of a kind every node holds in full (the
policy engine's Pods: every pod of the cluster, in every agent) keeps those
fields, not a decoded copy of the whole object per pod per agent.

Handlers run in the informer's task, one after the other, and must not
change the objects they are given (they are the cache's). If one fails,
the others still hear of the change, then the informer lists again (after
a second), so the failed one gets every object once more.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import trio

from knet.api.aclient import AsyncClient
from knet.api.reflector import reflect
from knet.api.resources import Resource, by_kind

log = logging.getLogger("knet.informer")

IndexFunc = Callable[[dict], Iterable[str]]
Transform = Callable[[dict], dict]
NAMESPACE = "namespace"
URGE_GAP = 0.5  # seconds between an informer's requests for prompt BOOKMARKs (the server urges for 1 s)
SERVICE_NAME = "service-name"  # EndpointSlices by the "namespace/name" of the Service they belong to


def key_of(obj: dict) -> str:
    """The cache key: "namespace/name", or "name" for a cluster-scoped object (client-go's MetaNamespaceKeyFunc)."""
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]


def by_namespace(obj: dict) -> list[str]:
    ns = obj["metadata"].get("namespace")
    return [ns] if ns else []


def by_service_name(obj: dict) -> list[str]:
    """An EndpointSlice's Service, from its kubernetes.io/service-name label."""
    name = (obj["metadata"].get("labels") or {}).get("kubernetes.io/service-name")
    return [f"{obj['metadata']['namespace']}/{name}"] if name else []


Callback = Callable[..., Awaitable[None] | None]


@dataclass
class EventHandler:
    """What a consumer wants to hear; any may be left out. A callback may be
    a plain function or a coroutine function."""
    on_add: Callable[[dict], Awaitable[None] | None] | None = None
    on_update: Callable[[dict, dict], Awaitable[None] | None] | None = None  # (old, new)
    on_delete: Callable[[dict], Awaitable[None] | None] | None = None
    on_revision: Callable[[int], Awaitable[None] | None] | None = None


class HandlerFailed(RuntimeError):
    pass


class Informer:
    def __init__(self, api: AsyncClient, res: Resource, transform: Transform | None = None, **query: str):
        self.api, self.res, self.query = api, res, query
        self.transform = transform  # applied to every object before the cache and the handlers see it
        self._items: dict[str, dict] = {}
        self._indexers: dict[str, IndexFunc] = {}
        self._indexes: dict[str, dict[str, set[str]]] = {}
        self._handlers: list[EventHandler] = []
        self._synced = trio.Event()
        self._started = False
        self.revision = 0  # the revision the cache reflects
        self._revision_waiters: list[tuple[int, trio.Event]] = []
        self._urged_at = -URGE_GAP  # trio time of the last POST /knet/v1/bookmarks
        self.listings = 0  # how many full listings it has taken in (a consumer can tell a relist)
        self.add_index(NAMESPACE, by_namespace)

    # -- for consumers ------------------------------------------------------------

    def add_index(self, name: str, fn: IndexFunc) -> None:
        """Index the cache by `fn`'s values. Adding a name again with the same function is a no-op."""
        if name in self._indexers:
            if self._indexers[name] is not fn:
                raise ValueError(f"index {name!r} already exists with another function")
            return
        self._indexers[name] = fn
        self._indexes[name] = {}
        for key, obj in self._items.items():
            self._index(name, key, obj)

    def add_handler(self, handler: EventHandler) -> None:
        """Handlers are added before the informer starts, so each sees the first listing."""
        if self._started:
            raise RuntimeError(f"{self.res.plural} informer: handlers are added before it starts")
        self._handlers.append(handler)

    def has_synced(self) -> bool:
        """Whether the first listing is in the cache (and was delivered to the handlers)."""
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    def get(self, namespace: str | None, name: str) -> dict | None:
        return self._items.get(f"{namespace}/{name}" if namespace else name)

    def list(self) -> list[dict]:
        return list(self._items.values())

    def by_index(self, index: str, value: str) -> list[dict]:
        return [self._items[k] for k in sorted(self._indexes[index].get(value, ()))]

    async def wait_revision(self, rv: int) -> None:
        """Until the cache reflects revision `rv` or later. The store's revision
        is one counter for every kind and the watch sends a BOOKMARK for each
        revision of other kinds, so this is how a consumer that saw an object
        of another kind at `rv` knows this cache holds everything written
        before it (kubelet's Service variables for a pod made right after its
        Service)."""
        if self.revision >= rv:
            return
        event = trio.Event()
        self._revision_waiters.append((rv, event))
        await self._ask_for_bookmarks()
        await event.wait()

    async def _ask_for_bookmarks(self) -> None:
        """The server sends an idle watch's BOOKMARKs once a second unless a client waits for
        them (knet/api/watchbuffer.py): say so, at most every URGE_GAP seconds. Without an
        answer (an older server, no permission) the BOOKMARK still comes, within a second."""
        now = trio.current_time()
        if self.api is None or now - self._urged_at < URGE_GAP:
            return
        self._urged_at = now
        try:
            await self.api.request("POST", "/knet/v1/bookmarks", {"resource": self.res.plural})
        except Exception as e:  # noqa: BLE001 (an optimisation: the wait goes on regardless)
            log.debug("%s informer: asking for BOOKMARKs: %s", self.res.plural, e)

    # -- fed by the reflector -----------------------------------------------------

    def started(self) -> bool:
        return self._started

    def start(self, nursery: trio.Nursery) -> None:
        """Run it in `nursery` (once)."""
        if self._started:
            raise RuntimeError(f"{self.res.plural} informer started twice")
        self._started = True
        nursery.start_soon(self._reflect)

    async def _reflect(self) -> None:
        await reflect(self.api, self.res, self.replace, self.handle, **self.query)

    async def replace(self, items: list[dict], rv: int) -> None:
        """A full listing at revision `rv`."""
        self._started = True
        self.listings += 1
        if self.transform is not None:
            items = [self.transform(o) for o in items]
        new = {key_of(o): o for o in items}
        calls: list[tuple[str, tuple]] = []
        for key in [k for k in self._items if k not in new]:
            calls.append(("on_delete", (self._pop(key),)))
        for key, obj in new.items():
            old = self._items.get(key)
            self._put(key, obj)
            calls.append(("on_add", (obj,)) if old is None else ("on_update", (old, obj)))
        self._set_revision(rv)
        calls.append(("on_revision", (rv,)))
        try:
            await self._notify(calls)
        finally:
            self._synced.set()

    async def handle(self, etype: str, obj: dict, rv: int) -> None:
        """One watch event at revision `rv`."""
        calls: list[tuple[str, tuple]] = []
        key = ""
        if etype in ("ADDED", "MODIFIED", "DELETED"):
            if self.transform is not None:
                obj = self.transform(obj)
            key = key_of(obj)
        if etype == "DELETED":
            self._pop(key)
            calls.append(("on_delete", (obj,)))  # its final state
        elif etype in ("ADDED", "MODIFIED"):
            old = self._items.get(key)
            self._put(key, obj)
            calls.append(("on_add", (obj,)) if old is None else ("on_update", (old, obj)))
        self._set_revision(rv)
        calls.append(("on_revision", (rv,)))
        await self._notify(calls)

    # -- inside -------------------------------------------------------------------

    def _set_revision(self, rv: int) -> None:
        self.revision = rv
        if self._revision_waiters:
            waiting = []
            for want, event in self._revision_waiters:
                if want <= rv:
                    event.set()
                else:
                    waiting.append((want, event))
            self._revision_waiters = waiting

    def _put(self, key: str, obj: dict) -> None:
        if key in self._items:
            self._pop(key)
        self._items[key] = obj
        for name in self._indexers:
            self._index(name, key, obj)

    def _pop(self, key: str) -> dict | None:
        obj = self._items.pop(key, None)
        if obj is not None:
            for name, fn in self._indexers.items():
                index = self._indexes[name]
                for value in fn(obj):
                    keys = index.get(value)
                    if keys is not None:
                        keys.discard(key)
                        if not keys:
                            del index[value]
        return obj

    def _index(self, name: str, key: str, obj: dict) -> None:
        for value in self._indexers[name](obj):
            self._indexes[name].setdefault(value, set()).add(key)

    async def _notify(self, calls: list[tuple[str, tuple]]) -> None:
        failed = 0
        for handler in self._handlers:
            for method, args in calls:
                fn: Callback | None = getattr(handler, method)
                if fn is None:
                    continue
                try:
                    result = fn(*args)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("%s handler %s failed", self.res.plural, method)
                    failed += 1
                    break  # this handler hears the rest from the relist
        if failed:
            raise HandlerFailed(f"{failed} {self.res.plural} handler(s) failed")


class Informers:
    """The agent's informers, one per kind (and query), shared by every
    consumer in the process (client-go's SharedInformerFactory). Ask for
    them, add handlers, then start them (one may be started ahead of the
    others, when a consumer needs its kind first)."""

    def __init__(self, api: AsyncClient):
        self.api = api
        self._all: dict[tuple, Informer] = {}

    def for_kind(self, kind: str, transform: Transform | None = None, **query: str) -> Informer:
        """The informer of `kind` (and query); one with a transform is another
        informer than the untransformed one: its cache holds other objects."""
        key = (kind, transform, *sorted(query.items()))
        if key not in self._all:
            self._all[key] = Informer(self.api, by_kind(kind), transform, **query)
        return self._all[key]

    def start(self, nursery: trio.Nursery) -> None:
        """Run every informer not yet started, in `nursery`."""
        for informer in self._all.values():
            if not informer.started():
                informer.start(nursery)
