"""Running one check: what it expected, what the cluster showed, and where to look next.

Every check reads the cluster through a Seam (the API objects, a connection attempt from a
namespace, a DNS question from a pod, a command in a pod, a container's log, the clock): the
live one (knet.lab.live) on a real cluster, a fake in the unit tests. Which address a probe
dials (a pod's IP, a Service's ClusterIP, NodePort on a node, LoadBalancer IP, externalIP) and
whether an outcome passes is decided here, so the tests reach all of it without root.

A check never raises: a missing pod or a command that cannot run is a failed check whose `seen`
says so, because a learner mid-exercise has exactly those (the pod is not there yet).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Protocol

from knet.lab import templates
from knet.lab.model import (
    Check,
    DnsCheck,
    Endpoint,
    ExecCheck,
    FieldCheck,
    LogsCheck,
    ObjectRef,
    PodRef,
    ProbeCheck,
    WaitCheck,
    relaxed,
    split_jsonpath_for,
)


@dataclass(frozen=True)
class Result:
    ok: bool
    what: str            # the check in a few words
    expected: str
    seen: str
    hint: str = ""       # what to look at when it failed


@dataclass(frozen=True)
class DnsAnswer:
    rcode: str                  # NOERROR, NXDOMAIN, ...
    records: tuple[str, ...]    # each answer record's data of the asked type, as dig prints it
    qname: str                  # the name that answered (after the pod's search list)


class Seam(Protocol):
    """The cluster as the checks see it."""

    cluster: str

    def get(self, kind: str, namespace: str | None, name: str) -> dict | None: ...
    def list(self, kind: str, namespace: str | None, selector: str = "") -> list[dict]: ...
    def pod_netns(self, pod: dict) -> str | None: ...
    def node_netns(self, node: str) -> str: ...
    def ext(self) -> tuple[str, str]: ...   # (netns path, LAN address) of the ext host
    def connect(self, netns: str, address: str, port: int, protocol: str, identity: str | None,
                timeout: float) -> tuple[bool, str]: ...
    def dns(self, pod: dict, name: str, qtype: str) -> DnsAnswer: ...
    def exec(self, pod: PodRef, container: str | None, argv: tuple[str, ...], timeout: float) -> tuple[int, str]: ...
    def logs(self, pod: PodRef, container: str | None) -> str: ...
    def now(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...


class CheckFailed(Exception):
    """The check cannot be judged: `seen` says why (no such pod, no address yet...)."""


def run(seam: Seam, check: Check) -> Result:
    runner = _RUNNERS[type(check)]
    try:
        return runner(seam, check)
    except CheckFailed as e:
        return Result(False, describe(check), expectation(check), str(e), hint(seam, check))


def run_all(seam: Seam, checks: tuple[Check, ...] | list[Check]) -> list[Result]:
    return [run(seam, c) for c in checks]


# -- words --------------------------------------------------------------------------------


def describe(check: Check) -> str:
    if isinstance(check, ProbeCheck):
        via = f" via {check.via}" if check.dst.kind == "service" and check.via != "clusterIP" else ""
        return f"probe {check.src} -> {check.dst}{via} {check.protocol}/{check.port}"
    if isinstance(check, DnsCheck):
        return f"dns {check.qtype} {check.name} from {check.src}"
    if isinstance(check, ExecCheck):
        return f"exec in {check.pod}: {' '.join(check.command)}"
    if isinstance(check, LogsCheck):
        return f"logs of {check.pod}" + (f" ({check.container})" if check.container else "")
    if isinstance(check, FieldCheck):
        return f"field {check.obj} {check.jsonpath}"
    return f"wait {check.obj} for {check.condition}"


def expectation(check: Check, answer: set[str] | None = None) -> str:
    """What the check expects, in words; a DNS check's `answer` as its templates rendered."""
    if isinstance(check, ProbeCheck):
        return "connected" if check.connected else "blocked"
    if isinstance(check, DnsCheck):
        parts = [check.rcode]
        if check.answer is not None:
            parts.append(" ".join(sorted(answer if answer is not None else check.answer)))
        if check.pattern:
            parts.append(f"records matching /{check.pattern}/")
        if check.count is not None:
            parts.append(f"{check.count} record{'s' if check.count != 1 else ''}")
        return ", ".join(parts)
    if isinstance(check, (ExecCheck, LogsCheck)):
        parts = []
        if isinstance(check, ExecCheck) and check.exit_code is not None:
            parts.append(f"exit {check.exit_code}")
        if check.output:
            parts.append(f"output matching /{check.output}/")
        if check.absent:
            parts.append(f"no /{check.absent}/")
        return ", ".join(parts) or "any"
    if isinstance(check, FieldCheck):
        return repr(check.value) if check.value is not None else f"matching /{check.pattern}/"
    return f"{check.condition} within {check.timeout:g}s"


