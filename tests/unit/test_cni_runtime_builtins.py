"""The CNI runtime's builtins (issue 14): a plugin executable that only forwards
to a handler in the agent's own process is answered by that handler in place,
with the environment and stdin the executable would have been given; any
other plugin on CNI_PATH, chained after it, is still exec'd."""

from __future__ import annotations

import json
import os

import pytest
import trio

from knet.cni.runtime import PluginError, Runtime
from knet.cni.spec import CniError

# A chained plugin, exec'd: it passes its prevResult on with a mark, as a tuning plugin would.
CHAINED = """#!/bin/sh
python3 -c 'import json, os, sys; conf = json.load(sys.stdin); r = conf["prevResult"]
r["chained"] = os.environ["CNI_COMMAND"] + " " + os.environ["CNI_IFNAME"]; print(json.dumps(r))'
"""
# The forwarding executable: were it exec'd, the ADD would fail.
SHIM = "#!/bin/sh\necho '{\"code\": 999, \"msg\": \"the shim ran\"}'; exit 1\n"


def _setup(tmp_path, plugins):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("knet-cni", SHIM), ("mark", CHAINED)):
        (bin_dir / name).write_text(text)
        os.chmod(bin_dir / name, 0o755)
    conf = tmp_path / "10-test.conflist"
    conf.write_text(json.dumps({"cniVersion": "1.1.0", "name": "t", "plugins": plugins}))
    return str(bin_dir), str(conf)


def test_the_forwarding_plugin_is_answered_in_place_and_the_chain_still_execs(tmp_path):
    bin_dir, conf = _setup(tmp_path, [{"type": "knet-cni", "bridge": "b0"}, {"type": "mark"}])
    calls = []

    def handler(env: dict[str, str], stdin: str) -> tuple[int, str]:
        calls.append((env, json.loads(stdin)))
        return 0, json.dumps({"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.5/24"}]}) + "\n"

    rt = Runtime(conf, [bin_dir], str(tmp_path / "cache"), builtins={os.path.join(bin_dir, "knet-cni"): handler})
    result = trio.run(rt.add, "c1", "/run/netns/x", "eth0", {"K8S_POD_NAME": "p"})
    assert result["ips"] == [{"address": "10.0.0.5/24"}]
    assert result["chained"] == "ADD eth0"  # the next plugin got the handler's result as prevResult
    (env, netconf), = calls
    assert env["CNI_COMMAND"] == "ADD" and env["CNI_CONTAINERID"] == "c1" and env["CNI_NETNS"] == "/run/netns/x"
    assert env["CNI_ARGS"] == "IgnoreUnknown=1;K8S_POD_NAME=p" and env["CNI_PATH"] == bin_dir and "PATH" in env
    assert netconf == {"type": "knet-cni", "bridge": "b0", "cniVersion": "1.1.0", "name": "t"}
    assert rt.cached("c1") == result


def test_a_handler_error_is_the_plugin_error_the_process_would_give(tmp_path):
    bin_dir, conf = _setup(tmp_path, [{"type": "knet-cni"}])
    rt = Runtime(conf, [bin_dir], str(tmp_path / "cache"),
                 builtins={os.path.join(bin_dir, "knet-cni"): lambda env, stdin: (
                     1, json.dumps({"cniVersion": "1.1.0", "code": 11, "msg": "no IP addresses available"}))})
    with pytest.raises(PluginError, match=r"knet-cni ADD: no IP addresses available .*\[code 11\]"):
        trio.run(rt.add, "c1", "/run/netns/x")


def test_without_builtins_the_executable_runs(tmp_path):
    bin_dir, conf = _setup(tmp_path, [{"type": "knet-cni"}])
    rt = Runtime(conf, [bin_dir], str(tmp_path / "cache"))
    with pytest.raises(PluginError, match=r"knet-cni ADD: the shim ran .*\[code 999\]"):
        trio.run(rt.add, "c1", "/run/netns/x")



def test_a_builtin_needs_no_exec_permission_and_another_plugin_does(tmp_path):
    """A noexec /run (Debian's, mounted so by initramfs-tools and kept by systemd) fails
    access(X_OK) as a file without its x bit does: the node's own shim is still found and
    answered in place; a plugin that would have to be exec'd is not found."""
    bin_dir, conf = _setup(tmp_path, [{"type": "knet-cni"}, {"type": "mark"}])
    for name in ("knet-cni", "mark"):
        os.chmod(os.path.join(bin_dir, name), 0o644)
    answer = json.dumps({"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.6/24"}]})
    rt = Runtime(conf, [bin_dir], str(tmp_path / "cache"),
                 builtins={os.path.join(bin_dir, "knet-cni"): lambda env, stdin: (0, answer)})
    with pytest.raises(CniError) as e:
        trio.run(rt.add, "c1", "/run/netns/x")
    assert e.value.details == "plugin 'mark' not found on CNI_PATH"
    alone = tmp_path / "alone.conflist"
    alone.write_text(json.dumps({"cniVersion": "1.1.0", "name": "t", "plugins": [{"type": "knet-cni"}]}))
    rt = Runtime(str(alone), [bin_dir], str(tmp_path / "cache"),
                 builtins={os.path.join(bin_dir, "knet-cni"): lambda env, stdin: (0, answer)})
    assert trio.run(rt.add, "c2", "/run/netns/x")["ips"] == [{"address": "10.0.0.6/24"}]
