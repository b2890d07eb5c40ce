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
from collections.abc import Callable

import trio

from knet.node.console import Console
from knet.node.enter import Entry, entering, exec_target, fork_in
from knet.node.podspec import expand
from knet.node.sandbox import Sandbox

log = logging.getLogger("knet.node")


async def open_in_pod(entry: Entry, argv: list[str], *, stdin: int | None, stdout: int | None,
                      stderr: int | None, env: dict[str, str], after: Callable[[], None] | None = None,
                      ) -> trio.Process:
    """trio.lowlevel.open_process, but forked into the pod's PID namespace
    (knet.node.enter.fork_in: the forking thread's children are born there, so
    a container's first process is PID 1) and entered through entry.enter,
    then `after` (a terminal's TIOCSCTTY, a console's set-up)."""
    ours: list[trio.lowlevel.FdStream] = []
    theirs: list[int] = []
    pipe_in = pipe_out = pipe_err = None
    if stdin == subprocess.PIPE:
        r, w = os.pipe()
        pipe_in, stdin = trio.lowlevel.FdStream(w), r
        ours.append(pipe_in), theirs.append(r)
    if stdout == subprocess.PIPE:
        r, w = os.pipe()
        pipe_out, stdout = trio.lowlevel.FdStream(r), w
        ours.append(pipe_out), theirs.append(w)
    if stderr == subprocess.STDOUT and pipe_out is not None:
        stderr = stdout
    elif stderr == subprocess.PIPE:
        r, w = os.pipe()
        pipe_err, stderr = trio.lowlevel.FdStream(r), w
        ours.append(pipe_err), theirs.append(w)

    why_r, why_w = os.pipe()  # what went wrong in the child, which subprocess reduces to "preexec_fn"

    def preexec() -> None:
        try:
            entry.enter()
            if after is not None:
                after()
        except BaseException as e:
            os.write(why_w, str(e).encode(errors="replace")[:4000])
            raise

    def popen() -> subprocess.Popen:
        return subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=stderr, env=env, preexec_fn=preexec,
                                start_new_session=True, close_fds=True)
    try:
        proc = await trio.to_thread.run_sync(fork_in, entry.pidns, popen)
    except BaseException as e:
        for stream in ours:
            stream.close()
        if isinstance(e, subprocess.SubprocessError):
            os.close(why_w)
            why_w = -1
            with os.fdopen(why_r, "rb") as f:
                why_r = -1
                raise OSError(f"entering the pod: {f.read().decode(errors='replace') or e}") from None
        raise
    finally:
        for fd in (*theirs, why_r, why_w):
            if fd >= 0:
                os.close(fd)
    return trio.Process._create(proc, pipe_in, pipe_out, pipe_err)


async def spawn(sb: Sandbox, pod: dict, container: dict, env: dict[str, str],
                argv: list[str] | None = None, capture: bool = False, console: Console | None = None,
                join: int | None = None, cgroup: str | None = None, share_pid: int | None = None) -> trio.Process:
    """Start the container's command (or argv, for exec probes: `join` names
    the container's running process, whose namespaces it joins) inside the
    pod, entered as `knet exec` enters it; stdout and stderr go to its log
    unless captured; stdin is the console's (knet.node.console) when it has one."""
    if argv is None:
        argv = [expand(a, env) for a in (container.get("command") or [])] + \
               [expand(a, env) for a in (container.get("args") or [])]
    if not capture and os.path.exists(sb.log_path(container["name"])):  # a restart: keep one previous log
        os.replace(sb.log_path(container["name"]), sb.previous_log_path(container["name"]))
    with entering(sb, pod, container, join=join, cgroup=cgroup, new_pidns=share_pid) as entry:
        logf = subprocess.PIPE if capture else open(sb.log_path(container["name"]), "ab")
        try:
            if console is not None:
                stdin, stdout, stderr = console.child_stdio(logf.fileno())
                try:
                    proc = await open_in_pod(entry, argv, stdin=stdin if stdin >= 0 else subprocess.DEVNULL,
                                             stdout=stdout, stderr=stderr, env=env, after=console.after_fork)
                except BaseException:
                    console.close()
                    raise
                console.started()
                return proc
            return await open_in_pod(entry, argv, stdin=subprocess.DEVNULL, stdout=logf,
                                     stderr=subprocess.STDOUT if capture else logf, env=env)
        finally:
            if not capture:
                logf.close()


async def spawn_exec(sb: Sandbox, pod: dict, container: dict, env: dict[str, str],
                     argv: list[str], join: int | None = None, cgroup: str | None = None) -> tuple[int, str]:
    """Run a command to completion inside the container's context (exec probes:
    in its running process's namespaces, found from the sandbox's record)."""
    if join is None and cgroup is None:
        join, cgroup = exec_target(sb, container["name"])
    proc = await spawn(sb, pod, container, env, argv, capture=True, join=join, cgroup=cgroup)
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
