"""pods/log options (PodLogOptions) and the pure parts of serving a log.

The API server validates the options before it proxies a log request to the
node (as kube-apiserver's LogREST does, so a bad option is a 422 naming the
field whatever the node), and the node's kubelet server reads them again from
its own query string: both parse here. Pure: no I/O, no trio.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from knet.api import errors


@dataclass
class LogOptions:
    container: str | None = None
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None
    since_seconds: int | None = None
    since_time: float | None = None  # epoch seconds

    def since(self, now: float | None = None) -> float | None:
        """The earliest time a line may carry, or None for all of the log."""
        if self.since_seconds is not None:
            return (time.time() if now is None else now) - self.since_seconds
        return self.since_time

    def to_query(self) -> dict[str, str]:
        """The options as the kubelet's /containerLogs query takes them."""
        q: dict[str, str] = {}
        for key, value in (("follow", self.follow), ("previous", self.previous), ("timestamps", self.timestamps)):
            if value:
                q[key] = "true"
        for key, value in (("tailLines", self.tail_lines), ("limitBytes", self.limit_bytes),
                           ("sinceSeconds", self.since_seconds)):
            if value is not None:
                q[key] = str(value)
        if self.since_time is not None:
            q["sinceTime"] = format_time(self.since_time)
        return q


def _bool(query: dict[str, str], key: str) -> bool:
    value = query.get(key)
    if value is None or value == "":
        return False
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise errors.bad_request(f'{key}: Invalid value: "{value}": strconv.ParseBool: parsing "{value}": invalid syntax')


def _int(query: dict[str, str], key: str) -> int | None:
    value = query.get(key)
    if value is None or value == "":
        return None
    try:
        return int(value, 10)
    except ValueError:
        raise errors.bad_request(
            f'{key}: Invalid value: "{value}": strconv.ParseInt: parsing "{value}": invalid syntax') from None


def parse_options(query: dict[str, str], name: str = "") -> LogOptions:
    """PodLogOptions from a query string, validated as ValidatePodLogOptions
    does (tailLines >= 0, limitBytes and sinceSeconds > 0, not both since*)."""
    opts = LogOptions(container=query.get("container") or None, follow=_bool(query, "follow"),
                      previous=_bool(query, "previous"), timestamps=_bool(query, "timestamps"),
                      tail_lines=_int(query, "tailLines"), limit_bytes=_int(query, "limitBytes"),
                      since_seconds=_int(query, "sinceSeconds"))
    if query.get("sinceTime"):
        opts.since_time = parse_time(query["sinceTime"], "sinceTime")
    bad: list[errors.FieldError] = []
    if opts.tail_lines is not None and opts.tail_lines < 0:
        bad.append(errors.FieldError("tailLines", "Invalid value", opts.tail_lines,
                                     "must be greater than or equal to 0"))
    if opts.limit_bytes is not None and opts.limit_bytes < 1:
        bad.append(errors.FieldError("limitBytes", "Invalid value", opts.limit_bytes, "must be greater than 0"))
    if opts.since_seconds is not None and opts.since_time is not None:
        bad.append(errors.FieldError("", "Forbidden", None,
                                     "at most one of `sinceTime` or `sinceSeconds` may be specified"))
    elif opts.since_seconds is not None and opts.since_seconds < 1:
        bad.append(errors.FieldError("sinceSeconds", "Invalid value", opts.since_seconds, "must be greater than 0"))
    if bad:
        raise errors.Invalid("PodLogOptions", name, bad)
    return opts


def format_time(t: float) -> str:
    """RFC 3339 with nanoseconds, as kubelet prefixes lines with --timestamps."""
    whole = int(t)
    nanos = int(round((t - whole) * 1e9))
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, nanos - 1_000_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{nanos:09d}Z"


def parse_time(text: str, field: str = "sinceTime") -> float:
    """An RFC 3339 time (seconds precision or finer, Z or an offset) to epoch seconds."""
    from datetime import datetime

    try:
        value = text.strip()
        if value.endswith(("Z", "z")):
            value = value[:-1] + "+00:00"
        if "." in value:  # Python takes at most microseconds
            head, _, rest = value.partition(".")
            digits = "".join(ch for ch in rest if ch.isdigit())
            zone = rest[len(digits):]
            value = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise errors.bad_request(f'{field}: Invalid value: "{text}": parsing time "{text}" as RFC3339') from None


def tail_start(data: bytes, lines: int) -> int:
    """Where the last `lines` lines of `data` begin (a last line without its
    newline counts as a line, as kubelet's tail does)."""
    if lines <= 0:
        return len(data)
    end = len(data)
    if data.endswith(b"\n"):
        end -= 1
    pos = end
    for _ in range(lines):
        pos = data.rfind(b"\n", 0, pos)
        if pos < 0:
            return 0
    return pos + 1


def _line_ends(data: bytes):
    """(start, end) of each line (its newline included; the last may lack one)."""
    start = 0
    while start < len(data):
        nl = data.find(b"\n", start)
        end = len(data) if nl < 0 else nl + 1
        yield start, end
        start = end


def since_start(data: bytes, time_of: Callable[[int], float], since: float) -> int:
    """Where the first line written at or after `since` begins; time_of(end)
    is when the line ending at offset `end` was there."""
    for start, end in _line_ends(data):
        if time_of(end) >= since:
            return start
    return len(data)


def stamp_lines(data: bytes, at: float | Callable[[int], float], partial: bool) -> tuple[bytes, bool]:
    """Prefix each line that begins in `data` with its time: `at`, or
    at(end) for the line ending at offset `end` of data. `partial` says the
    previous chunk ended mid-line (that line is stamped already); returns the
    stamped bytes and whether this chunk ends mid-line."""
    out = bytearray()
    for start, end in _line_ends(data):
        if not partial:
            out += format_time(at(end) if callable(at) else at).encode() + b" "
        out += data[start:end]
        partial = not data[start:end].endswith(b"\n")
    return bytes(out), partial
