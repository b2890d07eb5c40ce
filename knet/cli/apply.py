"""knet apply, create and delete (kubectl's verbs over manifests and names),
and --wait: until the controllers and every Ready node agent have acted on
the change, which is what makes a knet test deterministic."""

from __future__ import annotations

import argparse
import sys
import time

from knet.api.errors import ApiError
from knet.cli.common import CliError, Connect, label, namespace_for, resource_for

TYPE_CHECKING = False
if TYPE_CHECKING:
    from knet.api.client import Client
    from knet.api.resources import Resource


def cmd_apply(args: argparse.Namespace, connect: Connect) -> int:
    from knet.api.manifests import ManifestError, load_with_sources

    try:
        sourced = load_with_sources(args.filename)
    except ManifestError as e:
        raise CliError(str(e)) from None
    if not sourced:
        raise CliError("no objects passed to apply")
    objects = [obj for _, obj in sourced]
    sources = {id(obj): source for source, obj in sourced}
    client = connect()
    # Namespaces first, so one file can hold a namespace and what lives in it.
    objects.sort(key=lambda o: 0 if o.get("kind") == "Namespace" else 1)
    planned = [(obj, resource_for(obj, sources[id(obj)])) for obj in objects]
    new_namespaces = {o.get("metadata", {}).get("name") for o, r in planned if r.kind == "Namespace"}
    # Pass 1: a server-side dry run of every object, so a bad file changes nothing. (One object
    # needs none: the API server stores it whole or not at all.)
    failures = []
    for obj, res in planned if len(planned) > 1 else ():
        ns = namespace_for(res, obj, args)
        try:
            _apply_one(client, res, ns, obj, dry_run=True)
        except ApiError as e:
            if e.code == 404 and e.details.get("kind") == "namespaces" and e.details.get("name") in new_namespaces:
                continue
            failures.append(_apply_failure(e, res, obj))
    if failures:
        for f in failures:
            print(f, file=sys.stderr)
        print("nothing was applied", file=sys.stderr)
        return 1
    last_rev = 0
    # With --wait, Warning Events about these objects from here on are reported.
    since = int(client.request("GET", "/knet/v1/progress")["revision"]) if args.wait else 0
    applied = []
    for done, (obj, res) in enumerate(planned):
        ns = namespace_for(res, obj, args)
        try:
            verb, out = _apply_one(client, res, ns, obj)
        except ApiError as e:  # one object (no dry run), or the cluster changed since the dry run
            print(_apply_failure(e, res, obj), file=sys.stderr)
            print("nothing was applied" if not done else f"{done} of {len(planned)} objects were applied",
                  file=sys.stderr)
            return 1
        last_rev = max(last_rev, int(out["metadata"].get("resourceVersion", 0)))
        applied.append(out)
        print(f"{label(res, out['metadata']['name'])} {verb}")
    if args.wait:
        wait_synced(client, last_rev, args.timeout)
        _report_warnings(client, applied, since)
    return 0


def _report_warnings(client: Client, applied: list[dict], since: int) -> None:
    """Print the Warning Events raised (or repeated) about the applied objects
    since the apply began, as kubectl prints warnings. A controller failing to
    write what an object asks for (FailedCreate, FailedToUpdateEndpointSlices...:
    the object is stored but not realized) makes the exit non-zero; other
    Warnings (FailedScheduling, BackOff, Unhealthy...) can resolve with time and
    are only printed. An unchanged object's earlier failures are not repeated
    here: `knet describe` shows them."""
    from knet.api.resources import by_kind
    from knet.controllers.events import REALIZE_FAILURES

    uids = {o["metadata"]["uid"] for o in applied if o["metadata"].get("uid")}
    namespaces = sorted({o["metadata"].get("namespace") or "default" for o in applied})
    failed = []
    for ns in namespaces:
        events = client.list(by_kind("Event"), ns, field_selector="type=Warning")["items"]
        for ev in sorted(events, key=lambda e: int(e["metadata"].get("resourceVersion", 0))):
            about = ev.get("involvedObject") or {}
            if about.get("uid") not in uids or int(ev["metadata"].get("resourceVersion", 0)) <= since:
                continue
            text = f"{str(about.get('kind', '')).lower()}/{about.get('name')}"
            print(f"Warning: {text}: {ev.get('reason')}: {ev.get('message')}", file=sys.stderr)
            if ev.get("reason") in REALIZE_FAILURES and text not in failed:
                failed.append(text)
    if failed:
        raise CliError(f"applied but not realized: {', '.join(failed)} (see the warnings above)")


def _apply_failure(e: ApiError, res: Resource, obj: dict) -> str:
    return f"Error from server ({e.reason}): error when applying {label(res, obj.get('metadata', {}).get('name', ''))}: {e.message}"


