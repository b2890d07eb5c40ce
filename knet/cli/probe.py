"""knet probe: the reachability matrix, measured with real connections.

From every selected pod (rows: clients) to every selected pod (columns:
servers) one connection attempt is made from inside the client pod's network
namespace, as upstream's e2e prober runs `agnhost connect` in the client pod,
and the result is printed as upstream prints its truth table: `.` connected,
`X` blocked. TCP counts as connected when the handshake completes; UDP when a
datagram is answered (knet's built-in server answers `<namespace>/<pod>`: an
answer naming another pod means the probe reached someone else, and is not
counted).

The prober itself (selection, plan, the sockets driven all at once, UDP
source ports) is knet.policy.prober, shared with the test harness
(knet.harness.net); this module is the command: options, the printed matrix and
--expect. The names below are re-exported so `probe.run` etc. keep working.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence

from knet.cli.common import CliError, Connect, cluster_name, require_root
from knet.policy.prober import (  # noqa: F401 (re-exported: the command's seams and its tests use them)
    DEFAULT_TIMEOUT,
    PAYLOAD,
    PORT_RANGE,
    PROTOCOLS,
    UDP_RESEND,
    Outcome,
    Probe,
    Target,
    cluster_ports,
    matrices,
    next_ports,
    plan,
    pod_name,
    ports_needed,
    records,
    run,
    select,
    service_for,
    source_ports,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from knet.api.client import Client
    from knet.policy.matrix import Matrix


def _parse_ports(text: str | None) -> list[int]:
    ports = []
    for part in (text or "80").split(","):
        try:
            port = int(part)
        except ValueError:
            port = 0
        if not 1 <= port <= 65535:
            raise CliError(f"--port: invalid port {part!r}: must be a number between 1 and 65535")
        ports.append(port)
    return list(dict.fromkeys(ports))


def _parse_protocols(text: str | None) -> list[str]:
    protocols = []
    for part in (text or "TCP").split(","):
        proto = part.strip().upper()
        if proto not in PROTOCOLS:
            raise CliError(f"--protocol: unsupported value {part!r}: TCP or UDP (this kernel opens no SCTP sockets)")
        protocols.append(proto)
    return list(dict.fromkeys(protocols))


def _cluster_ports(cluster: str, count: int) -> int | None:
    return cluster_ports(cluster, count)


# -- the report (pure) ------------------------------------------------------------------------


def _json(outcomes: Sequence[Outcome]) -> str:
    """A JSON array with one record per line: one document for a program, one
    line per pair for grep."""
    lines = [json.dumps(r) for r in records(outcomes)]
    return "[\n" + ",\n".join(lines) + "\n]" if lines else "[]"


def totals(port: int, protocol: str, m: Matrix) -> str:
    connected, blocked, unknown = m.counts()
    return (f"{protocol}/{port}: {connected + blocked} probed, {connected} connected, {blocked} blocked"
            + (f", {unknown} not probed" if unknown else ""))


# -- the command --------------------------------------------------------------------------------


def cmd_probe(args: argparse.Namespace, connect: Connect) -> int:
    return probe(args, connect(), prober=run, netns_of=None)


def probe(args: argparse.Namespace, client: Client, *, prober: Callable[[Sequence[Probe], float], list[Outcome]],
          netns_of: Callable[[dict], str | None] | None) -> int:
    """The command with its kernel seams as arguments: the prober, and how a
    pod's network namespace is found (None: from the running cluster's state,
    which needs root)."""
    from knet.api.resources import by_kind

    ports = _parse_ports(args.port)
    protocols = _parse_protocols(args.protocol)
    if args.timeout <= 0:
        raise CliError(f"--timeout: invalid value {args.timeout}: must be more than 0 seconds")
    if args.all_namespaces and args.namespace:
        raise CliError("-n and -A are exclusive: name namespaces or take them all")
    expected = _read_expect(args.expect) if args.expect else None

    pods_res = by_kind("Pod")
    if args.all_namespaces:
        namespaces = None
        pods = client.list(pods_res, None, args.selector)["items"]
    else:
        namespaces = [n.strip() for n in (args.namespace or "default").split(",") if n.strip()]
        if not namespaces:
            raise CliError("-n: name at least one namespace")
        for n in namespaces:
            client.get(by_kind("Namespace"), None, n)  # NotFound: namespaces "q" not found
        pods = [p for n in namespaces for p in client.list(pods_res, n, args.selector)["items"]]
    services = None
    if args.to_service:
        scope = None if namespaces is None or len(namespaces) > 1 else namespaces[0]
        services = client.list(by_kind("Service"), scope)["items"]
    on_cluster = netns_of is None
    if on_cluster:
        require_root()
        netns_of = _cluster_netns(cluster_name(args))
    targets, skipped = select(pods, netns_of)
    for name, reason in skipped:
        print(f"skipped {name}: {reason}", file=sys.stderr)
    if not targets:
        where = "any namespace" if namespaces is None else ", ".join(namespaces)
        raise CliError(f"no pod to probe in {where}" + (f" matching {args.selector!r}" if args.selector else "")
                       + (f" ({len(skipped)} skipped)" if skipped else ""))
    probes, notes = plan(targets, targets, ports, protocols, services, pods)
    for note in notes:
        print(note, file=sys.stderr)
    if on_cluster:
        first = _cluster_ports(cluster_name(args), ports_needed(probes))
        if first is not None:
            probes = source_ports(probes, first)
    started = time.monotonic()
    outcomes = prober(probes, args.timeout)
    elapsed = time.monotonic() - started
    names = [t.name for t in targets]
    tables = matrices(outcomes, names, ports, protocols)
    if args.output == "json":
        print(_json(outcomes))
    else:
        for n, (port, protocol, m) in enumerate(tables):
            if n:
                print()
            print(f"{protocol}/{port}" + (" through ClusterIPs" if args.to_service else ""))
            print(m.format())
        print()
        for port, protocol, m in tables:
            print(totals(port, protocol, m))
        print(f"{len(outcomes)} probes in {elapsed:.2f}s" + (f", {len(skipped)} pods skipped" if skipped else ""))
    if expected is None:
        return 0
    diffs = differences(expected, tables)
    for line in diffs:
        print(line, file=sys.stderr)
    if diffs:
        print(f"{len(diffs)} differences from {args.expect}", file=sys.stderr)
        return 1
    return 0


def _cluster_netns(cluster: str) -> Callable[[dict], str | None]:
    import os

    from knet.config import load_saved
    from knet.node.sandbox import sandbox_for

    try:
        cfg = load_saved(cluster)
    except OSError:
        raise CliError(f'cluster "{cluster}" is not running') from None

    def netns_of(pod: dict) -> str | None:
        path = sandbox_for(cfg, pod["spec"]["nodeName"], pod["metadata"]["uid"]).netns_path
        return path if os.path.exists(path) else None
    return netns_of


# -- --expect -------------------------------------------------------------------------------


def _read_expect(path: str) -> dict:
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise CliError(f"--expect: {path}: {(e.strerror or str(e)).lower()}") from None
    try:
        return parse_expected(text)
    except ValueError as e:
        raise CliError(f"--expect: {path}: {e}") from None


def parse_expected(text: str) -> dict[tuple[int, str] | None, Matrix]:
    """The matrices of an --expect file, by (port, protocol): the text `knet
    probe` prints, where a `PROTOCOL/PORT` line titles the matrix after it. A
    file with one untitled matrix (as upstream logs it) expects it of every
    port and protocol probed."""
    from knet.policy.matrix import Matrix

    out: dict[tuple[int, str] | None, Matrix] = {}
    sections: list[tuple[tuple[int, str] | None, int, list[str]]] = [(None, 0, [])]  # title, line before, lines
    for lineno, line in enumerate(text.splitlines(), 1):
        words = line.split()
        head = words[0].split("/") if words else []
        if len(head) == 2 and head[0].upper() in PROTOCOLS and head[1].isdigit():
            sections.append(((int(head[1]), head[0].upper()), lineno, []))
        else:
            sections[-1][2].append(line)
    for title, before, lines in sections:
        if not any(line.split()[:1] == ["-"] for line in lines):
            continue  # prose: the totals, a title with no matrix
        if title in out:
            raise ValueError(f"line {before}: a second matrix for {_title(title)}")
        try:  # blank lines in front keep Matrix.parse's line numbers the file's
            out[title] = Matrix.parse("\n" * before + "\n".join(lines))
        except ValueError as e:
            raise ValueError(f"the matrix for {_title(title)}: {e}") from None
    if not out:
        raise ValueError("no matrix found: expected a header line starting with '-' followed by the "
                         "servers, such as '-\tx/a\tx/b'")
    return out


def _title(key: tuple[int, str] | None) -> str:
    return "every port" if key is None else f"{key[1]}/{key[0]}"


def differences(expected: dict[tuple[int, str] | None, Matrix], tables: Sequence[tuple[int, str, Matrix]]) -> list[str]:
    """One line per pair whose probe differs from the expectation. A pod to
    itself is not judged (upstream's ignoreLoopback), nor a pair expected `?`;
    a pair expected but not probed (a pod skipped, no Service) is a difference."""
    from knet.policy.matrix import Matrix

    lines = []
    for port, protocol, observed in tables:
        want = expected.get((port, protocol), expected.get(None))
        where = f"{protocol}/{port}"
        if want is None:
            lines.append(f"{where}: no expected matrix for it in the file")
            continue
        pods = [p for p in dict.fromkeys(want.froms + want.tos) if p not in observed.froms]
        for pod in pods:
            lines.append(f"{where} {pod}: expected, not probed")
        extra = [p for p in observed.froms if p not in want.froms and p not in want.tos]
        for pod in extra:
            lines.append(f"{where} {pod}: probed, not in the expected matrix")
        common = Matrix(want.froms, want.tos, None)
        for key in common.values:
            if key[0] in observed.froms and key[1] in observed.tos:
                common.values[key] = observed.values[key]
        for d in want.differences(common):
            if d.expected is None or d.src in pods or d.dst in pods:
                continue
            lines.append(f"{where} {d}" + (" (not probed)" if d.observed is None else ""))
    return lines
