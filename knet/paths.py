"""Where a cluster keeps its state, in a module of its own so that the CLI's
quick commands find the API socket without importing the cluster machinery."""

from __future__ import annotations

import os

STATE_ROOT = os.environ.get("KNET_STATE_ROOT", "/run/knet")


def state_dir(cluster: str) -> str:
    return os.path.join(STATE_ROOT, cluster)


# The environment variable that carries the fd number of the API server's listening socket in the
# host's loopback (bound by `knet up`/`knet start` in the host's namespace, kept by the supervisor,
# inherited by the control plane): the one name the three agree on.
HOST_LISTENER_ENV = "KNET_HOST_LISTENER_FD"
