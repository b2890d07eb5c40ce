"""The `knet` command: kind's bring-up, kubectl's verbs, Mininet's reach into
every namespace. This module assembles the parser, runs the one command asked
for, and turns whatever goes wrong into one line and an exit code.

Each command lives in a module of this package by group (cluster, apply, get,
exec, workloads, nodes), as a function `cmd_X(args, connect)`: `connect()`
gives it the API client when it needs one, so a test can run it against an
in-process API server. Start-up time matters (every call is a new process):
the parser names each command's module and function as strings, main()
imports only the module that runs, and every module imports only the
standard library at the top; YAML, netlink and trio are imported by the
commands that need them.
"""

from __future__ import annotations

import gettext
import os
import sys

# argparse looks up a translation of every help string as the parser is built
# (8 ms a call here, stat()ing locale files); knet's messages are English only.
gettext.gettext = lambda message: message  # noqa: E731
gettext.ngettext = lambda singular, plural, n: singular if n == 1 else plural  # noqa: E731
import argparse  # noqa: E402

from knet.api.errors import ApiError  # noqa: E402
from knet.cli.common import CliError, Connect, connect  # noqa: E402


def _columns() -> int:
    """The terminal's width as shutil.get_terminal_size reads it ($COLUMNS, else stdout's
    terminal, else 80)."""
    try:
        if (n := int(os.environ.get("COLUMNS", "0"))) > 0:
            return n
    except ValueError:
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


class _Parser(argparse.ArgumentParser):
    """Gives each help formatter its width, which argparse would otherwise look up by importing
    shutil (3 ms of every start, bz2 and lzma with it: a formatter is made for every option added,
    whether or not help is printed)."""

    _width: int | None = None

    def _get_formatter(self):
        if _Parser._width is None:
            _Parser._width = _columns() - 2
        return self.formatter_class(prog=self.prog, width=_Parser._width)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from knet.api.client import Client

EPILOG = """examples:
  knet up                          # three+one cluster: control-plane + 3 workers
  knet apply -f app.yaml --wait    # create or update objects, wait for the nodes to act
  knet get pods -o wide            # kubectl-style tables
  knet exec web-0 -- ip addr       # run a command inside a pod's namespaces
  knet exec node/worker-1 -- ss -lnt
  knet down                        # remove everything the cluster made
"""


# -- parser ----------------------------------------------------------------------------------


def _go_bool(text: str) -> bool:
    """A boolean flag's value as Go's strconv.ParseBool reads it (--flag=false)."""
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if text in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise argparse.ArgumentTypeError(f"invalid argument {text!r}: strconv.ParseBool: parsing {text!r}: invalid syntax")


class _Sink:
    """Stands for a parser that is not built: every call on it is a no-op (see _OnlyOne)."""

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: _Sink()


class _OnlyOne:
    """The subparsers action, building only the command that runs: each
    add_parser call costs ~0.3 ms (its parents' options copied, a help
    formatter per option), ~10 ms for all of them, a sixth of `knet apply`'s
    start. argparse then parses exactly as with the full set."""

    def __init__(self, sub, only: str):
        self.sub, self.only, self.matched = sub, only, False

    def add_parser(self, name: str, **kwargs):
        if name != self.only and self.only not in kwargs.get("aliases", ()):
            return _Sink()
        self.matched = True
        return self.sub.add_parser(name, **kwargs)


