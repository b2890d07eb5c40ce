"""The policy engine's sync loop: Pods (cluster-wide), Namespaces, Nodes,
NetworkPolicies and the admin policies in (from the agent's shared
informers), this node's `inet knet-policy` table out (knet.policy.rules
decides its shape).

Every informer event goes straight into the Compiler (upsert/delete), which
keeps selector-match indexes, so an event costs what it changes and the loop
never walks every policy. Changes are coalesced: a lone event is synced at
once (the time from `knet apply` to enforcement is what users see), events
that arrive while a sync runs are gathered for COALESCE seconds into the
next, and each sync is one nftables transaction, so a packet never meets a
half-programmed table. A small transaction runs in the loop's thread: the
hop to a worker thread and back cost more than nft itself. The first sync, every `resync` seconds and the one
after any failure write the table whole (Compiler.full(), which also repairs
a rule deleted by hand); the others only what changed (Compiler.changes(); a
sync with no change sends nothing). It reports the revision it has
programmed, for `knet apply --wait`, and its counters for `knet status`.

AdminNetworkPolicy and BaselineAdminNetworkPolicy are optional kinds: an API
server that does not serve them (a 404, or a knet without them) must not
keep NetworkPolicy from being enforced, so the first sync waits for them
only OPTIONAL_GRACE seconds after the required kinds are listed.

The kernel is reached only through `nft` (knet.net.nft.Interface), so the
loop runs against knet.net.nftfake in tests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import trio

from knet.api.informer import EventHandler, Informer
from knet.net.nft import Interface, NftError

log = logging.getLogger("knet.policy")

REQUIRED = ("Pod", "Namespace", "Node", "NetworkPolicy")
OPTIONAL = ("AdminNetworkPolicy", "BaselineAdminNetworkPolicy")
KINDS = REQUIRED + OPTIONAL
POLICY_KINDS = ("NetworkPolicy", "AdminNetworkPolicy", "BaselineAdminNetworkPolicy")
OPTIONAL_GRACE = 2.0  # seconds the first sync waits for an admin-policy kind the server may not serve
COALESCE = 0.002  # seconds a sync waits for more of a burst (events that came while the last one ran)
SMALL = 8192  # characters of nft text applied in the loop's own thread (a few hundred operations at most)


class Compiler(Protocol):
    """knet.policy.rules.Compiler, as the loop uses it (see /work/notes/policy.md's seams)."""

    def upsert(self, kind: str, obj: dict) -> None: ...
    def delete(self, kind: str, obj: dict) -> None: ...
    def full(self) -> str: ...
    def changes(self) -> str: ...
    def ops(self, text: str) -> int: ...


class PolicyEngine:
    def __init__(self, informers: Mapping[str, Informer], nft: Interface, node: str, *,
                 compiler: Compiler | None = None, on_synced: Callable[[], None] = lambda: None,
                 resync: float = 30.0, run_sync: Callable[..., Any] = trio.to_thread.run_sync):
        missing = [k for k in REQUIRED if k not in informers]
        if missing:
            raise ValueError(f"policy engine: no informer for {', '.join(missing)}")
        unknown = [k for k in informers if k not in KINDS]
        if unknown:
            raise ValueError(f"policy engine: unexpected kinds {', '.join(unknown)}")
        if compiler is None:
            from knet.policy.rules import Compiler as RulesCompiler

            compiler = RulesCompiler(node)
        self.informers = dict(informers)
        self.compiler = compiler
        self.nft, self.node = nft, node
        self.resync, self.on_synced = resync, on_synced
        self.run_sync = run_sync  # how a blocking kernel call leaves the event loop (tests call it in place)
        self.seen = dict.fromkeys(self.informers, 0)  # the revision each informer has delivered
        self.synced = 0  # the revision the kernel's table reflects
        self._dirty = trio.Event()
        self.syncs = 0
        self.full_syncs = 0
        self.last_ops = 0
        self.last_error = ""
        self.waiting_for: list[str] = []  # optional kinds the first sync went ahead without
        for kind, informer in self.informers.items():
            informer.add_handler(EventHandler(on_add=self._upsert(kind), on_update=self._update(kind),
                                              on_delete=self._delete(kind), on_revision=self._seen(kind)))

    # -- informer handlers: run in the informer's task, cache already updated -------------

    def _upsert(self, kind: str) -> Callable[[dict], None]:
        return lambda obj: self.compiler.upsert(kind, obj)

    def _update(self, kind: str) -> Callable[[dict, dict], None]:
        def update(old: dict, new: dict) -> None:
            if kind == "Pod" and old["metadata"].get("uid") != new["metadata"].get("uid"):
                self.compiler.delete(kind, old)  # deleted and made again under the same name
            self.compiler.upsert(kind, new)

        return update

    def _delete(self, kind: str) -> Callable[[dict], None]:
        return lambda obj: self.compiler.delete(kind, obj)

    def _seen(self, kind: str) -> Callable[[int], None]:
        def seen(rv: int) -> None:
            self.seen[kind] = rv
            self._dirty.set()

        return seen

    # -- figures --------------------------------------------------------------------

    def policy_count(self) -> int:
        return sum(len(self.informers[k].list()) for k in POLICY_KINDS if k in self.informers)

    def status(self) -> dict:
        """The figures `knet status` shows for this node's policy engine."""
        return {"policies": self.policy_count(), "syncs": self.syncs, "fullSyncs": self.full_syncs,
                "lastOps": self.last_ops}

    # -- the loop -------------------------------------------------------------------

    def _kinds_to_wait_for(self, required_since: float | None) -> list[str] | None:
        """The kinds whose revisions the next sync reflects, or None when it must wait:
        every required kind listed, and each optional one listed or given up on."""
        if not all(self.informers[k].has_synced() for k in REQUIRED):
            return None
        late = [k for k in OPTIONAL if k in self.informers and not self.informers[k].has_synced()]
        if late and required_since is not None and trio.current_time() - required_since < OPTIONAL_GRACE:
            return None
        if late != self.waiting_for:
            if late:
                log.warning("policy sync goes ahead without %s (not listed yet: not served?)", ", ".join(late))
            self.waiting_for = late
        return [k for k in self.informers if k not in late]

    async def run(self) -> None:
        """The sync loop, until cancelled. The informers are run by their owner."""
        full = True  # the kernel's table is unknown: the next sync writes it whole
        required_since: float | None = None
        while True:
            burst = self._dirty.is_set()  # events came while the last sync ran: more may be on the way
            with trio.move_on_after(self.resync if self.syncs else 0.25):  # before the first: watch the grace
                await self._dirty.wait()
            if not self._dirty.is_set() and self.syncs:
                full = True  # the periodic full sync: rewrite the table, repairing any drift
            self._dirty = trio.Event()
            # A lone change goes at once (apply to enforcement is the figure users see); the rest
            # of a burst is gathered for one transaction.
            await trio.sleep(COALESCE if burst else 0)
            if required_since is None and all(self.informers[k].has_synced() for k in REQUIRED):
                required_since = trio.current_time()
            kinds = self._kinds_to_wait_for(required_since if self.syncs == 0 else None)
            if kinds is None:
                continue
            target = min(self.seen[k] for k in kinds)
            try:
                text = self.compiler.full() if full else self.compiler.changes()
                if text:
                    if full or len(text) > SMALL:
                        await self.run_sync(self.nft.run, text)
                    else:  # a millisecond or two: no hop to a worker thread and back (the GIL's
                        self.nft.run(text)  # switch interval alone can hold the reply 5 ms)
                self.last_ops = self.compiler.ops(text) if text else 0
            except NftError as e:
                self._failed(str(e))
                full = True
                await trio.sleep(1)
                self._dirty.set()
                continue
            except Exception as e:  # a compiler bug must not stop enforcement for good: retry whole
                log.exception("policy compile failed (a full sync follows)")
                self._failed(f"{type(e).__name__}: {e}")
                full = True
                await trio.sleep(1)
                self._dirty.set()
                continue
            if full:
                self.full_syncs += 1
            full = False
            self.syncs += 1
            self.last_error = ""
            self.synced = target
            self.on_synced()

    def _failed(self, error: str) -> None:
        log.error("policy sync failed (a full sync follows): %s", error)
        self.last_error = error
        self.on_synced()  # not synced, but the error is news for `apply --wait`
