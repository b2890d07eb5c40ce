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


def test_a_tls_write_to_a_peer_that_stops_reading_times_out(tmp_path):
    """Over TLS the socket is non-blocking (knet.cli.execremote._OneAtATime): its sendall keeps
    the exec's timeout, as a blocking socket's does, instead of waiting for room for ever."""
    import ssl

    from knet.api import tls
    from knet.cli.execremote import _OneAtATime

    ca_key, ca_crt = tls.make_ca()
    key, crt = tls.make_cert(ca_key, ca_crt, "server", dns=["server"], server=True)
    (tmp_path / "s.crt").write_bytes(crt)
    (tmp_path / "s.key").write_bytes(key)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(str(tmp_path / "s.crt"), str(tmp_path / "s.key"))
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(cadata=ca_crt.decode())
    a, b = socket.socketpair()
    a.settimeout(30)
    b.settimeout(30)
    accepted: list = []
    handshake = threading.Thread(target=lambda: accepted.append(server_ctx.wrap_socket(b, server_side=True)),
                                 daemon=True)
    handshake.start()
    client = _OneAtATime(client_ctx.wrap_socket(a, server_hostname="server"))
    handshake.join(timeout=30)
    raised: list[BaseException] = []

    def write() -> None:
        try:
            client.sendall(b"x" * (16 << 20))  # far more than the socket buffers hold; no one reads
        except BaseException as e:  # noqa: BLE001 - handed to the test
            raised.append(e)

    client.settimeout(0.5)
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    writer.join(timeout=30)
    try:
        assert not writer.is_alive(), "sendall waited past its timeout"
        assert len(raised) == 1 and isinstance(raised[0], TimeoutError), raised
    finally:
        client.close()
        for s in accepted:
            s.close()
        b.close()
