"""The `knet` command: kind's bring-up, kubectl's verbs, Mininet's reach into
every namespace.

Start-up time matters here (every call is a new process), so this module
imports only the standard library at the top; YAML, netlink and trio are
imported by the commands that need them.
"""

from __future__ import annotations

import gettext
import json
import os
import sys
import time

# argparse looks up a translation of every help string as the parser is built
# (8 ms a call here, stat()ing locale files); knet's messages are English only.
gettext.gettext = lambda message: message  # noqa: E731
gettext.ngettext = lambda singular, plural, n: singular if n == 1 else plural  # noqa: E731
import argparse  # noqa: E402

from knet.api.errors import ApiError  # noqa: E402

EPILOG = """examples:
  knet up                          # three+one cluster: control-plane + 3 workers
  knet apply -f app.yaml --wait    # create or update objects, wait for the nodes to act
  knet get pods -o wide            # kubectl-style tables
  knet exec web-0 -- ip addr       # run a command inside a pod's namespaces
  knet exec node/worker-1 -- ss -lnt
  knet down                        # remove everything the cluster made
"""


class CliError(Exception):
    pass


def _cluster(args) -> str:
    return getattr(args, "cluster", None) or os.environ.get("KNET_CLUSTER") or "knet"


def _client(args):
    from knet.api.client import NotRunning, for_cluster

    try:
        client = for_cluster(_cluster(args))
    except NotRunning as e:
        raise CliError(str(e)) from None
    client.field_validation = "Strict"  # kubectl's default: an unknown or duplicate field is an error
    client.on_warning = _print_warning
    return client


_warned: set[str] = set()


def _print_warning(text: str) -> None:
    """The server's `Warning:` headers, on stderr, each once per command (as kubectl's warning writer)."""
    if text not in _warned:
        _warned.add(text)
        print(f"Warning: {text}", file=sys.stderr)


def _require_root() -> None:
    if os.geteuid() != 0:
        raise CliError("knet needs root (network namespaces, mounts): run it with sudo")


# -- up / down / status ------------------------------------------------------------------


def cmd_up(args) -> int:
    _require_root()
    from knet.cluster import ClusterError, up
    from knet.config import ConfigError, default_config, parse_cluster

    try:
        if args.file:
            from knet.api.manifests import ManifestError, read_yaml

            try:
                doc = read_yaml(args.file)
            except ManifestError as e:
                raise CliError(str(e)) from None
            if not isinstance(doc, (dict, type(None))):
                raise CliError(f"cluster file {args.file}: expected a mapping (kind: Cluster), got {type(doc).__name__}")
            cfg = parse_cluster(doc, getattr(args, "cluster", None) or (doc or {}).get("name") or "knet")
        else:
            cfg = default_config(_cluster(args))
    except (ConfigError, OSError) as e:
        raise CliError(f"cluster file {args.file}: {e}" if args.file else str(e)) from None
    try:
        took = up(cfg, say=print, timeout=args.timeout)
    except ClusterError as e:
        raise CliError(str(e)) from None
    print(f'Cluster "{cfg.name}" is up in {took:.2f}s. Try:')
    flag = f" --cluster {cfg.name}" if cfg.name != "knet" else ""
    print(f"  knet get nodes{flag}\n  knet apply{flag} -f app.yaml --wait\n  knet down{flag}")
    return 0


def cmd_down(args) -> int:
    _require_root()
    from knet.cluster import ClusterError, all_clusters, down

    names = [_cluster(args)]
    if args.all:
        names = all_clusters()
        if not names:
            print("No clusters found.")
            return 0
    for name in names:
        try:
            down(name)
        except ClusterError as e:
            raise CliError(str(e)) from None
    return 0


def cmd_stop(args) -> int:
    _require_root()
    from knet.cluster import ClusterError, stop

    try:
        stop(_cluster(args), grace=args.grace_period)
    except ClusterError as e:
        raise CliError(str(e)) from None
    return 0


def cmd_start(args) -> int:
    _require_root()
    from knet.cluster import ClusterError, running, start

    name = _cluster(args)
    try:
        if running(name):
            print(f'Cluster "{name}" is already running.')
            return 0
        print(f'Starting cluster "{name}" ...')
        took = start(name, say=print, timeout=args.timeout)
    except ClusterError as e:
        raise CliError(str(e)) from None
    print(f'Cluster "{name}" is up in {took:.2f}s.')
    return 0


def _print_components(info: dict) -> None:
    """The supervisor and each component it keeps running, with restart counts."""
    spid = info.get("supervisor")
    print(f"Supervisor: {'pid ' + str(spid) if spid else 'not running'}")
    now = time.time()
    for name, st in info.get("components", {}).items():
        line = f"  {name:<22} {st.get('state', '?'):<12} pid {str(st.get('pid') or '-'):<8} restarts {st['restarts']}"
        if st.get("lastExit") and st.get("lastExitTime"):
            line += f"  (last: {st['lastExit']}, {now - st['lastExitTime']:.0f}s ago)"
        if st.get("state") == "backoff" and st.get("nextStartTime"):
            line += f"  next start in {max(0.0, st['nextStartTime'] - now):.1f}s"
        print(line)


