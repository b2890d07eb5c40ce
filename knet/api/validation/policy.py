"""Validation of policy.networking.k8s.io/v1alpha1: AdminNetworkPolicy and
BaselineAdminNetworkPolicy (kubernetes-sigs/network-policy-api).

Upstream these are CRDs, so a real API server checks them with the CRD's
OpenAPI schema (kubebuilder markers) and CEL rules, and words the errors as
apiextensions-apiserver does: `spec.priority: Invalid value: 1001:
spec.priority in body should be less than or equal to 1000`, `Too many: 101:
must have at most 100 items`, `Unsupported value: "Drop": supported values:
...`, CEL rules as `Invalid value: "object": <rule message>`. Those are
reproduced here rule for rule.

Three checks are stricter than the CRD, because knet's engine acts on the
object and the CRD leaves the value free-form where a wrong one could only be
misread later: label selectors are validated as NetworkPolicy's are, a
protocol must be TCP, UDP or SCTP, and a portRange may not end below its start
(the CRD's text says Start must be less than End but no rule enforces it).
BaselineAdminNetworkPolicy's CEL rule on the root object (`self.metadata.name
== 'default'`) is reported at metadata.name, the field it is about.
"""

from __future__ import annotations

import re
from typing import Any

from knet.api.errors import FieldError
from knet.api.selectors import is_dns1123_subdomain
from knet.api.validation.fields import (
    Errors,
    _arr,
    _is_int,
    _label_selector,
    _obj,
    _str,
    parse_cidr,
)

MAX_RULES = 100
MAX_PEERS = 100
MAX_PORTS = 100
MAX_NETWORKS = 25
MAX_DOMAIN_NAMES = 25
MAX_RULE_NAME = 100
MAX_CIDR = 43
PROTOCOLS = ("TCP", "UDP", "SCTP")
ANP_ACTIONS = ("Allow", "Deny", "Pass")
BANP_ACTIONS = ("Allow", "Deny")
BANP_NAME = "default"
BANP_NAME_MESSAGE = ('Only one baseline admin network policy with metadata.name="default" '
                     "can be created in the cluster")
DOMAIN_NAME_PATTERN = (r"^(\*\.)?([a-zA-z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.)+"
                       r"[a-zA-z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.?$")
_ANP_NAMED_PORT_RULE = ("networks/nodes/domainNames peer cannot be set with namedPorts since there are "
                        "no namedPorts for networks/nodes/domainNames")
_BANP_NAMED_PORT_RULE = ("networks/nodes peer cannot be set with namedPorts since there are "
                         "no namedPorts for networks/nodes")


# -- apiextensions' wording of OpenAPI schema failures ------------------------------


def _required(errs: Errors, obj: dict, key: str, path: str) -> bool:
    """The schema's `required`: absent (or null) is `Required value`."""
    if obj.get(key) is None:
        errs.required(f"{path}.{key}" if path else key)
        return False
    return True


def _min_items(errs: Errors, items: list, path: str, n: int = 1) -> None:
    if len(items) < n:
        errs.invalid(path, len(items), f"{path} in body should have at least {n} items")


def _max_items(errs: Errors, items: list, path: str, n: int) -> None:
    if len(items) > n:
        errs.too_many(path, len(items), n)


def _one_of(errs: Errors, obj: dict, path: str, keys: tuple[str, ...]) -> None:
    """minProperties=1, maxProperties=1: exactly one of `keys` set (the API
    server prunes unknown members before the CRD counts them)."""
    present = [k for k in keys if obj.get(k) is not None]
    if len(present) > 1:
        errs.append(FieldError(path, "Too many", len(present), "must have at most 1 item"))
    elif not present:
        errs.invalid(path, 0, f"{path} in body should have at least 1 properties")


def _range(errs: Errors, value: Any, path: str, lo: int, hi: int) -> None:
    if not _is_int(value):
        errs.invalid(path, value, "must be of type integer")
    elif value < lo:
        errs.invalid(path, value, f"{path} in body should be greater than or equal to {lo}")
    elif value > hi:
        errs.invalid(path, value, f"{path} in body should be less than or equal to {hi}")


