"""Strategic merge patch, as apimachinery's strategicpatch package applies it
on the server (StrategicMergeMapPatch: MergeParallelList, IgnoreUnmatchedNulls).

A JSON merge patch replaces lists whole; a strategic one merges the lists
whose Go field is tagged `patchStrategy:"merge"` item by item on their merge
key (containers by name, ports by containerPort), which is what lets
`kubectl apply` send only what changed. The directives kubectl sends:

  {"$patch": "replace"} / "delete"      in a map: use the patch as is / drop the map;
                                        in a list: replace the list / drop the item
  "$setElementOrder/<list>": [...]      the order of the merged list
  "$deleteFromPrimitiveList/<list>"     values to remove from a merged list of scalars
  "$retainKeys": [...]                  clear the keys not named (Deployment strategy, volumes)

are consumed here and never reach the stored object. Errors are upstream's
words; `PatchError.code` is the HTTP code the API server answers them with.
The merge tags come from knet/api/patchmeta.py. Pure: dicts in, dicts out.
"""

from __future__ import annotations

import copy
from typing import Any

from knet.api.patchmeta import STRATEGIC, resolve
from knet.api.schema import STRUCTS

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ORDER = "$setElementOrder"
DELETE_PRIMITIVE = "$deleteFromPrimitiveList"

ERR_BAD_PRIMITIVE_LIST = "invalid patch format of primitive list"
ERR_BAD_RETAIN_KEYS = "invalid patch format of retainKeys"
ERR_BAD_SET_ORDER = "invalid patch format of setElementOrder list"
ERR_RETAIN_MISMATCH = "patch content doesn't match retainKeys list"
ERR_LIST_OF_LISTS = "lists of lists are not supported"


class PatchError(Exception):
    """A patch that cannot apply: `code` is what the API server answers (400
    for a malformed directive, 422 for content it cannot merge)."""

    def __init__(self, message: str, code: int = 400):
        super().__init__(message)
        self.code = code


