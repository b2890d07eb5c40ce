"""knet.policy.matrix: upstream's truth-table text, its edits, and comparisons."""

from __future__ import annotations

import pytest

from knet.policy.matrix import Difference, Matrix, peer_matches, summary

PODS = [f"{ns}/{p}" for ns in "xyz" for p in "abc"]

# What upstream's PrettyPrint gives for default-deny-ingress in x (truthtable.go), typed by hand.
DENY_X = (
    "-\tx/a\tx/b\tx/c\ty/a\ty/b\ty/c\tz/a\tz/b\tz/c\n"
    "x/a\tX\tX\tX\t.\t.\t.\t.\t.\t.\n"
    "x/b\tX\tX\tX\t.\t.\t.\t.\t.\t.\n"
    "x/c\tX\tX\tX\t.\t.\t.\t.\t.\t.\n"
    "y/a\tX\tX\tX\t.\t.\t.\t.\t.\t.\n"
    "y/b\tX\tX\tX\t.\t.\t.\t.\t.\t.\n"
    "y/c\tX\tX\tX\t.\t.\t.\t.\t.\t.\n"
    "z/a\tX\tX\tX\t.\t.\t.\t.\t.\t.\n"
    "z/b\tX\tX\tX\t.\t.\t.\t.\t.\t.\n"
    "z/c\tX\tX\tX\t.\t.\t.\t.\t.\t."
)


def test_format_is_upstreams_pretty_print():
    m = Matrix(PODS).expect_peer("", "x", False)
    assert m.format() == DENY_X
    assert m.format(indent="  ").splitlines()[1] == "  x/a\tX\tX\tX\t.\t.\t.\t.\t.\t."


def test_parse_round_trip_and_spaces_and_surrounding_text():
    m = Matrix(PODS).expect_all_egress("y/b", False).expect("z/c", "x/a", None)
    assert Matrix.parse(m.format()) == m
    spaced = "probe 80/TCP\n\n" + m.format().replace("\t", "   ") + "\n\n81 connected, 8 blocked\n"
    assert Matrix.parse(spaced) == m
    assert Matrix.parse(m.format()).get("z/c", "x/a") is None


@pytest.mark.parametrize("text, message", [
    ("nothing here", "no matrix found"),
    ("-\tx/a\n", "no rows"),
    ("-\tx/a\tx/b\nx/a\t.\n", "line 2: row x/a has 1 marks for 2 servers"),
    ("-\tx/a\nx/a\tO\n", "line 2: row x/a: 'O' is not one of"),
    ("-\tx/a\tx/a\nx/a\t.\t.\n", "listed twice"),
    ("-\txa\nxa\t.\n", "no rows"),
])
def test_parse_errors_name_the_line(text, message):
    with pytest.raises(ValueError, match=message):
        Matrix.parse(text)


def test_edits_last_write_wins_as_upstream():
    # Upstream "should enforce policy based on Ports" edits, in order.
    m = (Matrix(PODS)
         .expect_peer("x", "x/a", False)
         .expect_peer("y", "x/a", True)
         .expect_peer("z", "x/a", False))
    assert [m.get(f, "x/a") for f in PODS] == [False] * 3 + [True] * 3 + [False] * 3
    assert all(m.get(f, t) for f in PODS for t in PODS if t != "x/a")
    m.expect_all_ingress("x/a", True).expect_all_egress("x/a", False)
    assert not any(m.get("x/a", t) for t in PODS)
    assert all(m.get(f, "x/a") for f in PODS if f != "x/a")


def test_peer_matching():
    assert peer_matches("", "x/a") and peer_matches("*", "y/b")
    assert peer_matches("x", "x/c") and peer_matches("x/*", "x/c") and not peer_matches("x", "y/c")
    assert peer_matches("*/a", "z/a") and not peer_matches("*/a", "z/b")
    assert peer_matches("x/a", "x/a") and not peer_matches("x/a", "x/b")


def test_unknown_pod_is_an_error():
    with pytest.raises(KeyError, match="w/a"):
        Matrix(PODS).expect("w/a", "x/a", False)
    with pytest.raises(ValueError, match="<namespace>/<pod>"):
        Matrix(["xa"])


def test_differences_ignore_loopback_and_list_in_row_order():
    want = Matrix(PODS).expect_peer("", "x", False)
    got = Matrix(PODS).expect_peer("", "x", False).expect("x/a", "x/a", True)
    assert want.differences(got) == []
    assert [str(d) for d in want.differences(got, ignore_loopback=False)] == [
        "x/a -> x/a: expected X, observed ."]
    got.expect("y/a", "x/b", True).expect("x/c", "z/c", False)
    assert want.differences(got) == [Difference("x/c", "z/c", True, False),
                                     Difference("y/a", "x/b", False, True)]
    assert summary(want, got) == "reachability: correct:70, incorrect:2, result=false"
    assert summary(want, want) == "reachability: correct:72, incorrect:0, result=true"
    cmp = want.compare(got)
    assert cmp.counts() == (78, 3, 0)  # the loopback difference counts here, as upstream's table shows it
    assert cmp.get("y/a", "x/b") is False


def test_differences_need_the_same_pods():
    with pytest.raises(ValueError, match="different pods"):
        Matrix(PODS).differences(Matrix(PODS[:3]))


def test_from_pairs_and_counts():
    m = Matrix.from_pairs(PODS[:2], [("x/a", "x/b", True), ("x/b", "x/a", False)])
    assert m.counts() == (1, 1, 2)
    assert m.counts(ignore_loopback=True) == (1, 1, 0)
    assert m.format().splitlines()[1] == "x/a\t?\t."
