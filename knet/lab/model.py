"""The lab file (lab.yaml), read and checked before anything is created.

A lab is a folder: lab.yaml names its cluster (a kind-style cluster file, inline or a path),
the manifests to apply in order (paths relative to the folder, or inline objects) and the
exercises, each a short text, the steps a learner types (`do`, which `knet lab run` types for
them) and the checks knet runs. A mistake in the file is reported as the Kubernetes API reports
one, with the field's path (`exercises[2].checks[0].probe.port: Invalid value: 0: must be
between 1 and 65535, inclusive`), before a cluster is made: a lab author learns of it at once,
not after a minute of bring-up.

Pure: the checks' objects are plain frozen dataclasses, and the only reads are of the folder's
own files (the cluster file and the manifests, so a YAML error is caught here too).
"""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass, field

from knet.lab import templates

TYPE_CHECKING = False
if TYPE_CHECKING:
    from knet.config import ClusterConfig

LAB_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?$")  # lab-<name> is a cluster name (<= 20)
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
PROTOCOLS = ("TCP", "UDP")
VIAS = ("clusterIP", "nodePort", "loadBalancer", "externalIP")
DNS_TYPES = ("A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT")
RCODES = ("NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "TIMEOUT")  # TIMEOUT: no answer
COMMANDS = ("knet", "kubectl")


class LabError(ValueError):
    """A lab file that cannot be used; the message names the field."""


def _show(value: object) -> str:
    """A value as the API's field errors print it: strings quoted, numbers bare."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (bool, int, float)) or value is None:
        return json.dumps(value)
    return type(value).__name__


def invalid(path: str, value: object, why: str) -> LabError:
    return LabError(f"{path}: Invalid value: {_show(value)}: {why}")


def required(path: str, why: str = "") -> LabError:
    return LabError(f"{path}: Required value" + (f": {why}" if why else ""))


def unsupported(path: str, value: object, choices: tuple[str, ...]) -> LabError:
    return LabError(f"{path}: Unsupported value: {_show(value)}: supported values: "
                    + ", ".join(f'"{c}"' for c in choices))


# -- what a check names --------------------------------------------------------------------


@dataclass(frozen=True)
class PodRef:
    """A pod, `[NAMESPACE/]NAME` in the file; for an exec check also node/NAME or ext (namespace "")."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@dataclass(frozen=True)
class Endpoint:
    """One end of a probe: a pod, a node (its LAN address), the ext host, a Service
    (`via` one of its addresses) or a literal address (templates allowed)."""

    kind: str                  # pod, node, ext, service, address
    name: str = ""             # pod/node/service name, or the address
    namespace: str = ""

    def __str__(self) -> str:
        if self.kind == "pod":
            return f"{self.namespace}/{self.name}"
        if self.kind == "node":
            return f"node/{self.name}"
        if self.kind == "service":
            return f"service {self.namespace}/{self.name}"
        return self.name or self.kind


@dataclass(frozen=True)
class ObjectRef:
    """An API object, `KIND/NAME` (kubectl's spelling: pod/web, deploy/web, svc/web)."""

    kind: str                  # the canonical kind, e.g. Deployment
    name: str                  # "" with a selector (wait on every match)
    namespace: str | None      # None: cluster-scoped
    text: str                  # as written, for messages
    selector: str = ""

    def __str__(self) -> str:
        where = f" in {self.namespace}" if self.namespace and self.namespace != "default" else ""
        sel = f" -l {self.selector}" if self.selector else ""
        return f"{self.text}{sel}{where}"


# -- checks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeCheck:
    src: Endpoint
    dst: Endpoint
    port: int
    protocol: str = "TCP"
    connected: bool = True
    via: str = "clusterIP"     # for a Service
    node: str = ""             # the node whose address a nodePort probe dials ("" : the first worker)
    timeout: float = 1.0


@dataclass(frozen=True)
class DnsCheck:
    src: PodRef
    name: str
    qtype: str = "A"
    answer: tuple[str, ...] | None = None   # the records' data, as a set (templates allowed)
    pattern: str | None = None              # every record's data matches it
    count: int | None = None
    rcode: str = "NOERROR"


@dataclass(frozen=True)
class ExecCheck:
    pod: PodRef
    command: tuple[str, ...]
    container: str | None = None
    output: str | None = None     # a regex the output must match (search, multi-line)
    absent: str | None = None     # a regex it must not match
    exit_code: int | None = 0     # None: any
    timeout: float = 20.0


@dataclass(frozen=True)
class LogsCheck:
    pod: PodRef
    container: str | None = None
    output: str | None = None
    absent: str | None = None


@dataclass(frozen=True)
class FieldCheck:
    obj: ObjectRef
    jsonpath: str
    value: str | None = None
    pattern: str | None = None


@dataclass(frozen=True)
class WaitCheck:
    obj: ObjectRef
    condition: str              # kubectl wait's --for: condition=X[=v], delete, create, jsonpath={...}=v
    timeout: float = 60.0


Check = ProbeCheck | DnsCheck | ExecCheck | LogsCheck | FieldCheck | WaitCheck
CHECK_KINDS = ("probe", "dns", "exec", "logs", "field", "wait")


@dataclass(frozen=True)
class Exercise:
    text: str
    checks: tuple[Check, ...]
    title: str = ""
    do: tuple[tuple[str, ...], ...] = ()   # the commands to type (knet ... / kubectl ...)


@dataclass(frozen=True)
class Manifest:
    source: str                 # the path, or "lab.yaml manifests[i]"
    objects: tuple[dict, ...]


@dataclass
class Lab:
    name: str
    title: str
    folder: str
    cluster_doc: dict
    manifests: list[Manifest] = field(default_factory=list)
    exercises: list[Exercise] = field(default_factory=list)

    @property
    def cluster_name(self) -> str:
        return f"lab-{self.name}"

    def cluster_config(self, name: str | None = None) -> ClusterConfig:
        from knet.config import ConfigError, parse_cluster

        try:
            return parse_cluster(dict(self.cluster_doc), name or self.cluster_name)
        except ConfigError as e:
            raise LabError(f"cluster.{e}" if not str(e).startswith(("the ", "name:")) else f"cluster: {e}") from None


# -- reading ------------------------------------------------------------------------------


def load(folder: str) -> Lab:
    """The lab in `folder` (its lab.yaml), checked."""
    from knet.api.manifests import ManifestError, read_yaml

    path = os.path.join(folder, "lab.yaml")
    if not os.path.isfile(path):
        raise LabError(f"{folder}: not a lab (no lab.yaml)")
    try:
        doc = read_yaml(path)
    except (ManifestError, OSError) as e:
        raise LabError(str(e)) from None
    return parse(doc, folder)


_TOP = ("apiVersion", "kind", "name", "title", "cluster", "manifests", "exercises")


def _known(m: dict, path: str, keys: tuple[str, ...]) -> None:
    for k in m:
        if k not in keys:
            where = f"{path}.{k}" if path else str(k)
            raise LabError(f'unknown field "{where}" (known: {", ".join(keys)})')


def _mapping(value: object, path: str) -> dict:
    if not isinstance(value, dict):
        raise invalid(path, value, "must be a mapping")
    return value


def _str(m: dict, key: str, path: str, need: bool = False, default: str | None = None) -> str | None:
    value = m.get(key)
    if value is None:
        if need:
            raise required(f"{path}.{key}" if path else key)
        return default
    if not isinstance(value, str) or (need and not value.strip()):
        raise invalid(f"{path}.{key}" if path else key, value, "must be a non-empty string")
    return value


def _number(m: dict, key: str, path: str, default: float, lo: float, hi: float) -> float:
    value = m.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo < value <= hi:
        raise invalid(f"{path}.{key}", value, f"must be more than {lo:g} and at most {hi:g} seconds")
    return float(value)


def _regex(m: dict, key: str, path: str) -> str | None:
    value = _str(m, key, path)
    if value is None:
        return None
    templates.check(value, f"{path}.{key}")
    try:
        re.compile(templates.blank(value))
    except re.error as e:
        raise invalid(f"{path}.{key}", value, f"not a regular expression: {e}") from None
    return value


def parse(doc: object, folder: str) -> Lab:
    if not isinstance(doc, dict):
        raise LabError(f"{os.path.join(folder, 'lab.yaml')}: expected a mapping (kind: Lab), got "
                       f"{type(doc).__name__}")
    _known(doc, "", _TOP)
    if doc.get("kind", "Lab") != "Lab":
        raise unsupported("kind", doc.get("kind"), ("Lab",))
    default = re.sub(r"^\d+-", "", os.path.basename(os.path.abspath(folder)))
    name = doc.get("name", default)
    if not isinstance(name, str) or not LAB_NAME_RE.match(name):
        raise invalid("name", name, "a lab name is 1-16 lowercase alphanumeric characters or '-', starting and "
                                    "ending with an alphanumeric (its cluster is lab-<name>)")
    title = _str(doc, "title", "", need=True)
    lab = Lab(name, title or "", folder, _cluster_doc(doc.get("cluster"), folder))
    lab.cluster_config()  # every field of the cluster file checked now, named cluster.<field>
    manifests = doc.get("manifests") or []
    if not isinstance(manifests, list):
        raise invalid("manifests", manifests, "must be a list of paths or objects")
    lab.manifests = [_manifest(m, f"manifests[{i}]", folder) for i, m in enumerate(manifests)]
    exercises = doc.get("exercises")
    if not isinstance(exercises, list) or not exercises:
        raise required("exercises", "a lab has at least one exercise")
    lab.exercises = [_exercise(e, f"exercises[{i}]", folder) for i, e in enumerate(exercises)]
    return lab


def _cluster_doc(value: object, folder: str) -> dict:
    if value is None:
        raise required("cluster", "a cluster file (kind: Cluster), inline or a path relative to the lab")
    if isinstance(value, str):
        from knet.api.manifests import ManifestError, read_yaml

        path = os.path.join(folder, value)
        try:
            value = read_yaml(path)
        except (ManifestError, OSError) as e:
            raise LabError(f"cluster: {getattr(e, 'strerror', None) or e}{': ' + path if isinstance(e, OSError) else ''}"
                           ) from None
        value = value or {}
    doc = dict(_mapping(value, "cluster"))
    doc.pop("name", None)  # the lab names its cluster (lab-<name>, or --cluster)
    return doc


def _manifest(value: object, path: str, folder: str) -> Manifest:
    from knet.api.manifests import ManifestError, load_with_sources, objects_of

    if isinstance(value, str):
        full = os.path.join(folder, value)
        if not os.path.exists(full):
            raise invalid(path, value, f"no such file in the lab's folder ({full})")
        try:
            objects = tuple(obj for _, obj in load_with_sources([full]))
        except ManifestError as e:
            raise LabError(f"{path}: {e}") from None
        return Manifest(value, objects)
    if isinstance(value, dict):
        try:
            objects = tuple(objects_of([value], f"lab.yaml {path}"))
        except ManifestError as e:
            raise LabError(f"{path}: {e}") from None
        return Manifest(f"lab.yaml {path}", objects)
    raise invalid(path, value, "must be a path (relative to the lab's folder) or an object")


_EXERCISE = ("title", "text", "do", "checks")


def _exercise(value: object, path: str, folder: str) -> Exercise:
    m = _mapping(value, path)
    _known(m, path, _EXERCISE)
    text = _str(m, "text", path, need=True) or ""
    title = _str(m, "title", path) or ""
    steps = m.get("do") or []
    if not isinstance(steps, list):
        raise invalid(f"{path}.do", steps, "must be a list of commands (knet ... or kubectl ...)")
    do = tuple(_command(s, f"{path}.do[{i}]") for i, s in enumerate(steps))
    checks = m.get("checks")
    if not isinstance(checks, list) or not checks:
        raise required(f"{path}.checks", "an exercise has at least one check")
    return Exercise(text.strip(), tuple(_check(c, f"{path}.checks[{i}]") for i, c in enumerate(checks)), title, do)


def _command(value: object, path: str) -> tuple[str, ...]:
    if not isinstance(value, str) or not value.strip():
        raise invalid(path, value, "must be a command line (knet ... or kubectl ...)")
    try:
        argv = tuple(shlex.split(value))
    except ValueError as e:
        raise invalid(path, value, f"cannot be split into words: {e}") from None
    if argv[0] not in COMMANDS:
        raise invalid(path, value, "must start with knet or kubectl (the lab runs it against its own cluster)")
    if "--cluster" in argv or "--context" in argv or "--kubeconfig" in argv:
        raise invalid(path, value, "must not name a cluster: the lab runs it against its own")
    return argv


def _check(value: object, path: str) -> Check:
    m = _mapping(value, path)
    kinds = [k for k in m if k in CHECK_KINDS]
    _known(m, path, CHECK_KINDS)
    if len(kinds) != 1:
        raise invalid(path, value if not kinds else ", ".join(kinds),
                      f"exactly one of {', '.join(CHECK_KINDS)}")
    kind = kinds[0]
    body = _mapping(m[kind], f"{path}.{kind}")
    return _PARSERS[kind](body, f"{path}.{kind}")


def _namespace(m: dict, path: str) -> str:
    ns = _str(m, "namespace", path, default="default") or "default"
    if not NAME_RE.match(ns):
        raise invalid(f"{path}.namespace", ns, "must be a DNS label")
    return ns


def _pod(text: object, path: str, namespace: str) -> PodRef:
    if not isinstance(text, str) or not text:
        raise invalid(path, text, "must name a pod: NAME or NAMESPACE/NAME")
    ns, _, name = text.rpartition("/")
    if text.count("/") > 1 or not NAME_RE.match(name) or (ns and not NAME_RE.match(ns)):
        raise invalid(path, text, "must name a pod: NAME or NAMESPACE/NAME")
    return PodRef(ns or namespace, name)


def _endpoint(text: object, path: str, namespace: str, *, dst: bool) -> Endpoint:
    if text == "ext":
        return Endpoint("ext", "ext")
    if isinstance(text, str) and text.startswith("node/"):
        name = text[5:]
        if not NAME_RE.match(name):
            raise invalid(path, text, "node/NAME names a node of the lab's cluster")
        return Endpoint("node", name)
    try:
        pod = _pod(text, path, namespace)
    except LabError:
        where = "a pod (NAME or NAMESPACE/NAME), node/NAME or ext"
        raise invalid(path, text, f"must be {where}" + ("; a Service is `service:`, an IP `address:`" if dst else "")
                      ) from None
    return Endpoint("pod", pod.name, pod.namespace)


_PROBE = ("from", "to", "service", "address", "via", "node", "port", "protocol", "expect", "namespace", "timeout")


def _probe(m: dict, path: str) -> ProbeCheck:
    _known(m, path, _PROBE)
    ns = _namespace(m, path)
    if "from" not in m:
        raise required(f"{path}.from", "a pod (NAME or NAMESPACE/NAME), node/NAME or ext")
    src = _endpoint(m["from"], f"{path}.from", ns, dst=False)
    given = [k for k in ("to", "service", "address") if k in m]
    if len(given) != 1:
        raise required(f"{path}.to", "exactly one of to (a pod, node/NAME, ext), service (NAME or "
                                     "NAME.NAMESPACE) or address (an IP)") if not given else \
            invalid(f"{path}.{given[1]}", m[given[1]], f"only one of to, service, address (also given: {given[0]})")
    key = given[0]
    if key == "to":
        dst = _endpoint(m["to"], f"{path}.to", ns, dst=True)
    elif key == "service":
        svc = m["service"]
        if not isinstance(svc, str) or not NAME_RE.match(svc) or svc.count(".") > 1:
            raise invalid(f"{path}.service", svc, "must be NAME or NAME.NAMESPACE")
        name, _, sns = svc.partition(".")
        dst = Endpoint("service", name, sns or ns)
    else:
        address = m["address"]
        if not isinstance(address, str) or not address:
            raise invalid(f"{path}.address", address, "must be an IP address (templates allowed)")
        templates.check(address, f"{path}.address")
        if not templates.has(address):
            import ipaddress

            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise invalid(f"{path}.address", address, "must be an IP address") from None
        dst = Endpoint("address", address)
    via = m.get("via", "clusterIP")
    if via not in VIAS:
        raise unsupported(f"{path}.via", via, VIAS)
    if "via" in m and dst.kind != "service":
        raise invalid(f"{path}.via", via, "only for a probe of a service")
    node = m.get("node", "")
    if node and (not isinstance(node, str) or not NAME_RE.match(node)):
        raise invalid(f"{path}.node", node, "must name a node")
    if node and via != "nodePort":
        raise invalid(f"{path}.node", node, "only with via: nodePort (the node whose address is dialled)")
    port = m.get("port")
    if port is None:
        raise required(f"{path}.port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise invalid(f"{path}.port", port, "must be between 1 and 65535, inclusive")
    protocol = m.get("protocol", "TCP")
    if protocol not in PROTOCOLS:
        raise unsupported(f"{path}.protocol", protocol, PROTOCOLS)
    expect = m.get("expect")
    if expect is None:
        raise required(f"{path}.expect", "connected or blocked")
    if expect not in ("connected", "blocked"):
        raise unsupported(f"{path}.expect", expect, ("blocked", "connected"))
    timeout = _number(m, "timeout", path, 1.0, 0, 30)
    return ProbeCheck(src, dst, port, protocol, expect == "connected", via, node, timeout)


_DNS = ("from", "name", "type", "answer", "pattern", "count", "rcode", "namespace")


def _dns(m: dict, path: str) -> DnsCheck:
    _known(m, path, _DNS)
    ns = _namespace(m, path)
    if "from" not in m:
        raise required(f"{path}.from", "the pod whose resolver asks (NAME or NAMESPACE/NAME)")
    src = _pod(m["from"], f"{path}.from", ns)
    name = _str(m, "name", path, need=True) or ""
    templates.check(name, f"{path}.name")
    qtype = m.get("type", "A")
    if qtype not in DNS_TYPES:
        raise unsupported(f"{path}.type", qtype, DNS_TYPES)
    answer = m.get("answer")
    if answer is not None:
        items = answer if isinstance(answer, list) else [answer]
        if not all(isinstance(a, str) and a for a in items):
            raise invalid(f"{path}.answer", answer, "must be a record's data or a list of them (strings)")
        for i, a in enumerate(items):
            templates.check(a, f"{path}.answer[{i}]" if isinstance(answer, list) else f"{path}.answer")
        answer = tuple(items)
    pattern = _regex(m, "pattern", path)
    count = m.get("count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        raise invalid(f"{path}.count", count, "must be a number of records, 0 or more")
    rcode = m.get("rcode", "NOERROR")
    if rcode not in RCODES:
        raise unsupported(f"{path}.rcode", rcode, RCODES)
    if rcode != "NOERROR" and (answer or pattern or count):
        raise invalid(f"{path}.rcode", rcode, "an answer, pattern or count expects NOERROR")
    return DnsCheck(src, name, qtype, answer, pattern, count, rcode)


_EXEC = ("pod", "container", "command", "output", "absent", "exitCode", "namespace", "timeout")


def _exec(m: dict, path: str) -> ExecCheck:
    _known(m, path, _EXEC)
    ns = _namespace(m, path)
    if "pod" not in m:
        raise required(f"{path}.pod", "NAME, NAMESPACE/NAME, node/NAME or ext (where knet exec runs it)")
    target = m["pod"]
    if target == "ext" or (isinstance(target, str) and target.startswith("node/") and NAME_RE.match(target[5:])):
        pod = PodRef("", target)  # a node's or the ext host's namespaces, as knet exec node/NAME, ext
    else:
        pod = _pod(target, f"{path}.pod", ns)
    command = m.get("command")
    if isinstance(command, str) and command.strip():
        argv: tuple[str, ...] = ("sh", "-c", command)
    elif isinstance(command, list) and command and all(isinstance(a, str) for a in command):
        argv = tuple(command)
    elif command is None:
        raise required(f"{path}.command")
    elif isinstance(command, list) and command:
        i = next(i for i, a in enumerate(command) if not isinstance(a, str))
        raise invalid(f"{path}.command[{i}]", command[i], "must be a string (quote it in YAML)")
    else:
        raise invalid(f"{path}.command", command, "must be a list of words, or a string for sh -c")
    for i, word in enumerate(argv):
        templates.check(word, f"{path}.command[{i}]" if isinstance(command, list) else f"{path}.command")
    code = m.get("exitCode", 0)
    if code is not None and (isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= 255):
        raise invalid(f"{path}.exitCode", code, "must be between 0 and 255, inclusive (null: any)")
    return ExecCheck(pod, argv, _str(m, "container", path), _regex(m, "output", path), _regex(m, "absent", path),
                     code, _number(m, "timeout", path, 20.0, 0, 300))


_LOGS = ("pod", "container", "output", "absent", "namespace")


def _logs(m: dict, path: str) -> LogsCheck:
    _known(m, path, _LOGS)
    ns = _namespace(m, path)
    if "pod" not in m:
        raise required(f"{path}.pod")
    out = LogsCheck(_pod(m["pod"], f"{path}.pod", ns), _str(m, "container", path), _regex(m, "output", path),
                    _regex(m, "absent", path))
    if out.output is None and out.absent is None:
        raise required(f"{path}.output", "output (a pattern the log must match) or absent (one it must not)")
    return out


def _object(m: dict, path: str, ns: str, *, selector_ok: bool) -> ObjectRef:
    from knet.api.resources import lookup

    text = m.get("object")
    if text is None:
        raise required(f"{path}.object", "KIND/NAME, such as deploy/web")
    if not isinstance(text, str) or not text:
        raise invalid(f"{path}.object", text, "must be KIND/NAME, such as deploy/web")
    kind, _, name = text.partition("/")
    res = lookup(kind)
    if res is None:
        raise invalid(f"{path}.object", text, f'the server doesn\'t have a resource type "{kind}"')
    selector = _str(m, "selector", path) or ""
    if selector and not selector_ok:
        raise invalid(f"{path}.selector", selector, "not for this check")
    if selector and name:
        raise invalid(f"{path}.selector", selector, "a name or a selector, not both")
    if not name and not selector:
        raise invalid(f"{path}.object", text, "must be KIND/NAME" + (" (or KIND with a selector)" if selector_ok else ""))
    if name and not NAME_RE.match(name):
        raise invalid(f"{path}.object", text, "the name must be a DNS subdomain")
    return ObjectRef(res.kind, name, ns if res.namespaced else None, text, selector)


_FIELD = ("object", "jsonpath", "value", "pattern", "namespace")


def _field(m: dict, path: str) -> FieldCheck:
    _known(m, path, _FIELD)
    obj = _object(m, path, _namespace(m, path), selector_ok=False)
    jsonpath = _str(m, "jsonpath", path, need=True) or ""
    _jsonpath(jsonpath, f"{path}.jsonpath")
    value = m.get("value")
    if value is not None and not isinstance(value, str):
        value = json.dumps(value) if not isinstance(value, (int, float)) or isinstance(value, bool) else str(value)
    if value is not None:
        templates.check(value, f"{path}.value")
    pattern = _regex(m, "pattern", path)
    if value is None and pattern is None:
        raise required(f"{path}.value", "value (what the path prints) or pattern (a regex it matches)")
    return FieldCheck(obj, jsonpath, value, pattern)


def relaxed(template: str) -> str:
    """kubectl's relaxed JSONPath (wait --for=jsonpath, --sort-by): `.a.b` means `{.a.b}`."""
    t = template.strip()
    return t if t.startswith("{") else "{" + t + "}"


def _jsonpath(template: str, path: str) -> None:
    from knet.cli.jsonpath import JSONPath, JSONPathError

    try:
        JSONPath(relaxed(template))
    except JSONPathError as e:
        raise invalid(path, template, f"not a JSONPath template: {e}") from None


_WAIT = ("object", "selector", "for", "timeout", "namespace")


def _wait(m: dict, path: str) -> WaitCheck:
    _known(m, path, _WAIT)
    obj = _object(m, path, _namespace(m, path), selector_ok=True)
    cond = m.get("for")
    if cond is None:
        raise required(f"{path}.for", "condition=NAME[=VALUE], delete, create or jsonpath={PATH}=VALUE")
    if not isinstance(cond, str) or not _valid_for(cond):
        raise invalid(f"{path}.for", cond, "must be condition=NAME[=VALUE], delete, create or "
                                           "jsonpath={PATH}=VALUE (kubectl wait's --for)")
    if cond.startswith("jsonpath="):
        _jsonpath(split_jsonpath_for(cond)[0], f"{path}.for")
    return WaitCheck(obj, cond, _number(m, "timeout", path, 60.0, 0, 600))


def _valid_for(cond: str) -> bool:
    if cond in ("delete", "create"):
        return True
    if cond.startswith("condition="):
        return bool(cond[len("condition="):].split("=")[0])
    if cond.startswith("jsonpath="):
        return split_jsonpath_for(cond)[1] is not None
    return False


def split_jsonpath_for(cond: str) -> tuple[str, str | None]:
    """`jsonpath={.status.phase}=Running` -> ("{.status.phase}", "Running"); the
    value is None when there is none (kubectl then waits for the path to exist)."""
    text = cond[len("jsonpath="):]
    if text.startswith("{"):
        end = text.find("}")
        if end < 0:
            return text, None
        template, rest = text[:end + 1], text[end + 1:]
    else:
        template, sep, rest = text.partition("=")
        rest = "=" + rest if sep else ""
    if not rest.startswith("="):
        return template, None
    return template, rest[1:].strip("'\"")


_PARSERS = {"probe": _probe, "dns": _dns, "exec": _exec, "logs": _logs, "field": _field, "wait": _wait}