def cmd_status(args) -> int:
    from knet.api.resources import by_kind
    from knet.cluster import ClusterError, status

    try:
        info = status(_cluster(args))
    except ClusterError as e:
        raise CliError(str(e)) from None
    if not info["config"] and not info["netns"]:
        print(f'Cluster "{info["cluster"]}" is not running.')
        return 1
    print(f'Cluster "{info["cluster"]}": {info["netns"]} namespaces, {info["processes"]} processes, '
          f'state in {info["state_dir"]}')
    _print_components(info)
    if not info["supervisor"] and not any(c.get("pid") for c in info["components"].values()):
        flag = f" --cluster {info['cluster']}" if info["cluster"] != "knet" else ""
        print(f'Cluster "{info["cluster"]}" is stopped: knet start{flag} brings it back.')
        return 1
    try:
        client = _client(args)
        version = client.request("GET", "/version")
        progress = client.request("GET", "/knet/v1/progress")
        nodes = client.list(by_kind("Node"))["items"]
        pods = client.list(by_kind("Pod"))["items"]
    except (CliError, OSError, ApiError) as e:
        print(f"API server: not reachable ({e})")
        return 1
    print(f"API server: {version['gitVersion']}, revision {progress['revision']}")
    if st := progress.get("store"):
        mib = 1024 * 1024
        print(f"  store: {st['sizeBytes'] / mib:.1f} MiB on disk (file {st['fileBytes'] / mib:.1f} MiB, "
              f"WAL {st['walBytes'] / mib:.1f} MiB), {st['keys']} objects ({st['liveBytes'] / mib:.1f} MiB), "
              f"history {st['logEntries']} revisions after compacted revision {st['compacted']}")
    if w := progress.get("watches"):
        print(f"  watches: {w['open']} open, {w['closedBehind']} closed for falling behind")
    for n in nodes:
        name = n["metadata"]["name"]
        ready = next((c["status"] for c in n.get("status", {}).get("conditions", []) if c["type"] == "Ready"), "?")
        count = sum(p["spec"].get("nodeName") == name for p in pods)
        report = progress["components"].get(f"node/{name}", {})
        print(f"  node {name:<16} Ready={ready:<8} pods={count:<4} synced to revision {report.get('observed', 0)}")
        if px := report.get("proxy"):
            print(f"       proxy: {px.get('servicePorts', 0)} service ports, {px.get('syncs', 0)} syncs "
                  f"({px.get('fullSyncs', 0)} full), the last {px.get('lastOps', 0)} nftables operations")
        if report.get("error"):
            print(f"       {report['error']}")
    return 0


# -- apply / delete ------------------------------------------------------------------------


def _resource_for(obj: dict, source: str | None = None):
    from knet.api.resources import by_kind

    res = by_kind(obj.get("kind", ""))
    if res is None or obj.get("apiVersion") != res.api_version:
        raise CliError((f'unable to recognize "{source}": ' if source else "")
                       + f'no matches for kind "{obj.get("kind")}" in version "{obj.get("apiVersion")}"')
    return res


def _namespace_for(res, obj: dict, args) -> str | None:
    if not res.namespaced:
        return None
    body = obj.get("metadata", {}).get("namespace")
    if body and args.namespace and body != args.namespace:
        raise CliError(f"the namespace from the provided object \"{body}\" does not match the namespace "
                       f"\"{args.namespace}\". You must pass '--namespace={body}' to perform this operation.")
    return body or args.namespace or "default"


def _label(res, name: str) -> str:
    return f"{res.singular}{'.' + res.group if res.group else ''}/{name}"


def cmd_apply(args) -> int:
    from knet.api.manifests import ManifestError, load_with_sources

    try:
        sourced = load_with_sources(args.filename)
    except ManifestError as e:
        raise CliError(str(e)) from None
    if not sourced:
        raise CliError("no objects passed to apply")
    objects = [obj for _, obj in sourced]
    sources = {id(obj): source for source, obj in sourced}
    client = _client(args)
    # Namespaces first, so one file can hold a namespace and what lives in it.
    objects.sort(key=lambda o: 0 if o.get("kind") == "Namespace" else 1)
    planned = [(obj, _resource_for(obj, sources[id(obj)])) for obj in objects]
    new_namespaces = {o.get("metadata", {}).get("name") for o, r in planned if r.kind == "Namespace"}
    # Pass 1: a server-side dry run of every object, so a bad file changes nothing. (One object
    # needs none: the API server stores it whole or not at all.)
    failures = []
    for obj, res in planned if len(planned) > 1 else ():
        ns = _namespace_for(res, obj, args)
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
        ns = _namespace_for(res, obj, args)
        try:
            verb, out = _apply_one(client, res, ns, obj)
        except ApiError as e:  # one object (no dry run), or the cluster changed since the dry run
            print(_apply_failure(e, res, obj), file=sys.stderr)
            print("nothing was applied" if not done else f"{done} of {len(planned)} objects were applied",
                  file=sys.stderr)
            return 1
        last_rev = max(last_rev, int(out["metadata"].get("resourceVersion", 0)))
        applied.append(out)
        print(f"{_label(res, out['metadata']['name'])} {verb}")
    if args.wait:
        _wait_synced(client, last_rev, args.timeout)
        _report_warnings(client, applied, since)
    return 0


def _report_warnings(client, applied: list[dict], since: int) -> None:
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
            label = f"{str(about.get('kind', '')).lower()}/{about.get('name')}"
            print(f"Warning: {label}: {ev.get('reason')}: {ev.get('message')}", file=sys.stderr)
            if ev.get("reason") in REALIZE_FAILURES and label not in failed:
                failed.append(label)
    if failed:
        raise CliError(f"applied but not realized: {', '.join(failed)} (see the warnings above)")


def _apply_failure(e: ApiError, res, obj: dict) -> str:
    return f"Error from server ({e.reason}): error when applying {_label(res, obj.get('metadata', {}).get('name', ''))}: {e.message}"


