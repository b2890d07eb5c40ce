"""nftables through libnftables (Debian's python3-nftables).

Every change is one document, which libnftables applies as a single
transaction: it lands whole or not at all. Small fixed tables go as JSON;
the proxy's table goes as nft's text syntax, which libnftables parses about
2.4x faster at 10,000 Services (kube-proxy feeds `nft -f` text too). It
acts on the network namespace of the calling process (knet's agents live
inside their node's namespace).
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


def run(script: str) -> None:
    """Apply an nft script (`nft -f` syntax) as one transaction."""
    rc, out, err = _ctx().cmd(script)
    if rc != 0:
        raise NftError(f"nft transaction failed: {_first_error(err) or out}")


def _first_error(err: str) -> str:
    """nft prints each error, the offending line and a marker line: keep the first error and its line, on one line."""
    lines = [x for x in err.strip().splitlines() if x.strip()]
    if len(lines) >= 2:
        return f"{lines[0].strip()} (at: {lines[1].strip()[:160]})"
    return lines[0].strip() if lines else ""


def list_ruleset() -> dict:
    rc, out, err = _ctx().cmd("list ruleset")
    if rc != 0:
        raise NftError(err)
    return json.loads(out) if out else {"nftables": []}


def table_objects(family: str, table: str) -> dict[str, set[str]]:
    """Names of the chains, sets and maps a table has now (empty if it has none)."""
    out: dict[str, set[str]] = {"chain": set(), "set": set(), "map": set()}
    for kind in out:  # `list chains` prints no rules: cheap at 10,000 Services
        rc, text, _err = _ctx().cmd(f"list {kind}s {family}")
        if rc != 0 or not text:
            continue
        for item in json.loads(text).get("nftables", []):
            if kind in item and item[kind].get("table") == table:
                out[kind].add(item[kind]["name"])
    return out
