"""knet graph: the cluster drawn (knet.graph builds the model and renders it)."""

from __future__ import annotations

import argparse
import os
import sys

from knet.cli.common import CliError, Connect, cluster_name

_BY_EXTENSION = {".svg": "svg", ".dot": "dot", ".gv": "dot", ".mmd": "mermaid", ".mermaid": "mermaid",
                 ".json": "json"}


def output_format(fmt: str | None, path: str | None) -> str:
    """-o wins; else the -w file's extension; else DOT (text a terminal can show)."""
    if fmt:
        return fmt
    if path:
        ext = os.path.splitext(path)[1].lower()
        if ext not in _BY_EXTENSION:
            raise CliError(f"-w {path}: cannot tell the format from {ext or 'no extension'!r}: give -o "
                           "svg, dot, mermaid or json")
        return _BY_EXTENSION[ext]
    return "dot"


def cmd_graph(args: argparse.Namespace, connect: Connect) -> int:
    from knet import graph
    from knet.config import load_saved

    fmt = output_format(args.output, args.write)
    try:
        cfg = load_saved(cluster_name(args))
    except OSError:
        raise CliError(f'cluster "{cluster_name(args)}" is not running') from None
    model = graph.collect(connect(), cfg)
    try:
        text = graph.render(model, fmt)
    except graph.GraphError as e:
        raise CliError(str(e)) from None
    if args.write:
        tmp = args.write + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, args.write)
        print(f"wrote {args.write} ({fmt}: {len(model['nodes'])} nodes, {len(model['pods'])} pods, "
              f"{len(model['services'])} services)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
