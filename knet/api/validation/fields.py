"""What every kind's validation shares: apimachinery's format checks
(util/validation), the error collector with field.*'s constructors, type
checks that report a wrong JSON type at its path, and ObjectMeta, labels,
selectors and ports. Each group's module (core, apps, discovery, networking)
builds on these, as upstream's per-group validation builds on apimachinery.
The underscored helpers are this package's own: the group modules import
them; nothing outside knet/api/validation/ should."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from knet.api.errors import FieldError
from knet.api.selectors import (
    is_label_value,
    is_qualified_name,
    regex_error,
)

# =============================================================================
# Format checks: apimachinery's util/validation. Each returns the messages for
# an invalid value, or [] when the value is fine.
# =============================================================================

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_RE = re.compile(f"^{_DNS1123_LABEL_FMT}$")
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_RE = re.compile(f"^{_DNS1035_LABEL_FMT}$")
_ENV_VAR_FMT = "[-._a-zA-Z][-._a-zA-Z0-9]*"
_ENV_VAR_RE = re.compile(f"^{_ENV_VAR_FMT}$")
_PERCENT_FMT = "[0-9]+%"
_PERCENT_RE = re.compile(f"^{_PERCENT_FMT}$")
_HTTP_HEADER_FMT = "[-A-Za-z0-9]+"
_HTTP_HEADER_RE = re.compile(f"^{_HTTP_HEADER_FMT}$")
_MAX_INT32 = 2147483647


def is_dns1123_label(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _DNS1123_LABEL_RE.match(value):
        errs.append(regex_error(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
            "and must start and end with an alphanumeric character",
            _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _DNS1035_LABEL_RE.match(value):
        errs.append(regex_error(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
            "start with an alphabetic character, and end with an alphanumeric character",
            _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def is_port_name(value: str) -> list[str]:
    """IANA_SVC_NAME: what a named container port (and a named targetPort) must be."""
    errs = []
    if len(value) > 15:
        errs.append("must be no more than 15 characters")
    if not re.fullmatch("[-a-z0-9]+", value):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", value):
        errs.append("must contain at least one letter (a-z)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if value and (value[0] == "-" or value[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def is_port_num(value: int) -> list[str]:
    return [] if 1 <= value <= 65535 else ["must be between 1 and 65535, inclusive"]


def is_env_var_name(value: str) -> list[str]:
    errs = []
    if not _ENV_VAR_RE.match(value):
        errs.append(regex_error(
            "a valid environment variable name must consist of alphabetic characters, digits, "
            "'_', '-', or '.', and must not start with a digit",
            _ENV_VAR_FMT, "my.env-name", "MY_ENV.NAME", "MyEnvName1"))
    if value == ".":
        errs.append("must not be '.'")
    elif value == "..":
        errs.append("must not be '..'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def is_percent(value: str) -> list[str]:
    if _PERCENT_RE.match(value):
        return []
    return [regex_error("a valid percent string must be a numeric string followed by an ending '%'",
                        _PERCENT_FMT, "1%", "93%")]


def parse_ip(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An IP as Go's net.ParseIP reads it (no zone suffix), or None."""
    if not isinstance(value, str) or "%" in value:
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def parse_cidr(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """A CIDR as Go's net.ParseCIDR reads it: the prefix length is required and
    host bits may be set."""
    if not isinstance(value, str) or "/" not in value or "%" in value:
        return None
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None


def is_ip(value: Any) -> list[str]:
    return [] if parse_ip(value) else ["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]


def is_cidr(value: Any) -> list[str]:
    return [] if parse_cidr(value) else ["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]


def _special_ip_errors(value: str) -> list[str]:
    """Why an address cannot be an endpoint or external IP (ValidateNonSpecialIP)."""
    ip = parse_ip(value)
    if ip is None:
        return ["must be a valid IP address"]
    errs = []
    if ip.is_unspecified:
        errs.append(f"may not be unspecified ({value})")
    if ip.is_loopback:
        errs.append("may not be in the loopback range (127.0.0.0/8, ::1/128)")
    if ip.is_link_local:
        errs.append("may not be in the link-local range (169.254.0.0/16, fe80::/10)")
    packed = ip.packed
    if (ip.version == 4 and packed[:3] == b"\xe0\x00\x00") or (
            ip.version == 6 and packed[0] == 0xFF and packed[1] & 0x0F == 0x02):
        errs.append("may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)")
    return errs


def _mask_trailing_dash(name: str) -> str:
    """What apimachinery does to a generateName before checking it (sic: it
    drops two characters, not one)."""
    return name[:-2] + "a" if len(name) > 1 and name.endswith("-") else name


# =============================================================================
# Collecting errors
# =============================================================================


class Errors(list[FieldError]):
    """A list of FieldErrors with apimachinery's field.* constructors."""

    def invalid(self, path: str, value: Any, detail: str) -> None:
        self.append(FieldError(path, "Invalid value", value, detail))

    def each(self, path: str, value: Any, msgs: Iterable[str]) -> None:
        for msg in msgs:
            self.invalid(path, value, msg)

    def required(self, path: str, detail: str = "") -> None:
        self.append(FieldError(path, "Required value", None, detail))

    def unsupported(self, path: str, value: Any, supported: Iterable[str]) -> None:
        choices = ", ".join(json.dumps(s) for s in supported)
        self.append(FieldError(path, "Unsupported value", value, f"supported values: {choices}"))

    def duplicate(self, path: str, value: Any, detail: str = "") -> None:
        self.append(FieldError(path, "Duplicate value", value, detail))

    def forbidden(self, path: str, detail: str) -> None:
        self.append(FieldError(path, "Forbidden", None, detail))

    def too_many(self, path: str, count: int, limit: int) -> None:
        self.append(FieldError(path, "Too many", count, f"must have at most {limit} items"))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _obj(errs: Errors, value: Any, path: str) -> dict:
    """`value` if it is an object; an absent one reads as {} (Go's zero struct)."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    errs.invalid(path, value, "must be of type object")
    return {}


def _arr(errs: Errors, value: Any, path: str) -> list:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    errs.invalid(path, value, "must be of type array")
    return []


def _str(errs: Errors, value: Any, path: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    errs.invalid(path, value, "must be of type string")
    return None


def _int(errs: Errors, value: Any, path: str) -> int | None:
    if value is None or _is_int(value):
        return value
    errs.invalid(path, value, "must be of type integer")
    return None


def _bool(errs: Errors, value: Any, path: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    errs.invalid(path, value, "must be of type boolean")
    return None


def _list(value: Any) -> list:
    """A list to iterate for cross-field checks; wrong types were reported already."""
    return value if isinstance(value, list) else []


def _strings(errs: Errors, value: Any, path: str) -> list[str]:
    out = []
    for i, item in enumerate(_arr(errs, value, path)):
        if isinstance(item, str):
            out.append(item)
        else:
            errs.invalid(f"{path}[{i}]", item, "must be of type string")
    return out


def _nonnegative(errs: Errors, value: Any, path: str) -> None:
    n = _int(errs, value, path)
    if n is not None and n < 0:
        errs.invalid(path, n, "must be greater than or equal to 0")


def _in_range(errs: Errors, value: Any, path: str, lo: int, hi: int) -> None:
    n = _int(errs, value, path)
    if n is not None and not lo <= n <= hi:
        errs.invalid(path, n, f"must be between {lo} and {hi}, inclusive")


def _enum(errs: Errors, value: Any, path: str, supported: Iterable[str]) -> None:
    """An enum field that defaulting fills: absent is fine, "" is missing."""
    if value is None or _str(errs, value, path) is None:
        return
    if value == "":
        errs.required(path)
    elif value not in supported:
        errs.unsupported(path, value, supported)


def _name_check(errs: Errors, value: Any, path: str, check: Callable[[str], list[str]]) -> None:
    text = _str(errs, value, path)
    if text is not None:
        errs.each(path, text, check(text))


# =============================================================================
# Shared pieces: metadata, labels, selectors, ports
# =============================================================================

NameCheck = Callable[[str], list[str]]


def _labels(errs: Errors, labels: Any, path: str) -> None:
    """metav1 ValidateLabels: every key and value is reported at the map's path."""
    for key, value in _obj(errs, labels, path).items():
        key = str(key)
        errs.each(path, key, is_qualified_name(key))
        text = _str(errs, value, path)
        if text is not None:
            errs.each(path, text, is_label_value(text))


def _annotations(errs: Errors, annotations: Any, path: str) -> None:
    for key, value in _obj(errs, annotations, path).items():
        key = str(key)
        errs.each(path, key, is_qualified_name(key.lower()))
        _str(errs, value, f"{path}[{key}]")


def _object_meta(errs: Errors, meta: dict, name_check: NameCheck, namespaced: bool) -> None:
    """ValidateObjectMeta. The server fills namespace and a generated name
    before validating, so neither is required here when it can still be filled."""
    generate = _str(errs, meta.get("generateName"), "metadata.generateName")
    if generate:
        errs.each("metadata.generateName", generate, name_check(_mask_trailing_dash(generate)))
    name = _str(errs, meta.get("name"), "metadata.name")
    if name:
        errs.each("metadata.name", name, name_check(name))
    elif not generate:
        errs.required("metadata.name", "name or generateName is required")
    namespace = _str(errs, meta.get("namespace"), "metadata.namespace")
    if namespaced and namespace:
        errs.each("metadata.namespace", namespace, is_dns1123_label(namespace))
    _labels(errs, meta.get("labels"), "metadata.labels")
    _annotations(errs, meta.get("annotations"), "metadata.annotations")


def _selector_requirement(errs: Errors, expr: Any, path: str, *, node: bool = False,
                          check_values: bool = True) -> None:
    """A matchExpressions entry (LabelSelector, or NodeSelector when `node`)."""
    expr = _obj(errs, expr, path)
    op = expr.get("operator")
    values = _strings(errs, expr.get("values"), f"{path}.values")
    if op in ("In", "NotIn"):
        if not values:
            errs.required(f"{path}.values", "must be specified when `operator` is 'In' or 'NotIn'")
    elif op in ("Exists", "DoesNotExist"):
        if values:
            errs.forbidden(f"{path}.values",
                           "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
    elif node and op in ("Gt", "Lt"):
        if len(values) != 1:
            errs.required(f"{path}.values", "must be specified single value when `operator` is 'Lt' or 'Gt'")
    else:
        errs.invalid(f"{path}.operator", op, "not a valid selector operator")
    key = _str(errs, expr.get("key"), f"{path}.key") or ""
    errs.each(f"{path}.key", key, is_qualified_name(key))
    if check_values:
        for i, value in enumerate(values):
            errs.each(f"{path}.values[{i}]", value, is_label_value(value))


def _label_selector(errs: Errors, sel: Any, path: str) -> None:
    sel = _obj(errs, sel, path)
    _labels(errs, sel.get("matchLabels"), f"{path}.matchLabels")
    for i, expr in enumerate(_arr(errs, sel.get("matchExpressions"), f"{path}.matchExpressions")):
        _selector_requirement(errs, expr, f"{path}.matchExpressions[{i}]")


def _port_num_or_name(errs: Errors, value: Any, path: str) -> None:
    """An IntOrString port: a number 1-65535 or an IANA service name. A quoted
    number ("8080") is a name to Kubernetes, and fails as one."""
    if value is None:
        errs.required(path)
    elif _is_int(value):
        errs.each(path, value, is_port_num(value))
    elif isinstance(value, str):
        errs.each(path, value, is_port_name(value))
    else:
        errs.invalid(path, value, "must be an integer or a port name")


_PROTOCOLS = ("SCTP", "TCP", "UDP")


def _int_or_percent(errs: Errors, value: Any, path: str) -> int | None:
    """maxSurge/maxUnavailable: a non-negative int or "N%". Returns the number
    (percent or count) for the cross-field checks, or None if invalid."""
    if _is_int(value):
        if value < 0:
            errs.invalid(path, value, "must be greater than or equal to 0")
            return None
        return value
    if isinstance(value, str):
        msgs = is_percent(value)
        errs.each(path, value, msgs)
        return None if msgs else int(value[:-1])
    errs.invalid(path, value, "must be an integer or percentage (e.g '5%')")
    return None


def _not_over_100_percent(errs: Errors, value: Any, path: str) -> None:
    if isinstance(value, str) and not is_percent(value) and int(value[:-1]) > 100:
        errs.invalid(path, value, "must not be greater than 100%")


def _meta(obj: Any) -> dict:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    return meta if isinstance(meta, dict) else {}
