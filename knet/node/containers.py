"""Running a container: a process inside the pod's namespaces, or knet's
built-in server.

A container with a command runs that command from the host's filesystem in
the pod's network and UTS namespaces and in a mount namespace of its own whose
/etc/resolv.conf, /etc/hosts and /etc/hostname are the pod's, with the user,
group and no-new-privileges its securityContext asks for: it enters the pod
through knet.node.enter, the code `knet exec` enters it through.

A container without one runs the built-in server, which answers on every
containerPort with `<namespace>/<pod>`, like the agnhost image upstream
conformance tests use. That one lives in the node runtime (knet.node.runtime),
not here: its sockets are opened inside the pod's namespace but served by the
runtime's loop, so a pod costs no process and outlives the agent.
"""

from __future__ import annotations

import logging
import os
import subprocess

import trio

from knet.node.console import Console
from knet.node.enter import entering
from knet.node.podspec import expand
from knet.node.sandbox import Sandbox

log = logging.getLogger("knet.node")


async def spawn(sb: Sandbox, pod: dict, container: dict, env: dict[str, str],
                argv: list[str] | None = None, capture: bool = False, console: Console | None = None) -> trio.Process:
    """Start the container's command (or argv, for exec probes) inside the pod,
    entered as `knet exec` enters it; stdout and stderr go to its log unless
    captured; stdin is the console's (knet.node.console) when it has one."""
    if argv is None:
        argv = [expand(a, env) for a in (container.get("command") or [])] + \
               [expand(a, env) for a in (container.get("args") or [])]
    if not capture and os.path.exists(sb.log_path(container["name"])):  # a restart: keep one previous log
        os.replace(sb.log_path(container["name"]), sb.previous_log_path(container["name"]))
    with entering(sb, pod, container) as enter:
        logf = subprocess.PIPE if capture else open(sb.log_path(container["name"]), "ab")
        try:
            if console is not None:
                stdin, stdout, stderr = console.child_stdio(logf.fileno())

                def enter_console() -> None:
                    enter()
                    console.after_fork()
                try:
                    proc = await trio.lowlevel.open_process(
                        argv, stdin=stdin if stdin >= 0 else subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                        env=env, preexec_fn=enter_console, start_new_session=True, close_fds=True)
                except BaseException:
                    console.close()
                    raise
                console.started()
                return proc
            return await trio.lowlevel.open_process(
                argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT if capture else logf, env=env,
                preexec_fn=enter, start_new_session=True, close_fds=True)
        finally:
            if not capture:
                logf.close()


async def spawn_exec(sb: Sandbox, pod: dict, container: dict, env: dict[str, str],
                     argv: list[str]) -> tuple[int, str]:
    """Run a command to completion inside the container's context (exec probes)."""
    proc = await spawn(sb, pod, container, env, argv, capture=True)
    try:
        out = b""
        async with proc.stdout:
            while chunk := await proc.stdout.receive_some(65536):
                out += chunk
        return await proc.wait(), out.decode(errors="replace")
    finally:
        if proc.returncode is None:
            proc.kill()
            with trio.CancelScope(shield=True):
                await proc.wait()
