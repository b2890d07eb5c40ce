"""Impairments of a node's LAN link: random loss and a rate cap, both directions.

A node's link is its veth to the LAN: `eth0` in the node's namespace, and the
bridge's port to it in the fabric namespace. Mininet's TCLink configures both
ends of a link, so an impaired link here is impaired both ways too.

Why these mechanisms: the kernel knet runs on has no netem (and no fq, no BPF
classifier), which is what `tc ... netem loss/delay` would use. So:
- loss is an nftables table `netdev knet-link` in the node's namespace with one
  chain on eth0's egress hook (what leaves the node) and one on its ingress hook
  (what arrives): `numgen random mod 10000 < N drop`, N the loss in hundredths
  of a percent, with a counter so `knet link show` can say what it dropped. The
  netdev hooks sit below IP, so VXLAN-encapsulated pod traffic, the node's own
  traffic and ARP are all lost alike, as on a bad cable;
- rate is a tbf qdisc (a shaper: packets wait in its queue, as behind a slow
  link, rather than being dropped at once as a policer would) at the root of
  eth0 (leaving the node) and of the bridge port in the fabric namespace
  (arriving at the node);
- delay has no real mechanism here; asking for it is an error that says so,
  never a silent no-op.

The parsing is pure (the cluster file's `nodes[].link` and `knet link set`
share it, with the field named in each error); pyroute2 and nftables are
imported only by the functions that touch the kernel.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from knet.net import ns

TABLE = "knet-link"
FAMILY = "netdev"
NODE_IFACE = "eth0"
LOSS_SCALE = 10000  # numgen's modulus: loss to a hundredth of a percent
MIN_RATE = 8_000  # bits/s: tbf's burst must hold a full frame, and below this a link is useless
MAX_RATE = 10_000_000_000  # tbf's 32-bit byte rate (without rate64) ends near 34 gbit; keep well inside
TBF_HANDLE = 0x10000  # 1:
TBF_LATENCY = "50ms"  # how long a packet may wait in the shaper's queue before it is dropped

_RATE_UNITS = {
    "bit": 1, "kbit": 1_000, "mbit": 1_000_000, "gbit": 1_000_000_000,
    "bps": 8, "kbps": 8_000, "mbps": 8_000_000, "gbps": 8_000_000_000,
}
_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_LOSS_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$")
_DELAY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s)\s*$")


class ImpairError(ValueError):
    """A value that cannot be used; the message names the field, as the API's errors do."""


@dataclass(frozen=True)
class Impairment:
    """What a link should do: loss in percent (None: no loss), rate in bits/s (None: line rate)."""

    loss: float | None = None
    rate: int | None = None

    def __bool__(self) -> bool:
        return self.loss is not None or self.rate is not None

    def to_config(self) -> dict:
        """The cluster file's form: {"loss": "5%", "rate": "10mbit"}, only what is set."""
        out: dict = {}
        if self.loss is not None:
            out["loss"] = format_loss(self.loss)
        if self.rate is not None:
            out["rate"] = format_rate(self.rate)
        return out


@dataclass(frozen=True)
class LinkState:
    """A link as the kernel has it now, with what the impairments dropped so far."""

    impairment: Impairment
    lost_out: int = 0  # dropped by the loss rule leaving the node
    lost_in: int = 0  # dropped by the loss rule arriving at the node
    shaped_drops: int = 0  # dropped by the shapers' queues (both directions)


# -- parsing (pure) ------------------------------------------------------------------------


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def parse_loss(value: object, field: str) -> float | None:
    """"5%", "0.5%", "5" or a number: percent, 0-100; 0 means no loss (None)."""
    m = _LOSS_RE.match(str(value)) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None
    if not m:
        raise ImpairError(f'{field}: Invalid value: "{_text(value)}": must be a percentage such as "5%"')
    pct = float(m[1])
    if not 0 <= pct <= 100:
        raise ImpairError(f'{field}: Invalid value: "{_text(value)}": must be between 0% and 100%')
    scaled = round(pct * LOSS_SCALE / 100)
    if pct and not scaled:
        raise ImpairError(f'{field}: Invalid value: "{_text(value)}": the smallest loss is 0.01%')
    return scaled * 100 / LOSS_SCALE if scaled else None


