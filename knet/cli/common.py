"""What every command module shares: its one error type, the cluster it acts
on, the API client it talks through, and kubectl's ways of naming objects.

Standard library only at the top: this is on the start-up path of every call.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

# typing.TYPE_CHECKING without importing typing: names for annotations only, at no start-up cost.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from knet.api.client import Client
    from knet.api.resources import Resource
    from knet.config import ClusterConfig

# How a command gets its API client: called only once the command needs the
# server, so that a bad file or flag is reported before an absent cluster is.
# main() connects by the cluster's name; tests hand in a client of their own.
Connect = Callable[[], "Client"]


class CliError(Exception):
    """A refusal the command words itself: main() prints `error: <text>`, exit 1."""


def cluster_name(args: argparse.Namespace) -> str:
    return getattr(args, "cluster", None) or os.environ.get("KNET_CLUSTER") or "knet"


def connect(args: argparse.Namespace) -> Client:
    if getattr(args, "context", None) or getattr(args, "kubeconfig_file", None):
        from knet.cli.kubecontext import client_for  # a cluster anywhere, as kubectl names it

        client = client_for(args.context, args.kubeconfig_file)
        if getattr(args, "namespace", "") is None and client.context_namespace:
            args.namespace = client.context_namespace  # no -n: the context's namespace, as kubectl takes it
        return prepare(client)
    from knet.api.client import NotRunning, for_cluster

    try:
        client = for_cluster(cluster_name(args))
    except NotRunning as e:
        raise CliError(_worker_hint(cluster_name(args)) or str(e)) from None
    return prepare(client)


def _worker_hint(cluster: str) -> str | None:
    """A joined worker machine has the cluster's state but no admin credential (only its node's,
    which may not read the cluster): say where one is, as kubeadm leaves admin.conf on the
    control plane."""
    from knet.paths import state_dir

    if not os.path.exists(os.path.join(state_dir(cluster), "machine.json")):
        return None
    return (f'this machine is a worker node of cluster "{cluster}" (knet join) and holds no admin credential: copy '
            f"admin.conf from the control-plane machine ({os.path.join(state_dir(cluster), 'admin.conf')} there) "
            "and name it with --kubeconfig FILE (or $KUBECONFIG and --context)")


def prepare(client: Client) -> Client:
    """Set a client up as kubectl talks to a server: strict field validation
    (an unknown or duplicate field is an error) and warnings printed."""
    client.field_validation = "Strict"
    client.on_warning = warning_printer()
    return client


def warning_printer() -> Callable[[str], None]:
    """Prints the server's `Warning:` headers on stderr, each once per command
    (as kubectl's warning writer does)."""
    printed: set[str] = set()

    def warn(text: str) -> None:
        if text not in printed:
            printed.add(text)
            print(f"Warning: {text}", file=sys.stderr)
    return warn


def read_cluster_file(args: argparse.Namespace) -> tuple[dict | None, ClusterConfig]:
    """The cluster file args.file names, checked (its document and config), or the default
    cluster without one; a CliError naming the file. knet up's and knet init's."""
    from knet.config import ConfigError, default_config, parse_cluster

    try:
        if not args.file:
            return None, default_config(cluster_name(args))
        from knet.api.manifests import ManifestError, read_yaml

        try:
            doc = read_yaml(args.file)
        except ManifestError as e:
            raise CliError(str(e)) from None
        if not isinstance(doc, (dict, type(None))):
            raise CliError(f"cluster file {args.file}: expected a mapping (kind: Cluster), got {type(doc).__name__}")
        return doc, parse_cluster(doc, getattr(args, "cluster", None) or (doc or {}).get("name") or "knet")
    except (ConfigError, OSError) as e:
        raise CliError(f"cluster file {args.file}: {e}" if args.file else str(e)) from None


def require_root() -> None:
    if os.geteuid() != 0:
        raise CliError("knet needs root (network namespaces, mounts): run it with sudo")


def resource_for(obj: dict, source: str | None = None) -> Resource:
    from knet.api.resources import by_kind

    res = by_kind(obj.get("kind", ""))
    if res is None or obj.get("apiVersion") != res.api_version:
        raise CliError((f'unable to recognize "{source}": ' if source else "")
                       + f'no matches for kind "{obj.get("kind")}" in version "{obj.get("apiVersion")}"')
    return res


def namespace_for(res: Resource, obj: dict, args: argparse.Namespace) -> str | None:
    if not res.namespaced:
        return None
    body = obj.get("metadata", {}).get("namespace")
    if body and args.namespace and body != args.namespace:
        raise CliError(f"the namespace from the provided object \"{body}\" does not match the namespace "
                       f"\"{args.namespace}\". You must pass '--namespace={body}' to perform this operation.")
    return body or args.namespace or "default"


def label(res: Resource, name: str) -> str:
    """kubectl's name for an object in messages: deployment.apps/web, pod/web-0."""
    return f"{res.singular}{'.' + res.group if res.group else ''}/{name}"


def kind_name(text: str, default_kind: str | None = None) -> tuple[Resource, str]:
    from knet.api.resources import lookup

    kind, _, name = text.partition("/")
    if not name:
        if default_kind is None:
            raise CliError(f"expected KIND/NAME, got {text!r}")
        kind, name = default_kind, text
    res = lookup(kind)
    if res is None:
        raise CliError(f'the server doesn\'t have a resource type "{kind}"')
    return res, name
