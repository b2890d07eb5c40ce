"""knet trace: the path of one real connection attempt, hop by hop, as the
kernel's nftables traced it (knet.trace). This module is the command: its
options, the text or `-o json` records, and SIGTERM turned into the same
clean exit as Ctrl-C (the trace rules are removed either way)."""

from __future__ import annotations

import argparse
import json
import signal

from knet.cli.common import CliError, Connect, cluster_name, require_root


def cmd_trace(args: argparse.Namespace, connect: Connect) -> int:
    require_root()
    from knet.trace import TraceError, run

    def stop(_sig, _frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        trace = run(cluster_name(args), args.source, args.to, None, args.protocol or "TCP",
                    namespace=args.namespace, timeout=args.timeout, client=connect())
    except TraceError as e:
        raise CliError(str(e)) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.output == "json":
        records = trace.records()
        print("[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]")
    else:
        print(trace.render())
    return 0