def _apply_one(client: Client, res: Resource, ns: str | None, obj: dict, dry_run: bool = False) -> tuple[str, dict]:
    """Create the object, or patch the live one as kubectl apply does: a
    three-way patch of the last applied manifest, this one and the live
    object, so that fields others set (admission's token volume, a
    controller's annotation) stay and fields this manifest dropped go."""
    name = obj.get("metadata", {}).get("name")
    query = {"dryRun": "All"} if dry_run else None
    manifest = _with_namespace(res, ns, obj)
    current = None
    if name and dry_run:
        try:
            current = client.get(res, ns, name)
        except ApiError as e:
            if e.code != 404:
                raise
    if current is None:
        try:
            return "created", client.request("POST", res.path(ns), _annotated(manifest), query=query)
        except ApiError as e:  # it exists: patch it (creating first saves a round trip for new objects)
            if e.code != 409 or e.reason != "AlreadyExists" or not name:
                raise
        current = client.get(res, ns, name)
    patch, content_type = _three_way_patch(res, manifest, current)
    if not patch:
        return "unchanged", current
    out = client.request("PATCH", res.path(ns, name), patch, query=query, content_type=content_type)
    changed = out["metadata"].get("resourceVersion") != current["metadata"].get("resourceVersion")
    return ("configured" if changed else "unchanged"), out


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _with_namespace(res: Resource, ns: str | None, obj: dict) -> dict:
    """The manifest as kubectl sees it once read: a namespaced object names its
    namespace (so both write the same last-applied annotation)."""
    if not res.namespaced or not ns or obj.get("metadata", {}).get("namespace"):
        return obj
    return {**obj, "metadata": {**obj.get("metadata", {}), "namespace": ns}}


def _annotated(manifest: dict) -> dict:
    """The manifest carrying the last-applied-configuration annotation, as
    kubectl's GetModifiedConfiguration writes it: the manifest without that
    annotation (but with `annotations: {}` when it had none), as Go's
    json.Marshal prints it, plus the newline of its encoder."""
    meta = dict(manifest.get("metadata") or {})
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED}
    bare = {**manifest, "metadata": {**meta, "annotations": annotations}}
    text = _go_json(bare) + "\n"
    return {**manifest, "metadata": {**meta, "annotations": {**annotations, LAST_APPLIED: text}}}


