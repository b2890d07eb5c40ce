"""A container's stdin and terminal, for `kubectl attach -i` and `kubectl run -it`.

A container whose spec asks for `stdin: true` reads a pipe the agent holds
the other end of; one that asks for `tty: true` runs on a terminal (a pty)
whose master the agent holds and copies into the container's log, so logs
and attach see its output as they see any container's. Attach writes what
its client types into the pipe or the terminal, and resizes the terminal.
`stdinOnce`: the input ends when the first attached client leaves, as
kubelet closes it.

The agent holds these ends, not the node runtime: a container with a
console does not outlive its agent the way other containers do (its input
ends, its terminal hangs up), as a container's attach would not survive
its runtime shim.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import termios

import trio

DRAIN = 0.5  # how long the terminal's last output is still copied after the container exits


class Console:
    def __init__(self, spec: dict):
        self.tty = bool(spec.get("tty"))
        self.stdin = bool(spec.get("stdin"))
        self.once = bool(spec.get("stdinOnce"))
        self.master = -1  # the terminal's agent side
        self.slave = -1
        self.input_r = self.input_w = -1  # the stdin pipe (without a terminal)
        self.closed = False
        self._pumped = trio.Event()

    @staticmethod
    def wanted(spec: dict) -> bool:
        return bool(spec.get("stdin") or spec.get("tty"))

    def child_stdio(self, log_fd: int) -> tuple[int, int, int]:
        """The container's stdin, stdout and stderr: the terminal's slave for
        all three, or the pipe for stdin and the log for the others."""
        if self.tty:
            self.master, self.slave = os.openpty()
            os.set_blocking(self.master, False)
            return self.slave, self.slave, self.slave
        if self.stdin:
            self.input_r, self.input_w = os.pipe()
            os.set_blocking(self.input_w, False)
            return self.input_r, log_fd, log_fd
        return -1, log_fd, log_fd

    def after_fork(self) -> None:
        """In the child, before exec: the terminal becomes its controlling one."""
        if self.tty:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    def started(self) -> None:
        """The container runs: the parent's copies of its ends are closed."""
        for fd in (self.slave, self.input_r):
            if fd >= 0:
                os.close(fd)
        self.slave = self.input_r = -1

    async def pump(self, log_path: str) -> None:
        """The terminal's output into the container's log, until it hangs up."""
        if self.master < 0:
            self._pumped.set()
            return
        try:
            with open(log_path, "ab", buffering=0) as log:
                while True:
                    await trio.lowlevel.wait_readable(self.master)
                    try:
                        data = os.read(self.master, 65536)
                    except BlockingIOError:
                        continue
                    except OSError as e:  # EIO: the last holder of the terminal is gone
                        if e.errno == errno.EIO:
                            break
                        raise
                    if not data:
                        break
                    log.write(data)
        finally:
            self._pumped.set()

    async def finish(self) -> None:
        """The container exited: let the terminal's last output reach the log, then close."""
        with trio.move_on_after(DRAIN):
            await self._pumped.wait()
        self.close()

    async def write(self, data: bytes) -> None:
        fd = self.master if self.tty else self.input_w
        while data and fd >= 0 and not self.closed:
            await trio.lowlevel.wait_writable(fd)
            try:
                data = data[os.write(fd, data):]
            except BlockingIOError:
                continue
            except OSError:  # the container is gone, or closed its input
                return

    def resize(self, columns: int, rows: int) -> None:
        if self.master >= 0 and not self.closed:
            try:
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
            except OSError:
                pass

    async def end_input(self) -> None:
        """The client's input ended: the pipe closes; a terminal reads an end of file (^D)."""
        if self.tty:
            await self.write(b"\x04")
        elif self.input_w >= 0:
            os.close(self.input_w)
            self.input_w = -1

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for fd in (self.master, self.slave, self.input_r, self.input_w):
            if fd >= 0:
                try:
                    trio.lowlevel.notify_closing(fd)
                except Exception:
                    pass
                os.close(fd)
        self.master = self.slave = self.input_r = self.input_w = -1
