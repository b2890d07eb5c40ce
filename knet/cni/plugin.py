"""knet-cni, the CNI plugin executable.

Only VERSION is answered so far; the data-path verbs (ADD, DEL, CHECK, STATUS,
GC) come with pod networking. Until then every other verb answers with a CNI
error object rather than pretending to succeed.
"""

from __future__ import annotations

import json
import os
import sys

SUPPORTED = ["0.4.0", "1.0.0", "1.1.0"]


def _error(code: int, msg: str, details: str = "") -> int:
    json.dump({"cniVersion": "1.1.0", "code": code, "msg": msg, "details": details}, sys.stdout)
    sys.stdout.write("\n")
    return 1


def main() -> int:
    command = os.environ.get("CNI_COMMAND", "")
    if command == "VERSION":
        json.dump({"cniVersion": "1.1.0", "supportedVersions": SUPPORTED}, sys.stdout)
        sys.stdout.write("\n")
        return 0
    if not command:
        return _error(4, "invalid environment variables", "CNI_COMMAND is not set")
    return _error(100, f"knet-cni: {command} is not implemented yet", "pod networking is not built yet")


if __name__ == "__main__":
    sys.exit(main())
