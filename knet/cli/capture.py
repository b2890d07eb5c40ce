"""knet capture: tcpdump inside a pod, a node or the ext host (knet.capture does the work).

Ctrl-C is the normal way to end a capture: the terminal's SIGINT reaches this process only
(tcpdump runs in a session of its own), which hands it on to tcpdump and waits, so tcpdump's
summary is printed once, the pcap is flushed and closed, and no tcpdump is left behind.
"""

from __future__ import annotations

import argparse
import signal
import sys

from knet.cli.common import CliError, Connect, cluster_name, require_root


def cmd_capture(args: argparse.Namespace, connect: Connect) -> int:
    require_root()
    from knet import capture

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    # Ctrl-C, or a SIGTERM, ends the capture cleanly, also when this process was started with
    # SIGINT ignored (a shell's `knet capture ... &`).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    target = args.target
    client = None if target == "ext" or target.startswith("node/") else connect()
    try:
        cap = capture.start(cluster_name(args), target, args.interface, args.filter, args.count, args.write,
                            namespace=args.namespace, overlay=args.overlay, client=client, stdout=None,
                            on_stderr=say)
    except capture.CaptureError as e:
        raise CliError(str(e)) from None
    try:
        code = cap.wait()
    except KeyboardInterrupt:
        code = 0
    finally:
        cap.stop()
    return 0 if code in (0, -2) else code