def command_named(argv: list[str]) -> str | None:
    """The command word in argv (after the global --cluster NAME / -v), or None."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--cluster":
            i += 2
        elif word.startswith("--cluster=") or word in ("-v", "--verbose"):
            i += 1
        else:
            return None if word.startswith("-") else word
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """knet's parser; with `only`, one holding just that command (the whole
    one if there is no such command, so that the error names the choices)."""
    common = _Parser(add_help=False)
    common.add_argument("--cluster", metavar="NAME", default=argparse.SUPPRESS,
                        help="cluster name (default: knet, or $KNET_CLUSTER)")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="on an unexpected error, print its traceback (also KNET_DEBUG=1)")
    nsopt = _Parser(add_help=False)
    nsopt.add_argument("-n", "--namespace", metavar="NS", help="namespace (default: default)")
    # A cluster named by a kubeconfig context (knet init's admin.conf, knet up's knet-<cluster>), through its API.
    ctxopt = _Parser(add_help=False)
    ctxopt.add_argument("--context", metavar="NAME", help="act through the API of this kubeconfig context "
                                                         "(any machine holding the kubeconfig)")
    ctxopt.add_argument("--kubeconfig", dest="kubeconfig_file", metavar="PATH",
                        help="the kubeconfig (default: $KUBECONFIG, else ~/.kube/config)")

    p = _Parser(prog="knet", parents=[common], epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="knet: a Kubernetes networking data plane made of real namespaces, "
                                            "veth, VXLAN and nftables, driven by ordinary manifests.")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    if only:
        sub = _OnlyOne(sub, only)

    s = sub.add_parser("up", parents=[common], help="create a cluster and wait until every node is Ready",
                       description="Create a cluster: a LAN of node namespaces, the control plane and one agent "
                                   "per node, kept running by the cluster's supervisor. Without -f: one "
                                   "control-plane node and three workers. On a stopped cluster with the same "
                                   "config: start it again, with its state.")
    s.add_argument("-f", "--file", metavar="CLUSTER.yaml", help="kind-style cluster file (kind: Cluster)")
    s.add_argument("--timeout", type=float, default=None,
                   help="seconds to wait for nodes Ready (default 30, and one more per node past four)")
    s.add_argument("--kubeconfig", metavar="PATH", help="merge the knet-<cluster> context into this file "
                                                       "(default: $KUBECONFIG's first file, or ~/.kube/config)")
    s.set_defaults(run=("cluster", "cmd_up"))

    s = sub.add_parser("down", parents=[common], help="delete a cluster and everything it made",
                       description="Kill every process of the cluster and remove its namespaces, links, mounts "
                                   "and files. Works on a half-made or crashed cluster, and when there is none.")
    s.add_argument("--all", action="store_true", help="delete every knet cluster on this machine")
    s.set_defaults(run=("cluster", "cmd_down"))

    s = sub.add_parser("stop", parents=[common], help="stop a cluster's processes, keeping its state",
                       description="Stop the supervisor, the control plane, the node agents and every process in "
                                   "the cluster's pods (SIGTERM, then SIGKILL after the grace period). Namespaces, "
                                   "the store and the state directory stay: knet start brings it back.")
    s.add_argument("--grace-period", type=float, default=5.0, help="seconds before SIGKILL (default 5)")
    s.set_defaults(run=("cluster", "cmd_stop"))

    s = sub.add_parser("start", parents=[common], help="start a stopped cluster again, with its state",
                       description="Start the supervisor of a stopped (or partly running) cluster; it adopts "
                                   "the components still running and starts the rest, and the agents adopt "
                                   "their pods. Waits until every node is Ready.")
    s.add_argument("--timeout", type=float, default=None,
                   help="seconds to wait for nodes Ready (default 30, and one more per node past four)")
    s.set_defaults(run=("cluster", "cmd_start"))

    s = sub.add_parser("status", parents=[common], help="show the cluster's components and sync state")
    s.set_defaults(run=("cluster", "cmd_status"))

    s = sub.add_parser("apply", parents=[common, nsopt, ctxopt], help="create or update objects from manifests",
                       description="Create or update objects from YAML/JSON manifests. Every object is first "
                                   "checked by the API server (dry run): if one is invalid, nothing is applied.")
    s.add_argument("-f", "--filename", action="append", required=True, metavar="FILE|DIR|-")
    s.add_argument("--wait", action="store_true", help="return when every node agent has acted on the change")
    s.add_argument("--timeout", type=float, default=60, help="seconds for --wait (default 60)")
    s.set_defaults(run=("apply", "cmd_apply"))

    s = sub.add_parser("create", parents=[common, nsopt, ctxopt], help="create objects from manifests (never update)",
                       description="Create each object of YAML/JSON manifests, as kubectl create -f: one that "
                                   "exists is an AlreadyExists error and left as it is; the others are still "
                                   "created. Exits non-zero if any failed.")
    s.add_argument("-f", "--filename", action="append", required=True, metavar="FILE|DIR|-")
    s.add_argument("--wait", action="store_true", help="return when every node agent has acted on the change")
    s.add_argument("--timeout", type=float, default=60, help="seconds for --wait (default 60)")
    s.set_defaults(run=("apply", "cmd_create"))

    s = sub.add_parser("delete", parents=[common, nsopt, ctxopt], help="delete objects",
                       description="Delete objects by file, by KIND NAME..., KIND/NAME..., or KIND --all.")
    s.add_argument("names", nargs="*", metavar="KIND [NAME...]")
    s.add_argument("-f", "--filename", action="append", metavar="FILE|DIR|-")
    s.add_argument("--all", action="store_true", help="delete every object of the kind in the namespace")
    s.add_argument("-l", "--selector", help="label selector (with --all)")
    s.add_argument("--grace-period", type=int, default=None, help="seconds before SIGKILL (pods)")
    s.add_argument("--force", action="store_true", help="delete at once (grace period 0)")
    s.add_argument("--ignore-not-found", action="store_true")
    s.add_argument("--wait", action="store_true", help="return when the objects are gone and every node agent has acted on it")
    s.add_argument("--timeout", type=float, default=60)
    s.set_defaults(run=("apply", "cmd_delete"))

    s = sub.add_parser("get", parents=[common, nsopt, ctxopt], help="list objects in kubectl-style tables",
                       description="Show objects. KIND is a kind, plural or short name (po, svc, deploy, rs, ds, "
                                   "sts, no, ns, netpol, endpointslices), or several joined by commas.")
    s.add_argument("kind", metavar="KIND[,KIND]")
    s.add_argument("name", nargs="*", metavar="NAME")
    s.add_argument("-A", "--all-namespaces", action="store_true")
    s.add_argument("-l", "--selector", help="label selector, e.g. app=web,tier!=db")
    s.add_argument("--field-selector", help="field selector, e.g. spec.nodeName=worker-1")
    s.add_argument("-o", "--output", help="wide, yaml, json, name, jsonpath=TEMPLATE, jsonpath-file=FILE, "
                                          "jsonpath-as-json=TEMPLATE, custom-columns=HEADER:PATH,... or "
                                          "custom-columns-file=FILE (kubectl's formats)")
    s.add_argument("--no-headers", action="store_true", help="leave out the header row")
    s.add_argument("-w", "--watch", action="store_true", help="after listing, print each change (Ctrl-C ends)")
    s.add_argument("--watch-only", action="store_true", help="print each change, without listing first")
    s.add_argument("--output-watch-events", action="store_true",
                   help="with -w: print the event type too (existing objects as ADDED)")
    s.add_argument("--allow-missing-template-keys", type=_go_bool, nargs="?", const=True, default=True,
                   metavar="BOOL", help="a missing key prints nothing in jsonpath (default true)")
    s.add_argument("--show-managed-fields", action="store_true", help="keep metadata.managedFields in json/yaml")
    s.add_argument("--template", metavar="TEMPLATE", help="the template of -o jsonpath / jsonpath-file / "
                                                        "jsonpath-as-json given without =")
    s.add_argument("--sort-by", metavar="PATH", help="order by a JSONPath's value, e.g. .metadata.creationTimestamp")
    s.add_argument("-L", "--label-columns", action="append", metavar="KEY[,KEY]", help="a column per label key")
    s.add_argument("--show-labels", action="store_true", help="a LABELS column")
    s.add_argument("--show-kind", action="store_true", help="name objects as kind/name")
    s.add_argument("--ignore-not-found", action="store_true", help="a NAME that does not exist is not an error")
    s.set_defaults(run=("get", "cmd_get"))

    s = sub.add_parser("describe", parents=[common, nsopt, ctxopt], help="show one object in detail, with its events")
    s.add_argument("kind")
    s.add_argument("name", nargs="*")
    s.add_argument("-l", "--selector")
    s.add_argument("-A", "--all-namespaces", action="store_true")
    s.add_argument("--show-events", type=_go_bool, nargs="?", const=True, default=None, metavar="BOOL",
                   help="show the objects' events (default: for one object, not for several)")
    s.set_defaults(run=("get", "cmd_describe"))

    s = sub.add_parser("exec", parents=[common, nsopt, ctxopt], help="run a command in a pod, node or the ext host",
                       description="Run a command inside a pod's namespaces (network, UTS, its resolv.conf), "
                                   "as the container's user. TARGET is POD, node/NAME or ext.")
    s.add_argument("target", metavar="POD|node/NAME|ext")
    s.add_argument("-c", "--container", help="container name (default: the first)")
    s.add_argument("-i", "--stdin", action="store_true", help="accepted for kubectl compatibility")
    s.add_argument("-t", "--tty", action="store_true", help="accepted for kubectl compatibility")
    s.add_argument("command", nargs="*", metavar="-- CMD...")
    s.set_defaults(run=("exec", "cmd_exec"))

    s = sub.add_parser("logs", parents=[common, nsopt], help="print a container's or a component's log",
                       description="Print the log of a pod's container, of node/NAME's agent, or of the "
                                   "control-plane.")
    s.add_argument("target", metavar="POD|node/NAME|control-plane")
    s.add_argument("-c", "--container")
    s.add_argument("-f", "--follow", action="store_true")
    s.add_argument("--tail", type=int, default=None, metavar="N")
    s.set_defaults(run=("exec", "cmd_logs"))

    s = sub.add_parser("scale", parents=[common, nsopt], help="set the replicas of a Deployment, ReplicaSet or "
                                                             "StatefulSet")
    s.add_argument("target", metavar="KIND/NAME", help="e.g. deploy/web")
    s.add_argument("--replicas", type=int, required=True)
    s.add_argument("--wait", action="store_true", help="return when every node agent has acted on it")
    s.add_argument("--timeout", type=float, default=60)
    s.set_defaults(run=("workloads", "cmd_scale"))

    s = sub.add_parser("rollout", parents=[common, nsopt], help="watch a rollout: knet rollout status deploy/NAME")
    rsub = s.add_subparsers(dest="rollout_cmd", metavar="status", required=True)
    r = rsub.add_parser("status", parents=[common, nsopt], help="wait for a Deployment, DaemonSet or "
                                                               "StatefulSet rollout to finish")
    r.add_argument("target", metavar="KIND/NAME")
    r.add_argument("-w", "--watch", action=argparse.BooleanOptionalAction, default=True)
    r.add_argument("--timeout", type=float, default=300)
    r.set_defaults(run=("workloads", "cmd_rollout"))

    s = sub.add_parser("cordon", parents=[common], help="mark nodes unschedulable")
    s.add_argument("nodes", nargs="+", metavar="NODE")
    s.set_defaults(run=("nodes", "cmd_cordon"))
    s = sub.add_parser("uncordon", parents=[common], help="mark nodes schedulable again")
    s.add_argument("nodes", nargs="+", metavar="NODE")
    s.set_defaults(run=("nodes", "cmd_uncordon"))
    s = sub.add_parser("taint", parents=[common], help="add or remove node taints (kubectl's syntax)",
                       description="knet taint NODE key=value:NoSchedule ... ; key:NoSchedule- removes one.")
    s.add_argument("node", metavar="NODE")
    s.add_argument("taints", nargs="+", metavar="TAINT")
    s.set_defaults(run=("nodes", "cmd_taint"))
    s = sub.add_parser("drain", parents=[common], help="cordon a node and evict its pods (not DaemonSet pods)",
                       description="Cordon NODE, evict every pod on it except DaemonSet pods, and wait until "
                                   "they are gone; their controllers place them on other nodes.")
    s.add_argument("node", metavar="NODE")
    s.add_argument("--force", action="store_true", help="also evict pods no controller manages")
    s.add_argument("--grace-period", type=int, default=None)
    s.add_argument("--timeout", type=float, default=120)
    s.set_defaults(run=("nodes", "cmd_drain"))

    s = sub.add_parser("probe", parents=[common], help="the reachability matrix: connect from every pod to every pod",
                       description="From every selected pod (rows) to every selected pod (columns), at once, a real "
                                   "connection from inside the client pod's network namespace to the server pod's "
                                   "IP (or a ClusterIP selecting it): `.` connected, `X` blocked, as upstream's "
                                   "e2e prints it; then the totals. TCP counts when the handshake completes, UDP "
                                   "when the server pod answers.")
    s.add_argument("-n", "--namespace", metavar="NS[,NS]", help="namespaces to take pods from (default: default)")
    s.add_argument("-A", "--all-namespaces", action="store_true")
    s.add_argument("-l", "--selector", help="label selector for the pods, e.g. pod in (a,b)")
    s.add_argument("--port", metavar="P[,P]", help="destination port(s) (default 80)")
    s.add_argument("--protocol", metavar="TCP|UDP", help="TCP, UDP or TCP,UDP (default TCP)")
    s.add_argument("--to-service", action="store_true",
                   help="dial the ClusterIP of a Service selecting the server pod instead of its IP")
    s.add_argument("-o", "--output", choices=["json"], help="json: one record per pair")
    s.add_argument("--expect", metavar="FILE", help="compare with an expected matrix (the text this prints); "
                                                    "exit 1 on a difference")
    s.add_argument("--timeout", type=float, default=1.0, metavar="S", help="seconds per probe (default 1)")
    s.set_defaults(run=("probe", "cmd_probe"))

    s = sub.add_parser("trace", parents=[common, nsopt], help="the path of one connection attempt, hop by hop",
                       description="Make one real connection attempt from SOURCE (POD, node/NAME or ext) to DEST "
                                   "(a pod, a Service web or web.shop, an IP or node/NAME, with :PORT), trace it "
                                   "with nftables in every namespace it crosses, and print its path: the Service "
                                   "lookup, the policy decisions, the overlay, the masquerade, the delivery or the "
                                   "drop, named from the rules knet wrote. Leaves no trace rule behind.")
    s.add_argument("source", metavar="POD|node/NAME|ext")
    s.add_argument("--to", required=True, metavar="DEST[:PORT]")
    s.add_argument("--protocol", type=str.upper, choices=["TCP", "UDP", "ICMP"], help="default TCP")
    s.add_argument("-o", "--output", choices=["json"], help="json: one record per step")
    s.add_argument("--timeout", type=float, default=1.0, metavar="S", help="seconds to wait for an answer (default 1)")
    s.set_defaults(run=("trace", "cmd_trace"))

    s = sub.add_parser("capture", parents=[common, nsopt], help="capture packets inside a pod, node or the ext host",
                       description="Run tcpdump inside the target's network namespace: decoded lines live, or a "
                                   "pcap (-w) that Wireshark opens. Ctrl-C stops it (tcpdump's summary, the "
                                   "pcap flushed). --overlay node/NAME: the VXLAN packets on the node's LAN "
                                   "link (UDP 8472) with their inner headers decoded.")
    s.add_argument("target", metavar="POD|node/NAME|ext")
    s.add_argument("-i", "--interface", metavar="IFACE", help="interface (default eth0: the pod's, or the "
                                                            "node's / ext host's LAN link; any: all of them)")
    s.add_argument("-f", "--filter", metavar="BPF", default="", help="tcpdump's filter, e.g. 'tcp port 80'")
    s.add_argument("-c", "--count", type=int, metavar="N", help="stop after N packets")
    s.add_argument("-w", "--write", metavar="FILE.pcap", help="write a pcap instead of printing")
    s.add_argument("--overlay", action="store_true", help="a node's VXLAN traffic, inner headers decoded")
    s.set_defaults(run=("capture", "cmd_capture"))

    s = sub.add_parser("graph", parents=[common], help="draw the cluster: LAN, nodes, tunnels, pods, Services",
                       description="The cluster as a picture: the LAN, the nodes with their podCIDR, the VXLAN "
                                   "tunnels, pods with their IPs by node and namespace, Services with their "
                                   "endpoints, and the pods NetworkPolicies isolate.")
    s.add_argument("-o", "--output", choices=["svg", "dot", "mermaid", "json"],
                   help="format (default: from -w's extension, else dot)")
    s.add_argument("-w", "--write", metavar="FILE", help="write to FILE instead of stdout")
    s.set_defaults(run=("graph", "cmd_graph"))

    s = sub.add_parser("link", parents=[common], help="impair a node's LAN link: loss, rate (set, show, reset)")
    lsub = s.add_subparsers(dest="link_cmd", metavar="set|show|reset", required=True)
    r = lsub.add_parser("set", parents=[common], help="loss and/or a rate cap on a node's LAN link, both ways",
                        description="Impair node/NAME's link to the LAN in both directions: --loss drops that "
                                    "share of packets at random (nftables numgen), --rate shapes to that rate "
                                    "(tbf). Options not given keep their value; --loss 0 or --rate none clears "
                                    "one. --delay is refused: this kernel has no netem.")
    r.add_argument("node", metavar="node/NAME")
    r.add_argument("--loss", metavar="PCT", help="e.g. 5%% (0 clears)")
    r.add_argument("--rate", metavar="RATE", help="e.g. 10mbit, 512kbit (none clears)")
    r.add_argument("--delay", metavar="TIME", help="not available on this kernel (no netem): refused")
    r.set_defaults(run=("link", "cmd_link_set"))
    r = lsub.add_parser("show", parents=[common], help="each node's link impairments as the kernel has them")
    r.add_argument("nodes", nargs="*", metavar="node/NAME")
    r.set_defaults(run=("link", "cmd_link_show"))
    r = lsub.add_parser("reset", parents=[common], help="remove the impairments (every node's without NAME)")
    r.add_argument("nodes", nargs="*", metavar="node/NAME")
    r.set_defaults(run=("link", "cmd_link_reset"))

    s = sub.add_parser("lab", parents=[common], help="labs: a cluster, manifests and checked exercises (knet lab list)",
                       description="A lab is a folder: lab.yaml (its cluster, manifests, exercises with checks) and a "
                                   "README.md. LAB is a shipped lab's name (knet lab list) or a folder. The lab's "
                                   "cluster is lab-<name> unless --cluster names another.")
    lsub = s.add_subparsers(dest="lab_cmd", metavar="list|up|check|run|down", required=True)
    r = lsub.add_parser("list", parents=[common], help="the shipped labs")
    r.set_defaults(run=("lab", "cmd_lab_list"))
    for verb, text in (("up", "create the lab's cluster, apply its manifests, wait for them, print the first exercise"),
                       ("check", "run the checks: pass or fail each, with what was expected and seen"),
                       ("run", "up, every exercise's commands and checks, down (exit 1 on a failure): for CI"),
                       ("down", "delete the lab's cluster")):
        r = lsub.add_parser(verb, parents=[common, ctxopt], help=text)
        r.add_argument("lab", metavar="LAB")
        if verb == "check":
            r.add_argument("--exercise", type=int, metavar="N", help="only exercise N (from 1)")
        if verb in ("up", "run"):
            r.add_argument("--timeout", type=float, default=120, help="seconds for the cluster and manifests (default 120)")
        r.set_defaults(run=("lab", f"cmd_lab_{verb}"))

    # Machine mode (knet/machine.py): this machine is a node, as kubeadm init/join/reset.
    s = sub.add_parser("init", parents=[common], help="make this machine a cluster's control plane; prints knet join",
                       description="Run the control plane on this machine (the API over TLS on its address:6443) "
                                   "and make the machine itself its first node; print the knet join command.")
    s.add_argument("file", nargs="?", metavar="CLUSTER_FILE", help="a cluster file (networking, knet settings)")
    s.add_argument("--advertise-address", metavar="IP", help="this machine's address the nodes reach "
                                                             "(default: the default route's interface's)")
    s.add_argument("--node-name", metavar="NAME", help="this node's name (default: the hostname)")
    s.add_argument("--token", metavar="ID.SECRET", help="the bootstrap token to publish (default: a new one)")
    s.add_argument("--timeout", type=float, default=120, help="seconds to wait for the node (default 120)")
    s.set_defaults(run=("init", "cmd_init"))
    s = sub.add_parser("join", parents=[common], help="make this machine a worker node of the cluster at SERVER",
                       description="Join the cluster whose control plane is SERVER[:6443], with the token and CA "
                                   "hash knet init printed.")
    s.add_argument("server", metavar="SERVER")
    s.add_argument("--token", metavar="ID.SECRET", help="the bootstrap token")
    s.add_argument("--discovery-token-ca-cert-hash", "--ca-cert-hash", dest="ca_cert_hash", metavar="sha256:HEX",
                   help="the hash of the cluster CA's public key")
    s.add_argument("--discovery-token-unsafe-skip-ca-verification", dest="unsafe_skip_ca", action="store_true",
                   help="trust the CA that cluster-info, signed with the token, carries, without the hash")
    s.add_argument("--node-name", metavar="NAME", help="this node's name (default: the hostname)")
    s.add_argument("--address", metavar="IP", help="this node's address (default: the one that reaches SERVER)")
    s.add_argument("--timeout", type=float, default=120, help="seconds to wait for the node (default 120)")
    s.set_defaults(run=("join", "cmd_join"))
    s = sub.add_parser("reset", parents=[common], help="remove what knet init or join made on this machine")
    s.set_defaults(run=("reset", "cmd_reset"))
    s = sub.add_parser("token", parents=[common], help="bootstrap tokens for knet join (create, list, delete)")
    tsub = s.add_subparsers(dest="token_cmd", metavar="create|list|delete", required=True)
    r = tsub.add_parser("create", parents=[common], help="a new bootstrap token (printed), signed into cluster-info")
    r.add_argument("token", nargs="?", metavar="TOKEN", help="the token to make (default: a new one)")
    r.add_argument("--ttl", default="24h", help="its lifetime, e.g. 24h, 1h30m; 0: never expires (default 24h)")
    r.add_argument("--description", default="", help="a note shown by knet token list")
    r.add_argument("--groups", default="", help="extra groups (default: system:bootstrappers:kubeadm:default-node-token)")
    r.add_argument("--print-join-command", action="store_true", help="print the whole knet join command")
    r.set_defaults(run=("token", "cmd_token_create"))
    r = tsub.add_parser("list", parents=[common], help="the bootstrap tokens")
    r.set_defaults(run=("token", "cmd_token_list"))
    r = tsub.add_parser("delete", parents=[common], help="delete bootstrap tokens: joining with them is refused")
    r.add_argument("tokens", nargs="+", metavar="TOKEN|ID")
    r.set_defaults(run=("token", "cmd_token_delete"))

    s = sub.add_parser("version", parents=[common], help="print the client and server versions")
    s.set_defaults(run=("cluster", "cmd_version"))

    s = sub.add_parser("kubeconfig", parents=[common], help="print the cluster's kubeconfig (for kubectl)",
                       description="Print a kubeconfig for the cluster (context knet-<cluster>: the API server "
                                   "on 127.0.0.1, the cluster CA, the admin's client certificate), as kind get "
                                   "kubeconfig does. knet up already merged it into your kubeconfig.")
    s.add_argument("--name", dest="cluster", metavar="NAME", default=argparse.SUPPRESS,
                   help="cluster name (as --cluster)")
    s.add_argument("--user", metavar="NAME", help="a new client certificate for this user (CN=NAME), not the admin's")
    s.add_argument("--group", metavar="G", action="append", default=[],
                   help="a group of --user (O=G; repeat for more)")
    s.set_defaults(run=("cluster", "cmd_kubeconfig"))
    if only and not sub.matched:
        return build_parser()
    return p


def main(argv: list[str] | None = None, client: Client | None = None) -> int:
    """Run one command; its exit code. `client`, if given, is the API client
    the command uses instead of connecting to the cluster by name (tests)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(command_named(argv))
    command = None
    if "--" in argv and "exec" in argv[:argv.index("--")]:
        # Everything after `--` belongs to the command, flags included (kubectl's rule).
        cut = argv.index("--")
        argv, command = argv[:cut], argv[cut + 1:]
    args = parser.parse_args(argv)
    if command is not None:
        args.command = (args.command or []) + command
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        module, function = args.run
        run = getattr(__import__(f"knet.cli.{module}", fromlist=[function]), function)
        code = run(args, _connector(args, client)) or 0
        sys.stdout.flush()  # here, not at exit: a closed pipe is then caught below
        return code
    except CliError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ApiError as e:
        print(f"Error from server ({e.reason}): {e.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError as e:
        if _stdout_broken():  # `knet get pods | head -1`: quiet, as a Go program dies of SIGPIPE
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            return 141
        return _unexpected(e, args)
    except Exception as e:  # the backstop: one line, never a traceback unless asked for
        return _unexpected(e, args)


def _connector(args: argparse.Namespace, client: Client | None) -> Connect:
    """The command's `connect`: the given client, or one to the cluster named
    by --cluster / $KNET_CLUSTER, made on first use and kept for the command."""
    made: list[Client] = [client] if client is not None else []

    def connected() -> Client:
        if not made:
            made.append(connect(args))
        return made[0]
    return connected


def _stdout_broken() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll says POLLERR)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))
    except (OSError, ValueError):
        return False


def error_line(e: BaseException) -> str:
    """One line for an error no command turned into a message of its own."""
    from knet.api.client import ProtocolError

    if isinstance(e, (ConnectionError, ProtocolError)) and e.args and isinstance(e.args[0], str) and len(e.args) == 1:
        return f"error: {e}"  # the client's own wording (Unreachable, ProtocolError)
    if isinstance(e, OSError) and e.strerror:
        where = f": {e.filename}" if e.filename else ""
        return f"error: {e.strerror.lower()}{where}"
    if isinstance(e, MemoryError):
        return "error: out of memory"
    text = " ".join(str(e).split())
    if len(text) > 200:
        text = text[:200] + "..."
    return f"error: unexpected {type(e).__name__}{': ' + text if text else ''} (a bug in knet: run again with " \
           "-v or KNET_DEBUG=1 for the traceback)"


def _unexpected(e: BaseException, args) -> int:
    if getattr(args, "verbose", False) or os.environ.get("KNET_DEBUG", "") not in ("", "0"):
        import traceback

        traceback.print_exception(e)
    try:
        print(error_line(e), file=sys.stderr)
    except Exception:
        pass
    return 1

