"""The CNI specification's contract, as pure functions: environment and
config checks with the spec's error codes, and results in the shape each
spec version expects. Stdlib only: the plugin shim imports it on every call.
"""

from __future__ import annotations

import json
import re

SUPPORTED = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC")
ID_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")

# The spec's well-known error codes.
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENV = 4
IO_FAILURE = 5
DECODE_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN_LATER = 11
NOT_AVAILABLE = 50
NOT_AVAILABLE_DEGRADED = 51
INTERNAL = 999


class CniError(Exception):
    def __init__(self, code: int, msg: str, details: str = ""):
        super().__init__(msg)
        self.code, self.msg, self.details = code, msg, details

    def to_json(self, version: str = "1.1.0") -> dict:
        out = {"cniVersion": version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out


def version_tuple(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in v.split("."))
    except ValueError:
        return (0,)


def parse_config(stdin: str, command: str) -> dict:
    """Decode and check the network configuration on stdin (codes 6, 7, 1)."""
    if command == "VERSION":
        try:
            return json.loads(stdin) if stdin.strip() else {}
        except json.JSONDecodeError:
            return {}
    try:
        conf = json.loads(stdin)
    except json.JSONDecodeError as e:
        raise CniError(DECODE_FAILURE, "decoding failure", f"invalid JSON on stdin: {e}") from None
    if not isinstance(conf, dict):
        raise CniError(DECODE_FAILURE, "decoding failure", "the network configuration must be a JSON object")
    version = conf.get("cniVersion")
    if not isinstance(version, str) or not version:
        raise CniError(INVALID_CONFIG, "invalid network configuration", "cniVersion is required")
    if version not in SUPPORTED:
        raise CniError(INCOMPATIBLE_VERSION, "incompatible CNI versions",
                       f"config is {version!r}, plugin supports {SUPPORTED}")
    if command == "CHECK" and version_tuple(version) < (0, 4, 0):
        raise CniError(INCOMPATIBLE_VERSION, "incompatible CNI versions", "CHECK needs cniVersion >= 0.4.0")
    if command in ("GC", "STATUS") and version_tuple(version) < (1, 1, 0):
        raise CniError(INCOMPATIBLE_VERSION, "incompatible CNI versions", f"{command} needs cniVersion >= 1.1.0")
    name = conf.get("name")
    if not isinstance(name, str) or not ID_RE.match(name):
        raise CniError(INVALID_CONFIG, "invalid network configuration",
                       f"name: {name!r}: must match {ID_RE.pattern}")
    return conf


def check_env(env: dict[str, str]) -> str:
    """The CNI_* variables each command needs (code 4, or 3 for a bad container ID)."""
    command = env.get("CNI_COMMAND", "")
    if command not in COMMANDS:
        raise CniError(INVALID_ENV, "invalid environment variables",
                       f"CNI_COMMAND: {command!r}: must be one of {', '.join(COMMANDS)}")
    need = {"ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"), "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
            "DEL": ("CNI_CONTAINERID", "CNI_IFNAME"), "GC": ("CNI_PATH",)}.get(command, ())
    missing = [k for k in need if not env.get(k)]
    if missing:
        raise CniError(INVALID_ENV, "invalid environment variables", f"required env variables [{','.join(missing)}] missing")
    if command in ("ADD", "DEL", "CHECK"):
        if not ID_RE.match(env["CNI_CONTAINERID"]):
            raise CniError(UNKNOWN_CONTAINER, "unknown container",
                           f"CNI_CONTAINERID: {env['CNI_CONTAINERID']!r}: must match {ID_RE.pattern}")
        ifname = env["CNI_IFNAME"]
        if len(ifname) > 15 or ifname in (".", "..") or any(ch in ifname for ch in "/: \t\n"):
            raise CniError(INVALID_ENV, "invalid environment variables", f"CNI_IFNAME: {ifname!r}: not a valid interface name")
    return command


def parse_args(text: str) -> dict[str, str]:
    out = {}
    for part in (text or "").split(";"):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise CniError(INVALID_ENV, "invalid environment variables", f"CNI_ARGS: {part!r} is not KEY=VALUE")
        out[key] = value
    return out


def convert_result(result: dict, version: str) -> dict:
    """A 1.x result in the shape `version` expects (0.3.x/0.4.0 carry ips[].version)."""
    out = json.loads(json.dumps(result))
    out["cniVersion"] = version
    if version_tuple(version) < (1, 0, 0):
        for ip in out.get("ips", []):
            ip["version"] = "6" if ":" in ip["address"] else "4"
        for route in out.get("routes", []):
            for key in ("mtu", "advmss", "priority", "table", "scope"):
                route.pop(key, None)
    return out
