"""The pure parts of logs, exec and port-forward: the WebSocket channel
protocol, SPDY/3.1 framing, pods/log options, and how the API server turns
a request into the kubelet's."""

from __future__ import annotations

import json
import struct
import zlib

import pytest

from knet.api import nodeproxy, podlogs
from knet.api.errors import ApiError
from knet.node import logclock, spdy, wschannel

# -- channels -------------------------------------------------------------------


def test_negotiation_takes_the_clients_first_supported_protocol():
    offered = wschannel.offered("v5.channel.k8s.io, v4.channel.k8s.io,channel.k8s.io")
    assert offered == ["v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io"]
    assert wschannel.negotiate(offered, wschannel.EXEC_PROTOCOLS) == wschannel.V5
    # The Python client offers v5 first for port-forward too: the kubelet serves it v4.
    assert wschannel.negotiate(offered, wschannel.PORTFORWARD_PROTOCOLS) == wschannel.V4
    assert wschannel.negotiate(["base64.channel.k8s.io"], wschannel.EXEC_PROTOCOLS) is None


def test_frames_carry_their_channel_first():
    assert wschannel.frame(wschannel.STDOUT, b"hi") == b"\x01hi"
    assert wschannel.parse(b"\x00input", wschannel.V5) == (0, b"input")
    assert wschannel.parse(wschannel.close_frame(wschannel.STDIN), wschannel.V5) == (255, b"\x00")
    assert wschannel.parse(b"", wschannel.V5) is None
    assert wschannel.port_prefix(8080) == bytes([0x90, 0x1F])  # little-endian, as the Python client reads it


def test_resize_messages():
    assert wschannel.parse_resize(b'{"Width":120,"Height":40}') == (120, 40)
    for bad in (b"", b"{}", b'{"Width":"x","Height":1}', b'{"Width":-1,"Height":1}', b"[1,2]"):
        assert wschannel.parse_resize(bad) is None


