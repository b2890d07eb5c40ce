"""Field ownership: metadata.managedFields and server-side apply.

Every write through the API names a field manager (the fieldManager query
parameter, else the client's user agent up to its first "/"), and the server
records which manager set which fields, as sets of field paths in the
`FieldsV1` form (`{"f:spec": {"f:replicas": {}}}`; list items by their keys:
`k:{"name":"web"}`, set members `v:"x"`, "." for the item itself).

An ordinary write (operation Update) gives its manager the fields it changed
and takes them from every other manager. A server-side apply (operation
Apply) is declarative: the applied configuration is merged into the object
(lists of items merged by their keys, as LIST_TYPES says), its manager then
owns exactly the fields the configuration lists, a field it listed before and
no longer lists is removed when nobody else owns it, and changing a field
another manager owns is a 409 conflict naming both, unless forced (then the
field changes owner). This is structured-merge-diff's model, kept to what
knet's kinds need. Pure: dicts in, dicts out.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from knet.api.errors import ApiError
from knet.api.patchmeta import (
    ATOMIC_MAPS,
    ATOMIC_STRUCTS,
    KEY_DEFAULTS,
    LIST_TYPES,
    field_type,
    resolve,
)
from knet.api.schema import STRUCTS

Path = tuple[str, ...]

# What a write never owns (upstream's stripMetaManager).
_STRIPPED = frozenset({("f:apiVersion",), ("f:kind",), ("f:metadata",)} | {("f:metadata", "f:" + f) for f in (
    "name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName", "generation", "managedFields",
    "resourceVersion")})
BEFORE_FIRST_APPLY = "before-first-apply"


class _Marker:
    """A node that is a value of its own: a list item, a set member, a map."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


ITEM, MAPNODE = _Marker("ITEM"), _Marker("MAPNODE")


class ShapeError(Exception):
    """The configuration does not fit the kind's schema (structured-merge-diff's words)."""


# -- paths of an object ------------------------------------------------------------------


def _key_element(item: Any, keys: tuple[str, ...], path: Path, index: int = 0) -> str:
    if not isinstance(item, dict):
        raise ShapeError(f"{render_path(path)}: element {index}: expected map, got {json.dumps(item)}")
    key = {}
    for k in keys:
        if k in item and item[k] is not None:
            key[k] = item[k]
        elif k in KEY_DEFAULTS:
            key[k] = KEY_DEFAULTS[k]
        else:
            raise ShapeError(f"{render_path(path)}: element {index}: associative list with keys has an element that omits "
                             f'key field "{k}" (and doesn\'t have default value)')
    return "k:" + json.dumps(key, sort_keys=True, separators=(",", ":"))


def flatten(obj: dict, kind: str) -> dict[Path, Any]:
    """Every field path of `obj` with its value: scalars, atomic values whole,
    ITEM for list items and set members, MAPNODE for granular maps and lists
    (an ordinary write that adds one owns it: "." in FieldsV1; an applier
    owns only what is under it)."""
    out: dict[Path, Any] = {}
    _struct(obj, kind, (), out)
    return out


def _struct(v: dict, t: str, path: Path, out: dict) -> None:
    for k, x in v.items():
        ft = field_type(t, k)
        _value(x, ft, (t, k), path + ("f:" + k,), out)


def _value(v: Any, t: str | None, ctx: tuple[str, str] | None, path: Path, out: dict) -> None:
    if v is None or t is None:
        out[path] = v
        return
    if t in STRUCTS:
        if t in ATOMIC_STRUCTS or not isinstance(v, dict) or not v:
            out[path] = v
        else:
            _struct(v, t, path, out)
        return
    if t.startswith("map[string]"):
        if ctx in ATOMIC_MAPS or not isinstance(v, dict) or not v:
            out[path] = v
            return
        out[path] = MAPNODE
        et = resolve(t[len("map[string]"):])
        for k, x in v.items():
            _value(x, et, None, path + ("f:" + k,), out)
        return
    if t.startswith("[]"):
        lt = LIST_TYPES.get(ctx) if ctx else None
        if lt is None or not isinstance(v, list):
            out[path] = v
            return
        et = resolve(t[2:])
        if v:
            out[path] = MAPNODE  # a granular list is a node of its own, as a map is
        if lt[0] == "set":
            for x in v:
                out[path + ("v:" + json.dumps(x, separators=(",", ":")),)] = ITEM
            return
        for i, x in enumerate(v):
            p = path + (_key_element(x, lt[1:], path, i),)
            out[p] = ITEM
            if et in STRUCTS and isinstance(x, dict):
                _struct(x, et, p, out)
        return
    out[path] = v


