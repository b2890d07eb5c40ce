"""The node's Service proxy, whole: kube-proxy's job in kube-proxy's nftables shape.

    informers (Service, EndpointSlice, Node) -> tracker -> model -> rules -> sync -> nft
                                                                              \\-> extras

- model: each Service port flattened with its ready endpoints; which node announces an LB IP.
- tracker: which Services events name (slices through the informer's service-name index),
  recomputed into per-service-port objects.
- rules: the table's objects and the nft text of a full or a partial sync (pure).
- sync: the loop (first sync full, then partial, full again after an error and every resync),
  through knet.net.nft.Interface, so it runs against knet.net.nftfake in tests.
- extras: the kernel work beside the table (healthCheckNodePort, LB announcement, UDP conntrack).

The node agent builds it from its shared informers and its nft; nothing here imports knet.node.
"""