def _go_json(v: object) -> str:
    import json

    def floats(x: object) -> object:
        if isinstance(x, float) and x.is_integer():
            return int(x)
        if isinstance(x, dict):
            return {k: floats(y) for k, y in x.items()}
        if isinstance(x, list):
            return [floats(y) for y in x]
        return x

    text = json.dumps(floats(v), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def _three_way_patch(res: Resource, manifest: dict, current: dict) -> tuple[dict, str]:
    """kubectl's patchSimple: a strategic merge patch for built-in kinds, a JSON
    merge patch for those served without strategic metadata."""
    import json

    from knet.api.patchmeta import NO_STRATEGIC
    from knet.api.strategic import PatchError
    from knet.api.threeway import three_way_json_merge, three_way_strategic

    modified = _annotated(manifest)
    last = (current.get("metadata", {}).get("annotations") or {}).get(LAST_APPLIED)
    try:
        original = json.loads(last) if last else None
    except ValueError:
        original = None
    if not isinstance(original, dict):
        original = None
    if res.kind in NO_STRATEGIC:
        patch = three_way_json_merge(original, modified, current)
        content_type = "application/merge-patch+json"
    else:
        try:
            patch = three_way_strategic(original, modified, current, res.kind)
        except (ValueError, PatchError) as e:
            raise CliError(f"error when applying {label(res, manifest.get('metadata', {}).get('name', ''))}: {e}") from None
        content_type = "application/strategic-merge-patch+json"
    patch.pop("status", None)
    return patch, content_type


def wait_synced(client: Client, revision: int, timeout: float) -> None:
    """Return once the controllers and every Ready node agent have acted on
    `revision`, following the controllers' own writes (e.g. bindings)."""
    from knet.api.objects import is_true
    from knet.api.resources import by_kind

    deadline = time.monotonic() + timeout
    target = revision
    told: set[str] = set()
    while True:
        progress = client.request("GET", "/knet/v1/progress")["components"]
        for component, p in sorted(progress.items()):
            if p.get("error") and f"{component}: {p['error']}" not in told:
                told.add(f"{component}: {p['error']}")
                print(f"warning: {component}: {p['error']} (still waiting)", file=sys.stderr)
        ctrl = progress.get("controllers", {"observed": 0, "written": 0})
        if ctrl["observed"] >= target:
            if ctrl["written"] > target:
                target = ctrl["written"]
                continue
            nodes = client.list(by_kind("Node"))["items"]
            ready = [n["metadata"]["name"] for n in nodes if is_true(n, "Ready")]
            behind = [n for n in ready if progress.get(f"node/{n}", {}).get("observed", 0) < target]
            if not behind:
                return
        else:
            behind = ["controllers"]
        if time.monotonic() > deadline:
            why = "".join(f"; {n}: {progress[f'node/{n}']['error']}" for n in behind
                          if progress.get(f"node/{n}", {}).get("error"))
            raise CliError(f"timed out after {timeout:g}s waiting for {', '.join(behind)} to reach revision {target}"
                           + why)
        time.sleep(0.01)


def cmd_create(args: argparse.Namespace, connect: Connect) -> int:
    """kubectl create -f: POST each object in the file's order, never update.
    One that fails (AlreadyExists, invalid, an unknown kind) is reported and the
    others are still created; the exit is non-zero if any failed."""
    from knet.api.manifests import ManifestError, load_with_sources

    try:
        sourced = load_with_sources(args.filename)
    except ManifestError as e:
        raise CliError(str(e)) from None
    if not sourced:
        raise CliError("no objects passed to create")
    client = connect()
    failed = 0
    last_rev = 0
    for source, obj in sourced:
        try:
            res = resource_for(obj, source)
            ns = namespace_for(res, obj, args)
            out = client.request("POST", res.path(ns), obj)
        except CliError as e:
            print(f"error: {e}", file=sys.stderr)
            failed += 1
            continue
        except ApiError as e:
            print(f'Error from server ({e.reason}): error when creating "{source}": {e.message}', file=sys.stderr)
            failed += 1
            continue
        last_rev = max(last_rev, int(out["metadata"].get("resourceVersion", 0)))
        print(f"{label(res, out['metadata']['name'])} created")
    if args.wait and last_rev:
        wait_synced(client, last_rev, args.timeout)
    return 1 if failed else 0


def _targets(args: argparse.Namespace, client: Client) -> list[tuple[Resource, str | None, str]]:
    """(resource, namespace, name) triples from -f files or KIND NAME... / KIND --all."""
    from knet.api.manifests import ManifestError, load_with_sources
    from knet.api.resources import lookup

    if args.filename:
        try:
            objects = load_with_sources(args.filename)
        except ManifestError as e:
            raise CliError(str(e)) from None
        out = []
        for source, obj in objects:
            res = resource_for(obj, source)
            name = obj.get("metadata", {}).get("name")
            if not name:
                raise CliError(f'error when deleting "{source}": resource name may not be empty')
            out.append((res, namespace_for(res, obj, args), name))
        return out
    if not args.names:
        raise CliError("you must provide one or more resources by argument or filename")
    first, *names = args.names
    pairs = []
    if "/" in first:
        for item in args.names:
            kind, _, name = item.partition("/")
            pairs.append((kind, name))
    else:
        pairs = [(first, n) for n in names]
    out = []
    for kind, name in pairs or [(first, None)]:
        res = lookup(kind)
        if res is None:
            raise CliError(f'the server doesn\'t have a resource type "{kind}"')
        ns = (args.namespace or "default") if res.namespaced else None
        if name is None:
            if not args.all:
                raise CliError("resource(s) were provided, but no name was specified (use --all to delete all)")
            for obj in client.list(res, ns, args.selector)["items"]:
                out.append((res, obj["metadata"].get("namespace"), obj["metadata"]["name"]))
        else:
            out.append((res, ns, name))
    return out


def cmd_delete(args: argparse.Namespace, connect: Connect) -> int:
    client = connect()
    status = 0
    last_rev = 0
    grace = 0 if args.force else args.grace_period
    deleted = []
    for res, ns, name in _targets(args, client):
        try:
            out = client.delete(res, ns, name, grace)
            last_rev = max(last_rev, int(out["metadata"].get("resourceVersion", 0)))
            deleted.append((res, ns, name, out["metadata"].get("uid")))
            # kubectl 1.33+ names the namespace of a namespaced object
            print(f'{label(res, name).rpartition("/")[0]} "{name}" deleted' + (f' from {ns} namespace' if res.namespaced and ns else ''))
        except ApiError as e:
            if e.code == 404 and args.ignore_not_found:
                continue
            print(f"Error from server ({e.reason}): {e.message}", file=sys.stderr)
            status = 1
    if args.wait and last_rev:
        deadline = time.monotonic() + args.timeout
        revision = int(client.request("GET", "/knet/v1/progress")["revision"])
        wait_synced(client, revision, args.timeout)
        _wait_gone(client, deleted, deadline - time.monotonic())
    return status


def _wait_gone(client: Client, objects: list[tuple], timeout: float) -> None:
    """As kubectl delete waits: until each object is gone from the API (a pod
    only once its node has stopped it and removed its sandbox)."""
    deadline = time.monotonic() + timeout
    for res, ns, name, uid in objects:
        while True:
            try:
                current = client.get(res, ns, name)
            except ApiError as e:
                if e.code == 404:
                    break
                raise
            if uid and current["metadata"].get("uid") != uid:
                break  # gone, and a new one by the same name already there
            if time.monotonic() > deadline:
                raise CliError(f"timed out waiting for {label(res, name)} to be deleted")
            time.sleep(0.02)
