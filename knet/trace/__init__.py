"""`knet trace`: one real connection attempt, traced by the kernel's nftables
in every namespace it crosses, explained hop by hop from knet's own rule
comments. `run` is the API the CLI and the test harness share:

    trace = knet.trace.run(cluster, "client", "web", 80, "TCP")
    trace.verdict, trace.steps("service"), trace.records()
"""

from knet.trace.model import Hop, Step, Trace
from knet.trace.session import TraceError, run

__all__ = ["Hop", "Step", "Trace", "TraceError", "run"]