def go_value(v: Any) -> str:
    """A JSON value as Go's %v prints the map[string]interface{} upstream's
    messages quote: map[a:1 b:x], [x y], <nil>."""
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{go_value(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, list):
        return "[" + " ".join(go_value(x) for x in v) + "]"
    return str(v)


def _go_type(v: Any) -> str:
    if isinstance(v, dict):
        return "map[string]interface {}"
    if isinstance(v, list):
        return "[]interface {}"
    if isinstance(v, str):
        return "string"
    if isinstance(v, bool):
        return "bool"
    if v is None:
        return "<nil>"
    return "float64"


def _no_merge_key(m: dict, key: str) -> PatchError:
    return PatchError(f"map: {go_value(m)} does not contain declared merge key: {key}")


def _bad_type(expected: str, actual: Any) -> PatchError:
    return PatchError(f"expected a {expected}, but received a {_go_type(actual)}")


# -- schema lookups -------------------------------------------------------------------


def _lookup(t: str | None, key: str) -> tuple[str | None, tuple[str, ...], str]:
    """(type of `key` under `t`, its patch strategies, its merge key)."""
    if t is None:
        return None, (), ""
    if t.startswith("map[string]"):
        return resolve(t[len("map[string]"):]), (), ""
    fields = STRUCTS.get(t)
    if fields is None or key not in fields:
        return None, (), ""
    ft = resolve(fields[key])
    strategies, merge_key = STRATEGIC.get((t, key), ((), ""))
    return (None if ft == "any" else ft), strategies, merge_key


def _elem(t: str | None) -> str | None:
    if t is not None and t.startswith("[]"):
        return resolve(t[2:])
    return None


def _strategy(strategies: tuple[str, ...]) -> str:
    """The strategy besides retainKeys (upstream's extractRetainKeysPatchStrategy)."""
    rest = [s for s in strategies if s != "retainKeys"]
    return rest[0] if rest else ""


# -- the patch ------------------------------------------------------------------------


def apply(original: dict, patch: dict, kind: str) -> dict:
    """`patch` applied to `original` (neither is changed) for an object of `kind`."""
    if not isinstance(patch, dict):
        raise PatchError("invalid JSON document")
    return _strip(_merge_map(copy.deepcopy(original), copy.deepcopy(patch), kind))


def _merge_map(original: dict | None, patch: dict, t: str | None) -> dict:
    if DIRECTIVE in patch:
        directive = patch[DIRECTIVE]
        if directive == "replace":
            del patch[DIRECTIVE]
            return patch
        if directive == "delete":
            return {}
        raise PatchError(f"unknown patch type: {go_value(directive)} in map: {go_value(patch)}")
    if original is None:
        original = {}
    _retain_keys(original, patch)
    _set_element_order(original, patch, t)
    for key, value in list(patch.items()):
        delete_list = False
        if key.startswith(DELETE_PRIMITIVE):
            key = _extract(key, DELETE_PRIMITIVE, ERR_BAD_PRIMITIVE_LIST)
            delete_list = True
        if value is None:
            original.pop(key, None)
            continue
        if key not in original or _kind(original[key]) != _kind(value):
            if not delete_list:
                _discard_nulls(value)
                kept, keep = _remove_directives(value)
                if keep:
                    original[key] = kept
                else:
                    original.pop(key, None)
            continue
        sub, strategies, merge_key = _lookup(t, key)
        strategy = _strategy(strategies)
        current = original[key]
        if isinstance(current, dict):
            original[key] = value if strategy == "replace" else _merge_map(current, value, sub)
        elif isinstance(current, list):
            if strategy == "merge" or delete_list:
                original[key] = _merge_slice(current, value, _elem(sub), merge_key, delete_list)
            else:
                original[key] = value
        else:
            kept, keep = _remove_directives(value)
            if keep:
                original[key] = kept
            else:
                original.pop(key, None)
    return original


def _kind(v: Any) -> str:
    """Go's reflect kind as far as merging cares: scalars of any type replace each other."""
    return "map" if isinstance(v, dict) else "list" if isinstance(v, list) else "scalar"


def _extract(key: str, prefix: str, error: str) -> str:
    head, _, rest = key.partition("/")
    if head != prefix or not _:
        raise PatchError(error)
    return rest


def _retain_keys(original: dict, patch: dict) -> None:
    if RETAIN_KEYS not in patch:
        return
    keys = patch.pop(RETAIN_KEYS)
    if not isinstance(keys, list):
        raise PatchError(ERR_BAD_RETAIN_KEYS)
    retained = {k for k in keys if isinstance(k, str)}
    for k, v in patch.items():
        if v is None or k.startswith(DELETE_PRIMITIVE) or k.startswith(SET_ORDER):
            continue
        if k not in retained:
            raise PatchError(ERR_BAD_RETAIN_KEYS)
    for k in list(original):
        if k not in retained:
            del original[k]


def _set_element_order(original: dict, patch: dict, t: str | None) -> None:
    """The $setElementOrder lists and the lists they order, merged and sorted:
    the directive's order first, then the patch's, then the live object's."""
    for key in [k for k in patch if k.startswith(SET_ORDER)]:
        order = patch.pop(key)
        if not isinstance(order, list):
            raise _bad_type("[]interface {}", order)
        name = _extract(key, SET_ORDER, ERR_BAD_SET_ORDER)
        found_original, found_patch = name in original, name in patch
        original_list, patch_list = original.get(name), patch.get(name)
        if found_original and not isinstance(original_list, list):
            raise _bad_type("[]interface {}", original_list)
        if found_patch and not isinstance(patch_list, list):
            raise _bad_type("[]interface {}", patch_list)
        sub, strategies, merge_key = _lookup(t, name)
        _validate_order(patch_list or [], order, merge_key)
        if found_original and not found_patch:
            merged = original_list
        elif found_patch and not found_original:
            merged = _remove_directives(patch_list)[0]
        elif found_original and found_patch:
            if _strategy(strategies) == "merge":
                merged = _merge_slice(original_list, patch_list, _elem(sub), merge_key, False)
            else:
                merged = patch_list
        else:
            continue
        if merge_key:
            in_order, server_only = _partition_maps(merged, order, merge_key)
        else:
            in_order, server_only = _partition_scalars(merged, order)
        is_map = _element_kind(original_list or [], patch_list or []) == "map"
        server_order = original_list or []
        if found_original and found_patch and merge_key and _strategy(strategies) == "merge":
            server_order = _aliased(original_list, patch_list, merge_key)
        original[name] = _normalize_order(in_order, server_only, order, server_order, merge_key, is_map)
        patch.pop(name, None)


def _aliased(original: list, patch: list, merge_key: str) -> list:
    """The live list as upstream's ordering step sees it after merging: Go's
    merge deletes items by shifting them down within the live list's array
    and appends new items into the slots that frees, and the ordering reads
    that array through the live list's own length. Reproduced so that merged
    lists come out in upstream's order."""
    if any(isinstance(v, dict) and v.get(DIRECTIVE) == "replace" for v in patch):
        return original  # the merge then works on a new list
    arr, n, size = list(original), len(original), len(original)
    for v in patch:
        if isinstance(v, dict) and v.get(DIRECTIVE) == "delete" and merge_key in v:
            while (k := next((i for i in range(n) if isinstance(arr[i], dict) and merge_key in arr[i]
                              and arr[i][merge_key] == v[merge_key]), -1)) >= 0:
                arr[k:n - 1] = arr[k + 1:n]
                n -= 1
    present = [arr[i].get(merge_key) for i in range(n) if isinstance(arr[i], dict)]
    for v in patch:
        if not isinstance(v, dict) or DIRECTIVE in v or merge_key not in v or v[merge_key] in present:
            continue
        present.append(v[merge_key])
        if n < size:
            arr[n] = v
        n += 1
    return arr


def _validate_order(patch_list: list, order: list, merge_key: str) -> None:
    items = [x for x in patch_list if not (merge_key and isinstance(x, dict) and x.get(DIRECTIVE) == "delete")]
    if not items or not order:
        return
    i = j = 0
    while i < len(items) and j < len(order):
        if isinstance(items[i], dict) and DIRECTIVE in items[i]:
            i += 1
            continue
        if _key_equal(items[i], order[j], merge_key):
            i += 1
        j += 1
    if i < len(items) and j >= len(order):
        raise PatchError(f"The order in patch list:\n{go_value(patch_list)}\n doesn't match {SET_ORDER} list:\n"
                         f"{go_value(order)}\n")


def _key_equal(a: Any, b: Any, merge_key: str) -> bool:
    if not merge_key:
        return a == b
    if not isinstance(a, dict):
        raise _bad_type("map[string]interface {}", a)
    if not isinstance(b, dict):
        raise _bad_type("map[string]interface {}", b)
    if merge_key not in a:
        raise _no_merge_key(a, merge_key)
    if merge_key not in b:
        raise _no_merge_key(b, merge_key)
    return a[merge_key] == b[merge_key]


def _element_kind(*lists: list) -> str:
    kind = None
    for lst in lists:
        for v in lst:
            k = "map" if isinstance(v, dict) else "list" if isinstance(v, list) else type(v).__name__
            if k == "list":
                raise PatchError(ERR_LIST_OF_LISTS, 422)
            if k in ("int", "float"):
                k = "number"
            if kind is None:
                kind = k
            elif kind != k:
                raise PatchError(f"list element types are not identical: {go_value(list(lists))}")
    if kind is None:
        raise PatchError("no elements in any of the given slices")
    return kind


def _merge_slice(original: list, patch: list, elem: str | None, merge_key: str, delete_list: bool) -> list:
    if not original and not patch:
        return original
    is_map = _element_kind(original, patch) == "map"
    if not is_map:
        if delete_list:
            return [v for v in original if v not in patch]
        merged = _dedupe(original + patch)
    else:
        if not merge_key:
            raise PatchError(f"cannot merge lists without merge key for {elem or ''}")
        original, patch = _special_elements(original, patch, merge_key)
        merged = _merge_items(list(original), patch, merge_key, elem)
    if merge_key:
        in_patch, server_only = _partition_maps(merged, patch, merge_key)
    else:
        in_patch, server_only = _partition_scalars(merged, patch)
    return _normalize_order(in_patch, server_only, patch, original, merge_key, is_map)


def _dedupe(s: list) -> list:
    """Go's deduplicateScalars, swap-with-last and all: the order is put
    right afterwards by the patch's and the live list's order."""
    s = list(s)
    length = len(s) - 1
    i = 0
    while i < length:
        j = i + 1
        while j <= length:
            if s[i] == s[j]:
                s[j] = s[length]
                s = s[:length]
                length -= 1
                j -= 1
            j += 1
        i += 1
    return s


def _special_elements(original: list, patch: list, merge_key: str) -> tuple[list, list]:
    plain = []
    replace = False
    for v in patch:
        if DIRECTIVE not in v:
            plain.append(v)
            continue
        directive = v[DIRECTIVE]
        if directive == "delete":
            if merge_key not in v:
                raise _no_merge_key(v, merge_key)
            original = [o for o in original if not (isinstance(o, dict) and merge_key in o
                                                    and o[merge_key] == v[merge_key])]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise PatchError("merging lists cannot yet be specified in the patch")
        else:
            raise PatchError(f"unknown patch type: {go_value(directive)} in map: {go_value(v)}")
    if replace:
        return plain, []
    return original, plain


def _find(items: list, key: str, value: Any) -> int:
    for i, v in enumerate(items):
        if not isinstance(v, dict):
            raise PatchError(f"value for key {i} is not a map")
        if key in v and v[key] == value:
            return i
    return -1


def _merge_items(original: list, patch: list, merge_key: str, elem: str | None) -> list:
    for v in patch:
        if merge_key not in v:
            raise _no_merge_key(v, merge_key)
        i = _find(original, merge_key, v[merge_key])
        if i >= 0:
            original[i] = _merge_map(original[i], v, elem)
        else:
            _discard_nulls(v)
            original.append(v)
    return original


def _partition_scalars(merged: list, by: list) -> tuple[list, list]:
    in_by = [v for v in merged if v in by]
    return in_by, [v for v in merged if v not in by]


def _partition_maps(merged: list, by: list, merge_key: str) -> tuple[list, list]:
    in_by, server_only = [], []
    for v in merged:
        if not isinstance(v, dict):
            raise _bad_type("map[string]interface {}", v)
        if merge_key not in v:
            raise _no_merge_key(v, merge_key)
        (in_by if _find(by, merge_key, v[merge_key]) >= 0 else server_only).append(v)
    return in_by, server_only


def _index(items: list, value: Any, merge_key: str, is_map: bool) -> int:
    probe = value.get(merge_key) if is_map and isinstance(value, dict) else value
    for i, v in enumerate(items):
        got = v.get(merge_key) if is_map and isinstance(v, dict) else v
        if got == probe:
            return i
    return -1


def _sort_by(items: list, order: list, merge_key: str, is_map: bool) -> list:
    deleted = []
    if is_map:
        for lst in (items, order):
            for v in lst:
                if not isinstance(v, dict):
                    raise _bad_type("map[string]interface {}", v)
                if merge_key not in v:
                    raise _no_merge_key(v, merge_key)
        deleted = [v for v in items if v.get(DIRECTIVE) == "delete"]
        items = [v for v in items if v.get(DIRECTIVE) != "delete"]
    # Go's sort.SliceStable with upstream's less ("unless both are in the order
    # list, true"), run as its insertion sort does on short lists.
    items = list(items)

    def less(a: Any, b: Any) -> bool:
        ia = _index(order, a, merge_key, is_map)
        if ia >= 0:
            ib = _index(order, b, merge_key, is_map)
            if ib >= 0:
                return ia < ib
        return True

    for i in range(1, len(items)):
        j = i
        while j > 0 and less(items[j], items[j - 1]):
            items[j], items[j - 1] = items[j - 1], items[j]
            j -= 1
    return items + deleted


def _normalize_order(patch_items: list, server_only: list, patch_order: list, server_order: list,
                     merge_key: str, is_map: bool) -> list:
    """upstream's normalizeElementOrder: each side sorted by its own order,
    then server-only items woven in where the live list had them."""
    left = _sort_by(server_only, server_order, merge_key, is_map)
    right = _sort_by(patch_items, patch_order, merge_key, is_map)
    out = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li = _index(server_order, left[i], merge_key, is_map)
            ri = _index(server_order, right[j], merge_key, is_map)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _discard_nulls(v: Any) -> None:
    if isinstance(v, dict):
        for k in [k for k, x in v.items() if x is None]:
            del v[k]
        for x in v.values():
            _discard_nulls(x)
    elif isinstance(v, list):
        for x in v:
            _discard_nulls(x)


def _remove_directives(v: Any) -> tuple[Any, bool]:
    """(value without directives, whether to keep it): a map carrying $patch goes."""
    if isinstance(v, dict):
        if DIRECTIVE in v:
            return None, False
        out = {}
        for k, x in v.items():
            kept, keep = _remove_directives(x)
            if keep:
                out[k] = kept
        return out, True
    if isinstance(v, list):
        out_list = []
        for x in v:
            kept, keep = _remove_directives(x)
            if keep:
                out_list.append(kept)
        return out_list, True
    return v, True


def _is_directive_key(k: str) -> bool:
    return k in (DIRECTIVE, RETAIN_KEYS) or k.startswith(SET_ORDER + "/") or k.startswith(DELETE_PRIMITIVE + "/")


def _strip(v: Any) -> Any:
    """Whatever directive a replaced or appended value still carried: no
    directive is ever stored (no field of any kind is spelled like one)."""
    if isinstance(v, dict):
        for k in [k for k in v if _is_directive_key(k)]:
            del v[k]
        for x in v.values():
            _strip(x)
    elif isinstance(v, list):
        for x in v:
            _strip(x)
    return v