def owned_paths(flat: dict[Path, Any], kind_has_status: bool, subresource: str | None) -> set[Path]:
    """The paths a write may own: no server-set metadata, and the status only
    through /status (upstream's reset fields)."""
    out = set()
    for p in flat:
        if p in _STRIPPED:
            continue
        in_status = p[0] == "f:status"
        if subresource == "status" and not in_status:
            continue
        if subresource is None and kind_has_status and in_status:
            continue
        out.add(p)
    return out


# -- FieldsV1 ------------------------------------------------------------------------------


def to_fields(paths: set[Path]) -> dict:
    tree: dict = {}
    for p in sorted(paths):
        node = tree
        for el in p:
            node = node.setdefault(el, {})
    for p in paths:  # a path that is also a parent is marked with "."
        node = tree
        for el in p:
            node = node[el]
        if node and "." not in node:
            node["."] = {}
    return _sorted_tree(tree)


def _sorted_tree(tree: dict) -> dict:
    return {k: _sorted_tree(tree[k]) for k in sorted(tree)}


def from_fields(tree: Any, path: Path = ()) -> set[Path]:
    out: set[Path] = set()
    if not isinstance(tree, dict):
        return out
    for k, sub in tree.items():
        if k == ".":
            if path:
                out.add(path)
        elif isinstance(sub, dict) and sub:
            out |= from_fields(sub, path + (k,))
        else:
            out.add(path + (k,))
    return out


def render_path(p: Path) -> str:
    """A path as structured-merge-diff prints it: .spec.containers[name="web"].image"""
    out = []
    for el in p:
        kind, _, rest = el.partition(":")
        if kind == "f":
            out.append("." + rest)
        elif kind == "k":
            key = json.loads(rest)
            out.append("[" + ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(key.items())) + "]")
        elif kind == "v":
            out.append(f"[={rest}]")
        elif kind == "i":
            out.append(f"[{rest}]")
    return "".join(out)


# -- the managedFields list ------------------------------------------------------------------


class Entry:
    __slots__ = ("manager", "operation", "api_version", "time", "subresource", "paths")

    def __init__(self, manager: str, operation: str, api_version: str, time: str | None,
                 subresource: str = "", paths: set[Path] | None = None):
        self.manager, self.operation, self.api_version = manager, operation, api_version
        self.time, self.subresource, self.paths = time, subresource, paths or set()

    def same(self, manager: str, operation: str, subresource: str) -> bool:
        return (self.manager, self.operation, self.subresource) == (manager, operation, subresource)

    def describe(self) -> str:
        """As upstream's printManager names a manager in a conflict."""
        out = json.dumps(self.manager)
        if self.subresource:
            out += f" with subresource {json.dumps(self.subresource)}"
        if self.operation == "Update":
            out += f" using {self.api_version}"
        return out

    def encode(self) -> dict:
        out = {"manager": self.manager, "operation": self.operation, "apiVersion": self.api_version}
        if self.time:
            out["time"] = self.time
        out["fieldsType"] = "FieldsV1"
        out["fieldsV1"] = to_fields(self.paths)
        if self.subresource:
            out["subresource"] = self.subresource
        return out


def decode_entries(obj: dict | None) -> list[Entry]:
    out = []
    for e in ((obj or {}).get("metadata") or {}).get("managedFields") or []:
        if not isinstance(e, dict):
            continue
        out.append(Entry(str(e.get("manager", "")), str(e.get("operation", "Update")), str(e.get("apiVersion", "")),
                         e.get("time"), str(e.get("subresource") or ""), from_fields(e.get("fieldsV1"))))
    return out


MAX_UPDATE_MANAGERS = 10  # upstream's DefaultMaxUpdateManagers
ANCIENT_CHANGES = "ancient-changes"


