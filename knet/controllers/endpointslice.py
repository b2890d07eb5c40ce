"""The EndpointSlice controller: a Service's selector, turned into slices of
at most 100 endpoints with ready/serving/terminating conditions, the node
each endpoint is on, and ports whose targetPort names are resolved per pod
(two pods may name the same port differently), as upstream does."""

from __future__ import annotations

import json

from knet.api.objects import deep_copy
from knet.controllers.base import View, is_ready, owner_ref, template_hash

MAX_ENDPOINTS = 100
SERVICE_LABEL = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
CONTROLLER = "endpointslice-controller.k8s.io"
COMPONENT = "endpoint-slice-controller"


def resolve_ports(svc: dict, pod: dict) -> list[dict] | None:
    """The slice ports for this pod, or None if a named targetPort is not on it."""
    out = []
    for sp in svc["spec"].get("ports") or []:
        target = sp.get("targetPort", sp.get("port"))
        proto = sp.get("protocol", "TCP")
        if isinstance(target, str) and not target.isdigit():
            number = next((cp["containerPort"] for c in pod["spec"].get("containers", [])
                           for cp in c.get("ports") or [] if cp.get("name") == target
                           and cp.get("protocol", "TCP") == proto), None)
            if number is None:
                return None
        else:
            number = int(target)
        # An unnamed port's name is "", never absent: upstream always sets it, and
        # clients rely on it (`kubectl describe svc` dereferences it).
        port = {"name": sp.get("name") or "", "port": number, "protocol": proto}
        if sp.get("appProtocol"):
            port["appProtocol"] = sp["appProtocol"]
        out.append(port)
    return out


def endpoint(pod: dict) -> dict:
    terminating = bool(pod["metadata"].get("deletionTimestamp"))
    ready = is_ready(pod)
    ep = {"addresses": [pod["status"]["podIP"]],
          "conditions": {"ready": ready and not terminating, "serving": ready, "terminating": terminating},
          "targetRef": {"kind": "Pod", "namespace": pod["metadata"]["namespace"], "name": pod["metadata"]["name"],
                        "uid": pod["metadata"]["uid"]}}
    if pod["spec"].get("nodeName"):
        ep["nodeName"] = pod["spec"]["nodeName"]
    if pod["spec"].get("hostname") and pod["spec"].get("subdomain"):
        ep["hostname"] = pod["spec"]["hostname"]
    return ep


def desired_groups(svc: dict, pods: list[dict]) -> dict[str, tuple[list[dict], list[dict]]]:
    """Endpoints grouped by their resolved port list (one slice set per group).
    Without a named targetPort every pod has the same ports: resolved once."""
    selector = svc["spec"].get("selector") or {}
    named = any(isinstance(sp.get("targetPort"), str) and not sp["targetPort"].isdigit()
                for sp in svc["spec"].get("ports") or [])
    same = None if named else resolve_ports(svc, {"spec": {}})
    groups: dict[str, tuple[list[dict], list[dict]]] = {}
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        st = pod.get("status") or {}
        if not st.get("podIP") or st.get("phase") in ("Succeeded", "Failed"):
            continue
        labels = pod["metadata"].get("labels") or {}
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            continue
        ports = same if same is not None else resolve_ports(svc, pod)
        if ports is None:
            continue
        key = "" if same is not None else json.dumps(ports, sort_keys=True)
        groups.setdefault(key, (ports, []))[1].append(endpoint(pod))
    return groups


WATCHES = ("Service", "Pod", "EndpointSlice")


def sync(view: View) -> None:
    for svc in sorted(view.list("Service"), key=lambda s: (s["metadata"]["namespace"], s["metadata"]["name"])):
        sync_key(view, f"{svc['metadata']['namespace']}/{svc['metadata']['name']}")


def sync_key(view: View, key: str) -> None:
    """One Service: its pods from the cache's label index (the work follows
    the Service's pods, not the namespace's), its slices from the
    service-name index."""
    svc = view.get("Service", key)
    if svc is None or not svc["spec"].get("selector") or svc["spec"].get("type") == "ExternalName":
        return
    ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
    mine = [s for s in view.cache.slices_of(ns, name)
            if (s["metadata"].get("labels") or {}).get(MANAGED_BY) == CONTROLLER]
    # A refused slice write (e.g. a Service with more than 100 ports: a Service
    # may have any number, a slice at most 100) is upstream's Warning Event.
    with view.acting_for(svc, "FailedToUpdateEndpointSlices",
                         f"Error updating Endpoint Slices for Service {ns}/{name}", COMPONENT):
        sync_one(view, svc, view.cache.pods_matching(ns, svc["spec"]["selector"]), mine)


def _endpoint_state(pod: dict | None) -> tuple | None:
    """What of a pod its endpoints are made of (a change elsewhere, e.g. a
    restart count, syncs no Service)."""
    st = (pod or {}).get("status") or {}
    if not st.get("podIP"):
        return None  # not an endpoint of any Service
    return (pod["metadata"].get("labels"), st.get("podIP"), st.get("phase") in ("Succeeded", "Failed"),
            is_ready(pod), bool(pod["metadata"].get("deletionTimestamp")), pod["spec"].get("nodeName"),
            pod["spec"].get("hostname"), pod["spec"].get("subdomain"),
            [c.get("ports") for c in pod["spec"].get("containers") or []])


