"""nftables through libnftables' JSON API (Debian's python3-nftables).

Every change is one `nft -j` document, which libnftables applies as a single
transaction: it lands whole or not at all. It acts on the network namespace
of the calling process (knet's agents live inside their node's namespace).
"""

from __future__ import annotations

import json


class NftError(RuntimeError):
    pass


_nft = None


def _ctx():
    global _nft
    if _nft is None:
        import nftables

        _nft = nftables.Nftables()
        _nft.set_json_output(True)
        _nft.set_handle_output(True)
    return _nft


def apply(commands: list[dict]) -> None:
    """Apply a list of JSON commands as one transaction."""
    rc, out, err = _ctx().json_cmd({"nftables": commands})
    if rc != 0:
        raise NftError(f"nft transaction failed: {err.strip() or out}")


def list_ruleset() -> dict:
    rc, out, err = _ctx().cmd("list ruleset")
    if rc != 0:
        raise NftError(err)
    return json.loads(out) if out else {"nftables": []}


def table_objects(family: str, table: str) -> dict[str, set[str]]:
    """Names of the chains, sets and maps a table has now (empty if it has none)."""
    out: dict[str, set[str]] = {"chain": set(), "set": set(), "map": set()}
    rc, text, _err = _ctx().cmd(f"list table {family} {table}")
    if rc != 0 or not text:
        return out
    for item in json.loads(text).get("nftables", []):
        for kind in out:
            if kind in item and item[kind].get("table") == table:
                out[kind].add(item[kind]["name"])
    return out