def hint(seam: Seam, check: Check, dialled: tuple[str, int] | None = None) -> str:
    """Where to look when the check failed: the command that shows why. A probe's trace names
    the Service or pod as the probe named it, or the address it dialled (a NodePort, a
    LoadBalancer IP, an externalIP, a literal address). Checked through a kubeconfig context
    (the seam's `context`), the commands name it too; a trace still needs the cluster's
    machine, where its namespaces are."""
    if isinstance(check, ProbeCheck):
        src = _trace_end(check.src)
        named = check.dst.kind in ("pod", "node", "ext") or (check.dst.kind == "service" and check.via == "clusterIP")
        dst = f"{_trace_end(check.dst)}:{check.port}" if named or dialled is None else f"{dialled[0]}:{dialled[1]}"
        proto = f" --protocol {check.protocol}" if check.protocol != "TCP" else ""
        there = " (on the cluster's machine)" if getattr(seam, "context", None) else ""
        return f"look at: knet --cluster {seam.cluster} trace {src} --to {dst}{proto}{there}"
    if isinstance(check, DnsCheck):
        return (f"look at: {_knet(seam, 'exec')} -n {check.src.namespace} {check.src.name} -- "
                f"dig {check.name} {check.qtype} +search")
    if isinstance(check, (ExecCheck, LogsCheck)):
        if isinstance(check, ExecCheck) and not check.pod.namespace:  # node/NAME, ext: namespaces of a machine
            there = " (on the cluster's machine)" if getattr(seam, "context", None) else ""
            return f"look at: knet --cluster {seam.cluster} exec {check.pod.name} -- {shlex.join(check.command)}{there}"
        return f"look at: {_knet(seam, 'describe')} pod -n {check.pod.namespace} {check.pod.name}"
    obj = check.obj
    ns = f" -n {obj.namespace}" if obj.namespace else ""
    what = obj.text if obj.name else obj.text + (f" -l {obj.selector}" if obj.selector else "")
    return f"look at: {_knet(seam, 'describe')}{ns} {what.replace('/', ' ', 1)}"


def _knet(seam: Seam, verb: str) -> str:
    """`knet --cluster C VERB`, or `knet VERB --context CTX` for a seam reached through a context."""
    context = getattr(seam, "context", None)
    return f"knet {verb} --context {context}" if context else f"knet --cluster {seam.cluster} {verb}"


def _trace_end(e: Endpoint) -> str:
    if e.kind == "pod":
        return e.name if e.namespace == "default" else f"{e.namespace}/{e.name}"
    if e.kind == "service":
        return e.name if e.namespace == "default" else f"{e.name}.{e.namespace}"
    if e.kind == "node":
        return f"node/{e.name}"
    return e.name


# -- reading the cluster ------------------------------------------------------------------


def _pod(seam: Seam, ref: PodRef) -> dict:
    pod = seam.get("Pod", ref.namespace, ref.name)
    if pod is None:
        raise CheckFailed(f"pod {ref} not found")
    return pod