def _cap_updaters(entries: list[Entry]) -> list[Entry]:
    """At most MAX_UPDATE_MANAGERS Update entries: the oldest are merged into
    one "ancient-changes" entry, as upstream's capManagersManager does, so that
    a stream of one-off clients cannot grow an object without bound."""
    updaters = sorted((e for e in entries if e.operation == "Update"), key=lambda e: e.time or "")
    if len(updaters) <= MAX_UPDATE_MANAGERS:
        return entries
    old = updaters[:len(updaters) - MAX_UPDATE_MANAGERS + 1]
    bucket = Entry(ANCIENT_CHANGES, "Update", old[-1].api_version, old[-1].time, "",
                   set().union(*(e.paths for e in old)))
    return [e for e in entries if all(e is not o for o in old)] + [bucket]


def _encode_entries(entries: list[Entry]) -> list[dict]:
    kept = _cap_updaters([e for e in entries if e.paths])
    kept.sort(key=lambda e: (e.operation, e.time or "", e.manager, e.api_version, e.subresource))  # upstream's order
    return [e.encode() for e in kept]


def _set_entries(obj: dict, entries: list[Entry]) -> None:
    encoded = _encode_entries(entries)
    if encoded:
        obj["metadata"]["managedFields"] = encoded
    else:
        obj["metadata"].pop("managedFields", None)


def _under(p: Path, roots: set[Path]) -> bool:
    return any(p[:n] in roots for n in range(1, len(p) + 1))


# -- Update ---------------------------------------------------------------------------------


def record_update(old: dict | None, new: dict, manager: str, kind: str, *, kind_has_status: bool,
                  subresource: str | None = None, now: str) -> None:
    """Record in `new`'s managedFields what an ordinary write (create, update,
    patch) by `manager` changed from `old`. A write that sets managedFields
    itself has them as the base for its own entry; one that sets them empty
    clears them (upstream's reset)."""
    m = new.setdefault("metadata", {})
    old_entries = ((old or {}).get("metadata") or {}).get("managedFields")
    base = old
    if "managedFields" in m and m["managedFields"] != old_entries:
        if not m["managedFields"]:
            m.pop("managedFields")
            return
        base = new
    flat_new = flatten(new, kind)
    flat_old = flatten(old, kind) if old else {}
    changed = {p for p, v in flat_new.items() if p not in flat_old or not _same(flat_old[p], v)}
    changed &= owned_paths(flat_new, kind_has_status, subresource)
    removed = {p for p in flat_old if p not in flat_new} & owned_paths(flat_old, kind_has_status, subresource)
    if not changed and not removed:
        if base is old and old_entries:
            m["managedFields"] = old_entries
        return
    entries = decode_entries(base)
    mine = None
    sub = subresource or ""
    for e in entries:
        if e.same(manager, "Update", sub):
            mine = e
        else:
            e.paths = {p for p in e.paths if p not in changed and not _under(p, removed)}
    if mine is None:
        mine = Entry(manager, "Update", new.get("apiVersion", ""), now, sub)
        entries.append(mine)
    mine.paths = {p for p in mine.paths | changed if not _under(p, removed)}
    mine.time = now
    mine.api_version = new.get("apiVersion", mine.api_version)
    _set_entries(new, entries)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, _Marker) or isinstance(b, _Marker):
        return a is b
    return a == b


# -- Apply ----------------------------------------------------------------------------------


