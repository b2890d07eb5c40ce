"""The container-runtime side of CNI, as libcni does it: load a conflist, run
its plugins in order for ADD (each gets the previous result), in reverse for
DEL with the cached result, cache what ADD returned, CHECK and GC.

The node agent uses this to attach pods: it execs plugins found on CNI_PATH
exactly as containerd would, so any CNI plugin (the reference ones too) can
be chained after knet-cni. One exception, `builtins`: a plugin executable
that only forwards to a handler in this very process (the node's knet-cni
shim, which sends its environment and stdin to the agent's socket) is
handed the same environment and stdin in a worker thread instead. The
answer is the same; the fork and exec of the shim, its connection and the
server's side of it cost the agent about a tenth of its CPU per pod start.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import trio

from knet.cni.spec import CniError


class PluginError(Exception):
    def __init__(self, plugin: str, command: str, error: dict):
        self.plugin, self.command, self.error = plugin, command, error
        super().__init__(f"{plugin} {command}: {error.get('msg')} ({error.get('details', '')}) [code {error.get('code')}]")


Handler = Callable[[dict[str, str], str], tuple[int, str]]  # (env, stdin) -> (exit code, stdout)


class Runtime:
    def __init__(self, conflist_path: str, cni_path: list[str], cache_dir: str,
                 builtins: dict[str, Handler] | None = None):
        """builtins: executable path -> the handler it forwards to in this process (see the module docstring)."""
        self.conflist_path = conflist_path
        self.cni_path = cni_path
        self.cache_dir = cache_dir
        self.builtins = dict(builtins or {})
        self._builtin_limiter = trio.CapacityLimiter(8)  # as the shims' server runs at most 8 at once
        os.makedirs(cache_dir, exist_ok=True)

    def conflist(self) -> dict:
        with open(self.conflist_path) as f:
            return json.load(f)

    def _find(self, plugin_type: str) -> str:
        for d in self.cni_path:
            path = os.path.join(d, plugin_type)
            # A builtin is answered in place, so it needs no exec permission: on a Debian machine /run
            # is mounted noexec (initramfs-tools does; systemd keeps it), and the node's shim lives there.
            if (path in self.builtins and os.path.isfile(path)) or os.access(path, os.X_OK):
                return path
        raise CniError(7, "invalid network configuration", f"plugin {plugin_type!r} not found on CNI_PATH")

    async def _exec(self, conf: dict, plugin: dict, command: str, env: dict[str, str],
                    prev: dict | None) -> dict | None:
        netconf = {k: v for k, v in plugin.items() if k != "capabilities"}
        netconf["cniVersion"] = conf["cniVersion"]
        netconf["name"] = conf["name"]
        if prev is not None:
            netconf["prevResult"] = prev
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": command,
                    "CNI_PATH": ":".join(self.cni_path), **env}
        executable = self._find(plugin["type"])
        handler = self.builtins.get(executable)
        if handler is not None:
            code, out = await trio.to_thread.run_sync(handler, full_env, json.dumps(netconf),
                                                      limiter=self._builtin_limiter)
            out, err = out.strip(), ""
        else:
            proc = await trio.run_process([executable], stdin=json.dumps(netconf).encode(),
                                          capture_stdout=True, capture_stderr=True, env=full_env, check=False)
            code, out, err = proc.returncode, proc.stdout.decode().strip(), proc.stderr.decode().strip()
        if code != 0:
            try:
                error = json.loads(out)
            except json.JSONDecodeError:
                error = {"code": 999, "msg": out or err}
            raise PluginError(plugin["type"], command, error)
        return json.loads(out) if out else None

    def _cache_path(self, name: str, cid: str, ifname: str) -> str:
        return os.path.join(self.cache_dir, f"{name}-{cid}-{ifname}")

    def _env(self, cid: str, netns: str | None, ifname: str, args: dict[str, str]) -> dict[str, str]:
        env = {"CNI_CONTAINERID": cid, "CNI_IFNAME": ifname,
               "CNI_ARGS": ";".join(["IgnoreUnknown=1", *(f"{k}={v}" for k, v in args.items())])}
        if netns:
            env["CNI_NETNS"] = netns
        return env

    async def add(self, cid: str, netns: str, ifname: str = "eth0", args: dict[str, str] | None = None) -> dict:
        conf = self.conflist()
        env = self._env(cid, netns, ifname, args or {})
        result = None
        for plugin in conf["plugins"]:
            result = await self._exec(conf, plugin, "ADD", env, result)
        with open(self._cache_path(conf["name"], cid, ifname), "w") as f:
            f.write(json.dumps(result))  # dumps: the C encoder (dump streams through the Python one)
        return result

    def cached(self, cid: str, ifname: str = "eth0") -> dict | None:
        conf = self.conflist()
        try:
            with open(self._cache_path(conf["name"], cid, ifname)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    async def delete(self, cid: str, netns: str | None, ifname: str = "eth0",
                     args: dict[str, str] | None = None) -> None:
        conf = self.conflist()
        env = self._env(cid, netns if netns and os.path.exists(netns) else None, ifname, args or {})
        prev = self.cached(cid, ifname)
        errors = []
        for plugin in reversed(conf["plugins"]):
            try:
                await self._exec(conf, plugin, "DEL", env, prev)
            except PluginError as e:
                errors.append(e)
        if errors:
            raise errors[0]
        try:
            os.unlink(self._cache_path(conf["name"], cid, ifname))
        except FileNotFoundError:
            pass

    async def check(self, cid: str, netns: str, ifname: str = "eth0") -> None:
        conf = self.conflist()
        env = self._env(cid, netns, ifname, {})
        prev = self.cached(cid, ifname)
        for plugin in conf["plugins"]:
            await self._exec(conf, plugin, "CHECK", env, prev)

    async def gc(self, valid: list[tuple[str, str]]) -> None:
        """GC exists from spec 1.1.0; older conflists are not sent it (the spec's rule)."""
        conf = self.conflist()
        if tuple(int(x) for x in conf["cniVersion"].split(".")) < (1, 1, 0):
            return
        attachments = [{"containerID": c, "ifname": i} for c, i in valid]
        for plugin in conf["plugins"]:
            p = dict(plugin)
            p["cni.dev/valid-attachments"] = attachments
            await self._exec(conf, p, "GC", {}, None)
        keep = {f"{conf['name']}-{c}-{i}" for c, i in valid}
        for name in os.listdir(self.cache_dir):
            if name not in keep:
                os.unlink(os.path.join(self.cache_dir, name))