def _apply_one(client, res, ns: str | None, obj: dict, dry_run: bool = False) -> tuple[str, dict]:
    name = obj.get("metadata", {}).get("name")
    query = {"dryRun": "All"} if dry_run else None
    current = None
    if name and dry_run:
        try:
            current = client.get(res, ns, name)
        except ApiError as e:
            if e.code != 404:
                raise
    if current is None:
        try:
            return "created", client.request("POST", res.path(ns), obj, query=query)
        except ApiError as e:  # it exists: patch it (creating first saves a round trip for new objects)
            if e.code != 409 or e.reason != "AlreadyExists" or not name:
                raise
        current = client.get(res, ns, name)
    patch = {k: v for k, v in obj.items() if k not in ("status",)}
    out = client.request("PATCH", res.path(ns, name), patch, query=query,
                         content_type="application/merge-patch+json")
    changed = out["metadata"].get("resourceVersion") != current["metadata"].get("resourceVersion")
    return ("configured" if changed else "unchanged"), out


def _wait_synced(client, revision: int, timeout: float) -> None:
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


def cmd_create(args) -> int:
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
    client = _client(args)
    failed = 0
    last_rev = 0
    for source, obj in sourced:
        try:
            res = _resource_for(obj, source)
            ns = _namespace_for(res, obj, args)
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
        print(f"{_label(res, out['metadata']['name'])} created")
    if args.wait and last_rev:
        _wait_synced(client, last_rev, args.timeout)
    return 1 if failed else 0


def _targets(args, client) -> list[tuple]:
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
            res = _resource_for(obj, source)
            name = obj.get("metadata", {}).get("name")
            if not name:
                raise CliError(f'error when deleting "{source}": resource name may not be empty')
            out.append((res, _namespace_for(res, obj, args), name))
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


def cmd_delete(args) -> int:
    client = _client(args)
    status = 0
    last_rev = 0
    grace = 0 if args.force else args.grace_period
    deleted = []
    for res, ns, name in _targets(args, client):
        try:
            out = client.delete(res, ns, name, grace)
            last_rev = max(last_rev, int(out["metadata"].get("resourceVersion", 0)))
            deleted.append((res, ns, name, out["metadata"].get("uid")))
            print(f'{_label(res, name)} deleted')
        except ApiError as e:
            if e.code == 404 and args.ignore_not_found:
                continue
            print(f"Error from server ({e.reason}): {e.message}", file=sys.stderr)
            status = 1
    if args.wait and last_rev:
        deadline = time.monotonic() + args.timeout
        revision = int(client.request("GET", "/knet/v1/progress")["revision"])
        _wait_synced(client, revision, args.timeout)
        _wait_gone(client, deleted, deadline - time.monotonic())
    return status


def _wait_gone(client, objects: list[tuple], timeout: float) -> None:
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
                raise CliError(f"timed out waiting for {_label(res, name)} to be deleted")
            time.sleep(0.02)


# -- get / describe ----------------------------------------------------------------------


