"""Server-side printing: the meta.k8s.io Table a client gets when it asks for
one (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`, what `kubectl get`
sends), built from the same columns (knet/api/resources.py) and row functions
(knet/api/tables.py) as `knet get`, so both print the same thing.

As upstream's TableConvertor: every column is in the Table, the priority-1
ones marked so that kubectl shows them only with `-o wide`; each row carries
the object as PartialObjectMetadata (includeObject=Metadata, the default),
whole (includeObject=Object) or not at all (None); a watch sends a one-row
Table per event, the column definitions only with the first.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from knet.api import errors
from knet.api.resources import Resource

_NAME_DOC = ("Name must be unique within a namespace. Is required when creating resources, although some "
             "resources may allow a client to request the generation of an appropriate name automatically. "
             "Name is primarily intended for creation idempotence and configuration definition. Cannot be "
             "updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names")
_AGE_DOC = ("CreationTimestamp is a timestamp representing the server time when this object was created. It is "
            "not guaranteed to be set in happens-before order across separate operations. Clients may not set "
            "this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. "
            "Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/"
            "api-conventions.md#metadata")

# knet's column headers (kubectl's upper-cased ones) to upstream's column names
# and descriptions (pkg/printers/internalversion/printers.go); kubectl upper-cases
# the names again when it prints them.
COLUMNS: dict[str, tuple[str, str]] = {
    "NAME": ("Name", _NAME_DOC),
    "AGE": ("Age", _AGE_DOC),
    "READY": ("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    "STATUS": ("Status", "The aggregate status of the containers in this pod."),
    "RESTARTS": ("Restarts", "The number of times the containers in this pod have been restarted and when the "
                             "last container in this pod has restarted."),
    "IP": ("IP", "podIP address allocated to the pod. Routable at least within the cluster."),
    "NODE": ("Node", "NodeName indicates in which node this pod is scheduled."),
    "NOMINATED NODE": ("Nominated Node", "nominatedNodeName is set only when this pod preempts other pods on "
                                         "the node."),
    "READINESS GATES": ("Readiness Gates", "If specified, all readiness gates will be evaluated for pod "
                                           "readiness."),
    "ROLES": ("Roles", "The roles of the node"),
    "VERSION": ("Version", "Kubelet Version reported by the node."),
    "INTERNAL-IP": ("Internal-IP", "List of addresses reachable to the node."),
    "EXTERNAL-IP": ("External-IP", "externalIPs is a list of IP addresses for which nodes in the cluster will "
                                   "also accept traffic for this service."),
    "OS-IMAGE": ("OS-Image", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 "
                             "(wheezy))."),
    "KERNEL-VERSION": ("Kernel-Version", "Kernel Version reported by the node from 'uname -r'."),
    "CONTAINER-RUNTIME": ("Container-Runtime", "ContainerRuntime Version reported by the node through runtime "
                                               "remote API (e.g. containerd://1.4.2)."),
    "TYPE": ("Type", "type determines how the Service is exposed."),
    "CLUSTER-IP": ("Cluster-IP", "clusterIP is the IP address of the service and is usually assigned randomly."),
    "PORT(S)": ("Port(s)", "The list of ports that are exposed by this service."),
    "SELECTOR": ("Selector", "Label selector for pods."),
    "UP-TO-DATE": ("Up-to-date", "Total number of non-terminated pods targeted by this deployment that have "
                                 "the desired template spec."),
    "AVAILABLE": ("Available", "Total number of available pods (ready for at least minReadySeconds) targeted "
                               "by this deployment."),
    "CONTAINERS": ("Containers", "Names of each container in the template."),
    "IMAGES": ("Images", "Images referenced by each container in the template."),
    "DESIRED": ("Desired", "The desired number of replicas."),
    "CURRENT": ("Current", "The number of replicas or pods currently running."),
    "NODE SELECTOR": ("Node Selector", "NodeSelector is a selector which must be true for the pod to fit on a "
                                       "node."),
    "ADDRESSTYPE": ("AddressType", "addressType specifies the type of address carried by this EndpointSlice."),
    "PORTS": ("Ports", "ports specifies the list of network ports exposed by each endpoint in this slice."),
    "ENDPOINTS": ("Endpoints", "endpoints is a list of unique endpoints in this slice."),
    "POD-SELECTOR": ("Pod-Selector", "podSelector selects the pods to which this NetworkPolicy object applies."),
    "HOLDER": ("Holder", "holderIdentity contains the identity of the holder of a current lease."),
    "PRIORITY": ("Priority", "Priority is a value from 0 to 1000 of the policy."),
    "LAST SEEN": ("Last Seen", "The time at which the most recent occurrence of this event was recorded."),
    "REASON": ("Reason", "This should be a short, machine understandable string that gives the reason for the "
                         "transition into the object's current status."),
    "OBJECT": ("Object", "The object that this event is about."),
    "SUBOBJECT": ("Subobject", "If referring to a piece of an object instead of an entire object, this string "
                               "should contain a valid JSON/Go field access statement."),
    "SOURCE": ("Source", "The component reporting this event."),
    "MESSAGE": ("Message", "A human-readable description of the status of this operation."),
    "FIRST SEEN": ("First Seen", "The time at which the event was first recorded."),
    "COUNT": ("Count", "The number of times this event has occurred."),
}

# The few columns whose cells upstream types as integers (the rest are strings).
INTEGER_COLUMNS: dict[str, frozenset[str]] = {
    "Deployment": frozenset({"UP-TO-DATE", "AVAILABLE"}),
    "ReplicaSet": frozenset({"DESIRED", "CURRENT", "READY"}),
    "DaemonSet": frozenset({"DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE"}),
}

# Overrides of the generic descriptions where a kind's column means something else.
_KIND_DOCS = {
    ("Node", "STATUS"): "The status of the node",
    ("Namespace", "STATUS"): "The status of the namespace",
    ("StatefulSet", "READY"): "Number of the pod with ready state",
    ("Deployment", "READY"): "Number of the pod with ready state",
    ("Event", "TYPE"): "Type of this event (Normal, Warning), new types could be added in the future",
    ("Event", "NAME"): _NAME_DOC,
    ("Node", "EXTERNAL-IP"): "List of addresses reachable to the node.",
    ("ReplicaSet", "READY"): "readyReplicas is the number of pods targeted by this ReplicaSet with a Ready "
                             "Condition.",
    ("DaemonSet", "READY"): "numberReady is the number of nodes that should be running the daemon pod and have "
                            "one or more of the daemon pod running with a Ready Condition.",
    ("Service", "SELECTOR"): "Route service traffic to pods with label keys and values matching this selector.",
}

TABLE_VERSIONS = ("v1", "v1beta1")
INCLUDE = ("Metadata", "Object", "None")


def table_version(accept: str) -> str | None:
    """The meta.k8s.io version of Table the Accept header asks for, taking the
    client's alternatives in its order as upstream's negotiation does (kubectl
    lists v1, then v1beta1, then plain JSON); None for no Table."""
    for alternative in accept.split(","):
        media, *params = [p.strip() for p in alternative.split(";")]
        if media not in ("application/json", "*/*", "application/*"):
            continue
        options = dict(p.partition("=")[::2] for p in params if "=" in p)
        if options.get("as") != "Table" or options.get("g") != "meta.k8s.io":
            if not options.get("as"):
                return None  # plain JSON came first
            continue
        if options.get("v") in TABLE_VERSIONS:
            return options["v"]
    return None


def column_definitions(res: Resource) -> list[dict]:
    out = []
    integers = INTEGER_COLUMNS.get(res.kind, frozenset())
    for header, priority in res.columns:
        name, doc = COLUMNS.get(header, (header.title(), ""))
        out.append({"name": name, "type": "integer" if header in integers else "string",
                    "format": "name" if header == "NAME" else "",
                    "description": _KIND_DOCS.get((res.kind, header), doc), "priority": priority})
    return out


def _cell(value: str, integer: bool) -> str | int:
    if integer and isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return value


def _row_object(obj: dict, include: str, version: str) -> dict | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": f"meta.k8s.io/{version}",
            "metadata": obj.get("metadata") or {}}


def _conditions(res: Resource, obj: dict) -> list[dict] | None:
    """printPod's row conditions: a finished pod's row says it completed."""
    if res.kind != "Pod":
        return None
    phase = (obj.get("status") or {}).get("phase")
    if phase == "Succeeded":
        return [{"type": "Completed", "status": "True", "reason": "Succeeded",
                 "message": "The pod has completed successfully."}]
    if phase == "Failed":
        return [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]
    return None


class TableOptions:
    """What a request asks of its Table: the version and includeObject."""

    __slots__ = ("version", "include")

    def __init__(self, version: str, include: str):
        self.version = version
        self.include = include


def options(headers: dict[str, str], query: dict[str, str]) -> TableOptions | None:
    """The Table a request asks for, or None; a bad includeObject is a 400 as upstream's."""
    version = table_version(headers.get("accept", ""))
    if version is None:
        return None
    include = query.get("includeObject") or "Metadata"
    if include not in INCLUDE:
        raise errors.bad_request(f'unrecognized includeObject value: "{include}"')
    return TableOptions(version, include)


