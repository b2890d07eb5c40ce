"""knet init: this machine becomes a cluster's control plane and first node (knet.machine),
and the command prints the `knet join` line for the others, as kubeadm init does."""

from __future__ import annotations

import argparse

from knet.cli.common import CliError, Connect, cluster_name, require_root


def cmd_init(args: argparse.Namespace, connect: Connect) -> int:
    require_root()
    from knet.api.bootstraptoken import BootstrapError
    from knet.cluster import ClusterError
    from knet.config import ConfigError, parse_cluster
    from knet.machine import MachineError, admin_conf_path, init

    doc = None
    try:
        if args.file:
            from knet.api.manifests import ManifestError, read_yaml

            try:
                doc = read_yaml(args.file)
            except ManifestError as e:
                raise CliError(str(e)) from None
            if not isinstance(doc, (dict, type(None))):
                raise CliError(f"cluster file {args.file}: expected a mapping (kind: Cluster), got {type(doc).__name__}")
        cfg = parse_cluster(doc, getattr(args, "cluster", None) or (doc or {}).get("name") or cluster_name(args))
    except (ConfigError, OSError) as e:
        raise CliError(f"cluster file {args.file}: {e}" if args.file else str(e)) from None
    try:
        line = init(cfg, args.advertise_address, args.node_name, say=print, timeout=args.timeout, doc=doc,
                    token=args.token)
    except (MachineError, ClusterError, BootstrapError, OSError, ValueError) as e:
        raise CliError(str(e)) from None
    flag = f" --cluster {cfg.name}" if cfg.name != "knet" else ""
    print(f'\nYour cluster "{cfg.name}" is up: this machine is its control plane and node {cfg.machine}.\n'
          f"  knet get nodes{flag}\n  kubectl --kubeconfig {admin_conf_path(cfg.name)} get nodes\n\n"
          "Join any number of worker machines by running on each, as root:\n\n"
          f"  {line}\n")
    return 0
