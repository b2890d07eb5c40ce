"""Validation of networking.k8s.io/v1: NetworkPolicy (peers, ports, ipBlocks)."""

from __future__ import annotations

from knet.api.validation.fields import (
    Errors,
    _arr,
    _int,
    _is_int,
    _label_selector,
    _obj,
    _port_num_or_name,
    _strings,
    is_cidr,
    is_port_num,
    parse_cidr,
)


def validate_networkpolicy(errs: Errors, obj: dict) -> None:
    spec = _obj(errs, obj.get("spec"), "spec")
    if spec.get("podSelector") is None:
        errs.required("spec.podSelector")  # defaulting fills {} (all pods)
    else:
        _label_selector(errs, spec["podSelector"], "spec.podSelector")
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        for i, rule in enumerate(_arr(errs, spec.get(direction), f"spec.{direction}")):
            path = f"spec.{direction}[{i}]"
            rule = _obj(errs, rule, path)
            for j, port in enumerate(_arr(errs, rule.get("ports"), f"{path}.ports")):
                _policy_port(errs, _obj(errs, port, f"{path}.ports[{j}]"), f"{path}.ports[{j}]")
            for j, peer in enumerate(_arr(errs, rule.get(peers_key), f"{path}.{peers_key}")):
                _policy_peer(errs, _obj(errs, peer, f"{path}.{peers_key}[{j}]"), f"{path}.{peers_key}[{j}]")
    types = _strings(errs, spec.get("policyTypes"), "spec.policyTypes")
    if len(types) > 2:
        errs.invalid("spec.policyTypes", types, "may not specify more than two policyTypes")
        return
    for i, kind in enumerate(types):
        if kind not in ("Ingress", "Egress"):
            errs.unsupported(f"spec.policyTypes[{i}]", kind, ["Ingress", "Egress"])


def _policy_port(errs: Errors, port: dict, path: str) -> None:
    protocol = port.get("protocol")
    if protocol is not None and protocol not in ("TCP", "UDP", "SCTP"):
        errs.unsupported(f"{path}.protocol", protocol, ["TCP", "UDP", "SCTP"])
    number, end = port.get("port"), port.get("endPort")
    end = _int(errs, end, f"{path}.endPort")
    if number is None:
        if end is not None:
            errs.invalid(f"{path}.endPort", end, "may not be specified when `port` is not specified")
    elif _is_int(number):
        errs.each(f"{path}.port", number, is_port_num(number))
        if end is not None:
            if end < number:
                errs.invalid(f"{path}.endPort", end, "must be greater than or equal to `port`")
            errs.each(f"{path}.endPort", end, is_port_num(end))
    else:
        if end is not None:
            errs.invalid(f"{path}.endPort", end, "may not be specified when `port` is non-numeric")
        _port_num_or_name(errs, number, f"{path}.port")


def _policy_peer(errs: Errors, peer: dict, path: str) -> None:
    present = [k for k in ("podSelector", "namespaceSelector", "ipBlock") if peer.get(k) is not None]
    for key in present:
        if key == "ipBlock":
            _ip_block(errs, _obj(errs, peer[key], f"{path}.ipBlock"), f"{path}.ipBlock")
        else:
            _label_selector(errs, peer[key], f"{path}.{key}")
    if not present:
        errs.required(path, "must specify a peer")
    elif len(present) > 1 and "ipBlock" in present:
        errs.forbidden(path, "may not specify both ipBlock and another peer")


def _ip_block(errs: Errors, block: dict, path: str) -> None:
    cidr = block.get("cidr")
    if not cidr:
        errs.required(f"{path}.cidr")
        return
    errs.each(f"{path}.cidr", cidr, is_cidr(cidr))
    outer = parse_cidr(cidr)
    if outer is None:
        return
    for i, text in enumerate(_strings(errs, block.get("except"), f"{path}.except")):
        msgs = is_cidr(text)
        errs.each(f"{path}.except[{i}]", text, msgs)
        inner = parse_cidr(text)
        if inner is None:
            continue
        if inner.version != outer.version or inner.network_address not in outer \
                or outer.prefixlen >= inner.prefixlen:
            errs.invalid(f"{path}.except[{i}]", text, "must be a strict subset of `cidr`")