def rows(res: Resource, objects: list[dict], opts: TableOptions, now: float | None = None) -> list[dict]:
    printer: Callable = res.hook("printer")
    now = time.time() if now is None else now
    integers = [h in INTEGER_COLUMNS.get(res.kind, ()) for h, _ in res.columns]
    out = []
    for obj in objects:
        cells = printer(obj, True, now)
        row: dict = {"cells": [_cell(c, integers[i] if i < len(integers) else False) for i, c in enumerate(cells)]}
        conditions = _conditions(res, obj)
        if conditions:
            row["conditions"] = conditions
        row["object"] = _row_object(obj, opts.include, opts.version)
        out.append(row)
    return out


def table(res: Resource, objects: list[dict], opts: TableOptions, metadata: dict | None = None,
          headers: bool = True, now: float | None = None) -> dict:
    """A Table of `objects` (of kind res)."""
    return {"kind": "Table", "apiVersion": f"meta.k8s.io/{opts.version}", "metadata": metadata or {},
            "columnDefinitions": column_definitions(res) if headers else None,
            "rows": rows(res, objects, opts, now)}


def convert(res: Resource, body: dict, opts: TableOptions) -> dict:
    """A GET's answer as a Table: a list's items as rows (its resourceVersion
    and continue kept), or the one object as a one-row table."""
    if body.get("kind") == res.list_kind:
        meta = {k: v for k, v in (body.get("metadata") or {}).items()
                if k in ("resourceVersion", "continue", "remainingItemCount")}
        return table(res, body.get("items") or [], opts, meta)
    if body.get("kind") == res.kind:
        rv = (body.get("metadata") or {}).get("resourceVersion")
        return table(res, [body], opts, {"resourceVersion": rv} if rv else {})
    return body


