"""A lab's life: up (its cluster, its manifests, ready), check, run (up, every exercise, down), down.

The lab's cluster is named for the lab (`lab-<name>`, or --cluster), never the user's `knet`
cluster, so a lab can run beside one. `up` returns only when everything the manifests made is
ready (pods Ready, workloads available, LoadBalancer addresses given, every node agent synced to
it): the first check then sees what the lab means, not a cluster half way there. A failed `up`
takes its cluster down again, as `knet up` does: nothing half-made is left.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

from knet.lab import checks
from knet.lab.model import Exercise, Lab, LabError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from knet.api.client import Client

Say = Callable[[str], None]
KUBECTL = os.path.join(sys.prefix, "bin", "kubectl")
LAUNCHER = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        "scripts", "knet-launch")


def knet_argv() -> list[str]:
    """How to start `knet` from this checkout: its lean launcher (no site .pth processing: a
    lab runs dozens of commands), or python -m knet.cli."""
    if os.path.exists(LAUNCHER):
        return [sys.executable, "-I", "-S", LAUNCHER]
    return [sys.executable, "-m", "knet.cli"]


def _client(cluster: str) -> Client:
    from knet.cli.common import prepare
    from knet.cluster import connect

    return prepare(connect(cluster))


def seam(cluster: str) -> checks.Seam:
    from knet.cluster import ClusterError
    from knet.config import load_saved
    from knet.lab.live import LiveSeam

    try:
        cfg = load_saved(cluster)
        client = _client(cluster)
    except (OSError, ClusterError):
        raise LabError(f'the lab\'s cluster "{cluster}" is not running (knet lab up starts it)') from None
    return LiveSeam(cluster, cfg, client)


def api_seam(client: Client):
    """The checks' seam through a kubeconfig context's client (knet.cli.kubecontext): a cluster
    anywhere, reached as kubectl reaches it (knet.lab.viaapi)."""
    from knet.lab.viaapi import ApiSeam, cluster_of

    return ApiSeam(client, cluster_of(client.context or ""), client.context)


# -- up ---------------------------------------------------------------------------------


def up(lab: Lab, cluster: str, say: Say = print, timeout: float = 120.0) -> float:
    from knet.cluster import ClusterError, down
    from knet.cluster import up as cluster_up

    t0 = time.monotonic()
    cfg = lab.cluster_config(cluster)
    say(f'Lab "{lab.name}": {lab.title} ({lab.folder})')
    try:
        cluster_up(cfg, say=say, timeout=min(timeout, 60.0))
    except (ClusterError, OSError, ValueError) as e:
        raise LabError(str(e)) from None
    try:
        apply_manifests(lab, _client(cluster), say, deadline=t0 + timeout)
    except BaseException as e:
        say(f"✗ the lab's manifests did not come up: {e}" if not isinstance(e, KeyboardInterrupt) else "✗ interrupted")
        down(cluster, say=lambda _m: None)
        raise
    return time.monotonic() - t0


def up_through(lab: Lab, client: Client, say: Say = print, timeout: float = 120.0) -> float:
    """`knet lab up --context`: the lab's manifests on a cluster that is already there (made by
    knet init/join, or another knet up), ready; its cluster file is not used, but the nodes the
    manifests pin pods to must be the cluster's."""
    t0 = time.monotonic()
    say(f'Lab "{lab.name}": {lab.title} ({lab.folder}), on context "{client.context}"')
    pinned = sorted({name for m in lab.manifests for obj in m.objects for name in _pinned_nodes(obj)})
    nodes = {n["metadata"]["name"] for n in client.list(_res("Node"))["items"]}
    missing = [n for n in pinned if n not in nodes]
    if missing:
        raise LabError(f"the lab's manifests pin pods to node{'s' if len(missing) > 1 else ''} {', '.join(missing)}, "
                       f"which context \"{client.context}\" does not have (its nodes: {', '.join(sorted(nodes)) or 'none'}): "
                       "name the nodes as the lab's cluster file does")
    apply_manifests(lab, client, say, deadline=t0 + timeout)
    return time.monotonic() - t0


def _pinned_nodes(obj: dict) -> list[str]:
    spec = obj.get("spec") or {}
    for key in ("template", "jobTemplate"):
        if isinstance(spec.get(key), dict):
            spec = spec[key].get("spec") or {}
    name = spec.get("nodeName") if isinstance(spec, dict) else None
    return [name] if isinstance(name, str) and name else []


