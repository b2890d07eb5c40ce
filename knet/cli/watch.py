"""`knet get -w`: kubectl's watch (the listing, then a row per event from
the listing's resourceVersion), and what kubectl does not: a closed or broken
watch resumed from the last resourceVersion seen, a 410 Gone listed again
with what changed meanwhile printed. Imported only when watching."""

from __future__ import annotations

import argparse
import sys
import time

from knet.api.client import ProtocolError
from knet.api.errors import ApiError
from knet.cli.get import _label_columns, _pod_policy_columns, _sorted, _typed

TYPE_CHECKING = False  # not typing's: importing typing is 4 ms of every `knet get`
if TYPE_CHECKING:
    from knet.api.client import Client
    from knet.api.resources import Resource
    from knet.cli.output import Output


def _key(obj: dict) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


def watch(args: argparse.Namespace, client: Client, res: Resource, ns: str | None, output: Output) -> int:
    """kubectl get -w: the current objects (unless --watch-only), then a row
    per change, from the list's resourceVersion. Beyond kubectl, which ends
    when the server closes the watch, it goes on: a closed or broken watch is
    resumed from the last resourceVersion seen, and a 410 Gone lists again and
    prints what changed meanwhile (as client-go's reflector would see it).
    Ctrl-C ends it quietly with exit 0, as kubectl's interrupt handler does."""
    field_selector = args.field_selector
    if args.name:
        try:
            client.get(res, ns, args.name[0])  # NotFound is kubectl's error, before anything is printed
        except ApiError as e:
            if e.code == 404 and args.ignore_not_found:
                return 0
            raise
        field_selector = ",".join(f for f in (f"metadata.name={args.name[0]}", field_selector) if f)

    def wide_extra(objs: list[dict]) -> list:
        return _label_columns(args) + (_pod_policy_columns(client, objs) if output.kind == "table" and output.wide
                                       and res.kind == "Pod" else [])

    def emit(events: list[tuple[str, dict]]) -> None:
        text = output.events_text(res, events, wide_extra([o for _, o in events]))
        if text:
            sys.stdout.write(text)
            sys.stdout.flush()

    def listing() -> tuple[str, dict[tuple[str, str], dict]]:
        answer = client.list(res, ns, args.selector, field_selector)
        return answer["metadata"]["resourceVersion"], {_key(o): o for o in _typed(res, answer["items"])}

    if args.sort_by:
        which = "--watch-only" if args.watch_only else "--watch"
        print(f"warning: {which} requested, --sort-by will be ignored"
              + (" for watch events received" if not args.watch_only else ""), file=sys.stderr)
    try:
        listed, known = listing()
        rv: str | None = listed
        if not args.watch_only:
            initial = list(known.values())
            if args.sort_by and output.kind == "table" and len(initial) > 1:  # the listing's table is sorted
                initial = [o for _, o in _sorted([(res, o) for o in initial], args.sort_by, table=True)]
            emit([("ADDED", o) for o in initial])
        while True:
            began = time.monotonic()
            try:
                if rv is None:  # after 410 Gone: list again, and print what changed meanwhile
                    rv, fresh = listing()
                    changes = [("ADDED" if k not in known else "MODIFIED", o) for k, o in fresh.items()
                               if k not in known or known[k]["metadata"].get("resourceVersion")
                               != o["metadata"].get("resourceVersion")]
                    changes += [("DELETED", o) for k, o in known.items() if k not in fresh]
                    known = fresh
                    emit(changes)
                for ev in client.watch(res, ns, rv, args.selector, field_selector):
                    kind, obj = ev.get("type"), ev.get("object") or {}
                    if kind == "ERROR":
                        raise ApiError.from_status(obj)
                    rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                    if kind == "BOOKMARK":
                        continue
                    _typed(res, [obj])
                    if kind == "DELETED":
                        known.pop(_key(obj), None)
                    else:
                        known[_key(obj)] = obj
                    emit([(kind, obj)])
            except ApiError as e:
                if e.code != 410:
                    raise
                rv = None
            except (ConnectionError, ProtocolError):
                time.sleep(1)  # the API server restarting: resume from rv once it answers
            if time.monotonic() - began < 1:
                time.sleep(0.5)  # a server closing every watch at once is not polled in a tight loop
    except KeyboardInterrupt:
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while leaving is not an error either
        return 0