def _dump(obj: dict, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(obj, indent=4)
    import yaml
    return yaml.safe_dump(obj, default_flow_style=False, sort_keys=True)


def cmd_get(args) -> int:
    from knet import printers
    from knet.api.resources import lookup

    client = _client(args)
    kinds = args.kind.split(",")
    resources = []
    for k in kinds:
        res = lookup(k)
        if res is None:
            raise CliError(f'the server doesn\'t have a resource type "{k}"')
        resources.append(res)
    ns = None if args.all_namespaces else (args.namespace or "default")
    objects_by_res = []
    for res in resources:
        rns = ns if res.namespaced else None
        if args.name:
            try:
                items = [client.get(res, rns, n) for n in args.name]
            except ApiError as e:
                print(f"Error from server ({e.reason}): {e.message}", file=sys.stderr)
                return 1
        else:
            items = client.list(res, rns, args.selector, args.field_selector)["items"]
        objects_by_res.append((res, items))
    fmt = args.output or ""
    if fmt in ("json", "yaml"):
        if args.name and len(resources) == 1 and len(args.name) == 1:
            print(_dump(objects_by_res[0][1][0], fmt), end="" if fmt == "yaml" else "\n")
        else:
            items = [o for _, objs in objects_by_res for o in objs]
            print(_dump({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items}
                        if len(resources) > 1 else
                        {"apiVersion": resources[0].api_version, "kind": resources[0].list_kind,
                         "metadata": {"resourceVersion": ""}, "items": items}, fmt),
                  end="" if fmt == "yaml" else "\n")
        return 0
    if fmt == "name":
        for res, items in objects_by_res:
            for o in items:
                print(_label(res, o["metadata"]["name"]))
        return 0
    if fmt not in ("", "wide"):
        raise CliError(f"unable to match a printer suitable for the output format {fmt!r}, "
                       "allowed formats are: json,name,wide,yaml")
    printed = False
    for res, items in objects_by_res:
        if not items:
            continue
        if printed:
            print()
        text = printers.table(res.kind, items, wide=fmt == "wide", all_namespaces=args.all_namespaces,
                              show_kind=len(resources) > 1)
        if args.no_headers:
            text = text.split("\n", 1)[1]
        print(text, end="")
        printed = True
    if not printed:
        where = "" if args.all_namespaces or not any(r.namespaced for r in resources) else f" in {ns} namespace"
        print(f"No resources found{where}.", file=sys.stderr)
    return 0


def cmd_describe(args) -> int:
    from knet import printers
    from knet.api.resources import by_kind, lookup

    client = _client(args)
    res = lookup(args.kind)
    if res is None:
        raise CliError(f'the server doesn\'t have a resource type "{args.kind}"')
    ns = (args.namespace or "default") if res.namespaced else None
    objs = [client.get(res, ns, n) for n in args.name] if args.name else client.list(res, ns, args.selector)["items"]
    events = client.list(by_kind("Event"), None)["items"]
    for i, obj in enumerate(objs):
        uid = obj["metadata"].get("uid")
        mine = [e for e in events if e.get("involvedObject", {}).get("uid") == uid]
        mine.sort(key=lambda e: (e.get("lastTimestamp") or "", int(e["metadata"].get("resourceVersion") or 0)))
        if i:
            print("\n")
        print(printers.describe(obj, mine), end="")
    return 0


# -- exec / logs ----------------------------------------------------------------------------


def _pod_paths(args, client, pod_name: str) -> tuple[dict, str]:
    from knet.api.resources import by_kind
    from knet.config import state_dir

    pod = client.get(by_kind("Pod"), args.namespace or "default", pod_name)
    node = pod["spec"].get("nodeName")
    if not node:
        raise CliError(f"pod {pod_name} is not scheduled to a node yet")
    sdir = os.path.join(state_dir(_cluster(args)), "nodes", node, "pods", pod["metadata"]["uid"])
    return pod, sdir


def _pick_container(pod: dict, name: str | None) -> dict:
    containers = pod["spec"]["containers"]
    if name is None:
        return containers[0]
    for c in containers:
        if c["name"] == name:
            return c
    raise CliError(f"container {name} is not valid for pod {pod['metadata']['name']}")


def cmd_exec(args) -> int:
    _require_root()
    from knet.config import load_saved
    from knet.net import ns

    if not args.command:
        raise CliError("you must specify at least one command for the container (knet exec POD -- CMD)")
    target = args.target
    try:
        cfg = load_saved(_cluster(args))
    except OSError:
        raise CliError(f'cluster "{_cluster(args)}" is not running') from None
    if target == "ext" or target.startswith("node/"):
        netns = cfg.ext_netns if target == "ext" else cfg.node_netns(target[5:])
        if not os.path.exists(ns.netns_path(netns)):
            raise CliError(f"no such node: {target[5:]}")
        fd = os.open(ns.netns_path(netns), os.O_RDONLY)
        ns.setns(fd, ns.CLONE_NEWNET)
        _exec(args.command, os.environ)
    client = _client(args)
    name = target[4:] if target.startswith(("pod/", "po/")) else target
    name = name.split("/", 1)[-1]
    try:
        pod, sdir = _pod_paths(args, client, name)
    except ApiError as e:
        raise CliError(e.message) from None
    container = _pick_container(pod, args.container)
    netns = pod["metadata"].get("annotations", {}).get("knet.dev/netns") or cfg.pod_netns(pod["metadata"]["uid"])
    if not os.path.exists(os.path.join(sdir, "uts")):
        raise CliError(f"pod {name} has no sandbox yet (phase {pod.get('status', {}).get('phase')})")
    from knet.api.resources import by_kind
    from knet.node.podspec import container_env, security, service_env

    services = []
    if pod["spec"].get("enableServiceLinks", True):
        services = client.list(by_kind("Service"), pod["metadata"]["namespace"])["items"]
    if pod["metadata"]["namespace"] != "default" or not pod["spec"].get("enableServiceLinks", True):
        services += [s for s in client.list(by_kind("Service"), "default")["items"]
                     if s["metadata"]["name"] == "kubernetes"]
    env = container_env(pod, container, pod.get("status", {}).get("hostIP", ""), service_env(services))
    env["TERM"] = os.environ.get("TERM", "xterm")
    uid, gid, groups, nnp = security(pod, container)
    for path, flag in ((ns.netns_path(netns), ns.CLONE_NEWNET), (os.path.join(sdir, "uts"), ns.CLONE_NEWUTS)):
        fd = os.open(path, os.O_RDONLY)
        ns.setns(fd, flag)
        os.close(fd)
    ns.unshare(ns.CLONE_NEWNS)
    ns.private_mounts_for_netns()
    for src, dst in (("resolv.conf", "/etc/resolv.conf"), ("hosts", "/etc/hosts"), ("hostname", "/etc/hostname")):
        if os.path.exists(dst) and os.path.exists(os.path.join(sdir, src)):
            ns.mount(os.path.join(sdir, src), dst, None, ns.MS_BIND)
    if nnp:
        ns.no_new_privs()
    if uid is not None or gid is not None:
        os.setgroups(groups)
        os.setgid(gid if gid is not None else 0)
    if uid is not None:
        os.setuid(uid)
    try:
        os.chdir(container.get("workingDir") or "/")
    except OSError:
        pass
    _exec(args.command, env)
    return 127


def _exec(argv: list[str], env) -> None:
    try:
        os.execvpe(argv[0], argv, env)
    except FileNotFoundError:
        print(f'knet exec: "{argv[0]}": executable file not found in $PATH', file=sys.stderr)
        os._exit(127)
    except OSError as e:  # not executable, a bad format...: 126, as a shell or container runtime says
        print(f'knet exec: "{argv[0]}": {(e.strerror or str(e)).lower()}', file=sys.stderr)
        os._exit(126)


def _follow(paths: list[str], follow: bool, tail: int | None) -> None:
    files = []
    for p in paths:
        f = open(p, "rb")
        data = f.read()
        if tail is not None:
            data = b"\n".join(data.split(b"\n")[-tail - 1:]) if data else data
        sys.stdout.buffer.write(data)
        files.append(f)
    sys.stdout.flush()
    while follow:
        time.sleep(0.1)
        for f in files:
            chunk = f.read()
            if chunk:
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()


def cmd_logs(args) -> int:
    from knet.config import state_dir

    sdir = state_dir(_cluster(args))
    target = args.target
    if target in ("control-plane", "controlplane", "api-server") or target.startswith("node/"):
        name = "control-plane" if not target.startswith("node/") else f"node-{target[5:]}"
        path = os.path.join(sdir, "logs", f"{name}.log")
        if not os.path.exists(path):
            raise CliError(f"no log for {target} (is the cluster running?)")
        _follow([path], args.follow, args.tail)
        return 0
    client = _client(args)
    name = target.split("/", 1)[-1]
    try:
        pod, pdir = _pod_paths(args, client, name)
    except ApiError as e:
        raise CliError(e.message) from None
    containers = pod["spec"]["containers"]
    if args.container is None and len(containers) > 1:
        raise CliError(f"a container name must be specified for pod {name}, choose one of: "
                       f"[{' '.join(c['name'] for c in containers)}]")
    c = _pick_container(pod, args.container)
    path = os.path.join(pdir, "logs", f"{c['name']}.log")
    if not os.path.exists(path):
        if not c.get("command") and not c.get("args"):
            return 0  # the built-in server writes nothing
        raise CliError(f"container {c['name']} in pod {name} has not started")
    _follow([path], args.follow, args.tail)
    return 0


# -- workloads and nodes ---------------------------------------------------------------------


def _kind_name(text: str, default_kind: str | None = None):
    from knet.api.resources import lookup

    kind, _, name = text.partition("/")
    if not name:
        if default_kind is None:
            raise CliError(f"expected KIND/NAME, got {text!r}")
        kind, name = default_kind, text
    res = lookup(kind)
    if res is None:
        raise CliError(f'the server doesn\'t have a resource type "{kind}"')
    return res, name


def cmd_scale(args) -> int:
    client = _client(args)
    res, name = _kind_name(args.target)
    if res.kind not in ("Deployment", "ReplicaSet", "StatefulSet"):
        raise CliError(f"cannot scale a {res.kind}")
    if args.replicas < 0:
        raise CliError("--replicas: Invalid value: must be greater than or equal to 0")
    ns = args.namespace or "default"
    out = client.patch(res, ns, name, {"spec": {"replicas": args.replicas}})
    print(f"{_label(res, name)} scaled")
    if args.wait:
        _wait_synced(client, int(out["metadata"]["resourceVersion"]), args.timeout)
    return 0


def rollout_state(obj: dict) -> tuple[bool, str]:
    """Whether a rollout is done, and kubectl's progress line for it."""
    kind, name = obj["kind"], obj["metadata"]["name"]
    spec, st = obj.get("spec", {}), obj.get("status", {})
    if st.get("observedGeneration", 0) < obj["metadata"].get("generation", 1):
        return False, f"Waiting for {kind.lower()} spec update to be observed..."
    if kind == "Deployment":
        want = spec.get("replicas", 1)
        updated, total, avail = st.get("updatedReplicas", 0), st.get("replicas", 0), st.get("availableReplicas", 0)
        if updated < want:
            return False, (f'Waiting for deployment "{name}" rollout to finish: {updated} out of {want} new '
                           "replicas have been updated...")
        if total > updated:
            return False, (f'Waiting for deployment "{name}" rollout to finish: {total - updated} old replicas '
                           "are pending termination...")
        if avail < updated:
            return False, (f'Waiting for deployment "{name}" rollout to finish: {avail} of {updated} updated '
                           "replicas are available...")
        return True, f'deployment "{name}" successfully rolled out'
    if kind == "DaemonSet":
        want, updated, avail = (st.get("desiredNumberScheduled", 0), st.get("updatedNumberScheduled", 0),
                                st.get("numberAvailable", 0))
        if updated < want:
            return False, (f'Waiting for daemon set "{name}" rollout to finish: {updated} out of {want} new pods '
                           "have been updated...")
        if avail < want:
            return False, (f'Waiting for daemon set "{name}" rollout to finish: {avail} of {want} updated pods '
                           "are available...")
        return True, f'daemon set "{name}" successfully rolled out'
    if kind == "StatefulSet":
        want, ready, updated = spec.get("replicas", 1), st.get("readyReplicas", 0), st.get("updatedReplicas", 0)
        if ready < want:
            return False, f"Waiting for {want - ready} pods to be ready..."
        if updated < want:
            return False, (f"waiting for statefulset rolling update to complete {updated} pods at revision "
                           f"{st.get('updateRevision')}...")
        return True, f"statefulset rolling update complete {want} pods at revision {st.get('updateRevision')}..."
    raise CliError(f"no rollout status for {kind}")


def cmd_rollout(args) -> int:
    client = _client(args)
    res, name = _kind_name(args.target)
    ns = args.namespace or "default"
    deadline = time.monotonic() + args.timeout
    last = None
    while True:
        done, line = rollout_state(client.get(res, ns, name))
        if line != last:
            print(line, flush=True)
            last = line
        if done:
            return 0
        if not args.watch:
            return 1
        if time.monotonic() > deadline:
            raise CliError(f"timed out waiting for the rollout of {res.singular}/{name}")
        time.sleep(0.05)


def cmd_cordon(args, unschedulable: bool = True) -> int:
    from knet.api.resources import by_kind

    client = _client(args)
    for name in args.nodes:
        node = client.get(by_kind("Node"), None, name)
        if bool(node.get("spec", {}).get("unschedulable")) == unschedulable:
            print(f"node/{name} already {'cordoned' if unschedulable else 'uncordoned'}")
            continue
        client.patch(by_kind("Node"), None, name, {"spec": {"unschedulable": True if unschedulable else None}})
        print(f"node/{name} {'cordoned' if unschedulable else 'uncordoned'}")
    return 0


def parse_taint(text: str) -> tuple[dict, bool]:
    """kubectl's taint syntax: key[=value]:Effect to add, key[:Effect]- to remove."""
    remove = text.endswith("-")
    body = text[:-1] if remove else text
    key_value, _, effect = body.partition(":")
    key, _, value = key_value.partition("=")
    if not key or (not remove and effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute")):
        raise CliError(f"invalid taint spec: {text!r} (want key[=value]:NoSchedule|PreferNoSchedule|NoExecute, "
                       "or key[:Effect]- to remove)")
    taint = {"key": key, "effect": effect} if effect else {"key": key}
    if value:
        taint["value"] = value
    return taint, remove


def cmd_taint(args) -> int:
    from knet.api.objects import now_rfc3339
    from knet.api.resources import by_kind

    client = _client(args)
    node = client.get(by_kind("Node"), None, args.node)
    taints = list(node.get("spec", {}).get("taints") or [])
    for text in args.taints:
        taint, remove = parse_taint(text)
        if remove:
            kept = [t for t in taints if not (t["key"] == taint["key"] and
                                              ("effect" not in taint or t.get("effect") == taint["effect"]))]
            if len(kept) == len(taints):
                raise CliError(f"taint {text[:-1]!r} not found")
            taints = kept
        else:
            taints = [t for t in taints if not (t["key"] == taint["key"] and t.get("effect") == taint["effect"])]
            if taint["effect"] == "NoExecute":
                taint["timeAdded"] = now_rfc3339()
            taints.append(taint)
    client.patch(by_kind("Node"), None, args.node, {"spec": {"taints": taints or None}})
    print(f"node/{args.node} {'untainted' if all(t.endswith('-') for t in args.taints) else 'tainted'}")
    return 0


def cmd_uncordon(args) -> int:
    return cmd_cordon(args, unschedulable=False)


def cmd_drain(args) -> int:
    """kubectl drain: cordon, then evict every pod but DaemonSet pods, and wait
    for them to be gone so their controllers have placed them elsewhere."""
    from knet.api.resources import by_kind

    client = _client(args)
    pods_res = by_kind("Pod")
    cmd_cordon(argparse.Namespace(**{**vars(args), "nodes": [args.node]}))
    pods = client.list(pods_res, None, field_selector=f"spec.nodeName={args.node}")["items"]
    owner = lambda p: next((r for r in p["metadata"].get("ownerReferences") or [] if r.get("controller")), None)  # noqa: E731
    evict, unmanaged = [], []
    for p in pods:
        ref = owner(p)
        if ref and ref.get("kind") == "DaemonSet":
            continue
        (evict if ref or args.force else unmanaged).append(p)
    if unmanaged:
        names = ", ".join(f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in unmanaged)
        raise CliError(f"unable to drain node {args.node!r}: cannot delete Pods that declare no controller "
                       f"(use --force to override): {names}")
    daemon = [p for p in pods if (owner(p) or {}).get("kind") == "DaemonSet"]
    if daemon:
        print("Warning: ignoring DaemonSet-managed Pods: " +
              ", ".join(f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in daemon))
    for p in evict:
        m = p["metadata"]
        print(f"evicting pod {m['namespace']}/{m['name']}")
        body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": m["name"],
                                                                           "namespace": m["namespace"]}}
        if args.grace_period is not None:
            body["deleteOptions"] = {"gracePeriodSeconds": args.grace_period}
        try:
            client.request("POST", pods_res.path(m["namespace"], m["name"]) + "/eviction", body)
        except ApiError as e:
            if e.code != 404:
                raise
    deadline = time.monotonic() + args.timeout
    waiting = {(p["metadata"]["namespace"], p["metadata"]["name"], p["metadata"]["uid"]) for p in evict}
    while waiting:
        for key in sorted(waiting):
            try:
                cur = client.get(pods_res, key[0], key[1])
                gone = cur["metadata"]["uid"] != key[2]
            except ApiError as e:
                if e.code != 404:
                    raise
                gone = True
            if gone:
                print(f"pod/{key[1]} evicted")
                waiting.discard(key)
        if waiting and time.monotonic() > deadline:
            raise CliError(f"timed out waiting for {len(waiting)} pods to leave {args.node}")
        time.sleep(0.05)
    print(f"node/{args.node} drained")
    return 0


