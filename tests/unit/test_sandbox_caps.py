"""The capability set a container gets (containerd's CRI rules) and kubelet's runAsNonRoot check."""

from __future__ import annotations

import pytest

from knet.node import caps
from knet.node.enter import non_root_error


def bits(sc: dict | None) -> int:
    return caps.capability_set({"name": "c", "securityContext": sc} if sc is not None else {"name": "c"})


def test_the_default_set_is_containerds():
    assert bits(None) == 0xA80425FB
    assert sorted(caps.names(bits(None))) == sorted(caps.DEFAULT)
    assert "SYS_ADMIN" not in caps.names(bits(None)) and "NET_ADMIN" not in caps.names(bits(None))


def test_add_and_drop_with_or_without_the_cap_prefix():
    got = caps.names(bits({"capabilities": {"add": ["NET_ADMIN", "CAP_SYS_TIME"], "drop": ["chown", "KILL"]}}))
    assert "NET_ADMIN" in got and "SYS_TIME" in got
    assert "CHOWN" not in got and "KILL" not in got and "SETUID" in got


def test_all_first_then_the_named_ones():
    assert bits({"capabilities": {"drop": ["ALL"]}}) == 0
    assert bits({"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}) == 1 << 10
    every = bits({"capabilities": {"add": ["ALL"], "drop": ["SYS_ADMIN"]}})
    assert every == caps.ALL & ~(1 << caps.NUMBER["SYS_ADMIN"])


def test_privileged_is_everything():
    assert bits({"privileged": True, "capabilities": {"drop": ["ALL"]}}) == caps.ALL


def test_an_unknown_capability_is_refused():
    with pytest.raises(caps.CapabilityError, match='unknown capability "CAP_FLY"'):
        bits({"capabilities": {"add": ["FLY"]}})


def pod(psc: dict, csc: dict | None = None) -> tuple[dict, dict]:
    c = {"name": "app", "securityContext": csc or {}}
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u-1"}, "spec": {"securityContext": psc,
                                                                                 "containers": [c]}}, c


def test_run_as_non_root_with_no_user_runs_as_root_and_is_refused():
    assert non_root_error(*pod({"runAsNonRoot": True})) == (
        'container has runAsNonRoot and image will run as root (pod: "p_ns(u-1)", container: app)')
    assert non_root_error(*pod({"runAsNonRoot": True, "runAsUser": 0})).startswith(
        "container's runAsUser breaks non-root policy")
    assert non_root_error(*pod({"runAsNonRoot": True}, {"runAsUser": 1000})) is None
    assert non_root_error(*pod({}, {"runAsNonRoot": False})) is None
    assert non_root_error(*pod({"runAsUser": 1000}, {"runAsNonRoot": True})) is None
