"""knet join: this machine becomes a worker node of the cluster at SERVER (knet.machine):
the CA checked against its hash, the bootstrap token exchanged for the node's certificate,
the node agent started as the machine's own, as kubeadm join does."""

from __future__ import annotations

import argparse

from knet.cli.common import CliError, Connect, cluster_name, require_root


def cmd_join(args: argparse.Namespace, connect: Connect) -> int:
    require_root()
    from knet.api.bootstraptoken import BootstrapError
    from knet.cluster import ClusterError
    from knet.machine import MachineError, join

    if not args.token:
        raise CliError("--token: Required value: the bootstrap token knet init printed")
    if not args.ca_cert_hash and not args.unsafe_skip_ca:
        raise CliError("--discovery-token-ca-cert-hash: Required value: the CA hash knet init printed "
                       "(or --discovery-token-unsafe-skip-ca-verification)")
    try:
        took = join(cluster_name(args), args.server, args.token, args.ca_cert_hash or None, args.node_name, args.address,
                    say=print, timeout=args.timeout)
    except (MachineError, ClusterError, BootstrapError, OSError, ValueError) as e:
        raise CliError(str(e)) from None
    print(f"This machine joined the cluster in {took:.2f}s. On the control plane: knet get nodes")
    return 0