def _running(seam: Seam, ref: PodRef) -> tuple[dict, str]:
    pod = _pod(seam, ref)
    status = pod.get("status") or {}
    if pod["metadata"].get("deletionTimestamp"):
        raise CheckFailed(f"pod {ref} is terminating")
    if status.get("phase") != "Running" or not status.get("podIP"):
        raise CheckFailed(f"pod {ref} is not running (phase {status.get('phase') or 'Pending'})")
    netns = seam.pod_netns(pod)
    if netns is None:
        raise CheckFailed(f"pod {ref} has no network namespace on this machine")
    return pod, netns


def resolver(seam: Seam, namespace: str) -> templates.Resolve:
    """Template values read from the cluster; a missing object fails the check."""
    from knet.api.resources import lookup
    from knet.cli.jsonpath import JSONPath, JSONPathError

    def resolve(ns: str | None, kind: str, name: str, path: str) -> str:
        res = lookup(kind)
        if res is None:
            raise CheckFailed(f"{{{{ {kind}/{name} }}}}: no such kind")
        where = (ns or namespace) if res.namespaced else None
        obj = seam.get(res.kind, where, name)
        if obj is None:
            raise CheckFailed(f"{kind}/{name}" + (f" in {where}" if where else "") + " not found (named by a template)")
        try:
            value = JSONPath(path).execute(obj)
        except JSONPathError as e:
            raise CheckFailed(f"{kind}/{name} {path}: {e}") from None
        if value == "":
            raise CheckFailed(f"{kind}/{name} {path} is empty (named by a template)")
        return value
    return resolve


def node_address(seam: Seam, name: str) -> str:
    node = seam.get("Node", None, name)
    if node is None:
        raise CheckFailed(f"node {name} not found")
    for a in (node.get("status") or {}).get("addresses") or []:
        if a.get("type") == "InternalIP":
            return a["address"]
    raise CheckFailed(f"node {name} has no InternalIP address")


def first_worker(seam: Seam) -> str:
    nodes = sorted(n["metadata"]["name"] for n in seam.list("Node", None)
                   if "node-role.kubernetes.io/control-plane" not in (n["metadata"].get("labels") or {}))
    if not nodes:
        raise CheckFailed("no worker node")
    return nodes[0]


# -- probe --------------------------------------------------------------------------------


def _source(seam: Seam, e: Endpoint) -> str:
    if e.kind == "pod":
        return _running(seam, PodRef(e.namespace, e.name))[1]
    if e.kind == "node":
        if seam.get("Node", None, e.name) is None:
            raise CheckFailed(f"node {e.name} not found")
        return seam.node_netns(e.name)
    return seam.ext()[0]


def _destination(seam: Seam, check: ProbeCheck) -> tuple[str, int, str | None]:
    """(address, port, the identity a UDP answer must carry, None: any pod's)."""
    e = check.dst
    if e.kind == "pod":
        pod, _ = _running(seam, PodRef(e.namespace, e.name))
        return pod["status"]["podIP"], check.port, str(PodRef(e.namespace, e.name))
    if e.kind == "node":
        return node_address(seam, e.name), check.port, None
    if e.kind == "ext":
        return seam.ext()[1], check.port, None
    if e.kind == "address":
        return templates.render(e.name, resolver(seam, "default")), check.port, None
    svc = seam.get("Service", e.namespace, e.name)
    if svc is None:
        raise CheckFailed(f"service {e.namespace}/{e.name} not found")
    spec = svc.get("spec") or {}
    if check.via == "clusterIP":
        ip = spec.get("clusterIP")
        if not ip or ip == "None":
            raise CheckFailed(f"service {e.namespace}/{e.name} has no ClusterIP (headless)")
        return ip, check.port, None
    if check.via == "externalIP":
        ips = spec.get("externalIPs") or []
        if not ips:
            raise CheckFailed(f"service {e.namespace}/{e.name} has no externalIPs")
        return ips[0], check.port, None
    if check.via == "loadBalancer":
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if not ingress or not ingress[0].get("ip"):
            raise CheckFailed(f"service {e.namespace}/{e.name} has no LoadBalancer address yet")
        return ingress[0]["ip"], check.port, None
    for p in spec.get("ports") or []:
        if p.get("port") == check.port and (p.get("protocol") or "TCP") == check.protocol:
            if not p.get("nodePort"):
                raise CheckFailed(f"service {e.namespace}/{e.name} port {check.port} has no nodePort "
                                  f"(type {spec.get('type', 'ClusterIP')})")
            return node_address(seam, check.node or first_worker(seam)), p["nodePort"], None
    raise CheckFailed(f"service {e.namespace}/{e.name} has no port {check.port}/{check.protocol}")