def down_through(lab: Lab, client: Client, say: Say = print) -> int:
    """`knet lab down --context`: delete what the lab's manifests made (namespaces last), and
    any node pod a check left; the cluster stays. The number of objects deleted."""
    from knet.api.errors import ApiError
    from knet.cli.common import label, resource_for
    from knet.lab.viaapi import NODE_POD_NAMESPACE, NODE_POD_PREFIX

    planned = [(m.source, obj) for m in lab.manifests for obj in m.objects]
    planned.sort(key=lambda so: 1 if so[1].get("kind") == "Namespace" else 0)
    deleted = 0
    for source, obj in planned:
        res = resource_for(obj, source)
        meta = obj.get("metadata") or {}
        ns = (meta.get("namespace") or "default") if res.namespaced else None
        try:
            client.delete(res, ns, meta.get("name", ""))
        except ApiError as e:
            if e.code != 404:
                raise LabError(f"{source}: deleting {label(res, meta.get('name', ''))}: {e.message}") from None
            continue
        deleted += 1
        say(f" {label(res, meta.get('name', ''))} deleted")
    pods = client.list(_res("Pod"), NODE_POD_NAMESPACE, "app.kubernetes.io/managed-by=knet-lab")["items"]
    for pod in pods:
        if pod["metadata"]["name"].startswith(NODE_POD_PREFIX):
            try:
                client.delete(_res("Pod"), NODE_POD_NAMESPACE, pod["metadata"]["name"], grace=0)
            except ApiError:
                pass
    return deleted


def apply_manifests(lab: Lab, client: Client, say: Say, deadline: float) -> None:
    """Apply in the lab's order (namespaces first, as knet apply orders one file), then wait for
    the agents to act on it and for everything to be ready."""
    from knet.api.errors import ApiError
    from knet.cli.apply import _apply_one, wait_synced
    from knet.cli.common import label, resource_for

    planned = [(m.source, obj) for m in lab.manifests for obj in m.objects]
    planned.sort(key=lambda so: 0 if so[1].get("kind") == "Namespace" else 1)
    last = 0
    applied = []
    for source, obj in planned:
        res = resource_for(obj, source)
        ns = (obj.get("metadata", {}).get("namespace") or "default") if res.namespaced else None
        try:
            verb, out = _apply_one(client, res, ns, obj)
        except ApiError as e:
            raise LabError(f"{source}: error when applying {label(res, obj.get('metadata', {}).get('name', ''))}: "
                           f"{e.message}") from None
        last = max(last, int(out["metadata"].get("resourceVersion", 0)))
        applied.append((res, ns, out["metadata"]["name"]))
        say(f" {label(res, out['metadata']['name'])} {verb}")
    if last:
        wait_synced(client, last, max(1.0, deadline - time.monotonic()))
    waiting = applied + [(_res("Deployment"), "kube-system", "coredns")]
    _wait_ready(client, waiting, deadline)
    revision = int(client.request("GET", "/knet/v1/progress")["revision"])
    wait_synced(client, revision, max(1.0, deadline - time.monotonic()))  # endpoints programmed everywhere
    if applied:
        say(f" ✓ {len(applied)} objects ready")


def _res(kind: str):
    from knet.api.resources import by_kind

    return by_kind(kind)


def not_ready(obj: dict) -> str | None:
    """Why an object is not ready yet (None: ready), as rollout status and kubectl wait judge."""
    from knet.api.objects import is_true

    kind = obj.get("kind")
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if kind == "Pod":
        if status.get("phase") == "Succeeded" and spec.get("restartPolicy", "Always") != "Always":
            return None
        return None if is_true(obj, "Ready") else f"phase {status.get('phase') or 'Pending'}, not Ready"
    want = spec.get("replicas", 1)
    if kind == "Deployment":
        if status.get("observedGeneration", 0) < obj["metadata"].get("generation", 0):
            return "not observed yet"
        if status.get("updatedReplicas", 0) != want or status.get("availableReplicas", 0) != want \
                or status.get("replicas", 0) != want:
            return f"{status.get('availableReplicas', 0)}/{want} available"
        return None
    if kind in ("ReplicaSet", "StatefulSet"):
        ready = status.get("readyReplicas", 0)
        return None if ready == want and status.get("replicas", 0) == want else f"{ready}/{want} ready"
    if kind == "DaemonSet":
        want = status.get("desiredNumberScheduled", 0)
        ready = status.get("numberReady", 0)
        return None if ready == want and status.get("observedGeneration", 0) >= obj["metadata"].get("generation", 0) \
            else f"{ready}/{want} ready"
    if kind == "Service" and spec.get("type") == "LoadBalancer":
        return None if (status.get("loadBalancer") or {}).get("ingress") else "no LoadBalancer address yet"
    return None


def _wait_ready(client: Client, objects: list[tuple], deadline: float) -> None:
    from knet.api.errors import ApiError
    from knet.cli.common import label

    pending = list(objects)
    why = ""
    while pending:
        still = []
        for res, ns, name in pending:
            try:
                obj = client.get(res, ns, name)
            except ApiError as e:
                if e.code != 404:
                    raise
                still.append((res, ns, name))
                why = f"{label(res, name)}: not found"
                continue
            reason = not_ready(obj)
            if reason:
                still.append((res, ns, name))
                why = f"{label(res, name)}: {reason}"
        pending = still
        if pending and time.monotonic() > deadline:
            raise LabError(f"timed out waiting for the lab's objects to be ready ({len(pending)} not ready; {why})")
        if pending:
            time.sleep(0.05)


