"""The ServiceAccounts controller: every namespace has a ServiceAccount
`default` (kube-controller-manager's serviceaccount-controller), made when
the namespace appears and made again if it is deleted, so pods created in
any namespace have an identity to run as."""

from __future__ import annotations

from knet.api.errors import ApiError
from knet.api.resources import by_kind

DEFAULT = "default"


def sync_namespace(reg, namespace: str) -> bool:
    """Make namespace's `default` ServiceAccount if it is missing; True if made."""
    ns = reg.find(by_kind("Namespace"), None, namespace)
    if ns is None or ns["metadata"].get("deletionTimestamp"):
        return False
    res = by_kind("ServiceAccount")
    if reg.find(res, namespace, DEFAULT) is not None:
        return False
    try:
        reg.create(res, namespace, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": DEFAULT}})
    except ApiError as e:
        if e.code in (403, 404, 409):  # terminating, gone, or made meanwhile
            return False
        raise
    return True