def _max_length(errs: Errors, value: str, path: str, n: int) -> None:
    if len(value.encode()) > n:
        errs.append(FieldError(path, "Too long", value, f"may not be more than {n} bytes"))


def _cel(errs: Errors, path: str, type_name: str, message: str) -> None:
    """A failed x-kubernetes-validations rule: the value shown is the schema type."""
    errs.invalid(path, type_name, message)


# -- names ----------------------------------------------------------------------------


def baseline_name(name: str) -> list[str]:
    """metadata.name of a BaselineAdminNetworkPolicy: a DNS subdomain, and the
    singleton's one name (the CRD's CEL rule on the root object)."""
    msgs = is_dns1123_subdomain(name)
    if name != BANP_NAME:
        msgs.append(BANP_NAME_MESSAGE)
    return msgs


# -- shared pieces --------------------------------------------------------------------


def _enum(errs: Errors, value: Any, path: str, supported: tuple[str, ...]) -> None:
    text = _str(errs, value, path)
    if text is not None and text not in supported:
        errs.unsupported(path, text, supported)


def _namespaced_pod(errs: Errors, value: Any, path: str) -> None:
    pods = _obj(errs, value, path)
    for key in ("namespaceSelector", "podSelector"):
        if _required(errs, pods, key, path):
            _label_selector(errs, pods[key], f"{path}.{key}")


def _subject(errs: Errors, spec: dict, path: str) -> None:
    if not _required(errs, spec, "subject", path):
        return
    subject = _obj(errs, spec["subject"], f"{path}.subject")
    _one_of(errs, subject, f"{path}.subject", ("namespaces", "pods"))
    if subject.get("namespaces") is not None:
        _label_selector(errs, subject["namespaces"], f"{path}.subject.namespaces")
    if subject.get("pods") is not None:
        _namespaced_pod(errs, subject["pods"], f"{path}.subject.pods")


def _peer(errs: Errors, peer: Any, path: str, egress: bool, domain_names: bool) -> set[str]:
    """One from/to entry; returns the members it sets (for the namedPort rule)."""
    keys: tuple[str, ...] = ("namespaces", "pods")
    if egress:
        keys += ("nodes", "networks") + (("domainNames",) if domain_names else ())
    peer = _obj(errs, peer, path)
    _one_of(errs, peer, path, keys)
    for key in ("namespaces", "nodes"):
        if key in keys and peer.get(key) is not None:
            _label_selector(errs, peer[key], f"{path}.{key}")
    if peer.get("pods") is not None:
        _namespaced_pod(errs, peer["pods"], f"{path}.pods")
    if "networks" in keys and peer.get("networks") is not None:
        nets = _arr(errs, peer["networks"], f"{path}.networks")
        _min_items(errs, nets, f"{path}.networks")
        _max_items(errs, nets, f"{path}.networks", MAX_NETWORKS)
        seen: set[str] = set()
        for i, cidr in enumerate(nets):
            ipath = f"{path}.networks[{i}]"
            text = _str(errs, cidr, ipath)
            if text is None:
                continue
            _max_length(errs, text, ipath, MAX_CIDR)
            if parse_cidr(text) is None:
                _cel(errs, ipath, "string", "Invalid CIDR format provided")
            if text in seen:
                errs.duplicate(ipath, text)
            seen.add(text)
    if "domainNames" in keys and peer.get("domainNames") is not None:
        names = _arr(errs, peer["domainNames"], f"{path}.domainNames")
        _min_items(errs, names, f"{path}.domainNames")
        _max_items(errs, names, f"{path}.domainNames", MAX_DOMAIN_NAMES)
        seen = set()
        for i, name in enumerate(names):
            ipath = f"{path}.domainNames[{i}]"
            text = _str(errs, name, ipath)
            if text is None:
                continue
            if not re.match(DOMAIN_NAME_PATTERN, text):
                errs.invalid(ipath, text, f"{ipath} in body should match '{DOMAIN_NAME_PATTERN}'")
            if text in seen:
                errs.duplicate(ipath, text)
            seen.add(text)
    return {k for k in keys if peer.get(k) is not None}


