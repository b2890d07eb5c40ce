"""knet.api.objects's JSON both ways: from_json decodes as json.loads does, edge
cases included (it takes orjson's path only where the two agree), and decoded
objects share their key strings, which is what it is for (each cached Pod
otherwise holds its own copy of every key)."""

from __future__ import annotations

import json
import math

import pytest

from knet.api.objects import from_json, to_json

CASES = [
    b'{"metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {"replicas": 3}}',
    b'123456789012345678901234567890',  # past 64 bits: orjson would give a float
    b'{"n": 18446744073709551616}',
    b'{"n": -9223372036854775809}',
    b'{"n": 9223372036854775807, "m": -9223372036854775808}',
    b'{"f": 1.5, "e": 1e5, "z": -0.0, "big": 1e308}',
    b'"\\ud800"',  # a lone surrogate: orjson refuses, json takes it
    b'{"a": 1, "a": 2}',
    b'[true, false, null, "\\u00e9", "\\n"]',
    '{"text": "caf\u00e9"}',
]


@pytest.mark.parametrize("raw", CASES)
def test_from_json_is_json_loads(raw):
    got, want = from_json(raw), json.loads(raw)
    assert got == want and type(got) is type(want)
    if isinstance(want, dict) and "n" in want:
        assert type(got["n"]) is int


@pytest.mark.parametrize("raw", [b"NaN", b'{"x": Infinity}', b"1e400"])
def test_what_orjson_refuses_json_still_reads(raw):
    got = from_json(raw)
    value = got if isinstance(got, float) else got["x"]
    assert math.isnan(value) or math.isinf(value)


@pytest.mark.parametrize("raw", [b"{", b'{"a": }', b"\xff"])
def test_bad_json_raises_as_json_loads_does(raw):
    with pytest.raises(ValueError):
        json.loads(raw)
    with pytest.raises(ValueError):
        from_json(raw)


def test_decoded_objects_share_their_keys_and_round_trip():
    pod = {"metadata": {"name": "web", "namespace": "default"}, "status": {"podIP": "10.244.1.5"}}
    one, two = from_json(to_json(pod)), from_json(to_json(pod))
    assert one == pod and two == pod
    key_one = next(k for k in one["status"])
    key_two = next(k for k in two["status"])
    assert key_one is key_two  # one string object for "podIP" however many pods are cached
