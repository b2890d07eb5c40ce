"""knet across three QEMU/TCG VMs (issue 17): what tests/vm does, timed, as one JSON line.

Figures: the image (cached: 0 s once built), the VMs' boot until ssh answers (each and all
three together), knet's install from the checkout, `knet init`, each `knet join` and the join
until every node is Ready, the two pods until Ready, the first cross-machine connection (pod a
on vm2 to pod b on vm3, through `knet exec` on vm1), and iperf3 throughput pod to pod across
the VMs against VM to VM on the same two VMs. Under TCG the guests' CPU is emulated, so both
throughputs measure the emulator more than the network; their ratio is what the overlay
(veth, bridge, VXLAN encapsulation, nftables) costs there.

The sizes do not grow here (three VMs is the issue's lab): there is no 10/100/1000.

Run as root: .venv/bin/python bench/vms.py    (the last line is one JSON object)
"""

from __future__ import annotations

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "vm"))

from common import emit, require_root  # noqa: E402
from vms import VMLab, bring_up, build_image, throughput  # noqa: E402


def main() -> None:
    require_root()
    t = time.monotonic()
    image = build_image()
    image_s = round(time.monotonic() - t, 1)
    lab = VMLab(image=image)
    try:
        lab.figures = bring_up(lab)
        lab.figures.update(throughput(lab))
    finally:
        lab.close()
    figures = {k: v for k, v in lab.figures.items() if k not in ("pod_a_ip", "pod_b_ip")}
    figures["image_s"] = image_s
    figures["loadavg_1m"] = os.getloadavg()[0]
    for k, v in sorted(figures.items()):
        print(f"{k:32} {v}")
    emit(figures)


if __name__ == "__main__":
    main()