def run_probe(seam: Seam, check: ProbeCheck) -> Result:
    netns = _source(seam, check.src)
    address, port, identity = _destination(seam, check)
    connected, detail = seam.connect(netns, address, port, check.protocol, identity, check.timeout)
    where = f"{address}:{port}"
    ok = connected == check.connected
    return Result(ok, describe(check), expectation(check), f"{'connected' if connected else 'blocked'} "
                  f"({detail}, dialled {where})", "" if ok else hint(seam, check, (address, port)))


# -- dns ----------------------------------------------------------------------------------


def _bare(record: str) -> str:
    return record.rstrip(".").lower() if not re.fullmatch(r"[0-9.]+|[0-9a-fA-F:]+", record) else record


def run_dns(seam: Seam, check: DnsCheck) -> Result:
    pod, _ = _running(seam, check.src)
    resolve = resolver(seam, check.src.namespace)
    name = templates.render(check.name, resolve)
    got = seam.dns(pod, name, check.qtype)
    seen = got.rcode + (f", {' '.join(sorted(got.records))}" if got.records else ", no records") \
        + (f" (as {got.qname})" if got.qname and got.qname.rstrip(".") != name.rstrip(".") else "")
    ok = got.rcode == check.rcode
    want = None
    if check.answer is not None:
        want = {_bare(templates.render(a, resolve)) for a in check.answer}
        ok = ok and {_bare(r) for r in got.records} == want
    expected = expectation(check, want)
    if check.pattern:
        rx = re.compile(templates.render(check.pattern, resolve, regex=True))
        ok = ok and bool(got.records) and all(rx.search(r) for r in got.records)
    if check.count is not None:
        ok = ok and len(got.records) == check.count
    return Result(ok, describe(check), expected, seen, "" if ok else hint(seam, check))


# -- exec and logs -------------------------------------------------------------------------


def _matches(text: str, output: str | None, absent: str | None, resolve: templates.Resolve) -> tuple[bool, str]:
    ok, why = True, ""
    if output is not None and not re.search(templates.render(output, resolve, regex=True), text, re.MULTILINE):
        ok, why = False, "no match"
    if absent is not None:
        m = re.search(templates.render(absent, resolve, regex=True), text, re.MULTILINE)
        if m:
            line = text[text.rfind("\n", 0, m.start()) + 1:].split("\n", 1)[0]
            ok, why = False, f"found {line.strip()!r}"
    return ok, why


def _excerpt(text: str, lines: int = 6) -> str:
    rows = text.rstrip("\n").split("\n") if text.strip() else []
    if not rows:
        return "(no output)"
    if len(rows) > lines:
        rows = [f"... {len(rows) - lines} lines ..."] + rows[-lines:]
    return " | ".join(r.strip() for r in rows)


def run_exec(seam: Seam, check: ExecCheck) -> Result:
    if check.pod.namespace:
        _running(seam, check.pod)
    resolve = resolver(seam, check.pod.namespace or "default")
    argv = tuple(templates.render(a, resolve) for a in check.command)
    code, text = seam.exec(check.pod, check.container, argv, check.timeout)
    ok, why = _matches(text, check.output, check.absent, resolve)
    if check.exit_code is not None and code != check.exit_code:
        ok = False
    seen = f"exit {code}: {_excerpt(text)}" + (f" ({why})" if why else "")
    return Result(ok, describe(check), expectation(check), seen, "" if ok else hint(seam, check))


