"""nftables through libnftables (Debian's python3-nftables), behind one
small seam.

`Interface` is all an engine asks of nftables: run this transaction, list
this table (knftables' Interface is the model). `Nft` is the real one;
`knet.net.nftfake.FakeNft` keeps an in-memory model of the tables instead,
so an engine's sync loop can be tested without root and a packet tracer can
read what was actually sent.

Every change is one document, which libnftables applies as a single
transaction: it lands whole or not at all. Small fixed tables go as JSON;
the proxy's table goes as nft's text syntax, which libnftables parses about
2.4x faster at 10,000 Services (kube-proxy feeds `nft -f` text too).
"""

from __future__ import annotations

import json
from typing import Protocol


class NftError(RuntimeError):
    pass


Transaction = str | list[dict]  # nft's text syntax (`nft -f`), or JSON commands


def empty_listing() -> dict[str, set[str]]:
    return {"chain": set(), "set": set(), "map": set()}


class Interface(Protocol):
    def run(self, transaction: Transaction) -> None:
        """Apply the transaction whole, or raise NftError and change nothing."""

    def list_table(self, family: str, table: str) -> dict[str, set[str]]:
        """Names of the table's chains, sets and maps now ("chain", "set",
        "map"; all empty if there is no such table)."""


class Nft:
    """The kernel's nftables. A libnftables context talks to the network
    namespace it was made in, so one is made here, at once: make an Nft
    inside the namespace it is for (knet's agents live in their node's)."""

    def __init__(self) -> None:
        import nftables

        self._ctx = nftables.Nftables()
        self._ctx.set_json_output(True)
        self._ctx.set_handle_output(True)

    def run(self, transaction: Transaction) -> None:
        if isinstance(transaction, str):
            rc, out, err = self._ctx.cmd(transaction)
            if rc != 0:
                raise NftError(f"nft transaction failed: {_first_error(err) or out}")
            return
        rc, out, err = self._ctx.json_cmd({"nftables": transaction})
        if rc != 0:
            raise NftError(f"nft transaction failed: {err.strip() or out}")

    def list_table(self, family: str, table: str) -> dict[str, set[str]]:
        out = empty_listing()
        for kind in out:  # `list chains` prints no rules: cheap at 10,000 Services
            rc, text, _err = self._ctx.cmd(f"list {kind}s {family}")
            if rc != 0 or not text:
                continue
            for item in json.loads(text).get("nftables", []):
                if kind in item and item[kind].get("table") == table:
                    out[kind].add(item[kind]["name"])
        return out


def _first_error(err: str) -> str:
    """nft prints each error, the offending line and a marker line: keep the first error and its line, on one line."""
    lines = [x for x in err.strip().splitlines() if x.strip()]
    if len(lines) >= 2:
        return f"{lines[0].strip()} (at: {lines[1].strip()[:160]})"
    return lines[0].strip() if lines else ""