def keys_for(kind: str, old: dict | None, new: dict | None, cache) -> set[str]:
    """A Service's own events; a pod's that changes its endpoint, for the
    Services selecting it before or after (found from its labels); a slice's
    not written by this controller's current sync (someone else's edit or
    delete), for its Service."""
    obj = new or old
    ns = obj["metadata"].get("namespace")
    if kind == "Service":
        return {f"{ns}/{obj['metadata']['name']}"}
    if kind == "EndpointSlice":
        labels = obj["metadata"].get("labels") or {}
        if labels.get(MANAGED_BY) == CONTROLLER and labels.get(SERVICE_LABEL):
            return {f"{ns}/{labels[SERVICE_LABEL]}"}
        return set()
    if _endpoint_state(old) == _endpoint_state(new):
        return set()
    return cache.services_selecting(old) | cache.services_selecting(new)


def slice_name(svc: dict, taken: set[str]) -> str:
    """A name for a new slice of this Service, the same on every pass until it
    exists (upstream generates a random one): a create that keeps failing then
    names the same slice each time, so its Warning Event folds into one."""
    name, uid = svc["metadata"]["name"], svc["metadata"]["uid"]
    for n in range(len(taken), len(taken) + 1000):
        candidate = f"{name[:56]}-{template_hash({'service': uid, 'slice': n})[:5]}"
        if candidate not in taken:
            return candidate
    raise RuntimeError(f"no free EndpointSlice name for Service {name}")


def _ep_key(ep: dict) -> str:
    return (ep.get("targetRef") or {}).get("uid") or ep["addresses"][0]


def place(groups: dict[str, tuple[list[dict], list[dict]]], existing: list[dict]
          ) -> tuple[list[tuple[dict | None, list[dict], list[dict]]], list[dict]]:
    """Where each endpoint goes: (slice or None for a new one, ports,
    endpoints) per slice, and the slices to delete. An endpoint stays in the
    slice that holds it and new ones fill the room left (as upstream's
    reconciler does), so one pod's change rewrites one slice, not every
    slice after it in name order."""
    free = sorted(existing, key=lambda s: s["metadata"]["name"])
    out: list[tuple[dict | None, list[dict], list[dict]]] = []
    drop: list[dict] = []
    if not groups:  # an empty slice says "no endpoints", as upstream keeps one
        keep = next((s for s in free if not s.get("ports")), free[0] if free else None)
        return [(keep, [], [])], [s for s in free if s is not keep]
    for ports, eps in groups.values():
        mine = [s for s in free if (s.get("ports") or []) == ports]
        free = [s for s in free if (s.get("ports") or []) != ports]
        wanted = {_ep_key(e): e for e in eps}
        used: set[str] = set()
        placed: list[tuple[dict | None, list[dict]]] = []
        for sl in mine:
            kept = []
            for e in sl.get("endpoints") or []:
                k = _ep_key(e)
                if k in wanted and k not in used:
                    kept.append(wanted[k])
                    used.add(k)
            placed.append((sl, kept))
        rest = [e for e in eps if _ep_key(e) not in used]
        for _, kept in placed:
            room = MAX_ENDPOINTS - len(kept)
            if room > 0 and rest:
                kept.extend(rest[:room])
                rest = rest[room:]
        for i in range(0, len(rest), MAX_ENDPOINTS):
            placed.append((None, rest[i:i + MAX_ENDPOINTS]))
        for sl, kept in placed:
            if kept:
                out.append((sl, ports, kept))
            else:
                drop.append(sl)
    # slices of port lists no endpoint has any more are reused before new ones are made
    for i, (sl, ports, eps) in enumerate(out):
        if sl is None and free:
            out[i] = (free.pop(0), ports, eps)
    return out, drop + free


def sync_one(view: View, svc: dict, pods: list[dict], existing: list[dict]) -> None:
    planned, extra = place(desired_groups(svc, pods), existing)
    name = svc["metadata"]["name"]
    taken = {s["metadata"]["name"] for s in existing}
    for cur, ports, eps in planned:
        if cur is not None:
            if (cur.get("endpoints") or []) == eps and (cur.get("ports") or []) == ports:
                continue
            new = deep_copy(cur)
            new["endpoints"], new["ports"] = eps, ports
            view.update("EndpointSlice", new)
        else:
            taken.add(new_name := slice_name(svc, taken))
            view.create("EndpointSlice", svc["metadata"]["namespace"], {
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": new_name, "namespace": svc["metadata"]["namespace"],
                             "labels": {SERVICE_LABEL: name, MANAGED_BY: CONTROLLER},
                             "ownerReferences": [owner_ref(svc)]},
                "addressType": "IPv4", "endpoints": eps, "ports": ports})
    for sl in extra:
        if sl is not None:
            view.delete("EndpointSlice", sl)