def cmd_version(args) -> int:
    from knet import __version__

    print(f"knet {__version__}")
    try:  # as kubectl version: the client's version always, then the server's or why not (exit 1)
        v = _client(args).request("GET", "/version")
    except (CliError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"Server Version: {v['gitVersion']}")
    return 0


# -- parser ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--cluster", metavar="NAME", default=argparse.SUPPRESS,
                        help="cluster name (default: knet, or $KNET_CLUSTER)")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="on an unexpected error, print its traceback (also KNET_DEBUG=1)")
    nsopt = argparse.ArgumentParser(add_help=False)
    nsopt.add_argument("-n", "--namespace", metavar="NS", help="namespace (default: default)")

    p = argparse.ArgumentParser(prog="knet", parents=[common], epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="knet: a Kubernetes networking data plane made of real namespaces, "
                                            "veth, VXLAN and nftables, driven by ordinary manifests.")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")

    s = sub.add_parser("up", parents=[common], help="create a cluster and wait until every node is Ready",
                       description="Create a cluster: a LAN of node namespaces, the control plane and one agent "
                                   "per node, kept running by the cluster's supervisor. Without -f: one "
                                   "control-plane node and three workers. On a stopped cluster with the same "
                                   "config: start it again, with its state.")
    s.add_argument("-f", "--file", metavar="CLUSTER.yaml", help="kind-style cluster file (kind: Cluster)")
    s.add_argument("--timeout", type=float, default=30, help="seconds to wait for nodes Ready (default 30)")
    s.set_defaults(func=cmd_up)

    s = sub.add_parser("down", parents=[common], help="delete a cluster and everything it made",
                       description="Kill every process of the cluster and remove its namespaces, links, mounts "
                                   "and files. Works on a half-made or crashed cluster, and when there is none.")
    s.add_argument("--all", action="store_true", help="delete every knet cluster on this machine")
    s.set_defaults(func=cmd_down)

    s = sub.add_parser("stop", parents=[common], help="stop a cluster's processes, keeping its state",
                       description="Stop the supervisor, the control plane, the node agents and every process in "
                                   "the cluster's pods (SIGTERM, then SIGKILL after the grace period). Namespaces, "
                                   "the store and the state directory stay: knet start brings it back.")
    s.add_argument("--grace-period", type=float, default=5.0, help="seconds before SIGKILL (default 5)")
    s.set_defaults(func=cmd_stop)

    s = sub.add_parser("start", parents=[common], help="start a stopped cluster again, with its state",
                       description="Start the supervisor of a stopped (or partly running) cluster; it adopts "
                                   "the components still running and starts the rest, and the agents adopt "
                                   "their pods. Waits until every node is Ready.")
    s.add_argument("--timeout", type=float, default=30, help="seconds to wait for nodes Ready (default 30)")
    s.set_defaults(func=cmd_start)

    s = sub.add_parser("status", parents=[common], help="show the cluster's components and sync state")
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("apply", parents=[common, nsopt], help="create or update objects from manifests",
                       description="Create or update objects from YAML/JSON manifests. Every object is first "
                                   "checked by the API server (dry run): if one is invalid, nothing is applied.")
    s.add_argument("-f", "--filename", action="append", required=True, metavar="FILE|DIR|-")
    s.add_argument("--wait", action="store_true", help="return when every node agent has acted on the change")
    s.add_argument("--timeout", type=float, default=60, help="seconds for --wait (default 60)")
    s.set_defaults(func=cmd_apply)

    s = sub.add_parser("create", parents=[common, nsopt], help="create objects from manifests (never update)",
                       description="Create each object of YAML/JSON manifests, as kubectl create -f: one that "
                                   "exists is an AlreadyExists error and left as it is; the others are still "
                                   "created. Exits non-zero if any failed.")
    s.add_argument("-f", "--filename", action="append", required=True, metavar="FILE|DIR|-")
    s.add_argument("--wait", action="store_true", help="return when every node agent has acted on the change")
    s.add_argument("--timeout", type=float, default=60, help="seconds for --wait (default 60)")
    s.set_defaults(func=cmd_create)

    s = sub.add_parser("delete", parents=[common, nsopt], help="delete objects",
                       description="Delete objects by file, by KIND NAME..., KIND/NAME..., or KIND --all.")
    s.add_argument("names", nargs="*", metavar="KIND [NAME...]")
    s.add_argument("-f", "--filename", action="append", metavar="FILE|DIR|-")
    s.add_argument("--all", action="store_true", help="delete every object of the kind in the namespace")
    s.add_argument("-l", "--selector", help="label selector (with --all)")
    s.add_argument("--grace-period", type=int, default=None, help="seconds before SIGKILL (pods)")
    s.add_argument("--force", action="store_true", help="delete at once (grace period 0)")
    s.add_argument("--ignore-not-found", action="store_true")
    s.add_argument("--wait", action="store_true", help="return when the objects are gone and every node agent has acted on it")
    s.add_argument("--timeout", type=float, default=60)
    s.set_defaults(func=cmd_delete)

    s = sub.add_parser("get", parents=[common, nsopt], help="list objects in kubectl-style tables",
                       description="Show objects. KIND is a kind, plural or short name (po, svc, deploy, rs, ds, "
                                   "sts, no, ns, netpol, endpointslices), or several joined by commas.")
    s.add_argument("kind", metavar="KIND[,KIND]")
    s.add_argument("name", nargs="*", metavar="NAME")
    s.add_argument("-A", "--all-namespaces", action="store_true")
    s.add_argument("-l", "--selector", help="label selector, e.g. app=web,tier!=db")
    s.add_argument("--field-selector", help="field selector, e.g. spec.nodeName=worker-1")
    s.add_argument("-o", "--output", help="wide, yaml, json or name")
    s.add_argument("--no-headers", action="store_true", help="leave out the header row")
    s.set_defaults(func=cmd_get)

    s = sub.add_parser("describe", parents=[common, nsopt], help="show one object in detail, with its events")
    s.add_argument("kind")
    s.add_argument("name", nargs="*")
    s.add_argument("-l", "--selector")
    s.set_defaults(func=cmd_describe)

    s = sub.add_parser("exec", parents=[common, nsopt], help="run a command in a pod, node or the ext host",
                       description="Run a command inside a pod's namespaces (network, UTS, its resolv.conf), "
                                   "as the container's user. TARGET is POD, node/NAME or ext.")
    s.add_argument("target", metavar="POD|node/NAME|ext")
    s.add_argument("-c", "--container", help="container name (default: the first)")
    s.add_argument("-i", "--stdin", action="store_true", help="accepted for kubectl compatibility")
    s.add_argument("-t", "--tty", action="store_true", help="accepted for kubectl compatibility")
    s.add_argument("command", nargs="*", metavar="-- CMD...")
    s.set_defaults(func=cmd_exec)

    s = sub.add_parser("logs", parents=[common, nsopt], help="print a container's or a component's log",
                       description="Print the log of a pod's container, of node/NAME's agent, or of the "
                                   "control-plane.")
    s.add_argument("target", metavar="POD|node/NAME|control-plane")
    s.add_argument("-c", "--container")
    s.add_argument("-f", "--follow", action="store_true")
    s.add_argument("--tail", type=int, default=None, metavar="N")
    s.set_defaults(func=cmd_logs)

    s = sub.add_parser("scale", parents=[common, nsopt], help="set the replicas of a Deployment, ReplicaSet or "
                                                             "StatefulSet")
    s.add_argument("target", metavar="KIND/NAME", help="e.g. deploy/web")
    s.add_argument("--replicas", type=int, required=True)
    s.add_argument("--wait", action="store_true", help="return when every node agent has acted on it")
    s.add_argument("--timeout", type=float, default=60)
    s.set_defaults(func=cmd_scale)

    s = sub.add_parser("rollout", parents=[common, nsopt], help="watch a rollout: knet rollout status deploy/NAME")
    rsub = s.add_subparsers(dest="rollout_cmd", metavar="status", required=True)
    r = rsub.add_parser("status", parents=[common, nsopt], help="wait for a Deployment, DaemonSet or "
                                                               "StatefulSet rollout to finish")
    r.add_argument("target", metavar="KIND/NAME")
    r.add_argument("-w", "--watch", action=argparse.BooleanOptionalAction, default=True)
    r.add_argument("--timeout", type=float, default=300)
    r.set_defaults(func=cmd_rollout)

    s = sub.add_parser("cordon", parents=[common], help="mark nodes unschedulable")
    s.add_argument("nodes", nargs="+", metavar="NODE")
    s.set_defaults(func=cmd_cordon)
    s = sub.add_parser("uncordon", parents=[common], help="mark nodes schedulable again")
    s.add_argument("nodes", nargs="+", metavar="NODE")
    s.set_defaults(func=cmd_uncordon)
    s = sub.add_parser("taint", parents=[common], help="add or remove node taints (kubectl's syntax)",
                       description="knet taint NODE key=value:NoSchedule ... ; key:NoSchedule- removes one.")
    s.add_argument("node", metavar="NODE")
    s.add_argument("taints", nargs="+", metavar="TAINT")
    s.set_defaults(func=cmd_taint)
    s = sub.add_parser("drain", parents=[common], help="cordon a node and evict its pods (not DaemonSet pods)",
                       description="Cordon NODE, evict every pod on it except DaemonSet pods, and wait until "
                                   "they are gone; their controllers place them on other nodes.")
    s.add_argument("node", metavar="NODE")
    s.add_argument("--force", action="store_true", help="also evict pods no controller manages")
    s.add_argument("--grace-period", type=int, default=None)
    s.add_argument("--timeout", type=float, default=120)
    s.set_defaults(func=cmd_drain)

    s = sub.add_parser("version", parents=[common], help="print the client and server versions")
    s.set_defaults(func=cmd_version)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    command = None
    if "--" in argv and "exec" in argv[:argv.index("--")]:
        # Everything after `--` belongs to the command, flags included (kubectl's rule).
        cut = argv.index("--")
        argv, command = argv[:cut], argv[cut + 1:]
    args = parser.parse_args(argv)
    if command is not None:
        args.command = (args.command or []) + command
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = args.func(args) or 0
        sys.stdout.flush()  # here, not at exit: a closed pipe is then caught below
        return code
    except CliError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ApiError as e:
        print(f"Error from server ({e.reason}): {e.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError as e:
        if _stdout_broken():  # `knet get pods | head -1`: quiet, as a Go program dies of SIGPIPE
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            return 141
        return _unexpected(e, args)
    except Exception as e:  # the backstop: one line, never a traceback unless asked for
        return _unexpected(e, args)


def _stdout_broken() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll says POLLERR)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))
    except (OSError, ValueError):
        return False


def error_line(e: BaseException) -> str:
    """One line for an error no command turned into a message of its own."""
    from knet.api.client import ProtocolError

    if isinstance(e, (ConnectionError, ProtocolError)) and e.args and isinstance(e.args[0], str) and len(e.args) == 1:
        return f"error: {e}"  # the client's own wording (Unreachable, ProtocolError)
    if isinstance(e, OSError) and e.strerror:
        where = f": {e.filename}" if e.filename else ""
        return f"error: {e.strerror.lower()}{where}"
    if isinstance(e, MemoryError):
        return "error: out of memory"
    text = " ".join(str(e).split())
    if len(text) > 200:
        text = text[:200] + "..."
    return f"error: unexpected {type(e).__name__}{': ' + text if text else ''} (a bug in knet: run again with " \
           "-v or KNET_DEBUG=1 for the traceback)"


def _unexpected(e: BaseException, args) -> int:
    if getattr(args, "verbose", False) or os.environ.get("KNET_DEBUG", "") not in ("", "0"):
        import traceback

        traceback.print_exception(e)
    try:
        print(error_line(e), file=sys.stderr)
    except Exception:
        pass
    return 1


if __name__ == "__main__":
    sys.exit(main())
