"""knet reset: remove from this machine everything knet init or knet join made (knet.machine),
as kubeadm reset does; safe to run again."""

from __future__ import annotations

import argparse

from knet.cli.common import CliError, Connect, cluster_name, require_root


def cmd_reset(args: argparse.Namespace, connect: Connect) -> int:
    require_root()
    from knet.cluster import ClusterError
    from knet.machine import MachineError, reset

    try:
        reset(cluster_name(args), say=print)
    except (MachineError, ClusterError, OSError) as e:
        raise CliError(str(e)) from None
    return 0
