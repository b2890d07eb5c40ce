"""knet link set / show / reset: impair a node's LAN link (Mininet's TCLink, tc netem's place).

The work is knet.net.impair's (loss by nftables numgen, rate by tbf, both directions of the
node's veth to the LAN); this module finds the node's namespaces from the cluster's saved config
and words the result. `show` reads the kernel back instead of a record, so it shows what packets
meet now, with what the impairments have dropped.
"""

from __future__ import annotations

import argparse
import sys

from knet.cli.common import CliError, Connect, cluster_name, require_root

TYPE_CHECKING = False
if TYPE_CHECKING:
    from knet.config import ClusterConfig


def _config(args: argparse.Namespace) -> ClusterConfig:
    import os

    from knet.config import load_saved
    from knet.net import ns

    try:
        cfg = load_saved(cluster_name(args))
    except OSError:
        raise CliError(f'cluster "{cluster_name(args)}" is not running') from None
    if not os.path.exists(ns.netns_path(cfg.fabric_netns)):
        raise CliError(f'cluster "{cfg.name}" has no LAN (is it up?)')
    return cfg


def _nodes(cfg: ClusterConfig, targets: list[str]) -> list[str]:
    """node/NAME (or NAME) for each target; every node when none is given."""
    if not targets:
        return [n.name for n in cfg.nodes]
    names = []
    for t in targets:
        name = t[5:] if t.startswith("node/") else t
        if name not in (n.name for n in cfg.nodes):
            raise CliError(f'nodes "{name}" not found (nodes: {", ".join(n.name for n in cfg.nodes)})')
        names.append(name)
    return names


def _where(cfg: ClusterConfig, node: str) -> tuple[str, str, str]:
    return cfg.node_netns(node), cfg.fabric_netns, cfg.lan_port(node)


def _describe(imp) -> str:
    from knet.net.impair import format_loss, format_rate

    parts = []
    if imp.loss is not None:
        parts.append(f"loss {format_loss(imp.loss)}")
    if imp.rate is not None:
        parts.append(f"rate {format_rate(imp.rate)}")
    return ", ".join(parts) or "no impairment"


def cmd_link_set(args: argparse.Namespace, connect: Connect) -> int:
    require_root()
    from knet.net import impair

    if args.loss is None and args.rate is None and args.delay is None:
        raise CliError("nothing to set: give --loss, --rate (or see knet link reset)")
    try:
        # Every value is checked before anything changes.
        if args.delay is not None:
            impair.refuse_delay(args.delay, "--delay")
        loss = impair.parse_loss(args.loss, "--loss") if args.loss is not None else None
        rate = None
        if args.rate is not None and args.rate.strip().lower() not in ("0", "none"):
            rate = impair.parse_rate(args.rate, "--rate")
    except impair.ImpairError as e:
        raise CliError(str(e)) from None
    cfg = _config(args)
    (node,) = _nodes(cfg, [args.node])
    where = _where(cfg, node)
    now = impair.read(*where).impairment
    want = impair.Impairment(loss if args.loss is not None else now.loss,
                             rate if args.rate is not None else now.rate)
    impair.apply(*where, want)
    print(f"node/{node} link: {_describe(want)}" + (" (both directions)" if want else ""))
    return 0


def cmd_link_show(args: argparse.Namespace, connect: Connect) -> int:
    require_root()
    from knet.net import impair

    cfg = _config(args)
    rows = [("NODE", "LOSS", "RATE", "LOST OUT", "LOST IN", "SHAPER DROPS")]
    for node in _nodes(cfg, args.nodes):
        st = impair.read(*_where(cfg, node))
        imp = st.impairment
        rows.append((node, impair.format_loss(imp.loss) if imp.loss is not None else "-",
                     impair.format_rate(imp.rate) if imp.rate is not None else "-",
                     str(st.lost_out), str(st.lost_in), str(st.shaped_drops)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        sys.stdout.write("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n")
    return 0


def cmd_link_reset(args: argparse.Namespace, connect: Connect) -> int:
    require_root()
    from knet.net import impair

    cfg = _config(args)
    for node in _nodes(cfg, args.nodes):
        impair.clear(*_where(cfg, node))
        print(f"node/{node} link reset")
    return 0