def parse_rate(value: object, field: str) -> int:
    """tc's rate syntax: "10mbit", "512kbit", "1gbit", "100kbps" (bytes/s), a bare number is bits/s."""
    m = _RATE_RE.match(value) if isinstance(value, str) else None
    if isinstance(value, int) and not isinstance(value, bool):
        m = _RATE_RE.match(str(value))
    unit = (m[2].lower() or "bit") if m else ""
    if not m or unit not in _RATE_UNITS:
        raise ImpairError(f'{field}: Invalid value: "{_text(value)}": must be a rate such as "10mbit" '
                          "(units: bit, kbit, mbit, gbit, or bps, kbps, mbps, gbps for bytes per second)")
    bps = int(float(m[1]) * _RATE_UNITS[unit])
    if not MIN_RATE <= bps <= MAX_RATE:
        raise ImpairError(f'{field}: Invalid value: "{_text(value)}": must be between 8kbit and 10gbit')
    return bps


def refuse_delay(value: object, field: str) -> None:
    """Always an error: there is no delay mechanism in this kernel (no netem), and a link
    that says it is delayed but is not would make every measurement taken over it a lie."""
    if not (isinstance(value, str) and _DELAY_RE.match(value)):
        raise ImpairError(f'{field}: Invalid value: "{_text(value)}": must be a duration such as "20ms"')
    raise ImpairError(f'{field}: Unsupported value: "{value}": delay is not available here: this kernel '
                      "has no netem qdisc (tc ... netem delay), the only way to hold packets back for a "
                      "time; loss and rate are emulated (nftables numgen, tbf)")


def parse_link(doc: object, field: str) -> Impairment:
    """A cluster file's `nodes[i].link` mapping: {loss, rate}; delay is refused as above."""
    if doc is None:
        return Impairment()
    if not isinstance(doc, dict):
        raise ImpairError(f"{field}: Invalid value: must be a mapping with loss and/or rate")
    for key in doc:
        if key not in ("loss", "rate", "delay"):
            raise ImpairError(f'{field}.{key}: Unsupported value: "{key}": supported fields: "loss", "rate"')
    if "delay" in doc:
        refuse_delay(doc["delay"], f"{field}.delay")
    loss = parse_loss(doc["loss"], f"{field}.loss") if "loss" in doc else None
    rate = parse_rate(doc["rate"], f"{field}.rate") if "rate" in doc else None
    return Impairment(loss, rate)


def format_loss(pct: float) -> str:
    return f"{pct:g}%"


def format_rate(bps: int) -> str:
    for unit, scale in (("gbit", 1_000_000_000), ("mbit", 1_000_000), ("kbit", 1_000)):
        if bps >= scale and bps % scale == 0:
            return f"{bps // scale}{unit}"
    if bps >= 1_000_000:
        return f"{bps / 1_000_000:g}mbit"
    return f"{bps}bit"


def loss_ruleset(iface: str, loss: float) -> str:
    """The loss table as one nft transaction (replacing any earlier one)."""
    n = round(loss * LOSS_SCALE / 100)
    rule = f'numgen random mod {LOSS_SCALE} < {n} counter drop comment "knet link loss {format_loss(loss)}"'
    return "\n".join([
        f"add table {FAMILY} {TABLE}",
        f"delete table {FAMILY} {TABLE}",
        f"table {FAMILY} {TABLE} {{",
        f'  chain egress {{ type filter hook egress device "{iface}" priority -500; policy accept; }}',
        f'  chain ingress {{ type filter hook ingress device "{iface}" priority -500; policy accept; }}',
        "}",
        f"add rule {FAMILY} {TABLE} egress {rule}",
        f"add rule {FAMILY} {TABLE} ingress {rule}",
        "",
    ])


