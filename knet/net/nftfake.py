"""An in-memory nftables for tests (knftables' Fake is the model): it takes
the same transactions as knet.net.nft.Nft, records each one, and keeps a
model of the tables that a packet tracer can read.

The model is what an engine needs to be checked against, not nft itself:
chains with their hook line and rules as text, sets and maps with their
elements. It enforces the errors a sync loop must survive: a transaction
applies whole or not at all; deleting what does not exist, a chain that
still has rules or is jumped to, or jumping to a chain that does not exist
fails it. `fail_next` makes the next transactions fail, as a kernel that
refuses them would.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field

from knet.net.nft import NftError, Transaction, empty_listing


@dataclass
class FakeChain:
    hook: str = ""  # "type nat hook prerouting priority -100; policy accept;" for a base chain
    rules: list[str] = field(default_factory=list)


@dataclass
class FakeSet:
    kind: str  # "set" or "map"
    spec: str
    elements: dict[str, str] = field(default_factory=dict)  # key -> value ("" in a set)


@dataclass
class FakeTable:
    chains: dict[str, FakeChain] = field(default_factory=dict)
    sets: dict[str, FakeSet] = field(default_factory=dict)  # sets and maps, by name


_TARGET = re.compile(r"\b(?:jump|goto) ([\w-]+)")
_SET_REF = re.compile(r"@([\w-]+)")


class FakeNft:
    def __init__(self) -> None:
        self.tables: dict[tuple[str, str], FakeTable] = {}
        self.transactions: list[Transaction] = []  # every one received, applied or not
        self.failures: list[str] = []  # the next transactions fail with these messages

    # -- knet.net.nft.Interface ---------------------------------------------------

    def run(self, transaction: Transaction) -> None:
        self.transactions.append(transaction)
        if self.failures:
            raise NftError(f"nft transaction failed: {self.failures.pop(0)}")
        work = copy.deepcopy(self.tables)
        if isinstance(transaction, str):
            _Script(work).run(transaction)
        else:
            _run_json(work, transaction)
        _check_references(work)
        self.tables = work

    def list_table(self, family: str, table: str) -> dict[str, set[str]]:
        out = empty_listing()
        t = self.tables.get((family, table))
        if t:
            out["chain"] = set(t.chains)
            for name, s in t.sets.items():
                out[s.kind].add(name)
        return out

    # -- for tests ----------------------------------------------------------------

    def fail_next(self, message: str = "injected failure", times: int = 1) -> None:
        self.failures += [message] * times

    def table(self, family: str, name: str) -> FakeTable:
        """The model of one table (KeyError if it does not exist)."""
        return self.tables[(family, name)]


def _fail(msg: str) -> None:
    raise NftError(f"nft transaction failed: {msg}")


class _Script:
    """nft's text syntax, the subset knet writes: `add|flush|delete ...`
    commands and `table F T { ... }` blocks."""

    def __init__(self, tables: dict[tuple[str, str], FakeTable]):
        self.tables = tables

    def _table(self, family: str, name: str) -> FakeTable:
        t = self.tables.get((family, name))
        if t is None:
            _fail(f"No such file or directory: table {family} {name}")
        return t

    def run(self, script: str) -> None:
        lines = iter(script.splitlines())
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if m := re.fullmatch(r"table (\w+) ([\w-]+) \{", line):
                self._block(m[1], m[2], lines)
            else:
                self._command(line)

    def _block(self, family: str, name: str, lines) -> None:
        t = self.tables.setdefault((family, name), FakeTable())
        chain: FakeChain | None = None
        for raw in lines:
            line = raw.strip()
            if chain is not None:
                if line == "}":
                    chain = None
                elif line.startswith("type ") and line.endswith(";"):
                    chain.hook = line
                else:
                    chain.rules.append(line)
            elif line == "}":
                return
            elif m := re.fullmatch(r"chain ([\w-]+) \{", line):
                chain = t.chains.setdefault(m[1], FakeChain())
            elif m := re.fullmatch(r"(set|map) ([\w-]+) \{ (.*) \}", line):
                t.sets.setdefault(m[2], FakeSet(m[1], m[3]))
            elif line:
                _fail(f"syntax error in table block: {line}")
        _fail("syntax error: table block not closed")

    def _command(self, line: str) -> None:
        m = re.fullmatch(r"(add|insert|flush|delete) (table|chain|rule|set|map|element) (\w+) ([\w-]+)(?: (.*))?", line)
        if not m:
            _fail(f"syntax error: {line}")
        verb, what, family, name, rest = m[1], m[2], m[3], m[4], m[5] or ""
        if what == "table":
            if verb == "add":
                self.tables.setdefault((family, name), FakeTable())
            elif verb == "flush":  # rules go; sets and maps keep their elements, as in nft
                for c in self._table(family, name).chains.values():
                    c.rules.clear()
            else:
                self._table(family, name)
                del self.tables[(family, name)]
            return
        t = self._table(family, name)
        obj, _, body = rest.partition(" ")
        if what == "rule":
            if obj not in t.chains:
                _fail(f"No such file or directory: chain {obj}")
            if verb == "insert":  # at the head of the chain, as `nft insert rule` without a position
                t.chains[obj].rules.insert(0, body)
            else:
                t.chains[obj].rules.append(body)
        elif verb == "insert":
            _fail(f"syntax error: {line}")
        elif what == "chain":
            self._chain(t, verb, obj, body)
        elif what in ("set", "map"):
            self._set(t, verb, what, obj, body)
        else:
            self._element(t, verb, obj, body)

    def _chain(self, t: FakeTable, verb: str, name: str, body: str) -> None:
        if verb == "add":
            c = t.chains.setdefault(name, FakeChain())
            if body:
                c.hook = body.strip("{} ")
            return
        if name not in t.chains:
            _fail(f"No such file or directory: chain {name}")
        if verb == "flush":
            t.chains[name].rules.clear()
            return
        if t.chains[name].rules:
            _fail(f"Device or resource busy: chain {name} is not empty")
        del t.chains[name]

    def _set(self, t: FakeTable, verb: str, kind: str, name: str, body: str) -> None:
        if verb == "add":
            t.sets.setdefault(name, FakeSet(kind, body.strip("{} ")))
            return
        if name not in t.sets or t.sets[name].kind != kind:
            _fail(f"No such file or directory: {kind} {name}")
        if verb == "flush":
            t.sets[name].elements.clear()
        else:
            del t.sets[name]

    def _element(self, t: FakeTable, verb: str, name: str, body: str) -> None:
        if name not in t.sets:
            _fail(f"No such file or directory: set {name}")
        s = t.sets[name]
        for item in body.strip()[1:-1].split(","):
            key, _, value = (x.strip() for x in item.partition(" : "))
            key = re.sub(r'\s*comment "[^"]*"$', "", key)  # an element's comment is not part of its key
            if not key:
                continue
            if verb == "add":
                s.elements[key] = value
            elif key in s.elements:
                del s.elements[key]
            else:
                _fail(f"No such file or directory: element {key} in {name}")


def _check_references(tables: dict[tuple[str, str], FakeTable]) -> None:
    """A rule that jumps to a chain or names a set that does not exist is
    refused, as the kernel refuses it (so is deleting a set a rule uses)."""
    for t in tables.values():
        for chain in t.chains.values():
            for rule in chain.rules:
                for target in _TARGET.findall(rule):
                    if target not in t.chains:
                        _fail(f"No such file or directory: jump to chain {target}")
                for name in _SET_REF.findall(rule.split(' comment "')[0]):
                    if name not in t.sets:
                        _fail(f"No such file or directory: set {name}")
        for s in t.sets.values():
            for value in s.elements.values():
                for target in _TARGET.findall(value):
                    if target not in t.chains:
                        _fail(f"No such file or directory: jump to chain {target}")


def _run_json(tables: dict[tuple[str, str], FakeTable], commands: list[dict]) -> None:
    """The JSON commands knet sends (add/flush a table, add a chain or a rule);
    a rule's expressions are kept as their JSON text."""
    for cmd in commands:
        (verb, body), = cmd.items()
        (what, spec), = body.items()
        key = (spec.get("family", "ip"), spec.get("table") or spec["name"])
        if what == "table":
            if verb == "add":
                tables.setdefault(key, FakeTable())
            elif key not in tables:
                _fail(f"No such file or directory: table {key[0]} {key[1]}")
            elif verb == "flush":
                for c in tables[key].chains.values():
                    c.rules.clear()
            else:
                del tables[key]
            continue
        if key not in tables:
            _fail(f"No such file or directory: table {key[0]} {key[1]}")
        t = tables[key]
        if what == "chain" and verb == "add":
            hook = (f"type {spec['type']} hook {spec['hook']} priority {spec['prio']}; policy {spec['policy']};"
                    if "hook" in spec else "")
            t.chains.setdefault(spec["name"], FakeChain()).hook = hook
        elif what == "rule" and verb == "add":
            if spec["chain"] not in t.chains:
                _fail(f"No such file or directory: chain {spec['chain']}")
            t.chains[spec["chain"]].rules.append(json.dumps(spec["expr"], sort_keys=True))
        else:
            _fail(f"the fake does not model JSON {verb} {what}")
