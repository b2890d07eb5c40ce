"""The reachability matrix, in the text form the upstream NetworkPolicy e2e prints.

Upstream (kubernetes test/e2e/network/netpol, truthtable.go's PrettyPrint) logs every expected
and observed matrix as a tab-separated table: a header `-` followed by the servers, then one row
per client with `.` (connected), `X` (blocked) or `?` (not observed). `knet probe` prints the
same text so a run can be read side by side with upstream's logs, `knet probe --expect FILE`
reads it back, and the conformance tests write their expectations with the same edits
upstream's reachability.go makes (Expect, ExpectPeer, ExpectAllIngress, ExpectAllEgress: the
last write wins), so a case transcribed from upstream stays recognisably upstream's.

Pure and stdlib-only: the CLI imports it on its start-up path.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

CONNECTED = "."
BLOCKED = "X"
UNKNOWN = "?"
_MARKS = {CONNECTED: True, BLOCKED: False, UNKNOWN: None}


def _mark(value: bool | None) -> str:
    return UNKNOWN if value is None else CONNECTED if value else BLOCKED


def _split(pod: str) -> tuple[str, str]:
    ns, sep, name = pod.partition("/")
    if not sep or not ns or not name or "/" in name:
        raise ValueError(f"pod {pod!r}: expected <namespace>/<pod>, such as x/a")
    return ns, name


def peer_matches(peer: str, pod: str) -> bool:
    """Upstream's Peer{Namespace, Pod} matcher written as text: "" or "*" is every pod, "x" or
    "x/*" every pod of namespace x, "*/a" pod a of every namespace, "x/a" that pod."""
    if peer in ("", "*"):
        return True
    ns, _, name = peer.partition("/")
    pod_ns, pod_name = _split(pod)
    return ns in ("", "*", pod_ns) and name in ("", "*", pod_name)


class Difference(NamedTuple):
    """One pair where two matrices disagree (`expected` is the first matrix's value)."""

    src: str
    dst: str
    expected: bool | None
    observed: bool | None

    def __str__(self) -> str:
        return f"{self.src} -> {self.dst}: expected {_mark(self.expected)}, observed {_mark(self.observed)}"


class Matrix:
    """Connectivity from each of `froms` (clients, rows) to each of `tos` (servers, columns).

    A value is True (connected), False (blocked) or None (not observed). Mutating methods return
    the matrix itself so an expectation reads as a chain of upstream's edits."""

    def __init__(self, froms: Sequence[str], tos: Sequence[str] | None = None,
                 default: bool | None = True) -> None:
        self.froms = tuple(froms)
        self.tos = tuple(self.froms if tos is None else tos)
        for pod in self.froms + self.tos:
            _split(pod)
        for name, items in (("rows", self.froms), ("columns", self.tos)):
            if len(set(items)) != len(items):
                raise ValueError(f"{name}: a pod is listed twice: {', '.join(items)}")
        self.values: dict[tuple[str, str], bool | None] = {
            (f, t): default for f in self.froms for t in self.tos}

    # -- upstream's edits (reachability.go) --------------------------------------------------

    def _check(self, src: str, dst: str) -> None:
        if src not in self.froms:
            raise KeyError(f"from-key {src} not found")
        if dst not in self.tos:
            raise KeyError(f"to-key {dst} not allowed")

    def get(self, src: str, dst: str) -> bool | None:
        self._check(src, dst)
        return self.values[(src, dst)]

    def expect(self, src: str, dst: str, connected: bool | None) -> Matrix:
        """One pair (upstream Expect)."""
        self._check(src, dst)
        self.values[(src, dst)] = connected
        return self

    def expect_all_ingress(self, dst: str, connected: bool | None) -> Matrix:
        """The pod's column: everything into `dst` (upstream ExpectAllIngress)."""
        for src in self.froms:
            self.expect(src, dst, connected)
        return self

    def expect_all_egress(self, src: str, connected: bool | None) -> Matrix:
        """The pod's row: everything out of `src` (upstream ExpectAllEgress)."""
        for dst in self.tos:
            self.expect(src, dst, connected)
        return self

    def expect_peer(self, src: str, dst: str, connected: bool | None) -> Matrix:
        """Every pair whose ends match the peers (upstream ExpectPeer; see peer_matches)."""
        for f in self.froms:
            if peer_matches(src, f):
                for t in self.tos:
                    if peer_matches(dst, t):
                        self.values[(f, t)] = connected
        return self

    # -- reading ------------------------------------------------------------------------------

    def copy(self) -> Matrix:
        m = Matrix(self.froms, self.tos, None)
        m.values = dict(self.values)
        return m

    def counts(self, *, ignore_loopback: bool = False) -> tuple[int, int, int]:
        """(connected, blocked, unknown) pairs."""
        out = [0, 0, 0]
        for (f, t), v in self.values.items():
            if ignore_loopback and f == t:
                continue
            out[0 if v is True else 1 if v is False else 2] += 1
        return out[0], out[1], out[2]

    def differences(self, observed: Matrix, *, ignore_loopback: bool = True) -> list[Difference]:
        """The pairs where `observed` differs from this (expected) matrix, in row order.

        A pod to itself is ignored by default, as upstream does (ignoreLoopback, k/k#95879):
        loopback under policy is undefined."""
        if set(self.froms) != set(observed.froms) or set(self.tos) != set(observed.tos):
            raise ValueError("cannot compare matrices over different pods: "
                             f"{' '.join(self.froms)} / {' '.join(self.tos)} against "
                             f"{' '.join(observed.froms)} / {' '.join(observed.tos)}")
        out = []
        for f in self.froms:
            for t in self.tos:
                if ignore_loopback and f == t:
                    continue
                want, got = self.values[(f, t)], observed.values[(f, t)]
                if want != got:
                    out.append(Difference(f, t, want, got))
        return out

    def compare(self, observed: Matrix) -> Matrix:
        """Upstream's comparison table: `.` where the two agree, `X` where they differ."""
        self.differences(observed)  # same pods, or a clear error
        m = Matrix(self.froms, self.tos, None)
        for key, v in self.values.items():
            m.values[key] = v == observed.values[key]
        return m

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Matrix):
            return NotImplemented
        return (set(self.froms), set(self.tos), self.values) == (set(other.froms), set(other.tos),
                                                                 other.values)

    def __repr__(self) -> str:
        return "Matrix(\n" + self.format() + "\n)"

    # -- text -----------------------------------------------------------------------------------

    def format(self, indent: str = "") -> str:
        """truthtable.go's PrettyPrint, byte for byte: tab-separated, no trailing newline."""
        lines = [indent + "\t".join(("-",) + self.tos)]
        for f in self.froms:
            lines.append(indent + "\t".join([f] + [_mark(self.values[(f, t)]) for t in self.tos]))
        return "\n".join(lines)

    @classmethod
    def parse(cls, text: str) -> Matrix:
        """The first matrix in `text` (what format or upstream's log prints).

        Lines before the header (a line whose first word is `-`) are skipped, so a whole
        `knet probe` output or an upstream log excerpt parses; the table ends at the first
        line that is not a row (rows start with a <namespace>/<pod> name). Columns may be
        separated by tabs or spaces. Raises ValueError naming the line for anything else."""
        lines = text.splitlines()
        start = next((i for i, line in enumerate(lines) if line.split()[:1] == ["-"]), None)
        if start is None:
            raise ValueError("no matrix found: expected a header line starting with '-' "
                             "followed by the servers, such as '-\tx/a\tx/b'")
        tos = lines[start].split()[1:]
        if not tos:
            raise ValueError(f"line {start + 1}: the header names no servers")
        rows: list[tuple[str, list[str]]] = []
        for n, line in enumerate(lines[start + 1:], start + 2):
            words = line.split()
            if not words or "/" not in words[0]:
                break
            if len(words) != len(tos) + 1:
                raise ValueError(f"line {n}: row {words[0]} has {len(words) - 1} marks for "
                                 f"{len(tos)} servers")
            bad = [w for w in words[1:] if w not in _MARKS]
            if bad:
                raise ValueError(f"line {n}: row {words[0]}: {bad[0]!r} is not one of "
                                 f"'{CONNECTED}' (connected), '{BLOCKED}' (blocked), '{UNKNOWN}'")
            rows.append((words[0], words[1:]))
        if not rows:
            raise ValueError(f"line {start + 1}: the matrix has a header but no rows")
        m = cls([r for r, _ in rows], tos, None)
        for f, marks in rows:
            for t, mark in zip(tos, marks, strict=True):
                m.values[(f, t)] = _MARKS[mark]
        return m

    @classmethod
    def from_pairs(cls, pods: Sequence[str], pairs: Iterable[tuple[str, str, bool | None]]) -> Matrix:
        """From (from, to, connected) observations, such as `knet probe -o json` records;
        pairs not given stay unknown."""
        m = cls(pods, None, None)
        for src, dst, connected in pairs:
            m.expect(src, dst, connected)
        return m


def summary(expected: Matrix, observed: Matrix, *, ignore_loopback: bool = True) -> str:
    """Upstream's one-line verdict: `reachability: correct:N, incorrect:M, result=true`."""
    wrong = len(expected.differences(observed, ignore_loopback=ignore_loopback))
    total = len(expected.froms) * len(expected.tos)
    if ignore_loopback:
        total -= len(set(expected.froms) & set(expected.tos))
    return f"reachability: correct:{total - wrong}, incorrect:{wrong}, result={'true' if not wrong else 'false'}"