def apply(live: dict | None, config: dict, manager: str, kind: str, *, force: bool, kind_has_status: bool,
          subresource: str | None = None, now: str) -> dict:
    """The object after `manager` applies `config` to `live` (None: the object
    does not exist yet). Raises ShapeError for a configuration that does not fit
    the kind, ApiError 409 for conflicts with other managers (unless `force`)."""
    sub = subresource or ""
    entries = decode_entries(live)
    if live is not None and not entries:
        # An object nobody tracked yet: what it has belongs to "before-first-apply",
        # so an apply that changes it is a conflict, as upstream.
        flat_live0 = flatten(_without_managed(live), kind)
        entries = [Entry(BEFORE_FIRST_APPLY, "Update", live.get("apiVersion", ""), now, "",
                         owned_paths(flat_live0, kind_has_status, subresource))]
    cfg_flat = flatten(config, kind)
    cfg_paths = {p for p in owned_paths(cfg_flat, kind_has_status, subresource) if cfg_flat[p] is not MAPNODE}
    base = copy.deepcopy(live) if live is not None else {}
    merged = _merge_struct(base, config, kind)
    flat_live = flatten(live, kind) if live is not None else {}
    flat_merged = flatten(merged, kind)
    changed = {p for p in cfg_paths if p not in flat_live or not _same(flat_live[p], flat_merged.get(p))}
    mine = None
    conflicts: list[tuple[Entry, Path]] = []
    for e in entries:
        if e.same(manager, "Apply", sub):
            mine = e
            continue
        for p in sorted(e.paths & changed):
            conflicts.append((e, p))
    if conflicts and not force and not _allowed_by_last_applied(live, conflicts, manager, kind):
        raise conflict_error(conflicts)
    for e in entries:
        if e is not mine:
            e.paths -= changed
    previous = mine.paths if mine else set()
    others = [e for e in entries if e is not mine]
    for p in sorted(previous - cfg_paths, key=len, reverse=True):
        if _is_key_field(p) or any(q[:len(p)] == p for e in others for q in e.paths):
            continue  # a kept item keeps its key; an item goes whole with its key
        _remove(merged, p, kind)
    if mine is None:
        mine = Entry(manager, "Apply", config.get("apiVersion", ""), now, sub)
        entries.append(mine)
    elif live is None or _without_managed(merged) != _without_managed(live):
        mine.time = now  # a no-op apply keeps its time, and so writes nothing (upstream's managedFieldsUpdater)
    mine.paths = cfg_paths
    mine.api_version = config.get("apiVersion", mine.api_version)
    final = set(flatten(merged, kind))
    for e in others:
        e.paths &= final
    merged.setdefault("metadata", {})
    _set_entries(merged, entries)
    if manager == "kubectl" and _last_applied(live) is not None:
        # Keep client-side apply's record in step, as upstream's lastAppliedUpdater.
        record = copy.deepcopy(config)
        annotations = (record.get("metadata") or {}).get("annotations") or {}
        annotations.pop(LAST_APPLIED, None)
        merged["metadata"].setdefault("annotations", {})[LAST_APPLIED] = json.dumps(
            record, separators=(",", ":"), sort_keys=True)
    return merged


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _last_applied(live: dict | None) -> str | None:
    text = (((live or {}).get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    return text or None


def _allowed_by_last_applied(live: dict | None, conflicts: list, manager: str, kind: str) -> bool:
    """`kubectl apply --server-side` over what `kubectl apply` made: a conflict
    on a field the client-side apply record lists is no conflict (upstream's
    lastAppliedManager, which eases moving from client- to server-side apply)."""
    text = _last_applied(live)
    if manager != "kubectl" or text is None:
        return False
    try:
        listed = set(flatten(json.loads(text), kind))
    except (ValueError, ShapeError, AttributeError):
        return False
    return all(p in listed for _, p in conflicts)


def _is_key_field(p: Path) -> bool:
    """A field of a list item that is part of the item's key (`name` under `k:{"name":...}`)."""
    if len(p) < 2 or not p[-2].startswith("k:") or not p[-1].startswith("f:"):
        return False
    return p[-1][2:] in json.loads(p[-2][2:])


def _without_managed(obj: dict) -> dict:
    out = dict(obj)
    out["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return out


def conflict_error(conflicts: list[tuple[Entry, Path]]) -> ApiError:
    """upstream's NewConflictError: one line for one conflict, else grouped by manager."""
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {e.describe()}",
               "field": render_path(p)} for e, p in conflicts]
    if len(conflicts) == 1:
        e, p = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {e.describe()}: {render_path(p)}"
    else:
        by: dict[str, list[str]] = {}
        for e, p in conflicts:
            by.setdefault(e.describe(), []).append(render_path(p))
        lines = []
        for who in sorted(by):
            lines.append(f"conflicts with {who}:")
            lines += [f"- {p}" for p in by[who]]
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", message, {"causes": causes})


# -- merging a configuration into an object ---------------------------------------------------


def _merge_struct(live: dict, config: dict, t: str | None) -> dict:
    out = live if isinstance(live, dict) else {}
    for k, v in config.items():
        ft = field_type(t, k) if t in STRUCTS else None
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge_value(out.get(k), v, ft, (t, k) if t else None)
    return out


def _merge_value(live: Any, v: Any, t: str | None, ctx: tuple[str, str] | None) -> Any:
    if t is None or live is None:
        return copy.deepcopy(v)
    if t in STRUCTS:
        if t in ATOMIC_STRUCTS or not isinstance(v, dict) or not isinstance(live, dict):
            return copy.deepcopy(v)
        return _merge_struct(live, v, t)
    if t.startswith("map[string]"):
        if ctx in ATOMIC_MAPS or not isinstance(v, dict) or not isinstance(live, dict):
            return copy.deepcopy(v)
        et = resolve(t[len("map[string]"):])
        for k, x in v.items():
            if x is None:
                live.pop(k, None)
            else:
                live[k] = _merge_value(live.get(k), x, et, None)
        return live
    if t.startswith("[]"):
        lt = LIST_TYPES.get(ctx) if ctx else None
        if lt is None or not isinstance(v, list) or not isinstance(live, list):
            return copy.deepcopy(v)
        et = resolve(t[2:])
        if lt[0] == "set":
            def element(x: Any) -> str:
                return json.dumps(x, sort_keys=True)
        else:
            def element(x: Any) -> str:
                return _key_element(x, lt[1:], ())
        return _merge_items(live, v, element, lambda old, new: _merge_value(old, new, et, None))
    return copy.deepcopy(v)


def _merge_items(lhs: list, rhs: list, element, merge) -> list:
    """structured-merge-diff's merge of a keyed list: the live items the
    configuration does not name stay where they are, the configuration's
    items come in its order, each merged with its live counterpart."""
    lpe, rpe = [element(x) for x in lhs], [element(x) for x in rhs]
    lobs, robs = dict(zip(lpe, lhs, strict=True)), dict(zip(rpe, rhs, strict=True))
    shared = [pe for pe in rpe if pe in lobs]
    next_shared = shared.pop(0) if shared else None
    merged_r: set = set()
    out: list = []
    li = ri = 0
    while li < len(lpe) or ri < len(rpe):
        if li < len(lpe) and ri < len(rpe):
            pe = lpe[li]
            if pe == rpe[ri]:
                merged_r.add(pe)
                out.append(merge(lobs[pe], robs[pe]))
                li, ri = li + 1, ri + 1
                next_shared = shared.pop(0) if shared else None
                continue
            if pe in robs and next_shared is not None and next_shared != pe:
                li += 1
                continue
        if li < len(lpe):
            pe = lpe[li]
            if pe not in robs:
                out.append(lhs[li])
                li += 1
                continue
            if pe in merged_r:
                li += 1
        if ri < len(rpe):
            pe = rpe[ri]
            merged_r.add(pe)
            out.append(merge(lobs[pe], robs[pe]) if pe in lobs else copy.deepcopy(robs[pe]))
            ri += 1
            if next_shared is not None and next_shared == pe:
                next_shared = shared.pop(0) if shared else None
    return out


def _remove(obj: dict, path: Path, kind: str) -> None:
    """Remove the field at `path` from `obj`, if it is there."""
    node: Any = obj
    for i, el in enumerate(path):
        last = i == len(path) - 1
        kind_, _, rest = el.partition(":")
        if kind_ == "f":
            if not isinstance(node, dict) or rest not in node:
                return
            if last:
                del node[rest]
                return
            node = node[rest]
        elif kind_ in ("k", "v"):
            if not isinstance(node, list):
                return
            if kind_ == "k":
                want = json.loads(rest)
                idx = next((n for n, x in enumerate(node) if isinstance(x, dict) and all(
                    x.get(k, KEY_DEFAULTS.get(k)) == val for k, val in want.items())), -1)
            else:
                want_v = json.loads(rest)
                idx = next((n for n, x in enumerate(node) if x == want_v), -1)
            if idx < 0:
                return
            if last:
                del node[idx]
                return
            node = node[idx]
        else:
            return
