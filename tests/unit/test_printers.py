"""`knet get` / `knet describe` must read exactly like kubectl's, down to the spaces."""

from __future__ import annotations

import copy
import time

import pytest

from knet.api.tables import human_age, parse_timestamp
from knet.printers import describe, table

T0 = "2026-12-01T10:00:00Z"
NOW = parse_timestamp("2026-12-01T10:05:00Z")


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    """describe prints local time like kubectl; pin the zone so expectations are stable."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def at(seconds_before_now: float) -> str:
    stamp = time.gmtime(NOW - seconds_before_now)
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", stamp)


def make_pod(name="web", *, phase="Running", statuses=None, conditions=None, **extra):
    pod = {
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": T0},
        "spec": {"nodeName": "node1", "containers": [{"name": "app", "image": "nginx"}]},
        "status": {"phase": phase, "containerStatuses": statuses or [], "conditions": conditions or []},
    }
    for key, value in extra.items():
        section, _, field = key.partition("__")
        pod[section][field] = value
    return pod


def status(state, *, ready=False, restarts=0, last=None, name="app"):
    s = {"name": name, "ready": ready, "restartCount": restarts, "state": state}
    if last:
        s["lastState"] = last
    return s


def pod_status_column(pod) -> str:
    row = table("Pod", [pod], now=NOW).splitlines()[1]
    return row.split()[2]


# -- human_age -------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-2, "<invalid>"),
        (-1.5, "0s"),
        (-1, "0s"),
        (0, "0s"),
        (59, "59s"),
        (119.9, "119s"),
        (120, "2m"),
        (150, "2m30s"),
        (599, "9m59s"),
        (600, "10m"),
        (630, "10m"),
        (3 * 3600 - 1, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 30 * 60, "3h30m"),
        (8 * 3600 - 60, "7h59m"),
        (8 * 3600, "8h"),
        (48 * 3600 - 1, "47h"),
        (48 * 3600, "2d"),
        (53 * 3600, "2d5h"),
        (8 * 86400, "8d"),
        (729 * 86400, "729d"),
        (730 * 86400, "2y"),
        (740 * 86400, "2y10d"),
        (8 * 365 * 86400, "8y"),
    ],
)
def test_human_age_matches_apimachinery_boundaries(seconds, expected):
    assert human_age(seconds) == expected


def test_parse_timestamp_forms():
    base = parse_timestamp("2026-12-01T10:00:00Z")
    assert base == 1796119200.0
    assert parse_timestamp("2026-12-01T10:00:00.250000Z") == base + 0.25
    assert parse_timestamp("2026-12-01T10:00:00.123456789Z") == pytest.approx(base + 0.123456789)
    assert parse_timestamp("2026-12-01T12:00:00+02:00") == base
    assert parse_timestamp("2026-12-01T09:30:00-00:30") == base
    assert parse_timestamp("0001-01-01T00:00:00Z") is None  # Go's zero time means unset
    assert parse_timestamp(None) is None
    assert parse_timestamp("yesterday") is None


# -- get tables ------------------------------------------------------------


def test_empty_list_prints_nothing():
    assert table("Pod", [], now=NOW) == ""


def test_pod_table_layout():
    running = make_pod(
        "web-7d4b9c8f6-abcde",
        statuses=[
            status(
                {"running": {"startedAt": at(60)}},
                ready=True,
                restarts=2,
                last={"terminated": {"exitCode": 1, "finishedAt": at(65)}},
            )
        ],
    )
    pending = make_pod("db-0", phase="Pending", spec__nodeName=None)
    pending["metadata"]["creationTimestamp"] = at(30)
    assert table("Pod", [running, pending], now=NOW) == (
        "NAME                  READY   STATUS    RESTARTS      AGE\n"
        "web-7d4b9c8f6-abcde   1/1     Running   2 (65s ago)   5m\n"
        "db-0                  0/1     Pending   0             30s\n"
    )


def test_pod_table_wide_with_namespace():
    pod = make_pod(
        statuses=[status({"running": {}}, ready=True)],
        status__podIPs=[{"ip": "10.244.1.5"}],
    )
    pod["spec"]["readinessGates"] = [{"conditionType": "knet.dev/ready"}]
    pod["status"]["conditions"] = [{"type": "knet.dev/ready", "status": "True"}]
    assert table("Pod", [pod], wide=True, all_namespaces=True, now=NOW) == (
        "NAMESPACE   NAME   READY   STATUS    RESTARTS   AGE   IP           NODE    NOMINATED NODE   READINESS GATES\n"
        "default     web    1/1     Running   0          5m    10.244.1.5   node1   <none>           1/1\n"
    )


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        (make_pod(phase="Pending"), "Pending"),
        (make_pod(phase="Failed", status__reason="Evicted"), "Evicted"),
        (make_pod(phase="Pending", statuses=[status({"waiting": {"reason": "ContainerCreating"}})]), "ContainerCreating"),
        (make_pod(statuses=[status({"waiting": {"reason": "CrashLoopBackOff"}}, restarts=4)]), "CrashLoopBackOff"),
        (make_pod(phase="Succeeded", statuses=[status({"terminated": {"exitCode": 0, "reason": "Completed"}})]), "Completed"),
        (make_pod(phase="Failed", statuses=[status({"terminated": {"exitCode": 1, "reason": "Error"}})]), "Error"),
        (make_pod(phase="Failed", statuses=[status({"terminated": {"exitCode": 3}})]), "ExitCode:3"),
        (make_pod(phase="Failed", statuses=[status({"terminated": {"exitCode": 137, "signal": 9}})]), "Signal:9"),
        (make_pod(statuses=[status({"running": {}}, ready=True)], metadata__deletionTimestamp=T0), "Terminating"),
        (make_pod(phase="Succeeded", metadata__deletionTimestamp=T0), "Succeeded"),
        (
            make_pod(phase="Unknown", status__reason="NodeLost", metadata__deletionTimestamp=T0),
            "Unknown",
        ),
        (
            make_pod(
                statuses=[
                    status({"terminated": {"exitCode": 0, "reason": "Completed"}}, name="job"),
                    status({"running": {}}, ready=True, name="app"),
                ],
                conditions=[{"type": "Ready", "status": "True"}],
            ),
            "Running",
        ),
        (
            make_pod(
                statuses=[
                    status({"terminated": {"exitCode": 0, "reason": "Completed"}}, name="job"),
                    status({"running": {}}, ready=True, name="app"),
                ],
            ),
            "NotReady",
        ),
        (
            make_pod(
                phase="Running",
                conditions=[{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}],
            ),
            "SchedulingGated",
        ),
    ],
)
def test_pod_status_derivation(pod, expected):
    assert pod_status_column(pod) == expected


def test_pod_init_container_states():
    pod = make_pod(phase="Pending", spec__initContainers=[{"name": "init"}])
    pod["status"]["initContainerStatuses"] = [status({"running": {}}, name="init")]
    assert pod_status_column(pod) == "Init:0/1"
    pod["status"]["initContainerStatuses"] = [status({"waiting": {"reason": "CrashLoopBackOff"}}, name="init")]
    assert pod_status_column(pod) == "Init:CrashLoopBackOff"
    pod["status"]["initContainerStatuses"] = [status({"terminated": {"exitCode": 2}}, name="init")]
    assert pod_status_column(pod) == "Init:ExitCode:2"


def test_pod_ready_counts_only_ready_running_containers():
    pod = make_pod(
        statuses=[
            status({"running": {}}, ready=True, name="a"),
            status({"running": {}}, ready=False, name="b"),
        ]
    )
    pod["spec"]["containers"].append({"name": "b", "image": "x"})
    assert table("Pod", [pod], now=NOW).splitlines()[1].split()[1] == "1/2"


def test_node_table_status_and_roles():
    def node(name, conditions, labels=None, unschedulable=False):
        return {
            "metadata": {"name": name, "creationTimestamp": T0, "labels": labels or {}},
            "spec": {"unschedulable": unschedulable},
            "status": {"conditions": conditions, "nodeInfo": {"kubeletVersion": "v1.31.0"}},
        }

    nodes = [
        node("cp", [{"type": "Ready", "status": "True"}], {"node-role.kubernetes.io/control-plane": ""}),
        node("w1", [{"type": "Ready", "status": "False"}], unschedulable=True),
        node("w2", [{"type": "Ready", "status": "Unknown"}], {"kubernetes.io/role": "edge"}),
        node("w3", []),
    ]
    # Nodes are cluster-scoped: no NAMESPACE column even with --all-namespaces.
    assert table("Node", nodes, all_namespaces=True, now=NOW) == (
        "NAME   STATUS                        ROLES           AGE   VERSION\n"
        "cp     Ready                         control-plane   5m    v1.31.0\n"
        "w1     NotReady,SchedulingDisabled   <none>          5m    v1.31.0\n"
        "w2     NotReady                      edge            5m    v1.31.0\n"
        "w3     Unknown                       <none>          5m    v1.31.0\n"
    )


def test_node_table_wide():
    node = {
        "metadata": {"name": "node1", "creationTimestamp": T0},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}, {"type": "Hostname", "address": "node1"}],
            "nodeInfo": {"kubeletVersion": "v1.31.0", "osImage": "Debian GNU/Linux 12"},
        },
    }
    assert table("Node", [node], wide=True, now=NOW) == (
        "NAME    STATUS   ROLES    AGE   VERSION   INTERNAL-IP   EXTERNAL-IP   OS-IMAGE              KERNEL-VERSION   CONTAINER-RUNTIME\n"
        "node1   Ready    <none>   5m    v1.31.0   172.18.0.2    <none>        Debian GNU/Linux 12   <unknown>        <unknown>\n"
    )


def test_service_table():
    def svc(name, spec, status=None):
        return {"metadata": {"name": name, "creationTimestamp": T0}, "spec": spec, "status": status or {}}

    services = [
        svc("kubernetes", {"type": "ClusterIP", "clusterIPs": ["10.96.0.1"], "ports": [{"port": 443, "protocol": "TCP"}]}),
        svc(
            "web",
            {
                "type": "NodePort",
                "clusterIPs": ["10.96.0.10"],
                "selector": {"app": "web", "tier": "fe"},
                "ports": [{"port": 80, "nodePort": 30080}, {"port": 53, "protocol": "UDP"}],
            },
        ),
        svc("lb", {"type": "LoadBalancer", "clusterIPs": ["10.96.0.11"], "ports": [{"port": 80, "nodePort": 31000}]}),
        svc(
            "lb2",
            {"type": "LoadBalancer", "clusterIPs": ["10.96.0.12"], "ports": [{"port": 80}]},
            {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}},
        ),
        svc("ext", {"clusterIP": "None", "externalIPs": ["198.51.100.7"], "ports": []}),
    ]
    assert table("Service", services, wide=True, now=NOW) == (
        "NAME         TYPE           CLUSTER-IP   EXTERNAL-IP    PORT(S)               AGE   SELECTOR\n"
        "kubernetes   ClusterIP      10.96.0.1    <none>         443/TCP               5m    <none>\n"
        "web          NodePort       10.96.0.10   <none>         80:30080/TCP,53/UDP   5m    app=web,tier=fe\n"
        "lb           LoadBalancer   10.96.0.11   <pending>      80:31000/TCP          5m    <none>\n"
        "lb2          LoadBalancer   10.96.0.12   192.0.2.10     80/TCP                5m    <none>\n"
        "ext          ClusterIP      None         198.51.100.7   <none>                5m    <none>\n"
    )


def test_show_kind_prefixes_group_and_namespace_comes_first():
    deploy = {
        "metadata": {"name": "web", "namespace": "prod", "creationTimestamp": T0},
        "spec": {"replicas": 3},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    }
    assert table("Deployment", [deploy], show_kind=True, all_namespaces=True, now=NOW) == (
        "NAMESPACE   NAME                  READY   UP-TO-DATE   AVAILABLE   AGE\n"
        "prod        deployment.apps/web   2/3     3            2           5m\n"
    )
    pod = make_pod()
    assert table("pods", [pod], show_kind=True, now=NOW).splitlines()[1].startswith("pod/web   ")


def test_workload_tables():
    template = {"spec": {"containers": [{"name": "a", "image": "img:1"}, {"name": "b", "image": "img:2"}]}}
    rs = {
        "metadata": {"name": "web-5d8f", "creationTimestamp": T0},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template},
        "status": {"replicas": 2, "readyReplicas": 1},
    }
    assert table("ReplicaSet", [rs], wide=True, now=NOW) == (
        "NAME       DESIRED   CURRENT   READY   AGE   CONTAINERS   IMAGES        SELECTOR\n"
        "web-5d8f   2         2         1       5m    a,b          img:1,img:2   app=web\n"
    )
    ds = {
        "metadata": {"name": "proxy", "creationTimestamp": T0},
        "spec": {"template": {"spec": {"containers": []}}},
        "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                   "updatedNumberScheduled": 3, "numberAvailable": 2},
    }
    assert table("DaemonSet", [ds], now=NOW) == (
        "NAME    DESIRED   CURRENT   READY   UP-TO-DATE   AVAILABLE   NODE SELECTOR   AGE\n"
        "proxy   3         3         2       3            2           <none>          5m\n"
    )
    sts = {"metadata": {"name": "db", "creationTimestamp": T0}, "status": {"readyReplicas": 1}}
    assert table("StatefulSet", [sts], now=NOW) == "NAME   READY   AGE\ndb     1/1     5m\n"


def test_endpointslice_table_caps_endpoints_at_three():
    eps = {
        "metadata": {"name": "web-x1", "creationTimestamp": T0},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080}],
        "endpoints": [{"addresses": [f"10.244.0.{i}"]} for i in range(1, 6)],
    }
    empty = {"metadata": {"name": "none", "creationTimestamp": T0}, "addressType": "IPv4"}
    assert table("EndpointSlice", [eps, empty], now=NOW) == (
        "NAME     ADDRESSTYPE   PORTS     ENDPOINTS                                      AGE\n"
        "web-x1   IPv4          8080      10.244.0.1,10.244.0.2,10.244.0.3 + 2 more...   5m\n"
        "none     IPv4          <unset>   <unset>                                        5m\n"
    )


def test_networkpolicy_and_namespace_tables():
    policies = [
        {"metadata": {"name": "deny-all", "creationTimestamp": T0}, "spec": {"podSelector": {}}},
        {
            "metadata": {"name": "db", "creationTimestamp": T0},
            "spec": {"podSelector": {"matchLabels": {"role": "db"},
                                     "matchExpressions": [{"key": "env", "operator": "In", "values": ["qa", "prod"]}]}},
        },
    ]
    assert table("NetworkPolicy", policies, now=NOW) == (
        "NAME       POD-SELECTOR               AGE\n"
        "deny-all   <none>                     5m\n"
        "db         env in (prod,qa),role=db   5m\n"
    )
    ns = {"metadata": {"name": "default", "creationTimestamp": T0}, "status": {"phase": "Active"}}
    assert table("Namespace", [ns], now=NOW) == "NAME      STATUS   AGE\ndefault   Active   5m\n"


def test_event_table():
    events = [
        {
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
            "reason": "Scheduled", "message": "Successfully assigned default/web to node1\n",
            "type": "Normal", "count": 1, "firstTimestamp": at(300), "lastTimestamp": at(300),
            "source": {"component": "default-scheduler"},
        },
        {
            "involvedObject": {"kind": "Node", "name": "node1"},
            "reason": "NodeNotReady", "message": "Node is not ready", "type": "Warning",
            "eventTime": at(20),
        },
    ]
    assert table("Event", events, now=NOW) == (
        "LAST SEEN   TYPE      REASON         OBJECT       MESSAGE\n"
        "5m          Normal    Scheduled      pod/web      Successfully assigned default/web to node1\n"
        "20s         Warning   NodeNotReady   node/node1   Node is not ready\n"
    )


def test_unknown_kind_gets_name_and_age():
    obj = {"metadata": {"name": "thing", "creationTimestamp": T0}}
    assert table("Widget", [obj], now=NOW) == "NAME    AGE\nthing   5m\n"
    assert table("Widget", [{"metadata": {"name": "x"}}], now=NOW) == "NAME   AGE\nx      <unknown>\n"


# -- describe --------------------------------------------------------------


def full_pod():
    return {
        "kind": "Pod",
        "metadata": {
            "name": "web-7d4b9c8f6-abcde", "namespace": "default", "creationTimestamp": T0,
            "labels": {"app": "web", "pod-template-hash": "7d4b9c8f6"},
            "annotations": {"knet.dev/netns": "/run/netns/knet-abc"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web-7d4b9c8f6", "uid": "u1", "controller": True}],
        },
        "spec": {
            "nodeName": "node1",
            "containers": [{
                "name": "web", "image": "nginx:1.25",
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "command": ["sh", "-c"], "args": ["nginx -g 'daemon off;'"],
                "env": [{"name": "MODE", "value": "prod"},
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
            }],
        },
        "status": {
            "phase": "Running", "podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}],
            "hostIP": "172.18.0.2", "startTime": "2026-12-01T10:00:01Z",
            "conditions": [{"type": t, "status": "True"}
                           for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")],
            "containerStatuses": [{
                "name": "web", "ready": True, "started": True, "restartCount": 2,
                "state": {"running": {"startedAt": "2026-12-01T10:04:00Z"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                             "startedAt": "2026-12-01T10:03:00Z",
                                             "finishedAt": "2026-12-01T10:03:55Z"}},
            }],
        },
    }


POD_EVENTS = [
    {"involvedObject": {"kind": "Pod", "name": "web"}, "reason": "BackOff",
     "message": "Back-off restarting failed container", "type": "Warning", "count": 3,
     "firstTimestamp": "2026-12-01T10:01:00Z", "lastTimestamp": "2026-12-01T10:03:00Z",
     "source": {"component": "kubelet"}},
    {"involvedObject": {"kind": "Pod", "name": "web"}, "reason": "Scheduled",
     "message": "Successfully assigned default/web to node1", "type": "Normal", "count": 1,
     "firstTimestamp": T0, "lastTimestamp": T0, "source": {"component": "default-scheduler"}},
]


def test_describe_pod_exact():
    # Alignment restarts after every line without a tab, as Go's tabwriter does:
    # hence "  IP:" lining up with "Controlled By:" and Conditions with QoS Class.
    assert describe(full_pod(), POD_EVENTS, now=NOW) == (
        "Name:         web-7d4b9c8f6-abcde\n"
        "Namespace:    default\n"
        "Node:         node1/172.18.0.2\n"
        "Start Time:   Tue, 01 Dec 2026 10:00:01 +0000\n"
        "Labels:       app=web\n"
        "              pod-template-hash=7d4b9c8f6\n"
        "Annotations:  knet.dev/netns: /run/netns/knet-abc\n"
        "Status:       Running\n"
        "IP:           10.244.1.5\n"
        "IPs:\n"
        "  IP:           10.244.1.5\n"
        "Controlled By:  ReplicaSet/web-7d4b9c8f6\n"
        "Containers:\n"
        "  web:\n"
        "    Container ID:  \n"
        "    Image:         nginx:1.25\n"
        "    Image ID:      \n"
        "    Port:          80/TCP\n"
        "    Host Port:     0/TCP\n"
        "    Command:\n"
        "      sh\n"
        "      -c\n"
        "    Args:\n"
        "      nginx -g 'daemon off;'\n"
        "    State:          Running\n"
        "      Started:      Tue, 01 Dec 2026 10:04:00 +0000\n"
        "    Last State:     Terminated\n"
        "      Reason:       Error\n"
        "      Exit Code:    1\n"
        "      Started:      Tue, 01 Dec 2026 10:03:00 +0000\n"
        "      Finished:     Tue, 01 Dec 2026 10:03:55 +0000\n"
        "    Ready:          True\n"
        "    Restart Count:  2\n"
        "    Environment:\n"
        "      MODE:    prod\n"
        "      POD_IP:  10.244.1.5 (v1:status.podIP)\n"
        "    Mounts:    <none>\n"
        "Conditions:\n"
        "  Type              Status\n"
        "  Initialized       True \n"
        "  Ready             True \n"
        "  ContainersReady   True \n"
        "  PodScheduled      True \n"
        "Volumes:            <none>\n"
        "QoS Class:          BestEffort\n"
        "Node-Selectors:     <none>\n"
        "Tolerations:        <none>\n"
        "Events:\n"
        "  Type     Reason     Age              From               Message\n"
        "  ----     ------     ----             ----               -------\n"
        "  Normal   Scheduled  5m               default-scheduler  Successfully assigned default/web to node1\n"
        "  Warning  BackOff    2m (x3 over 4m)  kubelet            Back-off restarting failed container\n"
    )


def test_describe_pod_without_events_or_node():
    pod = make_pod(phase="Pending", spec__nodeName=None, metadata__deletionTimestamp=at(-30))
    pod["metadata"]["deletionGracePeriodSeconds"] = 30
    pod["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "500m", "memory": "128Mi"}}
    pod["spec"]["tolerations"] = [
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    ]
    out = describe(pod, now=NOW)
    assert "Node:                      <none>\n" in out
    assert "Status:                    Terminating (lasts 30s)\n" in out
    assert "Termination Grace Period:  30s\n" in out
    # "Limits:" has no tab, so the quantities align with the lines that follow it.
    assert "    Limits:\n      cpu:        500m\n      memory:     128Mi\n    Environment:  <none>\n" in out
    assert "QoS Class:        Guaranteed\n" in out
    assert out.endswith(
        "Tolerations:      node.kubernetes.io/not-ready:NoExecute op=Exists for 300s\n"
        "                  node.kubernetes.io/unreachable:NoExecute op=Exists for 300s\n"
        "Events:           <none>\n"
    )


def test_describe_node_sections():
    node = {
        "kind": "Node",
        "metadata": {"name": "node1", "creationTimestamp": T0,
                     "labels": {"node-role.kubernetes.io/control-plane": ""}},
        "spec": {"podCIDR": "10.244.1.0/24", "unschedulable": True,
                 "taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "kubelet is posting ready status",
                            "lastHeartbeatTime": "2026-12-01T10:04:50Z", "lastTransitionTime": T0}],
            "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}, {"type": "Hostname", "address": "node1"}],
            "nodeInfo": {"kubeletVersion": "v1.31.0"},
        },
    }
    out = describe(node, [], now=NOW)
    assert out.startswith(
        "Name:               node1\n"
        "Roles:              control-plane\n"
        "Labels:             node-role.kubernetes.io/control-plane=\n"
        "Annotations:        <none>\n"
        "CreationTimestamp:  Tue, 01 Dec 2026 10:00:00 +0000\n"
        "Taints:             node.kubernetes.io/unschedulable:NoSchedule\n"
        "Unschedulable:      true\n"
        "Conditions:\n"
        "  Type    Status  LastHeartbeatTime                 LastTransitionTime                Reason         Message\n"
        "  ----    ------  -----------------                 ------------------                ------         -------\n"
        "  Ready   True    Tue, 01 Dec 2026 10:04:50 +0000   Tue, 01 Dec 2026 10:00:00 +0000   KubeletReady   kubelet is posting ready status\n"
        "Addresses:\n"
        "  InternalIP:  172.18.0.2\n"
        "  Hostname:    node1\n"
        "System Info:\n"
    )
    assert "  Kubelet Version:            v1.31.0\n" in out
    assert out.endswith("PodCIDR:                      10.244.1.0/24\nEvents:                       <none>\n")


def test_describe_service_with_endpoints():
    svc = {
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"type": "NodePort", "selector": {"app": "web"}, "clusterIP": "10.96.0.10",
                 "clusterIPs": ["10.96.0.10"], "ipFamilies": ["IPv4"],
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"}]},
    }
    slices = [{
        "metadata": {"name": "web-abc"}, "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": True}},
                      {"addresses": ["10.244.2.9"], "conditions": {"ready": False}},
                      {"addresses": ["10.244.2.7"]}],
    }]
    assert describe(svc, [], now=NOW, endpoint_slices=slices) == (
        "Name:              web\n"
        "Namespace:         default\n"
        "Labels:            <none>\n"
        "Annotations:       <none>\n"
        "Selector:          app=web\n"
        "Type:              NodePort\n"
        "IP Families:       IPv4\n"
        "IP:                10.96.0.10\n"
        "IPs:               10.96.0.10\n"
        "Port:              http  80/TCP\n"
        "TargetPort:        8080/TCP\n"
        "NodePort:          http  30080/TCP\n"
        "Endpoints:         10.244.1.5:8080,10.244.2.7:8080\n"
        "Session Affinity:  None\n"
        "Events:            <none>\n"
    )
    # Without slices kubectl says <none>.
    assert "Endpoints:         <none>\n" in describe(svc, [], now=NOW)


def test_describe_deployment_sections():
    template = {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]}}
    deploy = {
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "d1", "creationTimestamp": T0},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template},
        "status": {"replicas": 2, "updatedReplicas": 2, "availableReplicas": 2,
                   "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]},
    }
    rs_template = copy.deepcopy(template)
    rs_template["metadata"]["labels"]["pod-template-hash"] = "5d8f"
    rs = {"metadata": {"name": "web-5d8f", "ownerReferences": [{"kind": "Deployment", "name": "web", "uid": "d1",
                                                                 "controller": True}]},
          "spec": {"replicas": 2, "template": rs_template}, "status": {"replicas": 2}}
    assert describe(deploy, [], now=NOW, replica_sets=[rs]) == (
        "Name:                   web\n"
        "Namespace:              default\n"
        "CreationTimestamp:      Tue, 01 Dec 2026 10:00:00 +0000\n"
        "Labels:                 <none>\n"
        "Annotations:            <none>\n"
        "Selector:               app=web\n"
        "Replicas:               2 desired | 2 updated | 2 total | 2 available | 0 unavailable\n"
        "StrategyType:           RollingUpdate\n"
        "MinReadySeconds:        0\n"
        "RollingUpdateStrategy:  25% max unavailable, 25% max surge\n"
        "Pod Template:\n"
        "  Labels:  app=web\n"
        "  Containers:\n"
        "   web:\n"
        "    Image:         nginx\n"
        "    Port:          80/TCP\n"
        "    Host Port:     0/TCP\n"
        "    Environment:   <none>\n"
        "    Mounts:        <none>\n"
        "  Volumes:         <none>\n"
        "  Node-Selectors:  <none>\n"
        "  Tolerations:     <none>\n"
        "Conditions:\n"
        "  Type           Status  Reason\n"
        "  ----           ------  ------\n"
        "  Available      True    MinimumReplicasAvailable\n"
        "OldReplicaSets:  <none>\n"
        "NewReplicaSet:   web-5d8f (2/2 replicas created)\n"
        "Events:          <none>\n"
    )


def test_describe_replicaset_counts_its_own_pods():
    rs = {"kind": "ReplicaSet", "metadata": {"name": "web-5d8f", "namespace": "default", "uid": "r1"},
          "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                   "template": {"spec": {"containers": []}}},
          "status": {"replicas": 3}}

    def owned(phase, uid="r1"):
        return {"metadata": {"ownerReferences": [{"kind": "ReplicaSet", "uid": uid, "controller": True}]},
                "status": {"phase": phase}}

    pods = [owned("Running"), owned("Pending"), owned("Failed"), owned("Running", uid="other")]
    out = describe(rs, now=NOW, pods=pods)
    assert "Replicas:     3 current / 3 desired\n" in out
    assert "Pods Status:  1 Running / 1 Waiting / 0 Succeeded / 1 Failed\n" in out
    assert "Pods Status" not in describe(rs, now=NOW)


def test_describe_networkpolicy_has_no_events():
    policy = {
        "kind": "NetworkPolicy",
        "metadata": {"name": "api", "namespace": "default", "creationTimestamp": T0},
        "spec": {"podSelector": {"matchLabels": {"app": "api"}},
                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                              "ports": [{"port": 8080}]}]},
    }
    assert describe(policy, POD_EVENTS, now=NOW) == (
        "Name:         api\n"
        "Namespace:    default\n"
        "Created on:   2026-12-01 10:00:00 +0000 UTC\n"
        "Labels:       <none>\n"
        "Annotations:  <none>\n"
        "Spec:\n"
        "  PodSelector:     app=api\n"
        "  Allowing ingress traffic:\n"
        "    To Port: 8080/TCP\n"
        "    From:\n"
        "      PodSelector: app=web\n"
        "  Not affecting egress traffic\n"
        "  Policy Types: Ingress\n"
    )


def test_describe_generic_fallback_renders_whole_object():
    widget = {
        "apiVersion": "knet.dev/v1", "kind": "Widget",
        "metadata": {"name": "w1", "namespace": "default", "uid": "abc", "labels": {"a": "b"}},
        "spec": {"replicas": 2, "paused": False, "targetCPU": 0.5, "hosts": ["a", "b"],
                 "rules": [{"port": 80}, {"port": 443}]},
    }
    assert describe(widget, now=NOW) == (
        "Name:         w1\n"
        "Namespace:    default\n"
        "Labels:       a=b\n"
        "Annotations:  <none>\n"
        "API Version:  knet.dev/v1\n"
        "Kind:         Widget\n"
        "Metadata:\n"
        "  UID:  abc\n"
        "Spec:\n"
        "  Hosts:\n"
        "    a\n"
        "    b\n"
        "  Paused:    false\n"
        "  Replicas:  2\n"
        "  Rules:\n"
        "    Port:      80\n"
        "    Port:      443\n"
        "  Target CPU:  0.5\n"
        "Events:        <none>\n"
    )


def test_describe_escapes_terminal_control_characters():
    pod = make_pod()
    pod["metadata"]["labels"] = {"evil": "\x1b[2J"}
    assert "evil=^[[2J" in describe(pod, now=NOW)


# -- describe node: resources ---------------------------------------------------------------


@pytest.mark.parametrize("values,expected", [
    (["100m", "50m"], "150m"), (["70Mi", "1Gi"], "1094Mi"), (["1G"], "1G"), (["1536Mi"], "1536Mi"),
    (["1.5"], "1500m"), (["0.1"], "100m"), (["1000"], "1k"), (["1500"], "1500"), (["512"], "512"),
    (["1Ki", "1"], "1025"), (["0"], "0"), (["1e3"], "1e3"), (["100Mi", "100M"], "204857600"),
])
def test_quantities_sum_and_print_as_kubectl(values, expected):
    from knet.printers import _parse_qty, _qty_add, _qty_string

    total = None
    for v in values:
        total = _qty_add(total, _parse_qty(v))
    assert _qty_string(total) == expected


def test_describe_node_lists_its_pods_resources_and_lease():
    node = {"kind": "Node", "metadata": {"name": "worker-1", "creationTimestamp": T0},
            "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110", "hugepages-2Mi": "0"}}}
    pod = {"metadata": {"namespace": "default", "name": "heavy", "creationTimestamp": T0},
           "spec": {"nodeName": "worker-1",
                    "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "300m"}}}],
                    "containers": [{"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "1Gi"},
                                                               "limits": {"memory": "2Gi"}}},
                                   {"name": "b", "resources": {"requests": {"cpu": "50m"}}}]},
           "status": {"phase": "Running"}}
    done = {**pod, "metadata": {**pod["metadata"], "name": "done"}, "status": {"phase": "Succeeded"}}
    lease = {"spec": {"holderIdentity": "worker-1", "renewTime": "2026-12-01T10:00:05.000000Z"}}
    out = describe(node, [], now=NOW, pods=[pod, done], lease=lease)
    assert "Lease:\n  HolderIdentity:  worker-1\n  AcquireTime:     <unset>\n" \
           "  RenewTime:       Tue, 01 Dec 2026 10:00:05 +0000\n" in out
    assert "Non-terminated Pods:          (1 in total)\n" in out  # the Succeeded one is not counted
    # the init container's 300m outweighs the containers' 150m; memory 1Gi of 4Gi is 25%
    assert "  default                     heavy    300m (15%)    0 (0%)      1Gi (25%)        2Gi (50%)" in out
    assert "  cpu                300m (15%)  0 (0%)\n  memory             1Gi (25%)   2Gi (50%)\n" in out
    assert "  hugepages-2Mi      0 (0%)      0 (0%)\n" in out
    assert "Lease:\tFailed" not in describe(node, [], now=NOW, lease="leases.coordination.k8s.io \"x\" not found")
    assert "Lease:              Failed to get lease: leases.coordination.k8s.io \"x\" not found\n" in describe(
        node, [], now=NOW, lease="leases.coordination.k8s.io \"x\" not found")


def test_describe_statefulset_service_policy_and_retention():
    sts = {"kind": "StatefulSet", "metadata": {"name": "db", "namespace": "default", "creationTimestamp": T0},
           "spec": {"serviceName": "db", "podManagementPolicy": "OrderedReady", "replicas": 2,
                    "selector": {"matchLabels": {"app": "db"}},
                    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                    "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
                    "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": []}}},
           "status": {"replicas": 2}}
    out = describe(sts, [], now=NOW)
    # kubectl describe sts, as v1.37 printed it for this StatefulSet on a live cluster
    assert out.startswith(
        "Name:                   db\n"
        "Namespace:              default\n"
        "CreationTimestamp:      Tue, 01 Dec 2026 10:00:00 +0000\n"
        "Selector:               app=db\n"
        "Labels:                 <none>\n"
        "Annotations:            <none>\n"
        "Service Name:           db\n"
        "Pod Management Policy:  OrderedReady\n"
        "Replicas:               2 desired | 2 total\n"
        "Update Strategy:        RollingUpdate\n"
        "  Partition:            0\n"
        "Persistent Volume Claim Retention Policy:\n"
        "  WhenDeleted:  Retain\n"
        "  WhenScaled:   Retain\n")
