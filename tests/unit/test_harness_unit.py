"""knet's pytest plugin and the harness's pure parts, without root and without a
cluster: the plugin costs a pytest run nothing (it is loaded in every run on a
machine with knet, knet's own unprivileged suite included), it refuses a bad
cluster file or marker with one line before anything is brought up, and the
manifests and pcap files it writes are what `knet apply` and tcpdump read.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import knet
from knet.harness import manifests, net

pytest_plugins = ["pytester"]

REPO = str(Path(knet.__file__).resolve().parents[1])


@pytest.fixture(autouse=True)
def _this_knet(monkeypatch):
    """Runs of pytest and python made here import this checkout's knet, whatever the directory
    they start in (pytester's), as the test process does."""
    monkeypatch.setenv("PYTHONPATH", REPO)


HEAVY = ("trio", "pyroute2", "scapy", "yaml", "nftables", "cryptography", "dns", "knet.harness.cluster",
         "knet.harness.net", "knet.api", "knet.cluster")


def test_the_plugin_imports_only_pytest_and_the_standard_library():
    code = ("import sys; import knet.harness.plugin; "
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_package_exports_its_names_lazily():
    code = ("import sys, knet.harness as h; before = [m for m in ('scapy', 'knet.harness.net') if m in sys.modules]; "
            "h.probe; print(before, 'knet.harness.net' in sys.modules, 'scapy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "True", "False"]  # net loaded on first use; scapy only by send/sniff
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        __import__("knet.harness").harness.nope  # noqa: B018


# -- the plugin in a pytest run of its own ------------------------------------------------------


def test_a_run_that_uses_no_fixture_is_untouched(pytester: pytest.Pytester):
    pytester.makepyfile("def test_plain():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_options_and_markers_are_registered(pytester: pytest.Pytester):
    help_text = pytester.runpytest("--help").stdout.str()
    assert "--knet-cluster-file=FILE" in help_text and "--knet-pcap-dir=DIR" in help_text
    markers = pytester.runpytest("--markers").stdout.str()
    assert "@pytest.mark.knet_cluster(file=None, doc=None)" in markers and "@pytest.mark.knet:" in markers


def test_tests_that_use_a_cluster_carry_the_knet_marker(pytester: pytest.Pytester):
    pytester.makepyfile("""
        def test_with(apply):
            pass
        def test_without():
            pass
    """)
    result = pytester.runpytest("--collect-only", "-q", "-m", "knet")
    result.stdout.fnmatch_lines(["*::test_with"])
    assert "test_without" not in result.stdout.str()


BAD = {  # a module's marker -> the one line its tests fail with
    'knet_cluster(flie="c.yaml")': "knet_cluster marker: takes file= or doc= only, got flie",
    'knet_cluster(doc=["x"])': "knet_cluster marker: doc must be a mapping, got list",
    'knet_cluster(file="missing.yaml")': "knet cluster file */missing.yaml: *",
    'knet_cluster(doc={"kind": "Pod"})': "knet cluster file: kind: Unsupported value: 'Pod': supported values: \"Cluster\"",
    'knet_cluster(doc={"nodes": [{"role": "boss"}]})': "knet cluster file: nodes?0?.role: Unsupported value: 'boss'*",
}


def test_a_bad_cluster_file_or_marker_is_one_line_before_anything_is_built(pytester: pytest.Pytester):
    for n, marker in enumerate(BAD):
        pytester.makepyfile(**{f"test_bad{n}": f"""
            import pytest
            pytestmark = pytest.mark.{marker}
            def test_one(knet_cluster):
                pass
            def test_two(knet_cluster):
                pass
        """})
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=2 * len(BAD))   # each module's fixture fails, for each of its tests
    for message in BAD.values():
        result.stdout.fnmatch_lines(["*ERROR at setup of test_one*", message, "*ERROR at setup of test_two*", message])
    assert "During handling" not in result.stdout.str()


def test_the_cluster_file_option_is_read_from_the_invocation_directory(pytester: pytest.Pytester):
    pytester.makefile(".yaml", cluster="kind: Cluster\nnetworking: {backend: carrier-pigeon}\n")
    pytester.makepyfile("def test_one(knet_cluster):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--knet-cluster-file", "cluster.yaml")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["knet cluster file: networking.backend: Unsupported value: 'carrier-pigeon'*"])


# -- manifests ----------------------------------------------------------------------------------


def test_manifests_from_text_dicts_files_and_folders(tmp_path):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}}
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "2.yaml").write_text("kind: Service\n")
    (tmp_path / "dir" / "1.json").write_text('{"kind": "Namespace"}')
    (tmp_path / "dir" / "notes.txt").write_text("not a manifest")
    text = manifests.manifest_text(["kind: ConfigMap\nmetadata: {name: c}\n", pod, tmp_path / "dir",
                                    str(tmp_path / "dir" / "2.yaml")])
    docs = text.split("\n---\n")
    assert docs == ["kind: ConfigMap\nmetadata: {name: c}", json.dumps(pod), '{"kind": "Namespace"}',
                    "kind: Service", "kind: Service\n"]


