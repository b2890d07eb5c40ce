"""The patch `kubectl apply` sends to update an object: a three-way diff of
the last applied manifest (original), the new manifest (modified) and the
live object (current), as apimachinery's CreateThreeWayMergePatch and
CreateThreeWayJSONMergePatch compute it.

Why three ways: a two-way patch of the manifest alone cannot tell a field the
user removed (delete it) from one somebody else set (admission's token
volumeMount, a controller's annotation: keep it), and a JSON merge patch of
the whole manifest replaces lists whole, dropping what others added to them.
So the patch holds
  changes and additions: current -> modified (never deletions), and
  deletions: original -> modified (only what the user's last apply set),
merged, with lists tagged `patchStrategy:"merge"` (knet/api/patchmeta.py,
the same tags the server merges with in knet/api/strategic.py) diffed item
by item on their merge key, and the `$setElementOrder/`, `$patch: delete`,
`$deleteFromPrimitiveList/` and `$retainKeys` directives upstream writes.
Upstream's exact output (key order aside) is kept so that knet apply and
kubectl apply see each other's work as "unchanged". Pure: dicts in, dicts out.
"""

from __future__ import annotations

import copy
from typing import Any

from knet.api.strategic import (
    DELETE_PRIMITIVE,
    DIRECTIVE,
    RETAIN_KEYS,
    SET_ORDER,
    _dedupe,
    _elem,
    _lookup,
    _normalize_order,
    _partition_maps,
    _partition_scalars,
    _strategy,
    go_value,
)


def three_way_strategic(original: dict | None, modified: dict, current: dict, kind: str) -> dict:
    """The strategic merge patch that takes `current` to `modified`, deleting
    only what `original` had and `modified` no longer has (original None: the
    object was never applied, so nothing is deleted)."""
    original = original or {}
    delta = _diff_maps(current, modified, kind, ignore_deletions=True, ignore_changes=False, retain=False)
    deletions = _diff_maps(original, modified, kind, ignore_deletions=False, ignore_changes=True, retain=False)
    return _merge_patches(deletions, delta, kind)


def three_way_json_merge(original: dict | None, modified: dict, current: dict) -> dict:
    """The JSON merge patch kubectl sends for kinds without strategic merge
    metadata (custom resources): lists are replaced whole."""
    changes = _keep_nulls(_json_diff(current, modified), keep=False)
    deletions = _keep_nulls(_json_diff(original or {}, modified), keep=True)
    return _json_merge(deletions, changes)


# -- strategic diff (diffMaps and friends) ---------------------------------------------


def _type(v: Any) -> str:
    """Go's reflect.TypeOf for decoded JSON: every number is a float64."""
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    return type(v).__name__


def _diff_maps(original: dict, modified: dict, t: str | None, *, ignore_deletions: bool,
               ignore_changes: bool, retain: bool) -> dict:
    patch: dict = {}
    retain_list = []
    opts = {"ignore_deletions": ignore_deletions, "ignore_changes": ignore_changes}
    for key, mv in modified.items():
        if retain and mv is not None:
            retain_list.append(key)
        if key not in original:
            if not ignore_changes:
                patch[key] = mv
            continue
        ov = original[key]
        if _type(ov) != _type(mv):
            if not ignore_changes:
                patch[key] = mv
            continue
        sub, strategies, merge_key = _lookup(t, key)
        if isinstance(ov, dict):
            strategy = _strategy(strategies)
            if strategy == "replace":
                if not ignore_changes:
                    patch[key] = mv
                continue
            value = _diff_maps(ov, mv, sub, retain="retainKeys" in strategies, **opts)
            if value:
                patch[key] = value
        elif isinstance(ov, list):
            if _strategy(strategies) == "merge":
                add, delete, order = _diff_lists(ov, mv, _elem(sub), merge_key, "retainKeys" in strategies, **opts)
                if add:
                    patch[key] = add
                if delete:
                    patch[f"{DELETE_PRIMITIVE}/{key}"] = delete
                if order:
                    patch[f"{SET_ORDER}/{key}"] = order
            elif not ignore_changes and ov != mv:
                patch[key] = mv
        elif not ignore_changes and ov != mv:
            patch[key] = mv
    if not ignore_deletions:
        for key in original:
            if key not in modified:
                patch[key] = None
    if retain_list and (patch or any(v is not None and k not in modified for k, v in original.items())):
        patch[RETAIN_KEYS] = _sort_scalars(retain_list)
    return patch