def tbf_burst(bps: int) -> int:
    """Bytes the shaper may send at once: 10 ms at the rate, at least two full frames
    (a burst smaller than a frame would never let that frame through)."""
    return max(3200, bps // 8 // 100)


def loss_from_listing(listing: dict) -> tuple[float | None, int, int]:
    """(loss %, dropped leaving, dropped arriving) from `nft -j list table netdev knet-link`."""
    loss = None
    counts = {"egress": 0, "ingress": 0}
    for item in listing.get("nftables", []):
        rule = item.get("rule")
        if not rule:
            continue
        for expr in rule.get("expr", []):
            match = expr.get("match")
            if match and isinstance(match.get("left"), dict) and "numgen" in match["left"]:
                mod = match["left"]["numgen"].get("mod") or LOSS_SCALE
                loss = round(float(match["right"]) * 100 / mod, 4)
            if "counter" in expr and rule.get("chain") in counts:
                counts[rule["chain"]] += int(expr["counter"].get("packets", 0))
    return loss, counts["egress"], counts["ingress"]


# -- the kernel ----------------------------------------------------------------------------


def _nft_in(netns: str, commands: list[str]) -> list[tuple[int, str, str]]:
    """Run nft commands in a named namespace (libnftables talks to the namespace it is made in)."""
    import nftables

    out = []
    with ns.entered(net=ns.netns_path(netns)):
        ctx = nftables.Nftables()
        ctx.set_json_output(True)
        for cmd in commands:
            out.append(ctx.cmd(cmd))
    return out


def _set_loss(netns: str, iface: str, loss: float | None) -> None:
    from knet.net.nft import NftError

    if loss is None:
        _nft_in(netns, [f"add table {FAMILY} {TABLE}", f"delete table {FAMILY} {TABLE}"])
        return
    ((rc, out, err),) = _nft_in(netns, [loss_ruleset(iface, loss)])
    if rc != 0:
        raise NftError(f"nft in {netns}: {err.strip() or out}")


def _set_rate(netns: str, iface: str, rate: int | None) -> None:
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    with IPRoute(netns=netns) as ipr:
        idx = ipr.link_lookup(ifname=iface)[0]
        if _tbf_rate(ipr, idx) is not None:
            ipr.tc("del", index=idx, handle=TBF_HANDLE, root=True)
        if rate is None:
            return
        try:
            ipr.tc("add", "tbf", index=idx, handle=TBF_HANDLE, rate=rate // 8, burst=tbf_burst(rate),
                   latency=TBF_LATENCY)
        except NetlinkError as e:
            raise OSError(e.code, f"tbf on {iface} in {netns}: {e}") from None


def _tbf(ipr, idx: int):
    for q in ipr.get_qdiscs(index=idx):
        if q.get_attr("TCA_KIND") == "tbf" and q["parent"] == 0xFFFFFFFF:
            return q
    return None


def _tbf_rate(ipr, idx: int) -> int | None:
    q = _tbf(ipr, idx)
    if q is None:
        return None
    return int(q.get_attr("TCA_OPTIONS").get_attr("TCA_TBF_PARMS")["rate"]) * 8


def _tbf_drops(ipr, idx: int) -> int:
    q = _tbf(ipr, idx)
    stats = q.get_attr("TCA_STATS2") if q is not None else None
    queue = stats.get_attr("TCA_STATS_QUEUE") if stats is not None else None
    return int(queue["drops"]) if queue is not None else 0


def apply(node_netns: str, fabric_netns: str, fabric_port: str, imp: Impairment) -> None:
    """Make the node's link do exactly `imp` (an empty Impairment clears it)."""
    _set_loss(node_netns, NODE_IFACE, imp.loss)
    _set_rate(node_netns, NODE_IFACE, imp.rate)
    _set_rate(fabric_netns, fabric_port, imp.rate)


def clear(node_netns: str, fabric_netns: str, fabric_port: str) -> None:
    apply(node_netns, fabric_netns, fabric_port, Impairment())


def read(node_netns: str, fabric_netns: str, fabric_port: str) -> LinkState:
    """The link as the kernel has it: the loss rule's numgen threshold and the shapers' rate,
    read back rather than remembered, so what is shown is what packets meet."""
    from pyroute2 import IPRoute

    ((rc, out, _err),) = _nft_in(node_netns, [f"list table {FAMILY} {TABLE}"])
    loss, lost_out, lost_in = loss_from_listing(json.loads(out)) if rc == 0 and out else (None, 0, 0)
    with IPRoute(netns=node_netns) as ipr:
        idx = ipr.link_lookup(ifname=NODE_IFACE)[0]
        rate_out, drops = _tbf_rate(ipr, idx), _tbf_drops(ipr, idx)
    with IPRoute(netns=fabric_netns) as ipr:
        idx = ipr.link_lookup(ifname=fabric_port)[0]
        rate_in, drops_in = _tbf_rate(ipr, idx), _tbf_drops(ipr, idx)
    rate = rate_out if rate_out is not None else rate_in
    return LinkState(Impairment(loss, rate), lost_out, lost_in, drops + drops_in)