@pytest.mark.parametrize(("value", "error", "message"), [
    (42, TypeError, "manifests: expected YAML text, a dict, a path or a list of them, got int"),
    ([], ValueError, "manifests: nothing to apply"),
    ("no-such-file.yaml", ValueError, "manifests: no-such-file.yaml: no such file or directory"),
])
def test_manifests_refused_with_the_reason(value, error, message):
    with pytest.raises(error, match=f"^{message}$"):
        manifests.manifest_text(value)


def test_an_empty_folder_is_refused(tmp_path):
    with pytest.raises(ValueError, match="the folder holds no .yaml/.yml/.json file"):
        manifests.manifest_text(tmp_path)


# -- pcap ---------------------------------------------------------------------------------------


def test_pcap_files_are_what_tcpdump_reads(tmp_path):
    frames = [net.Frame(1700000000.25, "eth0", bytes(range(60))), net.Frame(1700000001.5, "lo", b"\xff" * 14)]
    path = str(tmp_path / "x.pcap")
    net.write_pcap(path, frames)
    data = open(path, "rb").read()
    assert struct.unpack_from("<IHHiIII", data) == (0xA1B2C3D4, 2, 4, 0, 0, net.SNAPLEN, 1)
    assert struct.unpack_from("<IIII", data, 24) == (1700000000, 250000, 60, 60)
    assert [(f.time, f.data) for f in net.read_pcap(path)] == [(f.time, f.data) for f in frames]
    with pytest.raises(ValueError, match="not a little-endian microsecond pcap file"):
        (tmp_path / "bad").write_bytes(b"\x0a\x0d\x0d\x0a" + b"\0" * 20)
        net.read_pcap(str(tmp_path / "bad"))


def test_probe_refuses_what_knet_probe_refuses():
    src = net.Host(None, "ext", "192.0.2.1", "/nonexistent")
    with pytest.raises(ValueError, match="proto: unsupported value 'SCTP': TCP or UDP"):
        net.probe(src, "192.0.2.2", 80, "SCTP")
    with pytest.raises(ValueError, match="port: invalid value 0: must be between 1 and 65535"):
        net.probe(src, "192.0.2.2", 0)
    with pytest.raises(ValueError, match="pods: name at least one pod"):
        net.reachability([])


def test_dns_refuses_an_unknown_type_and_a_host_without_a_server():
    host = net.Host(None, "ext", "192.0.2.1", "/nonexistent")
    with pytest.raises(ValueError, match="qtype: unknown record type 'AAA'"):
        net.dns("web", "AAA", host)
    with pytest.raises(ValueError, match="server: ext has no resolv.conf: name the server to ask"):
        net.dns("web", "A", host)