def test_exit_status_as_kubectl_reads_it():
    ok = wschannel.exit_status(0, ["true"])
    assert ok == {"metadata": {}, "status": "Success"}
    failed = wschannel.exit_status(3, ["sh", "-c", "exit 3"])
    assert failed["status"] == "Failure" and failed["reason"] == "NonZeroExitCode"
    assert failed["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert "exit code 3" in failed["message"] and "[sh -c 'exit 3']" in failed["message"]
    # v4 and v5 carry the Status as JSON; the older protocols only a failure's message.
    assert json.loads(wschannel.error_message(failed, wschannel.V4)) == failed
    assert wschannel.error_message(ok, wschannel.V5) == b'{"metadata":{},"status":"Success"}'
    assert wschannel.error_message(ok, wschannel.V1) == b""
    assert wschannel.error_message(failed, wschannel.V1) == failed["message"].encode()


# -- SPDY -----------------------------------------------------------------------


def test_spdy_frames_survive_any_split():
    client = spdy.HeaderCodec()
    wire = (spdy.syn_stream(client, 1, {"streamType": "error", "port": "80", "requestID": "0"})
            + spdy.syn_stream(client, 3, {"streamType": "data", "port": "80", "requestID": "0"})
            + spdy.data(3, b"GET / HTTP/1.0\r\n\r\n") + spdy.data(3, b"", fin=True) + spdy.ping(7)
            + spdy.rst_stream(3, spdy.CANCEL) + spdy.goaway(3))
    for step in (1, 3, 7, len(wire)):
        reader = spdy.Reader(spdy.HeaderCodec())  # the receiving end's own decompression context
        frames = []
        for i in range(0, len(wire), step):
            frames += reader.feed(wire[i:i + step])
        assert [(f.type, f.stream_id) for f in frames] == [
            (spdy.SYN_STREAM, 1), (spdy.SYN_STREAM, 3), (0, 3), (0, 3), (spdy.PING, 0), (spdy.RST_STREAM, 3),
            (spdy.GOAWAY, 3)]
        # Header names lowercased, as spdystream reads them.
        assert frames[1].headers == {"streamtype": "data", "port": "80", "requestid": "0"}
        assert frames[2].data == b"GET / HTTP/1.0\r\n\r\n" and not frames[2].fin
        assert frames[3].fin and frames[3].data == b""
        assert frames[4].value == 7 and frames[5].value == spdy.CANCEL


def test_spdy_header_blocks_use_one_context_per_direction_and_the_dictionary():
    out, inn = spdy.HeaderCodec(), spdy.HeaderCodec()
    first = out.encode({"streamType": "data"})
    second = out.encode({"streamType": "data"})
    assert len(second) < len(first)  # the second block refers back into the shared window
    assert inn.decode(first) == {"streamtype": "data"}
    assert inn.decode(second) == {"streamtype": "data"}
    # The first block names the SPDY/3 dictionary (FDICT with its Adler-32), as Go's zlib expects.
    assert first[1] & 0x20 and int.from_bytes(first[2:6], "big") == zlib.adler32(spdy.DICTIONARY)
    # A server's SYN_REPLY parses back with the client's view of the same stream.
    reply = spdy.syn_reply(spdy.HeaderCodec(), 5)
    (frame,) = spdy.Reader(spdy.HeaderCodec()).feed(reply)
    assert (frame.type, frame.stream_id, frame.headers) == (spdy.SYN_REPLY, 5, {})


def test_spdy_refuses_what_is_not_spdy3():
    with pytest.raises(spdy.SpdyError, match="version 2"):
        spdy.Reader(spdy.HeaderCodec()).feed(b"\x80\x02\x00\x01\x00\x00\x00\x00")
    with pytest.raises(spdy.SpdyError, match="decompress"):
        spdy.Reader(spdy.HeaderCodec()).feed(b"\x80\x03\x00\x01\x00\x00\x00\x0e" + b"\x00" * 10 + b"junk")


# -- log options ----------------------------------------------------------------


def test_log_options_parse_and_go_to_the_kubelet():
    opts = podlogs.parse_options({"container": "c", "follow": "true", "tailLines": "10", "timestamps": "1",
                                  "limitBytes": "500", "sinceSeconds": "60"})
    assert (opts.container, opts.follow, opts.tail_lines, opts.timestamps, opts.limit_bytes, opts.since_seconds) == (
        "c", True, 10, True, 500, 60)
    assert opts.to_query() == {"follow": "true", "timestamps": "true", "tailLines": "10", "limitBytes": "500",
                               "sinceSeconds": "60"}
    assert podlogs.parse_options({}).to_query() == {}
    since = podlogs.parse_options({"sinceTime": "2026-01-02T03:04:05Z"})
    assert since.since() == 1767323045.0
    assert since.to_query() == {"sinceTime": "2026-01-02T03:04:05.000000000Z"}


@pytest.mark.parametrize("query, words", [
    ({"tailLines": "-1"}, 'PodLogOptions "p" is invalid: tailLines: Invalid value: -1: '
                          "must be greater than or equal to 0"),
    ({"limitBytes": "0"}, "limitBytes: Invalid value: 0: must be greater than 0"),
    ({"sinceSeconds": "0"}, "sinceSeconds: Invalid value: 0: must be greater than 0"),
    ({"sinceSeconds": "5", "sinceTime": "2026-01-02T03:04:05Z"}, "at most one of `sinceTime` or `sinceSeconds`"),
])
def test_log_options_refused_as_upstream(query, words):
    with pytest.raises(ApiError) as e:
        podlogs.parse_options(query, "p")
    assert e.value.code == 422 and words in e.value.message


@pytest.mark.parametrize("query, field", [({"tailLines": "x"}, "tailLines"), ({"follow": "maybe"}, "follow"),
                                          ({"sinceTime": "yesterday"}, "sinceTime")])
def test_log_options_that_do_not_parse_are_a_400(query, field):
    with pytest.raises(ApiError) as e:
        podlogs.parse_options(query)
    assert e.value.code == 400 and e.value.message.startswith(field)


def test_tail_counts_lines_as_kubelet_does():
    data = b"a\nb\nc\n"
    assert data[podlogs.tail_start(data, 2):] == b"b\nc\n"
    assert data[podlogs.tail_start(data, 0):] == b""
    assert data[podlogs.tail_start(data, 10):] == data
    assert b"a\nb\npartial"[podlogs.tail_start(b"a\nb\npartial", 1):] == b"partial"
    assert podlogs.tail_start(b"", 3) == 0


def test_timestamps_prefix_each_line_once_across_chunks():
    at = 1767323045.5
    first, partial = podlogs.stamp_lines(b"one\ntw", at, False)
    second, partial = podlogs.stamp_lines(b"o\nthree\n", at, partial)
    stamp = b"2026-01-02T03:04:05.500000000Z "
    assert first + second == stamp + b"one\n" + stamp + b"two\n" + stamp + b"three\n"
    assert not partial


# -- the API server's side ------------------------------------------------------


def pod(containers=("a",), node="worker-1", phase="Running"):
    return {"metadata": {"name": "p", "namespace": "ns"}, "spec": {
        "nodeName": node, "containers": [{"name": n} for n in containers]}, "status": {"phase": phase}}


def test_the_container_is_picked_as_the_api_server_does():
    assert nodeproxy.pick_container(pod(), None) == "a"
    with pytest.raises(ApiError, match=r"a container name must be specified for pod p, choose one of: \[a b\]"):
        nodeproxy.pick_container(pod(("a", "b")), None)
    with pytest.raises(ApiError, match="container c is not valid for pod p"):
        nodeproxy.pick_container(pod(("a", "b")), "c")


def test_kubelet_paths():
    assert nodeproxy.kubelet_path(pod(), "log", "GET", {"tailLines": "3"}, "tailLines=3") == \
        "/containerLogs/ns/p/a?tailLines=3"
    assert nodeproxy.kubelet_path(pod(node=""), "log", "GET", {}, "") is None  # no node yet: an empty log
    # exec's repeated command= survive, in order; the container moves into the path.
    raw = "command=sh&command=-c&command=echo+%22a+b%22&container=a&stdout=true"
    assert nodeproxy.kubelet_path(pod(), "exec", "POST", {"container": "a"}, raw) == \
        "/exec/ns/p/a?command=sh&command=-c&command=echo+%22a+b%22&stdout=true"
    assert nodeproxy.kubelet_path(pod(), "portforward", "GET", {}, "ports=80") == "/portForward/ns/p?ports=80"
    with pytest.raises(ApiError, match="cannot exec into a container in a completed pod; current phase is Succeeded"):
        nodeproxy.kubelet_path(pod(phase="Succeeded"), "exec", "GET", {}, "command=true")
    with pytest.raises(ApiError, match="pod p does not have a host assigned"):
        nodeproxy.kubelet_path(pod(node=""), "exec", "GET", {}, "command=true")
    with pytest.raises(ApiError) as e:
        nodeproxy.kubelet_path(pod(), "log", "DELETE", {}, "")
    assert e.value.code == 405


def test_the_kubelet_is_found_at_the_nodes_address_and_port():
    node = {"metadata": {"name": "n"}, "status": {"addresses": [{"type": "Hostname", "address": "n"},
                                                                {"type": "InternalIP", "address": "192.168.56.11"}]}}
    assert nodeproxy.kubelet_address(node) == ("192.168.56.11", 10250)
    node["status"]["daemonEndpoints"] = {"kubeletEndpoint": {"Port": 11250}}
    assert nodeproxy.kubelet_address(node) == ("192.168.56.11", 11250)
    with pytest.raises(ApiError, match="no InternalIP"):
        nodeproxy.kubelet_address({"metadata": {"name": "n"}, "status": {}})


def test_the_forwarded_request_carries_our_credential_not_the_clients():
    head = nodeproxy.request_head("GET", "/exec/ns/p/a?command=ls", "10.0.0.1", 10250, "tok", [
        ("authorization", "Bearer client"), ("connection", "Upgrade"), ("upgrade", "websocket"),
        ("sec-websocket-key", "k"), ("sec-websocket-version", "13"), ("sec-websocket-protocol", "v5.channel.k8s.io")])
    text = head.decode()
    assert text.startswith("GET /exec/ns/p/a?command=ls HTTP/1.1\r\n") and text.endswith("\r\n\r\n")
    assert "Authorization: Bearer tok\r\n" in text and "client" not in text
    assert "upgrade: websocket\r\n" in text and "sec-websocket-protocol: v5.channel.k8s.io\r\n" in text
    plain = nodeproxy.request_head("GET", "/containerLogs/ns/p/a?", "10.0.0.1", 10250, "tok", []).decode()
    assert "Connection: close\r\n" in plain and "upgrade" not in plain.lower()
    # A SPDY client's protocol versions, one header each, all reach the kubelet.
    spdy_head = nodeproxy.request_head("POST", "/exec/ns/p/a?command=ls", "10.0.0.1", 10250, "tok", [
        ("connection", "Upgrade"), ("upgrade", "SPDY/3.1"), ("x-stream-protocol-version", "v5.channel.k8s.io"),
        ("x-stream-protocol-version", "v4.channel.k8s.io")]).decode()
    assert spdy_head.count("x-stream-protocol-version: ") == 2 and "Connection: close" not in spdy_head


# -- when log lines were written --------------------------------------------------


def test_marks_give_each_line_the_first_note_that_covers_it():
    m = logclock.Marks()
    m.note("/l", 10, 100.0)
    m.note("/l", 25, 105.0)
    assert m.time_of("/l", 5, 999.0) == 100.0
    assert m.time_of("/l", 10, 999.0) == 100.0
    assert m.time_of("/l", 11, 999.0) == 105.0
    assert m.time_of("/l", 26, 999.0) == 999.0  # written after the last note: the caller's default
    assert m.time_of("/other", 1, 7.0) == 7.0
    m.note("/l", 25, 106.0)  # no growth: nothing new
    assert m.files["/l"] == ([10, 25], [100.0, 105.0])
    m.note("/l", 30, 105.001)  # the same moment: merged into the last note
    assert m.files["/l"] == ([10, 30], [100.0, 105.0])
    m.moved("/l", "/l.previous")  # a restart renames the log: its notes go with it
    assert m.time_of("/l.previous", 5, 0.0) == 100.0 and "/l" not in m.files
    m.note("/l.previous", 3, 200.0)  # shorter than before: a new file under that name
    assert m.files["/l.previous"] == ([3], [200.0])


def test_marks_stay_bounded():
    m = logclock.Marks()
    for i in range(logclock.MAX_MARKS * 3):
        m.note("/l", i + 1, float(i))
    sizes, times = m.files["/l"]
    assert len(sizes) <= logclock.MAX_MARKS
    assert sizes == sorted(sizes) and times == sorted(times) and sizes[-1] == logclock.MAX_MARKS * 3
    assert m.time_of("/l", sizes[-1], -1.0) == times[-1]


def test_inotify_events_note_sizes_and_follow_a_rename(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "c.log").write_bytes(b"12345")
    clock = logclock.LogClock(lambda: [])
    clock.watches[3], clock.watched[str(logs)] = str(logs), 3

    def event(wd: int, mask: int, name: str) -> bytes:
        raw = name.encode() + b"\0" * (16 - len(name) % 16)
        return struct.pack("iIII", wd, mask, 0, len(raw)) + raw

    clock._events(event(3, clock.IN_MODIFY, "c.log") + event(9, clock.IN_MODIFY, "x.log"), 50.0)
    assert clock.time_of(str(logs / "c.log"), 5, 0.0) == 50.0
    (logs / "c.log").rename(logs / "c.previous.log")
    clock._events(event(3, clock.IN_MOVED_TO, "c.previous.log"), 60.0)
    assert clock.time_of(str(logs / "c.previous.log"), 5, 0.0) == 50.0
    clock._events(event(3, clock.IN_IGNORED, ""), 70.0)  # the directory went away with its pod
    assert clock.watches == {} and clock.marks.files == {}


def test_since_and_stamps_use_each_lines_own_time():
    data = b"old\nnew\nnewer"
    times = {4: 10.0, 8: 20.0, 13: 30.0}
    assert data[podlogs.since_start(data, times.__getitem__, 15.0):] == b"new\nnewer"
    assert podlogs.since_start(data, times.__getitem__, 31.0) == len(data)
    stamped, partial = podlogs.stamp_lines(data, times.__getitem__, False)
    assert partial and stamped.splitlines() == [
        podlogs.format_time(10.0).encode() + b" old", podlogs.format_time(20.0).encode() + b" new",
        podlogs.format_time(30.0).encode() + b" newer"]


def test_a_noted_write_wakes_the_logs_followers(tmp_path):
    import trio
    import trio.testing

    logs = tmp_path / "logs"
    logs.mkdir()
    path = logs / "c.log"
    path.write_bytes(b"x\n")
    clock = logclock.LogClock(lambda: [])
    clock.watches[1], clock.watched[str(logs)] = str(logs), 1
    woken = []

    async def main():
        async with trio.open_nursery() as n:
            async def follower():
                await clock.wait_for_write(str(path), 60)
                woken.append(trio.current_time())
            n.start_soon(follower)
            await trio.testing.wait_all_tasks_blocked()
            assert not woken
            clock._events(struct.pack("iIII", 1, clock.IN_MODIFY, 0, 16) + b"c.log".ljust(16, b"\0"), 1.0)
    trio.run(main, clock=trio.testing.MockClock())
    assert woken == [0.0]  # at once, not after its timeout


# -- a container's console ------------------------------------------------------


@pytest.mark.parametrize("tty", [False, True], ids=["pipe", "terminal"])
def test_a_console_feeds_the_container_and_keeps_its_output_in_the_log(tmp_path, tty):
    import trio

    from knet.node.console import Console

    log_path = tmp_path / "c.log"
    console = Console({"stdin": True, "stdinOnce": True, "tty": tty})

    async def main():
        with open(log_path, "ab") as log:
            stdin, stdout, stderr = console.child_stdio(log.fileno())
            proc = await trio.lowlevel.open_process(
                ["sh", "-c", "read x; echo got $x; stty size 2>/dev/null; cat; echo end"], stdin=stdin, stdout=stdout,
                stderr=stderr, preexec_fn=console.after_fork, start_new_session=True)
        console.started()
        async with trio.open_nursery() as n:
            n.start_soon(console.pump, str(log_path))
            console.resize(91, 17)
            await console.write(b"hi\n")
            await console.write(b"more\n")
            await console.end_input()  # cat sees the end of its input
            with trio.fail_after(20):
                assert await proc.wait() == 0
            await console.finish()
    trio.run(main)
    assert console.closed and console.master == console.input_w == -1
    text = log_path.read_text().replace("\r\n", "\n")
    if tty:  # the terminal echoes what is typed (when it will), and has the size it was given
        assert sorted(text.splitlines()) == sorted(["hi", "got hi", "17 91", "more", "more", "end"]), text
        assert text.endswith("end\n")
    else:
        assert text == "got hi\nmore\nend\n"


# -- SPDY sessions, in memory -----------------------------------------------------


def test_spdy_port_forward_joins_each_data_stream_to_a_pod_connection():
    import trio
    import trio.testing

    from knet.node.portforward import SpdyPortForward
    from knet.node.streamconn import RawTransport

    pods: dict[int, trio.abc.Stream] = {}

    class Dialer:  # the pod's side of each connection, in memory
        async def connect(self, port: int):
            if port == 81:
                raise ConnectionRefusedError(111, "Connection refused")
            ours, theirs = trio.testing.memory_stream_pair()
            pods[port] = theirs
            return ours

        def error(self, port: int, e: Exception) -> str:
            return f"error forwarding port {port}: {e.strerror.lower()}"

    async def main():
        client, server = trio.testing.memory_stream_pair()
        codec, reader = spdy.HeaderCodec(), spdy.Reader(spdy.HeaderCodec())
        frames: list[spdy.Frame] = []

        async def until(cond):
            with trio.fail_after(10):
                while not cond():
                    frames.extend(reader.feed(await client.receive_some(65536)))

        async with trio.open_nursery() as n:
            n.start_soon(SpdyPortForward(RawTransport(server, b""), Dialer()).run)
            await client.send_all(
                spdy.syn_stream(codec, 1, {"streamType": "error", "port": "80", "requestID": "0"})
                + spdy.syn_stream(codec, 3, {"streamType": "data", "port": "80", "requestID": "0"})
                + spdy.data(3, b"GET /") + spdy.ping(9))
            await until(lambda: 80 in pods and any(f.type == spdy.PING for f in frames))
            assert sorted(f.stream_id for f in frames if f.type == spdy.SYN_REPLY) == [1, 3]
            assert next(f.value for f in frames if f.type == spdy.PING) == 9
            pod = pods[80]
            assert await pod.receive_some(100) == b"GET /"  # sent before the pod connection was up: kept
            await pod.send_all(b"answer")
            await pod.aclose()
            await until(lambda: sum(f.fin for f in frames if f.type == 0) == 2)
            data = [f for f in frames if f.type == 0]
            assert b"".join(f.data for f in data if f.stream_id == 3) == b"answer"
            assert {f.stream_id for f in data if f.fin} == {1, 3}  # both streams end: kubectl's connection is done
            # A port nothing listens on: the error stream says why, and both streams end.
            frames.clear()
            await client.send_all(
                spdy.syn_stream(codec, 5, {"streamType": "error", "port": "81", "requestID": "1"})
                + spdy.syn_stream(codec, 7, {"streamType": "data", "port": "81", "requestID": "1"}))
            await until(lambda: sum(f.fin for f in frames if f.type == 0) == 2)
            error = b"".join(f.data for f in frames if f.type == 0 and f.stream_id == 5)
            assert error == b"error forwarding port 81: connection refused"
            await client.send_all(spdy.goaway(7))  # the client is done: the session ends
    trio.run(main)


def test_spdy_exec_session_maps_streams_to_channels():
    import h11
    import trio
    import trio.testing

    from knet.node.streamconn import SpdyExec

    async def main():
        client, server = trio.testing.memory_stream_pair()
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(b"POST /exec/ns/p/c?command=sh&stdin=true&stdout=true&tty=true HTTP/1.1\r\nHost: x\r\n"
                          b"Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v9.channel.k8s.io\r\n"
                          b"X-Stream-Protocol-Version: v4.channel.k8s.io\r\nContent-Length: 0\r\n\r\n")
        req = conn.next_event()
        assert conn.next_event() == h11.EndOfMessage()
        codec, reader = spdy.HeaderCodec(), spdy.Reader(spdy.HeaderCodec())
        async with trio.open_nursery() as n:
            accepted = []

            async def accept():
                accepted.append(await SpdyExec.accept(conn, server, req, stdin=True, stdout=True, stderr=False,
                                                      tty=True))
            n.start_soon(accept)
            head = await client.receive_some(65536)
            assert head.startswith(b"HTTP/1.1 101 ") and b"X-Stream-Protocol-Version: v4.channel.k8s.io" in head
            await client.send_all(b"".join(spdy.syn_stream(codec, sid, {"streamType": kind}) for sid, kind in (
                (1, "error"), (3, "stdin"), (5, "stdout"), (7, "resize"))) + spdy.data(3, b"typed")
                + spdy.data(7, b'{"Width":80,"Height":24}{"Width":') + spdy.data(7, b'100,"Height":30}')
                + spdy.data(3, b"", fin=True))
            with trio.fail_after(10):
                while not accepted:
                    await trio.sleep(0.01)
            io = accepted[0]
            inputs = []
            with trio.fail_after(10):
                async for item in io.inputs():
                    inputs.append(item)
                    if item[0] == wschannel.CLOSE:
                        break
            assert inputs == [(wschannel.STDIN, b"typed"), (wschannel.RESIZE, b'{"Width":80,"Height":24}'),
                              (wschannel.RESIZE, b'{"Width":100,"Height":30}'), (wschannel.CLOSE, b"\x00")]
            await io.send_channel(wschannel.STDOUT, b"out")
            await io.send_error(wschannel.exit_status(2, ["sh"]))
            await io.close()
            frames = []
            with trio.fail_after(10):
                while not any(f.type == spdy.GOAWAY for f in frames):
                    frames += reader.feed(await client.receive_some(65536))
            data = {(f.stream_id, f.data, f.fin) for f in frames if f.type == 0}
            assert (5, b"out", False) in data and (5, b"", True) in data and (1, b"", True) in data
            status = json.loads(next(d for sid, d, fin in data if sid == 1 and d))
            assert status["reason"] == "NonZeroExitCode" and status["details"]["causes"][0]["message"] == "2"
    trio.run(main)