def run_logs(seam: Seam, check: LogsCheck) -> Result:
    _pod(seam, check.pod)
    resolve = resolver(seam, check.pod.namespace)
    text = seam.logs(check.pod, check.container)
    ok, why = _matches(text, check.output, check.absent, resolve)
    seen = _excerpt(text) + (f" ({why})" if why else "")
    return Result(ok, describe(check), expectation(check), seen, "" if ok else hint(seam, check))


# -- field and wait -----------------------------------------------------------------------


def _value(obj: dict, template: str) -> str:
    from knet.cli.jsonpath import JSONPath, JSONPathError

    try:
        return JSONPath(relaxed(template)).execute(obj)
    except JSONPathError as e:
        raise CheckFailed(f"{template}: {e}") from None


def _objects(seam: Seam, ref: ObjectRef) -> list[dict]:
    if ref.name:
        obj = seam.get(ref.kind, ref.namespace, ref.name)
        return [] if obj is None else [obj]
    return seam.list(ref.kind, ref.namespace, ref.selector)


def run_field(seam: Seam, check: FieldCheck) -> Result:
    objs = _objects(seam, check.obj)
    if not objs:
        raise CheckFailed(f"{check.obj} not found")
    resolve = resolver(seam, check.obj.namespace or "default")
    got = _value(objs[0], check.jsonpath)
    if check.value is not None:
        want = templates.render(check.value, resolve)
        ok = got.strip() == want.strip()
        expected = repr(want)
    else:
        ok = re.search(templates.render(check.pattern or "", resolve, regex=True), got, re.MULTILINE) is not None
        expected = expectation(check)
    return Result(ok, describe(check), expected, repr(got), "" if ok else hint(seam, check))


def condition_met(obj: dict, cond: str) -> bool:
    """kubectl wait's --for on one object that exists (delete and create are decided by the caller)."""
    if cond.startswith("condition="):
        name, _, value = cond[len("condition="):].partition("=")
        want = (value or "true").lower()
        for c in (obj.get("status") or {}).get("conditions") or []:
            if str(c.get("type", "")).lower() == name.lower():
                return str(c.get("status", "")).lower() == want
        return False
    if cond.startswith("jsonpath="):
        template, value = split_jsonpath_for(cond)
        got = _value(obj, template)
        return got != "" if value is None else got == value
    return cond == "create"


def _wait_state(seam: Seam, check: WaitCheck) -> tuple[bool, str]:
    objs = _objects(seam, check.obj)
    if check.condition == "delete":
        return not objs, ("gone" if not objs else f"{len(objs)} still there")
    if not objs:
        return False, "not found"
    if check.condition == "create":
        return True, "exists"
    met = [o for o in objs if condition_met(o, check.condition)]
    if len(met) == len(objs):
        return True, "met" if len(objs) == 1 else f"met by all {len(objs)}"
    missing = [o["metadata"]["name"] for o in objs if o not in met]
    return False, f"not met by {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else "") \
        + f": {_state(objs[0], check.condition)}"


def _state(obj: dict, cond: str) -> str:
    """What an object shows for the condition, for the message."""
    if cond.startswith("condition="):
        name = cond[len("condition="):].partition("=")[0]
        for c in (obj.get("status") or {}).get("conditions") or []:
            if str(c.get("type", "")).lower() == name.lower():
                return f"{c.get('type')}={c.get('status')}" + (f" ({c['reason']})" if c.get("reason") else "")
        return f"no {name} condition"
    if cond.startswith("jsonpath="):
        return repr(_value(obj, split_jsonpath_for(cond)[0]))
    return ""


def run_wait(seam: Seam, check: WaitCheck) -> Result:
    deadline = seam.now() + check.timeout
    while True:
        ok, seen = _wait_state(seam, check)
        if ok or seam.now() >= deadline:
            break
        seam.sleep(0.1)
    return Result(ok, describe(check), expectation(check), seen, "" if ok else hint(seam, check))


_RUNNERS = {ProbeCheck: run_probe, DnsCheck: run_dns, ExecCheck: run_exec, LogsCheck: run_logs,
            FieldCheck: run_field, WaitCheck: run_wait}