def _sort_scalars(values: list) -> list:
    """Go's sortScalars: by the %v text (so 443 before 80)."""
    return sorted(values, key=go_value)


def _diff_lists(original: list, modified: list, elem: str | None, merge_key: str, retain: bool, *,
                ignore_deletions: bool, ignore_changes: bool) -> tuple[list, list, list]:
    """(patch list, $deleteFromPrimitiveList values, $setElementOrder list)."""
    if not original:
        if not modified or ignore_changes:
            return [], [], []
        return modified, [], []
    if any(isinstance(v, dict) for v in original + modified):
        patch, deletes = _diff_lists_of_maps(original, modified, elem, merge_key, retain,
                                             ignore_deletions=ignore_deletions, ignore_changes=ignore_changes)
        patch = _normalize_order(patch, [], modified, [], merge_key, True)
        same_order = len(original) == len(modified) and all(
            o.get(merge_key) == m.get(merge_key) for o, m in zip(original, modified, strict=True))
        patch += deletes
        order = []
        if (not ignore_changes and (patch or not same_order)) or (not ignore_deletions and patch):
            order = [{merge_key: m.get(merge_key)} for m in modified]
        return patch, [], order
    add, deletes = _diff_lists_of_scalars(original, modified, ignore_deletions, ignore_changes)
    add = _normalize_order(add, [], modified, [], "", False)
    order = []
    if (not ignore_deletions and deletes) or (not ignore_changes and original != modified):
        order = modified
    return add, deletes, order


def _diff_lists_of_maps(original: list, modified: list, elem: str | None, merge_key: str, retain: bool, *,
                        ignore_deletions: bool, ignore_changes: bool) -> tuple[list, list]:
    """Both lists walked in the order of their merge keys' text, as upstream
    does: equal keys recurse, a key only in `modified` is added, one only in
    `original` gets a `$patch: delete`."""
    for m in original + modified:
        if merge_key not in m:
            raise ValueError(f"map: {go_value(m)} does not contain declared merge key: {merge_key}")
    by_key = sorted(original, key=lambda m: go_value(m[merge_key]))
    mod = sorted(modified, key=lambda m: go_value(m[merge_key]))
    patch: list = []
    deletes: list = []
    i = j = 0
    while i < len(by_key) or j < len(mod):
        ok = go_value(by_key[i][merge_key]) if i < len(by_key) else None
        mk = go_value(mod[j][merge_key]) if j < len(mod) else None
        if ok is not None and mk is not None and ok == mk:
            value = _diff_maps(by_key[i], mod[j], elem, retain=retain,
                               ignore_deletions=ignore_deletions, ignore_changes=ignore_changes)
            if value:
                value[merge_key] = mod[j][merge_key]
                patch.append(value)
            i += 1
            j += 1
        elif ok is None or (mk is not None and ok > mk):
            if not ignore_changes:
                patch.append(mod[j])
            j += 1
        else:
            if not ignore_deletions:
                deletes.append({DIRECTIVE: "delete", merge_key: by_key[i][merge_key]})
            i += 1
    return patch, deletes


