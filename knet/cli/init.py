"""knet init: this machine becomes a cluster's control plane and first node (knet.machine),
and the command prints the `knet join` line for the others, as kubeadm init does."""

from __future__ import annotations

import argparse

from knet.cli.common import CliError, Connect, read_cluster_file, require_root


def cmd_init(args: argparse.Namespace, connect: Connect) -> int:
    require_root()
    from knet.api.bootstraptoken import BootstrapError
    from knet.cluster import ClusterError
    from knet.machine import MachineError, admin_conf_path, init

    doc, cfg = read_cluster_file(args)
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
