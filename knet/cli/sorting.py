"""kubectl's `--sort-by=PATH` (kubectl/pkg/cmd/get/sorter.go): objects ordered
by the first value a JSONPath finds in each, compared as kubectl compares
them (numbers as numbers, strings that parse as quantities such as "250m" or
"1Gi" by their amount, other strings bytewise, an object without the field
first), through Go's sort.Sort, whose order among equal values is its own.

Imported only when --sort-by is given."""

from __future__ import annotations

import re
from fractions import Fraction

from knet.cli.columns import ColumnsError, relaxed_path
from knet.cli.jsonpath import JSONPath, JSONPathError, go_quote
from knet.printers import go_sort

__all__ = ["SortError", "sort_objects"]


class SortError(Exception):
    """A --sort-by kubectl refuses, in kubectl's words."""


_QUANTITY = re.compile(r"([+-]?)(\d+\.?\d*|\.\d+)(?:(Ki|Mi|Gi|Ti|Pi|Ei)|[eE]([+-]?\d+)|(m|k|M|G|T|P|E)?)")
_BINARY = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}
_DECIMAL = {"m": Fraction(1, 1000), "": 1, "k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12,
            "P": 10 ** 15, "E": 10 ** 18}


def parse_quantity(text: str) -> Fraction | None:
    """resource.ParseQuantity's value, or None where it refuses the string."""
    m = _QUANTITY.fullmatch(text)
    if m is None:
        return None
    sign, number, binary, exponent, decimal = m.groups()
    value = Fraction(number if not number.endswith(".") else number[:-1])
    if binary:
        value *= _BINARY[binary]
    elif exponent is not None:
        if abs(int(exponent)) > 1000:
            return None
        value *= Fraction(10) ** int(exponent)
    else:
        value *= _DECIMAL[decimal or ""]
    return -value if sign == "-" else value


def _type_name(value: object) -> str:
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, list):
        return "[]interface {}"
    return "bool" if isinstance(value, bool) else type(value).__name__


def _less(a: object, b: object) -> bool:
    """isLess for two values of unstructured content (reflect.Interface kind)."""
    if a is None and b is None:
        return False
    if a is None:
        return True
    if b is None:
        return False
    if isinstance(a, bool) or isinstance(a, (dict, list)):
        raise SortError(f"unsortable type: {_type_name(a)}")
    for kind in (int, float):
        if type(a) is kind:
            if type(b) is kind:
                return a < b  # type: ignore[operator]
            raise SortError("unsortable interface: interface")
    if isinstance(a, str):
        if not isinstance(b, str):
            raise SortError("unsortable interface: interface")
        qa, qb = parse_quantity(a), parse_quantity(b)
        if qa is None or qb is None:
            return a.encode() < b.encode()
        return qa < qb
    raise SortError(f"unsortable type: {_type_name(a)}")


def sort_objects(objects: list[dict], field: str, relaxed_or_raw: bool = False) -> list[dict]:
    """The objects in kubectl's --sort-by order. relaxed_or_raw: the table
    printer's reading of the path (a path the relaxed form refuses is used
    as written) instead of SortObjects' (refused)."""
    try:
        path = relaxed_path(field)
    except ColumnsError:
        if not relaxed_or_raw:
            raise SortError("unexpected path string, expected a 'name1.name2' or '.name1.name2' or "
                            "'{name1.name2}' or '{.name1.name2}'") from None
        path = field
    try:
        parser = JSONPath(path)
        firsts = []
        for obj in objects:
            results = parser.results(obj)
            firsts.append((True, results[0][0]) if results and results[0] else (False, None))
    except JSONPathError as e:
        raise SortError(f"sorting error: {e}" if relaxed_or_raw else str(e)) from None
    if objects and not any(found for found, _ in firsts):
        raise SortError(f"couldn't find any field with path {go_quote(path)} in the list of objects")
    order = list(range(len(objects)))

    def less(i: int, j: int) -> bool:
        (found_i, vi), (found_j, vj) = firsts[i], firsts[j]
        if not found_i:
            return True
        if not found_j:
            return False
        try:
            return _less(vi, vj)
        except SortError as e:
            raise SortError(f"Field {path} in *unstructured.Unstructured is an unsortable type: interface, "
                            f"err: {e}") from None
    go_sort(order, less)
    return [objects[i] for i in order]