# -- exercises --------------------------------------------------------------------------


def exercise_text(lab: Lab, index: int, cluster: str, context: str | None = None) -> str:
    ex = lab.exercises[index]
    head = f"Exercise {index + 1} of {len(lab.exercises)}" + (f": {ex.title}" if ex.title else "")
    lines = [head] + ["  " + line if line else "" for line in ex.text.splitlines()]
    if ex.do:
        lines.append("  Type:")
        lines += ["    " + " ".join(_quote(w) for w in argv) for argv in ex.do]
    flag = f" --context {context}" if context else f" --cluster {cluster}" if cluster != lab.cluster_name else ""
    lines.append(f"  Then: knet lab check {lab.name}{flag} --exercise {index + 1}")
    return "\n".join(lines)


def _quote(word: str) -> str:
    import shlex

    return shlex.quote(word)


def how_to_reach(lab: Lab, cluster: str) -> str:
    return (f"The lab's cluster is \"{cluster}\": export KNET_CLUSTER={cluster} (or add --cluster {cluster}) so that "
            f"knet commands reach it; kubectl's context is knet-{cluster}.")


def report(results: list[checks.Result], say: Say) -> int:
    """Print each check's verdict; the number that failed."""
    failed = 0
    for r in results:
        if r.ok:
            say(f"  PASS {r.what}: {r.seen}")
            continue
        failed += 1
        say(f"  FAIL {r.what}")
        say(f"       expected: {r.expected}")
        say(f"       seen:     {r.seen}")
        if r.hint:
            say(f"       {r.hint}")
    return failed


def check(lab: Lab, cluster: str, say: Say = print, exercise: int | None = None,
          the_seam: checks.Seam | None = None) -> tuple[int, int]:
    """Run the checks of one exercise (1-based) or all; (checks run, checks failed)."""
    s = the_seam or seam(cluster)
    indexes = range(len(lab.exercises)) if exercise is None else [exercise - 1]
    total = failed = 0
    try:
        for i in indexes:
            ex = lab.exercises[i]
            say(f"Exercise {i + 1} of {len(lab.exercises)}" + (f": {ex.title}" if ex.title else ""))
            results = checks.run_all(s, ex.checks)
            total += len(results)
            failed += report(results, say)
    finally:
        close = getattr(s, "close", None)
        if close is not None:
            close()  # the node pods a check through the API made
    return total, failed


def run_steps(ex: Exercise, cluster: str, cwd: str, say: Say, timeout: float = 180.0) -> str | None:
    """Type the exercise's commands as a learner would (in the lab's folder); why one failed, or None."""
    env = {**os.environ, "KNET_CLUSTER": cluster}
    for argv in ex.do:
        say("  $ " + " ".join(_quote(w) for w in argv))
        if argv[0] == "knet":
            cmd = [*knet_argv(), *argv[1:]]
        else:
            cmd = [KUBECTL, "--context", f"knet-{cluster}", *argv[1:]]
        try:
            out = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, errors="replace", timeout=timeout)
        except subprocess.TimeoutExpired:
            return f"{' '.join(argv)}: timed out after {timeout:g}s"
        for line in out.stdout.rstrip("\n").splitlines():
            say("    " + line)
        if out.returncode != 0:
            return f"{' '.join(argv)}: exit {out.returncode}"
    return None


def run(lab: Lab, cluster: str, say: Say = print, timeout: float = 120.0) -> int:
    """Up, every exercise (its commands typed, then its checks), down (also on a failure or Ctrl-C).
    The number of failed checks and steps."""
    from knet.cluster import down

    t0 = time.monotonic()
    failed = total = 0
    try:
        took = up(lab, cluster, say, timeout)
        say(f'Lab "{lab.name}" is up in {took:.1f}s.')
        s = seam(cluster)
        for i, ex in enumerate(lab.exercises):
            say(exercise_text(lab, i, cluster).rsplit("\n  Then:", 1)[0])
            why = run_steps(ex, cluster, lab.folder, say)
            if why is not None:
                say(f"  FAIL step {why}")
                failed += 1
                continue
            results = checks.run_all(s, ex.checks)
            total += len(results)
            failed += report(results, say)
    finally:
        down(cluster, say=lambda _m: None)
    passed = total - failed if failed <= total else 0
    say(f'Lab "{lab.name}": {passed} of {total} checks passed'
        + (f", {failed} failed" if failed else "") + f" ({time.monotonic() - t0:.1f}s, cluster removed)")
    return failed
