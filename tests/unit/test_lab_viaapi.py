"""knet.lab.viaapi's pure parts: which container a probe runs in, the cluster a context names,
a PTR question's name, and the checks it cannot make through a context, said as a failed check."""

from __future__ import annotations

import pytest

from knet.lab.checks import CheckFailed
from knet.lab.viaapi import ApiSeam, _running_container, cluster_of, reverse_name


def pod(*containers: tuple[str, str]) -> dict:
    return {"spec": {"containers": [{"name": n} for n, _ in containers]},
            "status": {"containerStatuses": [{"name": n, "state": {state: {}}} for n, state in containers if state]}}


def test_a_probe_runs_in_the_first_running_container():
    assert _running_container(pod(("web", "running"), ("shell", "running"))) == "web"
    assert _running_container(pod(("web", "waiting"), ("shell", "running"))) == "shell"
    assert _running_container(pod(("web", "terminated"), ("shell", ""))) == "web"  # none running: the first


def test_the_cluster_a_context_names():
    assert cluster_of("knet-lab-pods") == "lab-pods"
    assert cluster_of("knet-") == "knet-"
    assert cluster_of("kubernetes-admin@kubernetes") == "kubernetes-admin@kubernetes"


def test_a_ptr_question_for_an_address_asks_its_arpa_name():
    assert reverse_name("10.96.0.10", "PTR") == "10.0.96.10.in-addr.arpa."
    assert reverse_name("10.96.0.10", "A") == "10.96.0.10"
    assert reverse_name("web.default", "PTR") == "web.default"


def test_the_ext_host_is_a_failed_check_that_says_why():
    seam = ApiSeam(client=None, cluster="c", context="knet-c")  # type: ignore[arg-type]
    with pytest.raises(CheckFailed, match="not reachable through a kubeconfig context"):
        seam.ext()
    with pytest.raises(CheckFailed, match="not a pod reached through exec"):
        seam.connect("/run/netns/x", "10.0.0.1", 80, "TCP", None, 1.0)
