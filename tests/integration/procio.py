"""Reading a child process's output in tests without ever blocking past a deadline."""

from __future__ import annotations

import os
import select
import time
from typing import IO


def read_until(stream: IO, needle: str, timeout: float = 30) -> str:
    """What `stream` (a Popen pipe) says until `needle` shows: an AssertionError at the deadline
    or when the stream closes first, never a hang (a readline() on a quiet or block-buffered
    child waits forever). Reads the raw fd, so read nothing through the wrapper before this."""
    fd, text = stream.fileno(), b""
    deadline = time.monotonic() + timeout
    while needle.encode() not in text:
        left = deadline - time.monotonic()
        assert left > 0, f"no {needle!r} within {timeout}s: {text!r}"
        if select.select([fd], [], [], min(left, 0.5))[0]:
            chunk = os.read(fd, 4096)
            assert chunk, f"the stream closed before {needle!r}: {text!r}"
            text += chunk
    return text.decode()
