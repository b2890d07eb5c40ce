"""knet.cli.sorting: kubectl's --sort-by (kubectl/pkg/cmd/get/sorter.go) on
objects as the API returns them; tests/integration/test_cli_kubectl_parity.py
compares whole `get --sort-by` outputs with the real kubectl."""

from __future__ import annotations

from fractions import Fraction

import pytest

from knet.cli.sorting import SortError, parse_quantity, sort_objects
from knet.printers import go_sort


@pytest.mark.parametrize("text,value", [
    ("1", 1), ("250m", Fraction(1, 4)), ("1Gi", 2 ** 30), ("1.5k", 1500), ("-2", -2), (".5", Fraction(1, 2)),
    ("1e3", 1000), ("2E", 2 * 10 ** 18), ("3.", 3),
    ("", None), ("web-0", None), ("10.244.1.2", None), ("1Kb", None), ("2e", None),
    ("2026-12-07T14:41:26Z", None),
])
def test_parse_quantity_as_resource_parse_quantity(text, value):
    assert parse_quantity(text) == value


def named(name: str, **fields) -> dict:
    return {"metadata": {"name": name}, **fields}


def names(objs: list[dict]) -> list[str]:
    return [o["metadata"]["name"] for o in objs]


def test_numbers_quantities_strings_and_missing_fields():
    objs = [named("a", v=3), named("b", v=1), named("c", v=2)]
    assert names(sort_objects(objs, ".v")) == ["b", "c", "a"]
    objs = [named("a", q="1"), named("b", q="250m"), named("c", q="2Gi"), named("d", q="100Mi")]
    assert names(sort_objects(objs, "q")) == ["b", "a", "d", "c"]  # by amount, not by text
    objs = [named("b", s="10.244.2.1"), named("a"), named("c", s="10.244.10.1")]
    assert names(sort_objects(objs, "{.s}")) == ["a", "c", "b"]  # missing first; IPs compare as text
    assert names(sort_objects(objs, ".metadata.name")) == ["a", "b", "c"]


def test_refusals_in_kubectls_words():
    with pytest.raises(SortError, match='couldn\'t find any field with path "{.nope}" in the list of objects'):
        sort_objects([named("a"), named("b")], ".nope")
    with pytest.raises(SortError, match="unsortable type: map"):
        sort_objects([named("a"), named("b")], ".metadata")
    with pytest.raises(SortError, match="unexpected path string"):
        sort_objects([named("a")], "{{.a}}")
    assert sort_objects([], ".nope") == []


def test_go_sort_is_not_stable_past_twelve_items():
    # Equal keys keep their order in an insertion sort (12 items or fewer) and in an
    # already sorted input, but pdqsort's partitions move them otherwise.
    small = [(i % 3, i) for i in range(12)]
    go_sort(small, lambda x, y: x[0] < y[0])
    assert small == sorted(small, key=lambda p: p[0])  # stable here
    listed = [(i % 3, i) for i in range(20)]
    big = list(listed)
    go_sort(big, lambda x, y: x[0] < y[0])
    assert [k for k, _ in big] == sorted(k for k, _ in listed)
    assert big != sorted(listed, key=lambda p: p[0])  # equal keys reordered, as Go's sort.Sort does
    # Go's own order for this input (kubectl describe shows 20 events of three seconds this way:
    # tests/integration/test_cli_kubectl_parity.py compares it with the real kubectl)
    assert [i for _, i in big] == [9, 18, 15, 3, 12, 0, 6, 10, 7, 4, 13, 16, 1, 19, 8, 5, 11, 14, 2, 17]