def _diff_lists_of_scalars(original: list, modified: list, ignore_deletions: bool,
                           ignore_changes: bool) -> tuple[list, list]:
    a, b = _sort_scalars(original), _sort_scalars(modified)
    add, deletes = [], []
    i = j = 0
    while i < len(a) or j < len(b):
        av = go_value(a[i]) if i < len(a) else None
        bv = go_value(b[j]) if j < len(b) else None
        if av is not None and bv is not None and av == bv:
            i += 1
            j += 1
        elif av is None or (bv is not None and av > bv):
            if not ignore_changes:
                add.append(b[j])
            j += 1
        else:
            if not ignore_deletions:
                deletes.append(a[i])
            i += 1
    return add, _dedupe(deletes)


# -- merging the two halves (mergeMap without MergeParallelList) -------------------------


def _merge_patches(original: dict, patch: dict, t: str | None) -> dict:
    """`patch` (the changes) merged into `original` (the deletions), directives
    kept as directives: this is patch arithmetic, not applying a patch."""
    out = copy.deepcopy(original)
    for key, value in patch.items():
        if key == RETAIN_KEYS or key.startswith(SET_ORDER + "/") or key.startswith(DELETE_PRIMITIVE + "/"):
            out[key] = copy.deepcopy(value)
            continue
        if key not in out or value is None or _type(out[key]) != _type(value):
            out[key] = copy.deepcopy(value)
            continue
        sub, strategies, merge_key = _lookup(t, key)
        strategy = _strategy(strategies)
        if isinstance(value, dict):
            out[key] = copy.deepcopy(value) if strategy == "replace" else _merge_patches(out[key], value, sub)
        elif isinstance(value, list) and strategy == "merge":
            out[key] = _merge_patch_lists(out[key], value, _elem(sub), merge_key)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _merge_patch_lists(original: list, patch: list, elem: str | None, merge_key: str) -> list:
    if not original and not patch:
        return original
    is_map = any(isinstance(v, dict) for v in original + patch)
    if not is_map:
        merged = _dedupe(original + patch)
        in_patch, server_only = _partition_scalars(merged, patch)
        return _normalize_order(in_patch, server_only, patch, original, "", False)
    merged = [copy.deepcopy(v) for v in original]
    for item in patch:
        at = next((i for i, v in enumerate(merged) if v.get(merge_key) == item.get(merge_key)), -1)
        if at >= 0:
            merged[at] = _merge_patches(merged[at], item, elem)
        else:
            merged.append(copy.deepcopy(item))
    in_patch, server_only = _partition_maps(merged, patch, merge_key)
    return _normalize_order(in_patch, server_only, patch, original, merge_key, True)


# -- JSON merge patch (evanphx/json-patch's CreateMergePatch, MergePatch) ---------------


def _json_diff(a: dict, b: dict) -> dict:
    into: dict = {}
    for key, bv in b.items():
        if key not in a or _type(a[key]) != _type(bv):
            into[key] = bv
            continue
        av = a[key]
        if isinstance(av, dict):
            sub = _json_diff(av, bv)
            if sub:
                into[key] = sub
        elif av != bv:
            into[key] = bv
    for key in a:
        if key not in b:
            into[key] = None
    return into


def _keep_nulls(patch: dict, keep: bool) -> dict:
    """Only the deletions (keep) or only the additions and changes (not keep)."""
    out: dict = {}
    for key, v in patch.items():
        if v is None:
            if keep:
                out[key] = None
        elif isinstance(v, dict):
            if not v:
                if not keep:
                    out[key] = v  # an explicit {} is a value, not an empty patch
                continue
            sub = _keep_nulls(v, keep)
            if sub:
                out[key] = sub
        elif not keep:
            out[key] = v
    return out


def _json_merge(doc: dict, patch: dict) -> dict:
    out = copy.deepcopy(doc)
    for key, v in patch.items():
        if v is None:
            out.pop(key, None)
        elif isinstance(v, dict) and isinstance(out.get(key), dict):
            out[key] = _json_merge(out[key], v)
        else:
            out[key] = copy.deepcopy(v)
    return out
