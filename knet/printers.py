"""Human-readable output for `knet get` and `knet describe`.

People who use knet already read kubectl's output fluently, so every table and
description here is laid out the way kubectl lays it out: the same columns, the
same placeholders (`<none>`, `<pending>`, `<unset>`, `<unknown>`) and the same
describe sections (kubectl/pkg/describe/describe.go). A table's columns and
the cells of its rows are the API's (each kind's record in
knet/api/resources.py names them; the row functions are in knet/api/tables.py);
this module lays them out.

Alignment is not approximated: kubectl pipes its text through Go's
text/tabwriter, whose column blocks span only consecutive lines that share a
cell, which is why `describe` output realigns after every header line. A small
port of that algorithm (`_tabwrite`) produces byte-identical spacing.

This module runs on every CLI call, so it imports only cheap stdlib modules.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from knet.api.gofmt import go_float
from knet.api.resources import by_kind, lookup
from knet.api.tables import (
    Obj,
    containers_of,
    default_row,
    dig,
    format_labels,
    format_selector,
    human_age,
    name_of,
    node_roles,
    parse_timestamp,
    replicas_of,
    selector_string,
    service_type,
    since,
    to_int,
)

TYPE_CHECKING = False  # not typing's: importing typing is 4 ms of every `knet get`
if TYPE_CHECKING:
    from fractions import Fraction
    from typing import Any  # imported where quantities are summed: not on `knet get`'s path

__all__ = ["describe", "go_sort", "isolated_cell", "policies_cell", "table", "table_cells", "tabwrite"]

# --------------------------------------------------------------------------
# time


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def _until(value: object, now: float) -> str:
    stamp = parse_timestamp(value)
    return "<unknown>" if stamp is None else human_age(stamp - now)


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _local(stamp: float) -> datetime:
    # kubectl shows times in the machine's zone: metav1.Time unmarshals to Local.
    return datetime.fromtimestamp(stamp, UTC).astimezone()


def _rfc1123z(value: object) -> str:
    """Go's time.RFC1123Z, spelled in English whatever the locale."""
    stamp = parse_timestamp(value)
    if stamp is None:
        return "Mon, 01 Jan 0001 00:00:00 +0000"
    t = _local(int(stamp))
    return (
        f"{_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year:04d} "
        f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} {t.strftime('%z')}"
    )


def _go_time_string(value: object) -> str:
    """Go's time.Time.String(), which `%s` of a metav1.Time prints."""
    stamp = parse_timestamp(value)
    if stamp is None:
        return "0001-01-01 00:00:00 +0000 UTC"
    t = _local(int(stamp))
    return t.strftime("%Y-%m-%d %H:%M:%S %z ") + (t.tzname() or "")


# --------------------------------------------------------------------------
# Go's text/tabwriter


