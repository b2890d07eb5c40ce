"""The root CA publisher: every namespace has the ConfigMap `kube-root-ca.crt`
holding the cluster CA (key ca.crt), as kube-controller-manager's
root-ca-cert-publisher keeps it. The ServiceAccount token volume projects
it into pods, where in-cluster clients verify the API server with it. A
deleted or edited one is put back as it was."""

from __future__ import annotations

from knet.api.errors import ApiError
from knet.api.objects import deep_copy
from knet.api.resources import by_kind

NAME = "kube-root-ca.crt"
DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints "
               "such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across "
               "distributions of Kubernetes clusters.")


def sync_namespace(reg, namespace: str, ca_pem: str) -> bool:
    """Make or repair namespace's kube-root-ca.crt; True if it wrote."""
    ns = reg.find(by_kind("Namespace"), None, namespace)
    if ns is None or ns["metadata"].get("deletionTimestamp"):
        return False
    res = by_kind("ConfigMap")
    data = {"ca.crt": ca_pem}
    annotations = {"kubernetes.io/description": DESCRIPTION}
    try:
        cm = reg.find(res, namespace, NAME)
        if cm is None:
            reg.create(res, namespace, {"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": NAME, "annotations": annotations}, "data": data})
            return True
        if cm.get("data") == data and (cm["metadata"].get("annotations") or {}).get(
                "kubernetes.io/description") == DESCRIPTION:
            return False
        new = deep_copy(cm)
        new["data"] = data
        new.pop("binaryData", None)
        new["metadata"].setdefault("annotations", {}).update(annotations)
        reg.update(res, namespace, NAME, new)
        return True
    except ApiError as e:
        if e.code in (403, 404, 409):  # terminating, gone, or changed meanwhile (the event brings it back)
            return False
        raise
