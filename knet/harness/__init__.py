"""knet's test harness: clusters for tests (cluster.Cluster), and the
packet-level API a network test is written with, Mininet-style:

    from knet.harness import probe, reachability, send, sniff, capture, dns, trace

    def test_policy(apply, pod):               # fixtures of knet's pytest plugin
        apply("manifests/")
        assert probe(pod("client"), pod("web"), 80, "TCP")

The names are loaded on first use, so importing the package (pytest's plugin
does, in every run) costs nothing.
"""

from __future__ import annotations

_EXPORTS = {
    "Cluster": "knet.harness.cluster",
    "Pod": "knet.harness.handles",
    "Host": "knet.harness.handles",
    "get_pod": "knet.harness.handles",
    "get_host": "knet.harness.handles",
    "list_pods": "knet.harness.handles",
    "probe": "knet.harness.net",
    "attempt": "knet.harness.net",
    "reachability": "knet.harness.net",
    "send": "knet.harness.net",
    "sniff": "knet.harness.net",
    "Sniffer": "knet.harness.net",
    "capture": "knet.harness.net",
    "Capture": "knet.harness.net",
    "dns": "knet.harness.net",
    "DnsAnswer": "knet.harness.net",
    "trace": "knet.harness.net",
    "read_pcap": "knet.harness.net",
    "Matrix": "knet.policy.matrix",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'knet.harness' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
