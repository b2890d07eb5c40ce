"""knet exec through the API sends from two threads (stdin's pump, and the reader answering a
Ping or a Close): each frame must reach the socket whole, or the WebSocket stream is corrupt
(and over TLS OpenSSL fails a write made while another waits for room). A real socketpair
whose reader holds back, so that the first frame's write waits midway."""

from __future__ import annotations

import socket
import threading

from knet.cli.execremote import _sender


class Frames:
    """The WebSocket side: each event is its frame's bytes."""

    def send(self, event: bytes) -> bytes:
        return event


def test_a_frame_is_written_whole_while_another_thread_sends():
    a, b = socket.socketpair()
    try:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        send = _sender(Frames(), a, threading.Lock())
        big, small = b"A" * (1 << 20), b"B" * 16
        first = threading.Thread(target=send, args=(big,), daemon=True)
        first.start()
        b.settimeout(30)
        got = b.recv(4096)  # the big frame is being written; the rest of it waits for room
        second = threading.Thread(target=send, args=(small,), daemon=True)
        second.start()
        second.join(timeout=0.5)  # a chance to slip in: it cannot finish, as no room is made yet
        while len(got) < len(big) + len(small):
            chunk = b.recv(65536)
            if not chunk:
                break
            got += chunk
        first.join(timeout=30)
        second.join(timeout=30)
        assert got.count(b"B") == len(small) and got.endswith(small), got.find(b"B")
    finally:
        a.close()
        b.close()