def _protocol(errs: Errors, obj: dict, path: str) -> None:
    # Defaulting fills TCP; on undefaulted input an absent protocol is fine.
    if obj.get("protocol") is not None:
        _enum(errs, obj["protocol"], f"{path}.protocol", PROTOCOLS)


def _port(errs: Errors, port: Any, path: str) -> bool:
    """One ports entry; True when it is a namedPort."""
    port = _obj(errs, port, path)
    _one_of(errs, port, path, ("portNumber", "namedPort", "portRange"))
    if port.get("portNumber") is not None:
        ppath = f"{path}.portNumber"
        number = _obj(errs, port["portNumber"], ppath)
        _protocol(errs, number, ppath)
        if _required(errs, number, "port", ppath):
            _range(errs, number["port"], f"{ppath}.port", 1, 65535)
    if port.get("portRange") is not None:
        ppath = f"{path}.portRange"
        rng = _obj(errs, port["portRange"], ppath)
        _protocol(errs, rng, ppath)
        ok = True
        for key in ("start", "end"):
            if _required(errs, rng, key, ppath):
                before = len(errs)
                _range(errs, rng[key], f"{ppath}.{key}", 1, 65535)
                ok = ok and len(errs) == before
            else:
                ok = False
        if ok and rng["end"] < rng["start"]:
            errs.invalid(f"{ppath}.end", rng["end"], "must be greater than or equal to `start`")
    if port.get("namedPort") is not None:
        _str(errs, port["namedPort"], f"{path}.namedPort")
        return True
    return False


def _rules(errs: Errors, spec: dict, path: str, *, actions: tuple[str, ...], baseline: bool) -> None:
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        rules = _arr(errs, spec.get(direction), f"{path}.{direction}")
        _max_items(errs, rules, f"{path}.{direction}", MAX_RULES)
        for i, rule in enumerate(rules):
            rpath = f"{path}.{direction}[{i}]"
            rule = _obj(errs, rule, rpath)
            name = _str(errs, rule.get("name"), f"{rpath}.name")
            if name:
                _max_length(errs, name, f"{rpath}.name", MAX_RULE_NAME)
            if _required(errs, rule, "action", rpath):
                _enum(errs, rule["action"], f"{rpath}.action", actions)
            peer_kinds: set[str] = set()
            if _required(errs, rule, peers_key, rpath):
                peers = _arr(errs, rule[peers_key], f"{rpath}.{peers_key}")
                _min_items(errs, peers, f"{rpath}.{peers_key}")
                _max_items(errs, peers, f"{rpath}.{peers_key}", MAX_PEERS)
                for j, peer in enumerate(peers):
                    peer_kinds |= _peer(errs, peer, f"{rpath}.{peers_key}[{j}]", direction == "egress",
                                        domain_names=not baseline)
            named = False
            if rule.get("ports") is not None:
                ports = _arr(errs, rule["ports"], f"{rpath}.ports")
                _min_items(errs, ports, f"{rpath}.ports")
                _max_items(errs, ports, f"{rpath}.ports", MAX_PORTS)
                for j, port in enumerate(ports):
                    named = _port(errs, port, f"{rpath}.ports[{j}]") or named
            if direction == "egress" and named and peer_kinds & {"networks", "nodes", "domainNames"}:
                _cel(errs, rpath, "object", _BANP_NAMED_PORT_RULE if baseline else _ANP_NAMED_PORT_RULE)


# -- the kinds ------------------------------------------------------------------------


def validate_adminnetworkpolicy(errs: Errors, obj: dict) -> None:
    if not _required(errs, obj, "spec", ""):
        return
    spec = _obj(errs, obj["spec"], "spec")
    if _required(errs, spec, "priority", "spec"):
        _range(errs, spec["priority"], "spec.priority", 0, 1000)
    _subject(errs, spec, "spec")
    _rules(errs, spec, "spec", actions=ANP_ACTIONS, baseline=False)


def validate_baselineadminnetworkpolicy(errs: Errors, obj: dict) -> None:
    if not _required(errs, obj, "spec", ""):
        return
    spec = _obj(errs, obj["spec"], "spec")
    _subject(errs, spec, "spec")
    _rules(errs, spec, "spec", actions=BANP_ACTIONS, baseline=True)
