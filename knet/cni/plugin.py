"""knet-cni, the standalone CNI plugin executable (`.venv/bin/knet-cni`).

Driven by CNI_* variables and a network configuration on stdin, as any
runtime or cnitool drives a plugin, it does the work in-process. On a knet
node the agent installs the thick plugin's shim instead (shim.c / shim.py),
which hands the same request to the agent's long-running handler.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    from knet.cni import spec

    env = {k: v for k, v in os.environ.items() if k.startswith("CNI_")}
    command = env.get("CNI_COMMAND", "")
    stdin = "" if command == "VERSION" and sys.stdin.isatty() else sys.stdin.read()
    if command == "VERSION":  # answered without importing the datapath
        conf = spec.parse_config(stdin, "VERSION")
        version = conf.get("cniVersion") if conf.get("cniVersion") in spec.SUPPORTED else "1.1.0"
        code, out = 0, json.dumps({"cniVersion": version, "supportedVersions": spec.SUPPORTED})
    else:
        from knet.cni.handler import handle

        code, out = handle(env, stdin)
    if out:
        sys.stdout.write(out + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