def respond(req: object, code: int, body: dict) -> dict:
    """What the server sends for a GET: `body`, or the Table the request asked for."""
    res = getattr(req, "res", None)
    if code != 200 or res is None or getattr(req, "method", "") != "GET" or not res.printer:
        return body
    opts = options(req.headers, req.query)
    return convert(res, body, opts) if opts else body


class WatchEncoder:
    """Encodes a watch's events as one-row Tables, the column definitions only
    in the first, as upstream's watch encoder does."""

    def __init__(self, res: Resource, opts: TableOptions):
        self.res = res
        self.opts = opts
        self.first = True

    def __call__(self, kind: str, obj: dict) -> bytes:
        if kind == "BOOKMARK" or obj.get("kind") not in (None, self.res.kind):
            payload = obj
        else:
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            payload = table(self.res, [obj], self.opts, {"resourceVersion": rv} if rv else {}, headers=self.first)
            self.first = False
        return json.dumps({"type": kind, "object": payload}, separators=(",", ":")).encode() + b"\n"


def watch_encoder(req: object, res: Resource) -> WatchEncoder | None:
    """The encoder of a watch that asked for Tables, or None for plain events."""
    if not res.printer:
        return None
    opts = options(req.headers, req.query)
    return WatchEncoder(res, opts) if opts else None
