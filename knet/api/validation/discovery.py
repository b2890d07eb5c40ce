"""Validation of discovery.k8s.io/v1: EndpointSlice (addresses of the
slice's type, ports, the immutable addressType)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from knet.api.selectors import (
    is_dns1123_subdomain,
    is_qualified_name,
)
from knet.api.validation.fields import (
    _PROTOCOLS,
    Errors,
    _arr,
    _bool,
    _enum,
    _in_range,
    _name_check,
    _obj,
    _special_ip_errors,
    _str,
    _strings,
    is_dns1123_label,
    parse_ip,
)

# -- EndpointSlice, NetworkPolicy, Event --------------------------------------------


def _is_fqdn(value: str) -> list[str]:
    name = value.removesuffix(".")
    msgs = is_dns1123_subdomain(name)
    if msgs:
        return [",".join(msgs)]
    if len(name.split(".")) < 2:
        return ["should be a domain with at least two segments separated by dots"]
    return []


def _ip_of_family(version: int) -> Callable[[str], list[str]]:
    """An endpoint address check: an IP of that family that is not special."""
    def check(address: str) -> list[str]:
        ip = parse_ip(address)
        if ip is None or ip.version != version:
            return [f"must be a valid IPv{version} address"]
        return _special_ip_errors(address)
    return check


_ADDRESS_CHECKS: dict[str, Callable[[str], list[str]]] = {
    "IPv4": _ip_of_family(4), "IPv6": _ip_of_family(6), "FQDN": _is_fqdn}


def validate_endpointslice(errs: Errors, obj: dict) -> None:
    address_type = _str(errs, obj.get("addressType"), "addressType")
    if not address_type:
        if obj.get("addressType") in (None, ""):
            errs.required("addressType")
    elif address_type not in _ADDRESS_CHECKS:
        errs.unsupported("addressType", address_type, sorted(_ADDRESS_CHECKS))
    endpoints = _arr(errs, obj.get("endpoints"), "endpoints")
    if len(endpoints) > 1000:
        errs.too_many("endpoints", len(endpoints), 1000)
        endpoints = []
    check = _ADDRESS_CHECKS.get(address_type or "")
    for i, ep in enumerate(endpoints):
        _endpoint(errs, _obj(errs, ep, f"endpoints[{i}]"), f"endpoints[{i}]", check)
    _endpoint_ports(errs, obj.get("ports"))


def _endpoint(errs: Errors, ep: dict, path: str, check: Callable[[str], list[str]] | None) -> None:
    addresses = _strings(errs, ep.get("addresses"), f"{path}.addresses")
    if not addresses:
        errs.required(f"{path}.addresses", "must contain at least 1 address")
    elif len(addresses) > 100:
        errs.too_many(f"{path}.addresses", len(addresses), 100)
    for j, address in enumerate(addresses if check else []):
        errs.each(f"{path}.addresses[{j}]", address, check(address))
    conditions = _obj(errs, ep.get("conditions"), f"{path}.conditions")
    for key in ("ready", "serving", "terminating"):
        _bool(errs, conditions.get(key), f"{path}.conditions.{key}")
    if ep.get("hostname") is not None:
        _name_check(errs, ep["hostname"], f"{path}.hostname", is_dns1123_label)
    if ep.get("nodeName") is not None:
        _name_check(errs, ep["nodeName"], f"{path}.nodeName", is_dns1123_subdomain)


def _endpoint_ports(errs: Errors, ports: Any) -> None:
    ports = _arr(errs, ports, "ports")
    if len(ports) > 100:
        errs.too_many("ports", len(ports), 100)
        return
    names: set[str] = set()
    for i, port in enumerate(ports):
        path = f"ports[{i}]"
        port = _obj(errs, port, path)
        name = _str(errs, port.get("name"), f"{path}.name") or ""
        if name:
            errs.each(f"{path}.name", name, is_dns1123_label(name))
        if name in names:
            errs.duplicate(f"{path}.name", name)
        names.add(name)
        _enum(errs, port.get("protocol"), f"{path}.protocol", _PROTOCOLS)
        if port.get("port") is not None:
            _in_range(errs, port["port"], f"{path}.port", 1, 65535)
        if port.get("appProtocol") is not None:
            _name_check(errs, port["appProtocol"], f"{path}.appProtocol", is_qualified_name)


def validate_endpointslice_update(errs: Errors, _new_spec: dict, _old_spec: dict, new: dict, old: dict) -> None:
    if new.get("addressType") != old.get("addressType"):
        errs.invalid("addressType", new.get("addressType"), "field is immutable")
