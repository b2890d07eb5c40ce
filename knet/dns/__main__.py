"""`python -m knet.dns`: the cluster DNS server, as a coredns pod runs it."""

from knet.dns.server import main

main()
