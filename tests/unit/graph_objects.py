"""A synthetic cluster's API objects for the graph tests: three workers and a control plane,
pods spread over nodes and namespaces, Services with EndpointSlices, a deny-all policy."""

from __future__ import annotations

NAMESPACES = ("default", "shop", "kube-system")


def node(name: str, ip: str, cidr: str, control_plane: bool = False) -> dict:
    labels = {"kubernetes.io/hostname": name}
    if control_plane:
        labels["node-role.kubernetes.io/control-plane"] = ""
    return {"kind": "Node", "metadata": {"name": name, "labels": labels}, "spec": {"podCIDR": cidr},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}],
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def pod(ns: str, name: str, node_name: str, ip: str, labels: dict) -> dict:
    return {"kind": "Pod", "metadata": {"namespace": ns, "name": name, "labels": labels, "uid": f"u-{ns}-{name}"},
            "spec": {"nodeName": node_name, "containers": [{"name": "c"}]},
            "status": {"phase": "Running", "podIP": ip}}


def service(ns: str, name: str, ip: str, selector: dict, port: int = 80) -> dict:
    return {"kind": "Service", "metadata": {"namespace": ns, "name": name},
            "spec": {"type": "ClusterIP", "clusterIP": ip, "selector": selector,
                     "ports": [{"port": port, "protocol": "TCP", "targetPort": 8080}]}}


def slice_for(svc: dict, pods: list[dict]) -> dict:
    ns = svc["metadata"]["namespace"]
    return {"kind": "EndpointSlice",
            "metadata": {"namespace": ns, "name": svc["metadata"]["name"] + "-abcde",
                         "labels": {"kubernetes.io/service-name": svc["metadata"]["name"]}},
            "ports": [{"port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [p["status"]["podIP"]], "conditions": {"ready": True},
                           "targetRef": {"kind": "Pod", "namespace": ns, "name": p["metadata"]["name"]}}
                          for p in pods]}


def cluster(n_pods: int = 100, n_services: int = 10) -> dict:
    nodes = [node("control-plane", "192.168.56.10", "10.244.0.0/24", True)]
    nodes += [node(f"worker-{i}", f"192.168.56.{10 + i}", f"10.244.{i}.0/24") for i in (1, 2, 3)]
    pods = []
    for i in range(n_pods):
        w = 1 + i % 3
        ns = NAMESPACES[i % 2]  # default and shop
        pods.append(pod(ns, f"p{i}", f"worker-{w}", f"10.244.{w}.{2 + i // 3}", {"app": f"a{i % n_services}"}))
    services, slices = [], []
    for s in range(n_services):
        for ns in NAMESPACES[:2]:
            members = [p for p in pods if p["metadata"]["namespace"] == ns and p["metadata"]["labels"]["app"] == f"a{s}"]
            svc = service(ns, f"svc{s}", f"10.96.{1 + NAMESPACES.index(ns)}.{s + 1}", {"app": f"a{s}"})
            services.append(svc)
            slices.append(slice_for(svc, members))
    deny = {"kind": "NetworkPolicy", "metadata": {"namespace": "shop", "name": "default-deny"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    namespaces = [{"kind": "Namespace", "metadata": {"name": n, "labels": {"kubernetes.io/metadata.name": n}}}
                  for n in NAMESPACES]
    return {"nodes": nodes, "pods": pods, "services": services, "slices": slices, "netpols": [deny],
            "namespaces": namespaces, "lan": {"subnet": "192.168.56.0/24", "ext": "192.168.56.1"}, "cluster": "t"}