def _tabwrite(text: str, minwidth: int, padding: int, remember: list[int] | None = None) -> str:
    """Align tab-terminated cells exactly as Go's text/tabwriter does.

    A column is sized over a block of consecutive lines that all have a cell in
    it; a line without that cell ends the block. The text after a line's last
    tab is not a cell and is never padded.

    `remember` is liggitt/tabwriter's RememberWidths, which kubectl's table
    writer sets: each flush (here, each call with the same list) pads a column
    to at least the widest it has been, so `get -w` rows line up under the
    header printed before them, and a wider cell widens its column from then on.
    """
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    widths: list[int] = []

    def emit(line0: int, line1: int) -> None:
        for i in range(line0, line1):
            cells = lines[i]
            out.append(
                "".join(c.ljust(widths[j]) if j < len(widths) else c for j, c in enumerate(cells))
            )

    def block(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            emit(line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            if remember is not None:
                if len(remember) < column:
                    remember.extend(widths[len(remember):])
                if len(remember) == column:
                    remember.append(width)
                elif remember[column] > width:
                    width = remember[column]
                else:
                    remember[column] = width
            widths.append(width)
            block(line0, this)
            widths.pop()
            line0 = this
        emit(line0, line1)

    block(0, len(lines))
    return "\n".join(out)


def _escape(text: str) -> str:
    # kubectl's printers.EscapeTerminal: never let object data drive the terminal.
    return text.replace("\x1b", "^[").replace("\r", "\\r")


class _Writer:
    """kubectl's PrefixWriter over a tabwriter(minwidth 0, padding 2)."""

    def __init__(self, show_events: bool = True) -> None:
        self._chunks: list[list[str]] = [[]]
        self.show_events = show_events

    def write(self, level: int, text: str) -> None:
        self._chunks[-1].append(_escape("  " * level + text))

    def line(self, text: str = "") -> None:
        self._chunks[-1].append(_escape(text + "\n"))

    def flush(self) -> None:
        self._chunks.append([])

    def render(self) -> str:
        return "".join(_tabwrite("".join(chunk), 0, 2) for chunk in self._chunks)


# --------------------------------------------------------------------------
# small helpers shared by tables and descriptions


def _namespace(obj: Obj) -> str:
    return dig(obj, "metadata", "namespace") or ""


def _controller_of(obj: Obj) -> Obj | None:
    for ref in dig(obj, "metadata", "ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller"):
            return ref
    return None


def _controlled_by(child: Obj, owner: Obj) -> bool:
    ref = _controller_of(child)
    if ref is None:
        return False
    owner_uid = dig(owner, "metadata", "uid")
    if owner_uid and ref.get("uid"):
        return ref.get("uid") == owner_uid
    return ref.get("kind") == owner.get("kind") and ref.get("name") == name_of(owner)


def _intstr(value: object) -> str:
    if value is None:
        return "<nil>"
    return str(value)


# --------------------------------------------------------------------------
# tables


_Row = Callable[[Obj, bool, float], list[str]]

def table(
    kind: str,
    objects: list[dict],
    *,
    wide: bool = False,
    all_namespaces: bool = False,
    show_kind: bool = False,
    now: float | None = None,
    extra: Iterable[tuple[str, Callable[[Obj], str]]] = (),
) -> str:
    """The `knet get` table for objects of one kind, ending in a newline.

    An empty list gives "" so the caller can print kubectl's "No resources
    found" line instead. `show_kind` prefixes the first cell with the kind as
    kubectl does when several kinds are listed at once (`deployment.apps/web`).
    A NAMESPACE column is only added for namespaced kinds, as kubectl does.
    `extra` adds knet's own columns after kubectl's, as (header, cell of an
    object): facts the caller computed from other objects (which policies
    isolate a pod), which this module cannot look up itself.
    """
    if not objects:
        return ""
    lines = table_cells(kind, objects, wide=wide, all_namespaces=all_namespaces, show_kind=show_kind, now=now,
                        extra=extra)
    text = "".join(_escape("\t".join(cells)) + "\n" for cells in lines)
    return _tabwrite(text, 6, 3)


def table_cells(
    kind: str,
    objects: list[dict],
    *,
    wide: bool = False,
    all_namespaces: bool = False,
    show_kind: bool = False,
    now: float | None = None,
    extra: Iterable[tuple[str, Callable[[Obj], str]]] = (),
) -> list[list[str]]:
    """table()'s header and rows as cells, before alignment: for callers that
    lay rows out over time (`get -w` aligns each event's row with tabwrite())."""
    extra = list(extra)
    now = _now(now)
    resource = by_kind(kind) or lookup(kind)
    kind = resource.kind if resource else kind

    printer = resource.hook("printer") if resource is not None else None
    if printer is not None:  # the kind's columns are in its API record
        headers = resource.column_headers(wide)
        row_fn: _Row = printer
    else:
        headers = ["NAME", "AGE"]
        row_fn = default_row

    if resource is not None:
        namespaced = resource.namespaced
    else:
        namespaced = any(_namespace(o) for o in objects)
    with_namespace = all_namespaces and namespaced

    prefix = ""
    if show_kind:
        prefix = kind.lower()
        if resource is not None and resource.group:
            prefix += "." + resource.group
        prefix += "/"

    lines = []
    lines.append((["NAMESPACE"] if with_namespace else []) + headers + [h for h, _ in extra])
    for obj in objects:
        cells = row_fn(obj, wide, now) + [cell(obj) for _, cell in extra]
        cells[0] = prefix + cells[0]
        if with_namespace:
            cells.insert(0, _namespace(obj))
        lines.append(cells)
    return lines


def tabwrite(lines: Iterable[list[str]], remember: list[int] | None = None) -> str:
    """Rows of cells aligned as kubectl's table writer aligns them (minimum
    width 6, padding 3), remembering column widths across calls in `remember`."""
    return _tabwrite("".join(_escape("\t".join(cells)) + "\n" for cells in lines), 6, 3, remember)


# --------------------------------------------------------------------------
# describe: shared sections


def _labels_multiline(w: _Writer, title: str, labels: object, indent: str = "") -> None:
    """printLabelsMultilineWithIndent; `indent` is its initialIndent, repeated on every line."""
    w.write(0, f"{indent}{title}:\t")
    if not isinstance(labels, dict) or not labels:
        w.line("<none>")
        return
    for i, key in enumerate(sorted(labels)):
        if i:
            w.write(0, indent + "\t")
        w.write(0, f"{key}={labels[key]}\n")


def _annotations_multiline(w: _Writer, title: str, annotations: object) -> None:
    w.write(0, f"{title}:\t")
    keys = sorted(
        k for k in (annotations or {}) if k != "kubectl.kubernetes.io/last-applied-configuration"
    ) if isinstance(annotations, dict) else []
    if not keys:
        w.line("<none>")
        return
    for i, key in enumerate(keys):
        if i:
            w.write(0, "\t")
        value = str(annotations[key]).removesuffix("\n")
        if len(value) + len(key) + 2 > 140 or "\n" in value:
            w.write(0, f"{key}:\n")
            for piece in value.split("\n"):
                short = piece[:138] + "..." if len(piece) > 138 else piece
                w.write(0, f"\t  {short}\n")
        else:
            w.write(0, f"{key}: {value}\n")


def _tolerations_multiline(w: _Writer, title: str, tolerations: object) -> None:
    w.write(0, f"{title}:\t")
    items = [t for t in tolerations or [] if isinstance(t, dict)] if isinstance(tolerations, list) else []
    if not items:
        w.line("<none>")
        return
    for i, tol in enumerate(sorted(items, key=lambda t: t.get("key") or "")):
        if i:
            w.write(0, "\t")
        text = tol.get("key") or ""
        if tol.get("value"):
            text += "=" + tol["value"]
        if tol.get("effect"):
            text += ":" + tol["effect"]
        if tol.get("operator") == "Exists" and not tol.get("value"):
            text += " op=Exists" if tol.get("key") or tol.get("effect") else "op=Exists"
        if tol.get("tolerationSeconds") is not None:
            text += f" for {to_int(tol['tolerationSeconds'])}s"
        w.write(0, text + "\n")


def go_sort(items: list, less: Callable[[Any, Any], bool]) -> None:
    """Go's sort.Sort (pdqsort, Go 1.19 and later), in place: not stable, so
    the order it leaves equal items in is its own, and kubectl's describe shows
    events of the same second in exactly that order. Below 13 items it is an
    insertion sort (stable)."""
    def lt(i: int, j: int) -> bool:
        return less(items[i], items[j])

    def swap(i: int, j: int) -> None:
        items[i], items[j] = items[j], items[i]

    def insertion(a: int, b: int) -> None:
        for i in range(a + 1, b):
            j = i
            while j > a and lt(j, j - 1):
                swap(j, j - 1)
                j -= 1

    def sift_down(lo: int, hi: int, first: int) -> None:
        root = lo
        while True:
            child = 2 * root + 1
            if child >= hi:
                return
            if child + 1 < hi and lt(first + child, first + child + 1):
                child += 1
            if not lt(first + root, first + child):
                return
            swap(first + root, first + child)
            root = child

    def heap(a: int, b: int) -> None:
        first, hi = a, b - a
        for i in range((hi - 1) // 2, -1, -1):
            sift_down(i, hi, first)
        for i in range(hi - 1, -1, -1):
            swap(first, first + i)
            sift_down(0, i, first)

    def break_patterns(a: int, b: int) -> None:
        length = b - a
        if length >= 8:
            r = length
            modulus = 1 << length.bit_length()
            for idx in range(a + (length // 4) * 2 - 1, a + (length // 4) * 2 + 2):
                r ^= (r << 13) & 0xFFFFFFFFFFFFFFFF
                r ^= r >> 7
                r ^= (r << 17) & 0xFFFFFFFFFFFFFFFF
                other = r & (modulus - 1)
                if other >= length:
                    other -= length
                swap(idx, a + other)

    def choose_pivot(a: int, b: int) -> tuple[int, int]:
        swaps = [0]

        def order2(x: int, y: int) -> tuple[int, int]:
            if lt(y, x):
                swaps[0] += 1
                return y, x
            return x, y

        def median(x: int, y: int, z: int) -> int:
            x, y = order2(x, y)
            y, z = order2(y, z)
            x, y = order2(x, y)
            return y

        n = b - a
        i, j, k = a + n // 4 * 1, a + n // 4 * 2, a + n // 4 * 3
        if n >= 8:
            if n >= 50:
                i, j, k = median(i - 1, i, i + 1), median(j - 1, j, j + 1), median(k - 1, k, k + 1)
            j = median(i, j, k)
        return j, (1 if swaps[0] == 0 else 2 if swaps[0] == 12 else 0)  # increasing, decreasing, unknown

    def partial_insertion(a: int, b: int) -> bool:
        i = a + 1
        for _ in range(5):
            while i < b and not lt(i, i - 1):
                i += 1
            if i == b:
                return True
            if b - a < 50:
                return False
            swap(i, i - 1)
            if i - a >= 2:
                for j in range(i - 1, 0, -1):
                    if not lt(j, j - 1):
                        break
                    swap(j, j - 1)
            if b - i >= 2:
                for j in range(i + 1, b):
                    if not lt(j, j - 1):
                        break
                    swap(j, j - 1)
        return False

    def partition_equal(a: int, b: int, pivot: int) -> int:
        swap(a, pivot)
        i, j = a + 1, b - 1
        while True:
            while i <= j and not lt(a, i):
                i += 1
            while i <= j and lt(a, j):
                j -= 1
            if i > j:
                return i
            swap(i, j)
            i, j = i + 1, j - 1

    def partition(a: int, b: int, pivot: int) -> tuple[int, bool]:
        swap(a, pivot)
        i, j = a + 1, b - 1
        while i <= j and lt(i, a):
            i += 1
        while i <= j and not lt(j, a):
            j -= 1
        if i > j:
            swap(j, a)
            return j, True
        swap(i, j)
        i, j = i + 1, j - 1
        while True:
            while i <= j and lt(i, a):
                i += 1
            while i <= j and not lt(j, a):
                j -= 1
            if i > j:
                break
            swap(i, j)
            i, j = i + 1, j - 1
        swap(j, a)
        return j, False

    def pdq(a: int, b: int, limit: int) -> None:
        balanced = partitioned = True
        while True:
            length = b - a
            if length <= 12:
                insertion(a, b)
                return
            if limit == 0:
                heap(a, b)
                return
            if not balanced:
                break_patterns(a, b)
                limit -= 1
            pivot, hint = choose_pivot(a, b)
            if hint == 2:
                i, j = a, b - 1
                while i < j:
                    swap(i, j)
                    i, j = i + 1, j - 1
                pivot = (b - 1) - (pivot - a)
                hint = 1
            if balanced and partitioned and hint == 1 and partial_insertion(a, b):
                return
            if a > 0 and not lt(a - 1, pivot):
                a = partition_equal(a, b, pivot)
                continue
            mid, partitioned = partition(a, b, pivot)
            left, right = mid - a, b - mid
            if left < right:
                balanced = left >= length // 8
                pdq(a, mid, limit)
                a = mid + 1
            else:
                balanced = right >= length // 8
                pdq(mid + 1, b, limit)
                b = mid

    if len(items) > 1:
        pdq(0, len(items), len(items).bit_length())


def _describe_events(w: _Writer, events: list[Obj] | None, now: float) -> None:
    if not w.show_events:  # --show-events=false: kubectl passes no event list and prints no section
        return
    items = [e for e in events or [] if isinstance(e, dict)]
    if not items:
        w.write(0, "Events:\t<none>\n")
        return
    w.flush()

    def when(ev: Obj) -> float:
        stamp = parse_timestamp(ev.get("lastTimestamp"))
        return float("-inf") if stamp is None else stamp

    w.write(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n")
    w.write(1, "----\t------\t----\t----\t-------\n")
    # SortableEvents (by lastTimestamp alone, unset first) through Go's sort.Sort, which is not stable:
    # events of the same second come in the order kubectl shows them, given the server's listed order.
    go_sort(items, lambda x, y: when(x) < when(y))
    for ev in items:
        if parse_timestamp(ev.get("eventTime")) is not None:
            first = since(ev.get("eventTime"), now)
        else:
            first = since(ev.get("firstTimestamp"), now)
        series = ev.get("series")
        count = to_int(ev.get("count"))
        if isinstance(series, dict):
            interval = f"{since(series.get('lastObservedTime'), now)} (x{to_int(series.get('count'))} over {first})"
        elif count > 1:
            interval = f"{since(ev.get('lastTimestamp'), now)} (x{count} over {first})"
        else:
            interval = first
        source = dig(ev, "source", "component") or ev.get("reportingController") or ""
        message = (ev.get("message") or "").strip()
        if dig(ev, "involvedObject", "fieldPath"):
            message = f"{ev['involvedObject']['fieldPath']}: {message}"
        w.write(1, f"{ev.get('type', '')}\t{ev.get('reason', '')}\t{interval}\t{source}\t{message}\n")


def _describe_conditions(w: _Writer, conditions: object) -> None:
    """The Type/Status/Reason table workloads share."""
    if not conditions:
        return
    w.write(0, "Conditions:\n  Type\tStatus\tReason\n")
    w.write(1, "----\t------\t------\n")
    for c in conditions:
        w.write(1, f"{c.get('type', '')} \t{c.get('status', '')}\t{c.get('reason', '')}\n")


# --------------------------------------------------------------------------
# describe: containers and pod templates


def _probe(probe: Obj) -> str:
    # DescribeProbe (kubectl 1.37 spells the thresholds out). Absent fields read as the API server's
    # defaults, which a real cluster would show.
    attrs = (
        f"delay={to_int(probe.get('initialDelaySeconds'))}s "
        f"timeout={to_int(probe.get('timeoutSeconds'), 1) or 1}s "
        f"period={to_int(probe.get('periodSeconds'), 10) or 10}s "
        f"successThreshold={to_int(probe.get('successThreshold'), 1) or 1} "
        f"failureThreshold={to_int(probe.get('failureThreshold'), 3) or 3}"
    )
    if isinstance(probe.get("exec"), dict):
        return f"exec [{' '.join(str(c) for c in probe['exec'].get('command') or [])}] {attrs}"
    if isinstance(probe.get("httpGet"), dict):
        get = probe["httpGet"]
        scheme = (get.get("scheme") or "HTTP").lower()
        host = get.get("host") or ""
        port = "" if get.get("port") is None else str(get["port"])
        if port:
            host = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        path = get.get("path") or ""
        if path and not path.startswith("/") and host:
            path = "/" + path
        return f"http-get {scheme}://{host}{path} {attrs}"
    if isinstance(probe.get("tcpSocket"), dict):
        sock = probe["tcpSocket"]
        return f"tcp-socket {sock.get('host') or ''}:{_intstr(sock.get('port'))} {attrs}"
    if isinstance(probe.get("grpc"), dict):
        grpc = probe["grpc"]
        return f"grpc <pod>:{to_int(grpc.get('port'))} {grpc.get('service') or ''} {attrs}"
    return f"unknown {attrs}"


def _pod_field(pod: Obj, path: str) -> str:
    """fieldpath.ExtractFieldPathAsString for the paths the downward API allows."""
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.*)'\]", path)
    if m:
        return str((dig(pod, "metadata", m.group(1)) or {}).get(m.group(2), ""))
    if path in ("metadata.labels", "metadata.annotations"):
        values = dig(pod, *path.split(".")) or {}
        return "\n".join(f'{k}="{values[k]}"' for k in sorted(values))
    if path in ("status.podIPs", "status.hostIPs"):
        return ",".join(i.get("ip", "") for i in dig(pod, *path.split(".")) or [])
    value = dig(pod, *path.split("."))
    return "" if value is None or isinstance(value, dict | list) else str(value)


def _resource_value(container: Obj, ref: Obj) -> str:
    """ExtractContainerResourceValue: the env var a resourceFieldRef would produce."""
    resource = ref.get("resource") or ""
    section, _, name = resource.partition(".")
    raw = dig(container, "resources", section, name)
    if raw is None and section == "requests":
        raw = dig(container, "resources", "limits", name)
    quantity = _quantity(raw) if raw is not None else 0
    divisor = _quantity(ref.get("divisor")) if ref.get("divisor") else 1
    if not divisor:
        divisor = 1
    value = -(-quantity // divisor) if quantity else 0  # ceiling, as the kubelet rounds up
    return str(int(value))


def _describe_containers(
    w: _Writer,
    label: str,
    containers: list[Obj],
    statuses: list[Obj] | None,
    pod: Obj | None,
    space: str,
) -> None:
    by_name = {s.get("name"): s for s in statuses or [] if isinstance(s, dict)}
    w.write(0, f"{space}{label}:{'' if containers else ' <none>'}\n")
    name_indent = " " if space else ""
    for c in containers:
        status = by_name.get(c.get("name"))
        w.write(1, f"{name_indent}{c.get('name', '')}:\n")
        if status is not None:
            w.write(2, f"Container ID:\t{status.get('containerID', '')}\n")
        w.write(2, f"Image:\t{c.get('image', '')}\n")
        if status is not None:
            w.write(2, f"Image ID:\t{status.get('imageID', '')}\n")
        ports = c.get("ports") or []
        named = [f" ({p['name']})" if p.get("name") else "" for p in ports]  # describeContainerPorts
        port_text = ", ".join(f"{to_int(p.get('containerPort'))}/{p.get('protocol') or 'TCP'}{n}"
                              for p, n in zip(ports, named, strict=True))
        host_text = ", ".join(f"{to_int(p.get('hostPort'))}/{p.get('protocol') or 'TCP'}{n}"
                              for p, n in zip(ports, named, strict=True))
        if "," in port_text:
            w.write(2, f"Ports:\t{port_text}\n")
        else:
            w.write(2, f"Port:\t{port_text or '<none>'}\n")
        if "," in host_text:
            w.write(2, f"Host Ports:\t{host_text}\n")
        else:
            w.write(2, f"Host Port:\t{host_text or '<none>'}\n")
        seccomp = dig(c, "securityContext", "seccompProfile")
        if isinstance(seccomp, dict):
            w.write(2, f"SeccompProfile:\t{seccomp.get('type', '')}\n")
            if seccomp.get("type") == "Localhost":
                w.write(3, f"LocalhostProfile:\t{seccomp.get('localhostProfile', '')}\n")
        for title, key in (("Command", "command"), ("Args", "args")):
            if c.get(key):
                w.write(2, f"{title}:\n")
                for item in c[key]:
                    for piece in str(item).split("\n"):
                        w.write(3, piece + "\n")
        if status is not None:
            _describe_state(w, "State", status.get("state"))
            if isinstance(dig(status, "lastState", "terminated"), dict):
                _describe_state(w, "Last State", status.get("lastState"))
            w.write(2, f"Ready:\t{'True' if status.get('ready') else 'False'}\n")
            w.write(2, f"Restart Count:\t{to_int(status.get('restartCount'))}\n")
        for title, key in (("Limits", "limits"), ("Requests", "requests")):
            values = dig(c, "resources", key) or {}
            if values:
                w.write(2, f"{title}:\n")
                for name in sorted(values):
                    w.write(3, f"{name}:\t{values[name]}\n")
        for title, key in (("Liveness", "livenessProbe"), ("Readiness", "readinessProbe"), ("Startup", "startupProbe")):
            if isinstance(c.get(key), dict):
                w.write(2, f"{title}:\t{_probe(c[key])}\n")
        env_from = c.get("envFrom") or []
        if env_from:
            w.write(2, "Environment Variables from:\n")
            for src in env_from:
                kind, ref = ("ConfigMap", src.get("configMapRef")) if src.get("configMapRef") else ("Secret", src.get("secretRef") or {})
                optional = "true" if (ref or {}).get("optional") else "false"
                name = (ref or {}).get("name", "")
                if src.get("prefix"):
                    w.write(3, f"{name}\t{kind} with prefix '{src['prefix']}'\tOptional: {optional}\n")
                else:
                    w.write(3, f"{name}\t{kind}\tOptional: {optional}\n")
        env = c.get("env") or []
        w.write(2, "Environment:\n" if env else "Environment:\t<none>\n")
        for e in env:
            value_from = e.get("valueFrom")
            if not isinstance(value_from, dict):
                for i, piece in enumerate(str(e.get("value", "")).split("\n")):
                    w.write(3, f"{e.get('name', '')}:\t{piece}\n" if i == 0 else f"\t{piece}\n")
                continue
            if isinstance(value_from.get("fieldRef"), dict):
                ref = value_from["fieldRef"]
                value = _pod_field(pod, ref.get("fieldPath", "")) if pod is not None else ""
                w.write(3, f"{e.get('name', '')}:\t{value} ({ref.get('apiVersion') or 'v1'}:{ref.get('fieldPath', '')})\n")
            elif isinstance(value_from.get("resourceFieldRef"), dict):
                ref = value_from["resourceFieldRef"]
                value = _resource_value(c, ref)
                if value == "0" and ref.get("resource") in ("limits.cpu", "limits.memory"):
                    value = "node allocatable"
                w.write(3, f"{e.get('name', '')}:\t{value} ({ref.get('resource', '')})\n")
            elif isinstance(value_from.get("secretKeyRef"), dict):
                ref = value_from["secretKeyRef"]
                optional = "true" if ref.get("optional") else "false"
                w.write(3, f"{e.get('name', '')}:\t<set to the key '{ref.get('key', '')}' in secret '{ref.get('name', '')}'>\tOptional: {optional}\n")
            elif isinstance(value_from.get("configMapKeyRef"), dict):
                ref = value_from["configMapKeyRef"]
                optional = "true" if ref.get("optional") else "false"
                w.write(3, f"{e.get('name', '')}:\t<set to the key '{ref.get('key', '')}' of config map '{ref.get('name', '')}'>\tOptional: {optional}\n")
        mounts = c.get("volumeMounts") or []
        w.write(2, "Mounts:\n" if mounts else "Mounts:\t<none>\n")
        for m in sorted(mounts, key=lambda m: m.get("mountPath") or ""):
            flags = ["ro" if m.get("readOnly") else "rw"]
            if m.get("subPath"):
                flags.append(f'path="{m["subPath"]}"')
            w.write(3, f"{m.get('mountPath', '')} from {m.get('name', '')} ({','.join(flags)})\n")


def _describe_state(w: _Writer, title: str, state: object) -> None:
    state = state if isinstance(state, dict) else {}
    if isinstance(state.get("running"), dict):
        w.write(2, f"{title}:\tRunning\n")
        w.write(3, f"Started:\t{_rfc1123z(state['running'].get('startedAt'))}\n")
    elif isinstance(state.get("waiting"), dict):
        w.write(2, f"{title}:\tWaiting\n")
        if state["waiting"].get("reason"):
            w.write(3, f"Reason:\t{state['waiting']['reason']}\n")
    elif isinstance(state.get("terminated"), dict):
        t = state["terminated"]
        w.write(2, f"{title}:\tTerminated\n")
        if t.get("reason"):
            w.write(3, f"Reason:\t{t['reason']}\n")
        if t.get("message"):
            w.write(3, f"Message:\t{t['message']}\n")
        w.write(3, f"Exit Code:\t{to_int(t.get('exitCode'))}\n")
        if to_int(t.get("signal")) > 0:
            w.write(3, f"Signal:\t{to_int(t.get('signal'))}\n")
        w.write(3, f"Started:\t{_rfc1123z(t.get('startedAt'))}\n")
        w.write(3, f"Finished:\t{_rfc1123z(t.get('finishedAt'))}\n")
    else:
        w.write(2, f"{title}:\tWaiting\n")


def _describe_volumes(w: _Writer, volumes: object, space: str) -> None:
    items = [v for v in volumes or [] if isinstance(v, dict)] if isinstance(volumes, list) else []
    if not items:
        w.write(0, f"{space}Volumes:\t<none>\n")
        return
    w.write(0, f"{space}Volumes:\n")
    name_indent = " " if space else ""
    for vol in items:
        w.write(1, f"{name_indent}{vol.get('name', '')}:\n")
        if isinstance(vol.get("hostPath"), dict):
            hp = vol["hostPath"]
            w.write(2, "Type:\tHostPath (bare host directory volume)\n"
                    f"    Path:\t{hp.get('path', '')}\n    HostPathType:\t{hp.get('type') or '<none>'}\n")
        elif isinstance(vol.get("emptyDir"), dict):
            ed = vol["emptyDir"]
            w.write(2, "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n"
                    f"    Medium:\t{ed.get('medium', '')}\n    SizeLimit:\t{ed.get('sizeLimit') or '<unset>'}\n")
        elif isinstance(vol.get("secret"), dict):
            sec = vol["secret"]
            w.write(2, "Type:\tSecret (a volume populated by a Secret)\n"
                    f"    SecretName:\t{sec.get('secretName', '')}\n    Optional:\t{'true' if sec.get('optional') else 'false'}\n")
        elif isinstance(vol.get("configMap"), dict):
            cm = vol["configMap"]
            w.write(2, "Type:\tConfigMap (a volume populated by a ConfigMap)\n"
                    f"    Name:\t{cm.get('name', '')}\n    Optional:\t{'true' if cm.get('optional') else 'false'}\n")
        elif isinstance(vol.get("persistentVolumeClaim"), dict):
            pvc = vol["persistentVolumeClaim"]
            w.write(2, "Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)\n"
                    f"    ClaimName:\t{pvc.get('claimName', '')}\n    ReadOnly:\t{'true' if pvc.get('readOnly') else 'false'}\n")
        elif isinstance(vol.get("downwardAPI"), dict):
            w.write(2, "Type:\tDownwardAPI (a volume populated by information about the pod)\n    Items:\n")
            for item in vol["downwardAPI"].get("items") or []:
                if isinstance(item.get("fieldRef"), dict):
                    w.write(3, f"{item['fieldRef'].get('fieldPath', '')} -> {item.get('path', '')}\n")
                if isinstance(item.get("resourceFieldRef"), dict):
                    w.write(3, f"{item['resourceFieldRef'].get('resource', '')} -> {item.get('path', '')}\n")
        elif isinstance(vol.get("projected"), dict):
            w.write(2, "Type:\tProjected (a volume that contains injected data from multiple sources)\n")
            for src in vol["projected"].get("sources") or []:
                if isinstance(src.get("secret"), dict):
                    w.write(2, f"SecretName:\t{src['secret'].get('name', '')}\n"
                            f"    Optional:\t{'true' if src['secret'].get('optional') else 'false'}\n")
                elif isinstance(src.get("downwardAPI"), dict):
                    w.write(2, "DownwardAPI:\ttrue\n")
                elif isinstance(src.get("configMap"), dict):
                    w.write(2, f"ConfigMapName:\t{src['configMap'].get('name', '')}\n"
                            f"    Optional:\t{'true' if src['configMap'].get('optional') else 'false'}\n")
                elif isinstance(src.get("serviceAccountToken"), dict):
                    w.write(2, f"TokenExpirationSeconds:\t{to_int(src['serviceAccountToken'].get('expirationSeconds'), 3607)}\n")
        else:
            w.write(1, "<unknown>\n")


def _describe_topology(w: _Writer, constraints: object, space: str) -> None:
    items = [c for c in constraints or [] if isinstance(c, dict)] if isinstance(constraints, list) else []
    if not items:
        return
    w.write(0, f"{space}Topology Spread Constraints:\t")
    for i, tsc in enumerate(sorted(items, key=lambda c: c.get("topologyKey") or "")):
        if i:
            w.write(0, space + "\t")
        text = f"{tsc.get('topologyKey', '')}:{tsc.get('whenUnsatisfiable', '')} when max skew {to_int(tsc.get('maxSkew'))} is exceeded"
        if isinstance(tsc.get("labelSelector"), dict):
            text += f" for selector {format_selector(tsc['labelSelector'])}"
        w.write(0, text + "\n")


def _describe_pod_template(w: _Writer, template: object) -> None:
    w.write(0, "Pod Template:\n")
    if not isinstance(template, dict):
        w.write(1, "<unset>")
        return
    meta = template.get("metadata") or {}
    spec = template.get("spec") or {}
    _labels_multiline(w, "  Labels", meta.get("labels"))
    if meta.get("annotations"):
        _annotations_multiline(w, "  Annotations", meta["annotations"])
    if spec.get("serviceAccountName"):
        w.write(1, f"Service Account:\t{spec['serviceAccountName']}\n")
    if spec.get("initContainers"):
        _describe_containers(w, "Init Containers", spec["initContainers"], None, None, "  ")
    _describe_containers(w, "Containers", containers_of(spec), None, None, "  ")
    _describe_volumes(w, spec.get("volumes"), "  ")
    _describe_topology(w, spec.get("topologySpreadConstraints"), "  ")
    if spec.get("priorityClassName"):
        w.write(1, f"Priority Class Name:\t{spec['priorityClassName']}\n")
    _labels_multiline(w, "  Node-Selectors", spec.get("nodeSelector"))
    _tolerations_multiline(w, "  Tolerations", spec.get("tolerations"))


def _pods_status(w: _Writer, owner: Obj, pods: list[Obj] | None) -> None:
    """The Pods Status line, only when the caller supplied pods to count."""
    if pods is None:
        return
    counts = {"Running": 0, "Pending": 0, "Succeeded": 0, "Failed": 0}
    for pod in pods:
        if isinstance(pod, dict) and _controlled_by(pod, owner):
            phase = dig(pod, "status", "phase")
            if phase in counts:
                counts[phase] += 1
    w.write(
        0,
        f"Pods Status:\t{counts['Running']} Running / {counts['Pending']} Waiting / "
        f"{counts['Succeeded']} Succeeded / {counts['Failed']} Failed\n",
    )


# --------------------------------------------------------------------------
# quantities, for the QoS class


_SUFFIXES = {
    "n": (10, -9), "u": (10, -6), "m": (10, -3), "": (10, 0), "k": (10, 3), "M": (10, 6),
    "G": (10, 9), "T": (10, 12), "P": (10, 15), "E": (10, 18), "Ki": (2, 10), "Mi": (2, 20),
    "Gi": (2, 30), "Ti": (2, 40), "Pi": (2, 50), "Ei": (2, 60),
}
_QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?")


def _quantity(value: object) -> Any:
    """A resource quantity as an exact Fraction; 0 when it does not parse."""
    from fractions import Fraction  # only describe needs it

    if isinstance(value, int | float):
        return Fraction(value)
    m = _QUANTITY.fullmatch(str(value).strip())
    if not m:
        return Fraction(0)
    number = Fraction(m.group(1))
    if m.group(2):
        return number * Fraction(10) ** int(m.group(2)[1:])
    base, exp = _SUFFIXES[m.group(3) or ""]
    return number * Fraction(base) ** exp


def _qos_class(pod: Obj) -> str:
    """GetPodQOS, with requests defaulted from limits as the API server would."""
    if dig(pod, "status", "qosClass"):
        return pod["status"]["qosClass"]
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    guaranteed = True
    spec = pod.get("spec") or {}
    for c in containers_of(spec) + [c for c in spec.get("initContainers") or [] if isinstance(c, dict)]:
        c_limits = dig(c, "resources", "limits") or {}
        c_requests = dict(c_limits)
        c_requests.update(dig(c, "resources", "requests") or {})
        for name, raw in c_requests.items():
            q = _quantity(raw)
            if name in ("cpu", "memory") and q > 0:
                requests[name] = requests.get(name, 0) + q
        found = set()
        for name, raw in c_limits.items():
            q = _quantity(raw)
            if name in ("cpu", "memory") and q > 0:
                found.add(name)
                limits[name] = limits.get(name, 0) + q
        if found != {"cpu", "memory"}:
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and all(limits.get(k) == v for k, v in requests.items()) and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"


# --------------------------------------------------------------------------
# describe: per kind


def _describe_pod(w: _Writer, pod: Obj, events: list[Obj] | None, now: float, *,
                  isolation: Obj | None = None, **_: Any) -> None:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    st = pod.get("status") or {}
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    if spec.get("priority") is not None:
        w.write(0, f"Priority:\t{to_int(spec['priority'])}\n")
    if spec.get("priorityClassName"):
        w.write(0, f"Priority Class Name:\t{spec['priorityClassName']}\n")
    if spec.get("runtimeClassName"):
        w.write(0, f"Runtime Class Name:\t{spec['runtimeClassName']}\n")
    if spec.get("serviceAccountName"):
        w.write(0, f"Service Account:\t{spec['serviceAccountName']}\n")
    if spec.get("nodeName"):
        w.write(0, f"Node:\t{spec['nodeName']}/{st.get('hostIP', '')}\n")
    else:
        w.write(0, "Node:\t<none>\n")
    if st.get("startTime"):
        w.write(0, f"Start Time:\t{_rfc1123z(st['startTime'])}\n")
    _labels_multiline(w, "Labels", meta.get("labels"))
    _annotations_multiline(w, "Annotations", meta.get("annotations"))
    phase = st.get("phase") or ""
    if meta.get("deletionTimestamp") and phase not in ("Failed", "Succeeded"):
        w.write(0, f"Status:\tTerminating (lasts {_until(meta['deletionTimestamp'], now)})\n")
        if meta.get("deletionGracePeriodSeconds") is not None:
            w.write(0, f"Termination Grace Period:\t{to_int(meta['deletionGracePeriodSeconds'])}s\n")
    else:
        w.write(0, f"Status:\t{phase}\n")
    if st.get("reason"):
        w.write(0, f"Reason:\t{st['reason']}\n")
    if st.get("message"):
        w.write(0, f"Message:\t{st['message']}\n")
    seccomp = dig(spec, "securityContext", "seccompProfile")
    if isinstance(seccomp, dict):
        w.write(0, f"SeccompProfile:\t{seccomp.get('type', '')}\n")
        if seccomp.get("type") == "Localhost":
            w.write(0, f"LocalhostProfile:\t{seccomp.get('localhostProfile', '')}\n")
    w.write(0, f"IP:\t{st.get('podIP', '')}\n")
    ips = [i for i in st.get("podIPs") or [] if isinstance(i, dict)]
    if ips:
        w.write(0, "IPs:\n")
        for ip in ips:
            w.write(1, f"IP:\t{ip.get('ip', '')}\n")
    else:
        w.write(0, "IPs:\t<none>\n")
    ref = _controller_of(pod)
    if ref:
        w.write(0, f"Controlled By:\t{ref.get('kind', '')}/{ref.get('name', '')}\n")
    if st.get("nominatedNodeName"):
        w.write(0, f"NominatedNodeName:\t{st['nominatedNodeName']}\n")
    if spec.get("initContainers"):
        _describe_containers(w, "Init Containers", spec["initContainers"], st.get("initContainerStatuses"), pod, "")
    _describe_containers(w, "Containers", containers_of(spec), st.get("containerStatuses"), pod, "")
    conditions = [c for c in st.get("conditions") or [] if isinstance(c, dict)]
    gates = spec.get("readinessGates") or []
    if gates:
        w.write(0, "Readiness Gates:\n  Type\tStatus\n")
        for gate in gates:
            value = next(
                (c.get("status", "") for c in conditions if c.get("type") == gate.get("conditionType")),
                "<none>",
            )
            w.write(1, f"{gate.get('conditionType', '')} \t{value} \n")
    if conditions:
        w.write(0, "Conditions:\n  Type\tStatus\n")
        for c in conditions:
            w.write(1, f"{c.get('type', '')} \t{c.get('status', '')} \n")
    _describe_volumes(w, spec.get("volumes"), "")
    w.write(0, f"QoS Class:\t{_qos_class(pod)}\n")
    _labels_multiline(w, "Node-Selectors", spec.get("nodeSelector"))
    _tolerations_multiline(w, "Tolerations", spec.get("tolerations"))
    _describe_topology(w, spec.get("topologySpreadConstraints"), "")
    _describe_events(w, events, now)
    if isolation is not None:  # knet's addition, after kubectl's text so that stays byte-identical
        _describe_isolation(w, isolation, bool(spec.get("hostNetwork")))


# -- knet's additions: which policies isolate and select a pod ---------------------
# `isolation` is knet.policy.isolation.isolation()'s answer for one pod:
# {"Ingress": ["ns/name"...], "Egress": [...], "AdminNetworkPolicy": [names],
#  "BaselineAdminNetworkPolicy": [name]}. The CLI computes it (printers may not
# import knet.policy); these only lay it out.


def _short(key: str) -> str:
    """A NetworkPolicy named in its pod's own namespace needs no namespace."""
    return key.partition("/")[2] or key


def isolated_cell(isolation: Obj | None) -> str:
    """`knet get pods -o wide`'s ISOLATED column: the directions some
    NetworkPolicy isolates the pod in."""
    iso = isolation or {}
    directions = [d for d in ("Ingress", "Egress") if iso.get(d)]
    return ",".join(directions) or "<none>"


def policies_cell(isolation: Obj | None) -> str:
    """`knet get pods -o wide`'s POLICIES column: NetworkPolicies selecting the
    pod, then admin policies as anp/NAME and banp/NAME, in evaluation order."""
    iso = isolation or {}
    names: list[str] = []
    for key in (*iso.get("Ingress", ()), *iso.get("Egress", ())):
        if _short(key) not in names:
            names.append(_short(key))
    names += [f"anp/{n}" for n in iso.get("AdminNetworkPolicy", ())]
    names += [f"banp/{n}" for n in iso.get("BaselineAdminNetworkPolicy", ())]
    return ",".join(names) or "<none>"


def _describe_isolation(w: _Writer, iso: Obj, host_network: bool) -> None:
    w.flush()
    w.write(0, "Network Policies:\n")
    for direction in ("Ingress", "Egress"):
        keys = iso.get(direction) or []
        if keys:
            text = ", ".join(_short(k) for k in keys)
        elif host_network:
            text = "<none> (hostNetwork pods are never selected: their traffic is the node's)"
        else:
            text = "<none> (not isolated)"
        w.write(1, f"Isolated for {direction}:\t{text}\n")
    anps = iso.get("AdminNetworkPolicy") or []
    w.write(1, f"AdminNetworkPolicies:\t{', '.join(anps) or '<none>'}\n")
    banps = iso.get("BaselineAdminNetworkPolicy") or []
    w.write(1, f"BaselineAdminNetworkPolicy:\t{', '.join(banps) or '<none>'}\n")


def _describe_selected_pods(w: _Writer, pods: list[Obj] | None, with_namespace: bool) -> None:
    """knet's addition to a policy's description: the pods it selects now."""
    if pods is None:
        return
    if not pods:
        w.write(0, "Selected Pods:\t<none>\n")
        return
    w.write(0, "Selected Pods:\n")
    for pod in sorted(pods, key=lambda p: (_namespace(p), name_of(p))):
        name = f"{_namespace(pod)}/{name_of(pod)}" if with_namespace else name_of(pod)
        ip = dig(pod, "status", "podIP") or "<none>"
        w.write(1, f"{name}\t{ip}\n")


def _describe_node(w: _Writer, node: Obj, events: list[Obj] | None, now: float, *,
                   pods: list[Obj] | None = None, lease: Obj | str | None = None, **_: Any) -> None:
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    st = node.get("status") or {}
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Roles:\t{','.join(node_roles(node)) or '<none>'}\n")
    _labels_multiline(w, "Labels", meta.get("labels"))
    _annotations_multiline(w, "Annotations", meta.get("annotations"))
    w.write(0, f"CreationTimestamp:\t{_rfc1123z(meta.get('creationTimestamp'))}\n")
    taints = [t for t in spec.get("taints") or [] if isinstance(t, dict)]
    w.write(0, "Taints:\t")
    if not taints:
        w.line("<none>")
    for i, taint in enumerate(sorted(taints, key=lambda t: f"{t.get('effect', '')},{t.get('key', '')}")):
        if i:
            w.write(0, "\t")
        value = f"={taint['value']}" if taint.get("value") else ""
        w.write(0, f"{taint.get('key', '')}{value}:{taint.get('effect', '')}\n")
    w.write(0, f"Unschedulable:\t{'true' if spec.get('unschedulable') else 'false'}\n")
    if lease is not None:
        _describe_node_lease(w, lease)
    conditions = [c for c in st.get("conditions") or [] if isinstance(c, dict)]
    if conditions:
        w.write(0, "Conditions:\n  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage\n")
        w.write(1, "----\t------\t-----------------\t------------------\t------\t-------\n")
        for c in conditions:
            w.write(
                1,
                f"{c.get('type', '')} \t{c.get('status', '')} \t{_rfc1123z(c.get('lastHeartbeatTime'))} \t"
                f"{_rfc1123z(c.get('lastTransitionTime'))} \t{c.get('reason', '')} \t{c.get('message', '')}\n",
            )
    w.write(0, "Addresses:\n")
    for addr in st.get("addresses") or []:
        w.write(1, f"{addr.get('type', '')}:\t{addr.get('address', '')}\n")
    for title, key in (("Capacity", "capacity"), ("Allocatable", "allocatable")):
        values = st.get(key) or {}
        if values:
            w.write(0, f"{title}:\n")
            for name in sorted(values):
                w.write(0, f"  {name}:\t{values[name]}\n")
    info = st.get("nodeInfo") or {}
    w.write(0, "System Info:\n")
    for title, key in (
        ("Machine ID", "machineID"), ("System UUID", "systemUUID"), ("Boot ID", "bootID"),
        ("Kernel Version", "kernelVersion"), ("OS Image", "osImage"),
        ("Operating System", "operatingSystem"), ("Architecture", "architecture"),
        ("Container Runtime Version", "containerRuntimeVersion"), ("Kubelet Version", "kubeletVersion"),
    ):
        w.write(0, f"  {title}:\t{info.get(key, '')}\n")
    if spec.get("podCIDR"):
        w.write(0, f"PodCIDR:\t{spec['podCIDR']}\n")
    if spec.get("podCIDRs"):
        w.write(0, f"PodCIDRs:\t{','.join(spec['podCIDRs'])}\n")
    if spec.get("providerID"):
        w.write(0, f"ProviderID:\t{spec['providerID']}\n")
    if pods is not None:
        _describe_node_resources(w, node, [p for p in pods if isinstance(p, dict)
                                           and dig(p, "spec", "nodeName") == meta.get("name")
                                           and dig(p, "status", "phase") not in ("Succeeded", "Failed")], now)
    _describe_events(w, events, now)


def _describe_node_lease(w: _Writer, lease: Obj | str) -> None:
    """describeNodeLease, or the error kubectl met getting it."""
    if isinstance(lease, str):
        w.write(0, f"Lease:\tFailed to get lease: {lease}\n")
        return
    spec = lease.get("spec") or {}
    w.write(0, "Lease:\n")
    w.write(1, f"HolderIdentity:\t{spec.get('holderIdentity') or '<unset>'}\n")
    w.write(1, f"AcquireTime:\t{_rfc1123z(spec['acquireTime']) if spec.get('acquireTime') else '<unset>'}\n")
    w.write(1, f"RenewTime:\t{_rfc1123z(spec['renewTime']) if spec.get('renewTime') else '<unset>'}\n")


# Kubernetes quantities as describe sums and prints them: (amount, format), format one of
# "DecimalSI", "BinarySI", "DecimalExponent" (resource.Quantity keeps the format of what it parsed).
_QTY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))(?:(Ki|Mi|Gi|Ti|Pi|Ei)|[eE]([+-]?\d+)|(m|k|M|G|T|P|E|n|u)?)")
_BIN = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DEC = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def _parse_qty(value: object) -> tuple[Fraction, str] | None:
    from fractions import Fraction

    m = _QTY.fullmatch(str(value)) if value is not None else None
    if m is None:
        return None
    number, binary, exponent, decimal = m.groups()
    amount = Fraction(number.rstrip(".") or "0")
    if binary:
        return amount * 1024 ** _BIN[binary], "BinarySI"
    if exponent is not None:
        return amount * Fraction(10) ** int(exponent), "DecimalExponent"
    return amount * Fraction(10) ** _DEC[decimal or ""], "DecimalSI"


def _qty_string(q: tuple[Fraction, str] | None) -> str:
    """Quantity.String(): its canonical form ("100m", "170Mi", "2k", "0")."""
    if q is None or q[0] == 0:
        return "0"
    amount, fmt = q
    if fmt == "BinarySI" and (-1024 < amount < 1024 or amount.denominator != 1):
        fmt = "DecimalSI"
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if fmt == "BinarySI":
        n, exp = int(amount), 0
        while n % 1024 == 0 and exp < 6:
            n, exp = n // 1024, exp + 1
        return f"{sign}{n}{['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'][exp]}"
    # decimal: the smallest multiple-of-3 exponent (at least n, 1e-9) that leaves an integer, then as large
    # as the integer's trailing zeros allow
    if amount * 10 ** 9 != int(amount * 10 ** 9):
        from fractions import Fraction

        amount = Fraction(-(-amount * 10 ** 9 // 1), 10 ** 9)  # kubectl rounds up to nanounits
    exp = -9
    mantissa = int(amount * 10 ** 9)
    while mantissa % 1000 == 0 and exp < 18:
        mantissa, exp = mantissa // 1000, exp + 3
    if fmt == "DecimalExponent":
        return f"{sign}{mantissa}" + (f"e{exp}" if exp else "")
    suffix = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}[exp]
    return f"{sign}{mantissa}{suffix}"


def _qty_add(a: tuple[Fraction, str] | None, b: tuple[Fraction, str] | None) -> tuple[Fraction, str] | None:
    if a is None:
        return b
    if b is None:
        return a
    return a[0] + b[0], a[1]


def _pod_resources(pod: Obj, field: str) -> dict[str, tuple[Fraction, str]]:
    """resourcehelper.PodRequests / PodLimits: the containers' sum, at least each init container's
    (restartable sidecars count with the containers), plus the overhead; pod-level resources win."""
    spec = pod.get("spec") or {}
    total: dict[str, tuple[Fraction, str]] = {}

    def add_into(into: dict, values: object) -> None:
        for name, value in (values or {}).items() if isinstance(values, dict) else ():
            q = _parse_qty(value)
            if q is not None:
                into[name] = _qty_add(into.get(name), q)

    for c in spec.get("containers") or []:
        add_into(total, dig(c, "resources", field))
    sidecars: dict[str, tuple[Fraction, str]] = {}
    init_max: dict[str, tuple[Fraction, str]] = {}
    for c in spec.get("initContainers") or []:
        values = dig(c, "resources", field)
        if c.get("restartPolicy") == "Always":
            add_into(sidecars, values)
            add_into(total, values)
            continue
        step = dict(sidecars)
        add_into(step, values)
        for name, q in step.items():
            if name not in init_max or q[0] > init_max[name][0]:
                init_max[name] = q
    for name, q in init_max.items():
        if name not in total or q[0] > total[name][0]:
            total[name] = q
    overhead = spec.get("overhead")
    if isinstance(overhead, dict) and (field == "requests" or total):
        for name, value in overhead.items():
            q = _parse_qty(value)
            if q is not None and (field == "requests" or name in total):
                total[name] = _qty_add(total.get(name), q)
    pod_level = dig(spec, "resources", field)
    if isinstance(pod_level, dict):
        for name in ("cpu", "memory"):
            q = _parse_qty(pod_level.get(name)) if name in pod_level else None
            if q is not None:
                total[name] = q
    return total


def _percent(part: tuple[Fraction, str] | None, whole: tuple[Fraction, str] | None, milli: bool) -> int:
    """int64(float64(part) / float64(whole) * 100), in milli-units for cpu, units (rounded up) otherwise."""
    def scaled(q: tuple[Fraction, str] | None) -> int:
        if q is None:
            return 0
        v = q[0] * 1000 if milli else q[0]
        return -((-v.numerator) // v.denominator)  # Value()/MilliValue() round up
    denominator = scaled(whole)
    if denominator == 0:
        return 0
    return int(scaled(part) / denominator * 100)


def _describe_node_resources(w: _Writer, node: Obj, pods: list[Obj], now: float) -> None:
    """describeNodeResource: each non-terminated pod's requests and limits against allocatable, and the sums."""
    st = node.get("status") or {}
    allocatable = st.get("allocatable") or st.get("capacity") or {}
    alloc = {name: _parse_qty(value) for name, value in allocatable.items()}
    w.write(0, f"Non-terminated Pods:\t({len(pods)} in total)\n")
    w.write(1, "Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge\n")
    w.write(1, "---------\t----\t\t------------\t----------\t---------------\t-------------\t---\n")
    reqs: dict[str, tuple[Fraction, str]] = {}
    limits: dict[str, tuple[Fraction, str]] = {}
    for pod in pods:
        req, lim = _pod_resources(pod, "requests"), _pod_resources(pod, "limits")
        for name, q in req.items():
            reqs[name] = _qty_add(reqs.get(name), q)
        for name, q in lim.items():
            limits[name] = _qty_add(limits.get(name), q)
        cells = []
        for res, milli in (("cpu", True), ("memory", False)):
            for values in (req, lim):
                cells.append(f"{_qty_string(values.get(res))} ({_percent(values.get(res), alloc.get(res), milli)}%)")
        meta = pod.get("metadata") or {}
        w.write(1, f"{meta.get('namespace', '')}\t{meta.get('name', '')}\t\t{cells[0]}\t{cells[1]}\t{cells[2]}\t"
                   f"{cells[3]}\t{since(meta.get('creationTimestamp'), now)}\n")
    w.write(0, "Allocated resources:\n  (Total limits may be over 100 percent, i.e., overcommitted.)\n")
    w.write(1, "Resource\tRequests\tLimits\n")
    w.write(1, "--------\t--------\t------\n")

    def row(res: str, milli: bool) -> None:
        r, lim = reqs.get(res), limits.get(res)
        w.write(1, f"{res}\t{_qty_string(r)} ({_percent(r, alloc.get(res), milli)}%)\t"
                   f"{_qty_string(lim)} ({_percent(lim, alloc.get(res), milli)}%)\n")
    row("cpu", True)
    row("memory", False)
    row("ephemeral-storage", False)
    standard = {"cpu", "memory", "ephemeral-storage", "storage", "pods"}
    for res in sorted(r for r in allocatable if r.startswith("hugepages-")):
        row(res, False)
    for res in sorted(r for r in allocatable if not r.startswith("hugepages-") and r not in standard
                      and not r.startswith("requests.") and not r.startswith("limits.")):
        r, lim = reqs.get(res), limits.get(res)
        w.write(1, f"{res}\t{_qty_string(r)}\t{_qty_string(lim)}\n")


def _format_endpoint_slices(slices: list[Obj] | None, port_name: str) -> str:
    """formatEndpointSlices for one service port: ready endpoints as ip:port, three at most."""
    if not slices:
        return "<none>"
    limit = 3
    found: list[str] = []
    more = False
    count = 0
    for eps in slices:
        if not isinstance(eps, dict):
            continue
        endpoints = [e for e in eps.get("endpoints") or [] if isinstance(e, dict) and e.get("addresses")]
        ports = eps.get("ports") or []
        targets: list[str | None] = [None] if not ports else [
            str(to_int(p.get("port"))) for p in ports if (p.get("name") or "") == port_name
        ]
        for port in targets:
            for endpoint in endpoints:
                if len(found) == limit:
                    more = True
                if dig(endpoint, "conditions", "ready") is False:
                    continue
                if not more:
                    addr = endpoint["addresses"][0]
                    if port is not None:
                        addr = f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"
                    found.append(addr)
                count += 1
    text = ",".join(found)
    return f"{text} + {count - limit} more..." if more else text


def _describe_service(
    w: _Writer, svc: Obj, events: list[Obj] | None, now: float, *,
    endpoint_slices: list[Obj] | None = None, **_: Any,
) -> None:
    meta = svc.get("metadata") or {}
    spec = svc.get("spec") or {}
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    _labels_multiline(w, "Labels", meta.get("labels"))
    _annotations_multiline(w, "Annotations", meta.get("annotations"))
    w.write(0, f"Selector:\t{format_labels(spec.get('selector'))}\n")
    w.write(0, f"Type:\t{service_type(svc)}\n")
    if spec.get("ipFamilyPolicy"):
        w.write(0, f"IP Family Policy:\t{spec['ipFamilyPolicy']}\n")
    w.write(0, f"IP Families:\t{','.join(spec.get('ipFamilies') or []) or '<none>'}\n")
    w.write(0, f"IP:\t{spec.get('clusterIP', '')}\n")
    w.write(0, f"IPs:\t{','.join(spec.get('clusterIPs') or []) or '<none>'}\n")
    if spec.get("externalIPs"):
        w.write(0, f"External IPs:\t{','.join(spec['externalIPs'])}\n")
    if spec.get("loadBalancerIP"):
        w.write(0, f"Desired LoadBalancer IP:\t{spec['loadBalancerIP']}\n")
    if spec.get("externalName"):
        w.write(0, f"External Name:\t{spec['externalName']}\n")
    ingress = [i for i in dig(svc, "status", "loadBalancer", "ingress") or [] if isinstance(i, dict)]
    if ingress:
        parts = []
        for ing in ingress:
            if ing.get("ip"):
                parts.append(ing["ip"] + (f" ({ing['ipMode']})" if ing.get("ipMode") else ""))
            else:
                parts.append(ing.get("hostname", ""))
        w.write(0, f"LoadBalancer Ingress:\t{', '.join(parts)}\n")
    for port in spec.get("ports") or []:
        name = port.get("name") or "<unset>"
        proto = port.get("protocol") or "TCP"
        w.write(0, f"Port:\t{name}\t{to_int(port.get('port'))}/{proto}\n")
        target = port.get("targetPort")
        target = port.get("port") if target is None else target
        w.write(0, f"TargetPort:\t{target}/{proto}\n")
        if to_int(port.get("nodePort")):
            w.write(0, f"NodePort:\t{name}\t{to_int(port['nodePort'])}/{proto}\n")
        w.write(0, f"Endpoints:\t{_format_endpoint_slices(endpoint_slices, port.get('name') or '')}\n")
    w.write(0, f"Session Affinity:\t{spec.get('sessionAffinity') or 'None'}\n")
    if spec.get("externalTrafficPolicy"):
        w.write(0, f"External Traffic Policy:\t{spec['externalTrafficPolicy']}\n")
    if spec.get("internalTrafficPolicy"):
        w.write(0, f"Internal Traffic Policy:\t{spec['internalTrafficPolicy']}\n")
    if to_int(spec.get("healthCheckNodePort")):
        w.write(0, f"HealthCheck NodePort:\t{to_int(spec['healthCheckNodePort'])}\n")
    if spec.get("loadBalancerSourceRanges"):
        w.write(0, f"LoadBalancer Source Ranges:\t{','.join(spec['loadBalancerSourceRanges'])}\n")
    if spec.get("trafficDistribution"):
        w.write(0, f"Traffic Distribution:\t{spec['trafficDistribution']}\n")
    _describe_events(w, events, now)


def _describe_namespace(w: _Writer, ns: Obj, events: list[Obj] | None, now: float, **_: Any) -> None:
    # kubectl shows no events for a namespace, and knet has no quotas or limit ranges to list.
    meta = ns.get("metadata") or {}
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    _labels_multiline(w, "Labels", meta.get("labels"))
    _annotations_multiline(w, "Annotations", meta.get("annotations"))
    w.write(0, f"Status:\t{dig(ns, 'status', 'phase') or ''}\n")
    conditions = dig(ns, "status", "conditions") or []
    if conditions:
        w.write(0, "Conditions:\n")
        w.write(1, "Type\tStatus\tLastTransitionTime\tReason\tMessage\n")
        w.write(1, "----\t------\t------------------\t------\t-------\n")
        for c in conditions:
            w.write(1, f"{c.get('type', '')}\t{c.get('status', '')}\t{_rfc1123z(c.get('lastTransitionTime'))}\t"
                    f"{c.get('reason', '')}\t{c.get('message', '')}\n")


def _template_equal(a: object, b: object) -> bool:
    """EqualIgnoreHash: pod templates compared without the pod-template-hash label."""
    import copy

    def strip(template: object) -> object:
        template = copy.deepcopy(template) or {}
        labels = dig(template, "metadata", "labels")
        if isinstance(labels, dict):
            labels.pop("pod-template-hash", None)
        return template

    return strip(a) == strip(b)


def _rs_summary(sets: list[Obj]) -> str:
    return ", ".join(
        f"{name_of(rs)} ({to_int(dig(rs, 'status', 'replicas'))}/{replicas_of(rs)} replicas created)" for rs in sets
    ) or "<none>"


def _describe_deployment(
    w: _Writer, d: Obj, events: list[Obj] | None, now: float, *,
    replica_sets: list[Obj] | None = None, **_: Any,
) -> None:
    meta = d.get("metadata") or {}
    spec = d.get("spec") or {}
    st = d.get("status") or {}
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    w.write(0, f"CreationTimestamp:\t{_rfc1123z(meta.get('creationTimestamp'))}\n")
    _labels_multiline(w, "Labels", meta.get("labels"))
    _annotations_multiline(w, "Annotations", meta.get("annotations"))
    w.write(0, f"Selector:\t{selector_string(spec.get('selector'))}\n")
    w.write(
        0,
        f"Replicas:\t{replicas_of(d)} desired | {to_int(st.get('updatedReplicas'))} updated | "
        f"{to_int(st.get('replicas'))} total | {to_int(st.get('availableReplicas'))} available | "
        f"{to_int(st.get('unavailableReplicas'))} unavailable\n",
    )
    strategy = spec.get("strategy") or {}
    kind = strategy.get("type") or "RollingUpdate"
    w.write(0, f"StrategyType:\t{kind}\n")
    w.write(0, f"MinReadySeconds:\t{to_int(spec.get('minReadySeconds'))}\n")
    if kind == "RollingUpdate":
        ru = strategy.get("rollingUpdate") or {}
        unavailable = ru.get("maxUnavailable", "25%")
        surge = ru.get("maxSurge", "25%")
        w.write(0, f"RollingUpdateStrategy:\t{unavailable} max unavailable, {surge} max surge\n")
    _describe_pod_template(w, spec.get("template"))
    _describe_conditions(w, st.get("conditions"))
    if replica_sets is not None:
        owned = sorted(
            (rs for rs in replica_sets if isinstance(rs, dict) and _controlled_by(rs, d)),
            key=lambda rs: (parse_timestamp(dig(rs, "metadata", "creationTimestamp")) or 0, name_of(rs)),
        )
        new = next((rs for rs in owned if _template_equal(dig(rs, "spec", "template"), spec.get("template"))), None)
        old = [rs for rs in owned if rs is not new]
        if owned:
            w.write(0, f"OldReplicaSets:\t{_rs_summary(old)}\n")
            w.write(0, f"NewReplicaSet:\t{_rs_summary([new] if new else [])}\n")
    _describe_events(w, events, now)


def _describe_replicaset(
    w: _Writer, rs: Obj, events: list[Obj] | None, now: float, *,
    pods: list[Obj] | None = None, **_: Any,
) -> None:
    meta = rs.get("metadata") or {}
    spec = rs.get("spec") or {}
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    w.write(0, f"Selector:\t{format_selector(spec.get('selector'))}\n")
    _labels_multiline(w, "Labels", meta.get("labels"))
    _annotations_multiline(w, "Annotations", meta.get("annotations"))
    ref = _controller_of(rs)
    if ref:
        w.write(0, f"Controlled By:\t{ref.get('kind', '')}/{ref.get('name', '')}\n")
    w.write(0, f"Replicas:\t{to_int(dig(rs, 'status', 'replicas'))} current / {replicas_of(rs)} desired\n")
    _pods_status(w, rs, pods)
    _describe_pod_template(w, spec.get("template"))
    _describe_conditions(w, dig(rs, "status", "conditions"))
    _describe_events(w, events, now)


def _describe_daemonset(
    w: _Writer, ds: Obj, events: list[Obj] | None, now: float, *,
    pods: list[Obj] | None = None, **_: Any,
) -> None:
    meta = ds.get("metadata") or {}
    spec = ds.get("spec") or {}
    st = ds.get("status") or {}
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    w.write(0, f"Selector:\t{selector_string(spec.get('selector'))}\n")
    w.write(0, f"Node-Selector:\t{format_labels(dig(spec, 'template', 'spec', 'nodeSelector'))}\n")
    _labels_multiline(w, "Labels", meta.get("labels"))
    _annotations_multiline(w, "Annotations", meta.get("annotations"))
    w.write(0, f"Desired Number of Nodes Scheduled: {to_int(st.get('desiredNumberScheduled'))}\n")
    w.write(0, f"Current Number of Nodes Scheduled: {to_int(st.get('currentNumberScheduled'))}\n")
    w.write(0, f"Number of Nodes Scheduled with Up-to-date Pods: {to_int(st.get('updatedNumberScheduled'))}\n")
    w.write(0, f"Number of Nodes Scheduled with Available Pods: {to_int(st.get('numberAvailable'))}\n")
    w.write(0, f"Number of Nodes Misscheduled: {to_int(st.get('numberMisscheduled'))}\n")
    _pods_status(w, ds, pods)
    _describe_pod_template(w, spec.get("template"))
    _describe_events(w, events, now)


def _describe_statefulset(
    w: _Writer, sts: Obj, events: list[Obj] | None, now: float, *,
    pods: list[Obj] | None = None, **_: Any,
) -> None:
    meta = sts.get("metadata") or {}
    spec = sts.get("spec") or {}
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    w.write(0, f"CreationTimestamp:\t{_rfc1123z(meta.get('creationTimestamp'))}\n")
    w.write(0, f"Selector:\t{selector_string(spec.get('selector'))}\n")
    _labels_multiline(w, "Labels", meta.get("labels"))
    _annotations_multiline(w, "Annotations", meta.get("annotations"))
    if spec.get("serviceName"):
        w.write(0, f"Service Name:\t{spec['serviceName']}\n")
    if spec.get("podManagementPolicy"):
        w.write(0, f"Pod Management Policy:\t{spec['podManagementPolicy']}\n")
    w.write(0, f"Replicas:\t{replicas_of(sts)} desired | {to_int(dig(sts, 'status', 'replicas'))} total\n")
    strategy = spec.get("updateStrategy") or {}
    w.write(0, f"Update Strategy:\t{strategy.get('type') or 'RollingUpdate'}\n")
    ru = strategy.get("rollingUpdate") or {}
    if ru.get("partition") is not None:
        w.write(1, f"Partition:\t{to_int(ru['partition'])}\n")
        if ru.get("maxUnavailable") is not None:
            w.write(1, f"MaxUnavailable:\t{ru['maxUnavailable']}\n")
    retention = spec.get("persistentVolumeClaimRetentionPolicy")
    if isinstance(retention, dict):
        w.write(0, "Persistent Volume Claim Retention Policy:\n")
        w.write(1, f"WhenDeleted:\t{retention.get('whenDeleted', '')}\n")
        w.write(1, f"WhenScaled:\t{retention.get('whenScaled', '')}\n")
    _pods_status(w, sts, pods)
    _describe_pod_template(w, spec.get("template"))
    claims = [c for c in spec.get("volumeClaimTemplates") or [] if isinstance(c, dict)]
    if not claims:
        w.write(0, "Volume Claims:\t<none>\n")
    else:
        w.write(0, "Volume Claims:\n")
        for pvc in claims:
            w.write(1, f"Name:\t{name_of(pvc)}\n")
            w.write(1, f"StorageClass:\t{dig(pvc, 'spec', 'storageClassName') or ''}\n")
            _labels_multiline(w, "Labels", dig(pvc, "metadata", "labels"), indent="  ")
            _labels_multiline(w, "Annotations", dig(pvc, "metadata", "annotations"), indent="  ")
            capacity = dig(pvc, "spec", "resources", "requests", "storage")
            w.write(1, f"Capacity:\t{capacity or '<default>'}\n")
            w.write(1, f"Access Modes:\t[{' '.join(dig(pvc, 'spec', 'accessModes') or [])}]\n")
    _describe_events(w, events, now)


def _describe_endpointslice(w: _Writer, eps: Obj, events: list[Obj] | None, now: float, **_: Any) -> None:
    meta = eps.get("metadata") or {}
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    _labels_multiline(w, "Labels", meta.get("labels"))
    _annotations_multiline(w, "Annotations", meta.get("annotations"))
    w.write(0, f"AddressType:\t{eps.get('addressType', '')}\n")
    ports = [p for p in eps.get("ports") or [] if isinstance(p, dict)]
    if not ports:
        w.write(0, "Ports: <unset>\n")
    else:
        w.write(0, "Ports:\n")
        w.write(1, "Name\tPort\tProtocol\n")
        w.write(1, "----\t----\t--------\n")
        for p in ports:
            number = "<unset>" if p.get("port") is None else str(to_int(p["port"]))
            w.write(1, f"{p.get('name') or '<unset>'}\t{number}\t{p.get('protocol') or 'TCP'}\n")
    endpoints = [e for e in eps.get("endpoints") or [] if isinstance(e, dict)]
    if not endpoints:
        w.write(0, "Endpoints: <none>\n")
    else:
        w.write(0, "Endpoints:\n")
        for e in endpoints:
            w.write(1, f"- Addresses:\t{', '.join(e.get('addresses') or []) or '<none>'}\n")
            w.write(2, "Conditions:\n")
            ready = dig(e, "conditions", "ready")
            w.write(3, f"Ready:\t{'<unset>' if ready is None else str(bool(ready)).lower()}\n")
            w.write(2, f"Hostname:\t{e['hostname'] if e.get('hostname') is not None else '<unset>'}\n")
            if isinstance(e.get("targetRef"), dict):
                w.write(2, f"TargetRef:\t{e['targetRef'].get('kind', '')}/{e['targetRef'].get('name', '')}\n")
            w.write(2, f"NodeName:\t{e['nodeName'] if e.get('nodeName') is not None else '<unset>'}\n")
            w.write(2, f"Zone:\t{e['zone'] if e.get('zone') is not None else '<unset>'}\n")
    _describe_events(w, events, now)


def _describe_peers(w: _Writer, rules: list[Obj], peers_key: str, direction: str) -> None:
    """printNetworkPolicySpecIngressFrom / EgressTo; `direction` is "From" or "To"."""
    indent = "    "
    if not rules:
        isolated = "ingress" if direction == "From" else "egress"
        w.write(0, f"{indent}<none> (Selected pods are isolated for {isolated} connectivity)\n")
        return
    for i, rule in enumerate(rules):
        ports = rule.get("ports") or []
        if not ports:
            w.write(0, f"{indent}To Port: <any> (traffic allowed to all ports)\n")
        for port in ports:
            proto = port.get("protocol") or "TCP"
            if port.get("endPort") is None:
                w.write(0, f"{indent}To Port: {_intstr(port.get('port'))}/{proto}\n")
            else:
                w.write(0, f"{indent}To Port Range: {_intstr(port.get('port'))}-{to_int(port['endPort'])}/{proto}\n")
        peers = rule.get(peers_key) or []
        if not peers:
            what = "source" if direction == "From" else "destination"
            w.write(0, f"{indent}{direction}: <any> (traffic not restricted by {what})\n")
        for peer in peers:
            w.write(0, f"{indent}{direction}:\n")
            pod_sel, ns_sel, block = peer.get("podSelector"), peer.get("namespaceSelector"), peer.get("ipBlock")
            if pod_sel is not None and ns_sel is not None:
                w.write(1, f"{indent}NamespaceSelector: {format_selector(ns_sel)}\n")
                w.write(1, f"{indent}PodSelector: {format_selector(pod_sel)}\n")
            elif pod_sel is not None:
                w.write(1, f"{indent}PodSelector: {format_selector(pod_sel)}\n")
            elif ns_sel is not None:
                w.write(1, f"{indent}NamespaceSelector: {format_selector(ns_sel)}\n")
            elif isinstance(block, dict):
                w.write(1, f"{indent}IPBlock:\n")
                w.write(2, f"{indent}CIDR: {block.get('cidr', '')}\n")
                w.write(2, f"{indent}Except: {', '.join(block.get('except') or [])}\n")
        if i != len(rules) - 1:
            w.write(0, f"{indent}----------\n")


def _describe_networkpolicy(w: _Writer, np: Obj, events: list[Obj] | None, now: float, *,
                            pods: list[Obj] | None = None, **_: Any) -> None:
    # kubectl's NetworkPolicy describer shows no events. `pods`, when given,
    # are the pods the policy selects (knet's addition, after kubectl's lines).
    meta = np.get("metadata") or {}
    spec = np.get("spec") or {}
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    w.write(0, f"Created on:\t{_go_time_string(meta.get('creationTimestamp'))}\n")
    _labels_multiline(w, "Labels", meta.get("labels"))
    _annotations_multiline(w, "Annotations", meta.get("annotations"))
    w.write(0, "Spec:\n")
    w.write(1, "PodSelector: ")
    selector = spec.get("podSelector") or {}
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        w.write(2, "<none> (Allowing the specific traffic to all pods in this namespace)\n")
    else:
        w.write(2, f"{format_selector(selector)}\n")
    types = spec.get("policyTypes")
    if types is None:  # the API server's default when a manifest leaves it out
        types = ["Ingress"] + (["Egress"] if spec.get("egress") else [])
    if "Ingress" in types:
        w.write(1, "Allowing ingress traffic:\n")
        _describe_peers(w, spec.get("ingress") or [], "from", "From")
    else:
        w.write(1, "Not affecting ingress traffic\n")
    if "Egress" in types:
        w.write(1, "Allowing egress traffic:\n")
        _describe_peers(w, spec.get("egress") or [], "to", "To")
    else:
        w.write(1, "Not affecting egress traffic\n")
    w.write(1, f"Policy Types: {', '.join(types) or '<none>'}\n")
    _describe_selected_pods(w, pods, with_namespace=False)


def _everything_or(sel: object, everything: str) -> str:
    """An ANP selector: empty selects everything, so say so instead of <none>."""
    if isinstance(sel, dict) and (sel.get("matchLabels") or sel.get("matchExpressions")):
        return format_selector(sel)
    return everything


def _describe_admin_pods(w: _Writer, level: int, pods: object) -> None:
    pods = pods if isinstance(pods, dict) else {}
    w.write(level, "Pods:\n")
    w.write(level + 1, f"NamespaceSelector:\t{_everything_or(pods.get('namespaceSelector'), '<all namespaces>')}\n")
    w.write(level + 1, f"PodSelector:\t{_everything_or(pods.get('podSelector'), '<all pods>')}\n")


def _admin_port(port: Obj) -> str:
    if isinstance(port.get("portNumber"), dict):
        number = port["portNumber"]
        return f"{_intstr(number.get('port'))}/{number.get('protocol') or 'TCP'}"
    if isinstance(port.get("portRange"), dict):
        rng = port["portRange"]
        return f"{_intstr(rng.get('start'))}-{_intstr(rng.get('end'))}/{rng.get('protocol') or 'TCP'}"
    if port.get("namedPort") is not None:
        return f"{port['namedPort']} (named port)"
    return "<unknown>"


def _describe_admin_peer(w: _Writer, level: int, peer: Obj) -> None:
    if peer.get("namespaces") is not None:
        w.write(level, f"Namespaces:\t{_everything_or(peer['namespaces'], '<all namespaces>')}\n")
    elif peer.get("pods") is not None:
        _describe_admin_pods(w, level, peer["pods"])
    elif peer.get("nodes") is not None:
        w.write(level, f"Nodes:\t{_everything_or(peer['nodes'], '<all nodes>')}\n")
    elif peer.get("networks") is not None:
        w.write(level, f"Networks:\t{', '.join(str(n) for n in peer['networks'])}\n")
    elif peer.get("domainNames") is not None:
        w.write(level, f"Domain Names:\t{', '.join(str(n) for n in peer['domainNames'])}\n")
    else:  # fails closed, as the API says of a peer this version does not know
        w.write(level, "<unknown peer> (matches nothing for Allow, everything for Deny and Pass)\n")


def _describe_admin_rules(w: _Writer, rules: object, direction: str) -> None:
    rules = [r for r in rules or [] if isinstance(r, dict)] if isinstance(rules, list) else []
    title = f"{direction.capitalize()} Rules"
    if not rules:
        w.write(1, f"{title}:\t<none> (not affecting {direction} traffic)\n")
        return
    w.write(1, f"{title} (first match wins):\n")
    peers_key, peers_title = ("from", "From") if direction == "ingress" else ("to", "To")
    for i, rule in enumerate(rules):
        w.write(2, f"{rule.get('name') or f'rule {i}'}:\t{rule.get('action', '')}\n")
        ports = [p for p in rule.get("ports") or [] if isinstance(p, dict)]
        w.write(3, f"Ports:\t{', '.join(_admin_port(p) for p in ports) if ports else '<any>'}\n")
        for peer in rule.get(peers_key) or []:
            w.write(3, f"{peers_title}:\n")
            _describe_admin_peer(w, 4, peer if isinstance(peer, dict) else {})
        if i != len(rules) - 1:
            w.write(2, "----------\n")


def _describe_adminnetworkpolicy(w: _Writer, anp: Obj, events: list[Obj] | None, now: float, *,
                                 pods: list[Obj] | None = None, **_: Any) -> None:
    """AdminNetworkPolicy and BaselineAdminNetworkPolicy (knet's own layout, in
    the NetworkPolicy describer's style; kubectl has only its generic one for
    CRDs). `pods` are the pods the subject selects, when given."""
    meta = anp.get("metadata") or {}
    spec = anp.get("spec") or {}
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Created on:\t{_go_time_string(meta.get('creationTimestamp'))}\n")
    _labels_multiline(w, "Labels", meta.get("labels"))
    _annotations_multiline(w, "Annotations", meta.get("annotations"))
    w.write(0, "Spec:\n")
    if anp.get("kind") == "AdminNetworkPolicy":
        w.write(1, f"Priority:\t{_intstr(spec.get('priority'))} (lower numbers are evaluated first)\n")
    subject = spec.get("subject") if isinstance(spec.get("subject"), dict) else {}
    w.write(1, "Subject:\n")
    if subject.get("namespaces") is not None:
        w.write(2, f"Namespaces:\t{_everything_or(subject['namespaces'], '<all namespaces>')}\n")
    elif subject.get("pods") is not None:
        _describe_admin_pods(w, 2, subject["pods"])
    else:
        w.write(2, "<none>\n")
    _describe_admin_rules(w, spec.get("ingress"), "ingress")
    _describe_admin_rules(w, spec.get("egress"), "egress")
    _describe_selected_pods(w, pods, with_namespace=True)
    _describe_events(w, events, now)


# --------------------------------------------------------------------------
# describe: anything else


_ACRONYMS = {"API", "URL", "UID", "OSB", "GUID"}


def _camel_split(text: str) -> list[str]:
    """fatih/camelcase.Split: runs of one character class, "HTTPServer" -> HTTP, Server."""
    runs: list[list[str]] = []
    last = None
    for ch in text:
        cls = 1 if ch.islower() else 2 if ch.isupper() else 3 if ch.isdigit() else 4
        if cls == last:
            runs[-1].append(ch)
        else:
            runs.append([ch])
        last = cls
    for i in range(len(runs) - 1):
        if runs[i] and runs[i][0].isupper() and runs[i + 1][0].islower():
            runs[i + 1].insert(0, runs[i].pop())
    return ["".join(r) for r in runs if r]


def _smart_label(field: str) -> str:
    """smartLabelFor: "apiVersion" -> "API Version"; odd field names stay as they are."""
    if any(not (ch.isalpha() or ch == "-") for ch in field):
        return field
    parts = []
    for part in _camel_split(field):
        if part == "_":
            continue
        parts.append(part.upper() if part.upper() in _ACRONYMS else part[:1].upper() + part[1:])
    return " ".join(parts)


def _go_value(value: object) -> str:
    """fmt's %v for a value decoded from JSON into interface{}."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, list):
        return "[" + " ".join(_go_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_value(value[k])}" for k in sorted(value)) + "]"
    return str(value)


_GENERIC_SKIP = {
    ".metadata.managedFields", ".metadata.name", ".metadata.namespace",
    ".metadata.labels", ".metadata.annotations",
}


def _unstructured(w: _Writer, level: int, content: Obj, prefix: str) -> None:
    for field in sorted(content):
        value = content[field]
        path = f"{prefix}.{field}"
        if path in _GENERIC_SKIP:
            continue
        if isinstance(value, dict):
            w.write(level, f"{_smart_label(field)}:\n")
            _unstructured(w, level + 1, value, path)
        elif isinstance(value, list):
            w.write(level, f"{_smart_label(field)}:\n")
            for child in value:
                if isinstance(child, dict):
                    _unstructured(w, level + 1, child, path)
                else:
                    w.write(level + 1, f"{_go_value(child)}\n")
        else:
            w.write(level, f"{_smart_label(field)}:\t{_go_value(value)}\n")


def _describe_generic(w: _Writer, obj: Obj, events: list[Obj] | None, now: float, **_: Any) -> None:
    meta = obj.get("metadata") or {}
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    _labels_multiline(w, "Labels", meta.get("labels"))
    _annotations_multiline(w, "Annotations", meta.get("annotations"))
    _unstructured(w, 0, obj, "")
    _describe_events(w, events, now)


_DESCRIBERS: dict[str, Callable[..., None]] = {
    "Pod": _describe_pod,
    "Node": _describe_node,
    "Service": _describe_service,
    "Namespace": _describe_namespace,
    "Deployment": _describe_deployment,
    "ReplicaSet": _describe_replicaset,
    "DaemonSet": _describe_daemonset,
    "StatefulSet": _describe_statefulset,
    "EndpointSlice": _describe_endpointslice,
    "NetworkPolicy": _describe_networkpolicy,
    "AdminNetworkPolicy": _describe_adminnetworkpolicy,
    "BaselineAdminNetworkPolicy": _describe_adminnetworkpolicy,
}


def describe(
    obj: dict,
    events: list[dict] | None = None,
    now: float | None = None,
    *,
    pods: Iterable[dict] | None = None,
    endpoint_slices: Iterable[dict] | None = None,
    replica_sets: Iterable[dict] | None = None,
    isolation: dict | None = None,
    lease: dict | str | None = None,
    show_events: bool = True,
) -> str:
    """The `knet describe` text for one object, ending in a newline.

    `events` should already be narrowed to the object; they are sorted by last
    occurrence as kubectl does, and no events prints `Events: <none>`. kubectl
    fills some lines from other objects, so the caller may pass them: `pods`
    (for the Pods Status line of ReplicaSets, DaemonSets and StatefulSets, and
    a Node's Non-terminated Pods and Allocated resources), `endpoint_slices` of
    a Service (for its Endpoints lines), `replica_sets` (for a Deployment's
    Old/NewReplicaSet lines) and a Node's `lease` (its Lease, or the error
    met getting it). Lines whose source was not passed are left out rather
    than printed with made-up numbers.

    knet's additions: for a NetworkPolicy, AdminNetworkPolicy or
    BaselineAdminNetworkPolicy, `pods` are the pods it selects (Selected Pods);
    for a Pod, `isolation` is knet.policy.isolation.isolation()'s answer
    (a Network Policies section saying what isolates and selects it).
    """
    w = _Writer(show_events)
    describer = _DESCRIBERS.get(obj.get("kind") or "", _describe_generic)
    describer(
        w,
        obj,
        list(events) if events is not None else None,
        _now(now),
        pods=list(pods) if pods is not None else None,
        endpoint_slices=list(endpoint_slices) if endpoint_slices is not None else None,
        replica_sets=list(replica_sets) if replica_sets is not None else None,
        isolation=isolation,
        lease=lease,
    )
    return w.render()
