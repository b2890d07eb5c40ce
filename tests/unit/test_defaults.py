"""Defaulting: what kube-apiserver fills in before validating."""

import copy

from knet.api.defaults import apply_defaults
from knet.api.validation import validate

NOT_READY_AND_UNREACHABLE_300S = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
]


def pod(**spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": pod_spec(**spec)}


def pod_spec(**spec):
    spec.setdefault("containers", [{"name": "web", "image": "nginx:1.25"}])
    return spec


def test_pod_defaults():
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": pod_spec(containers=[{
        "name": "web", "image": "nginx:1.25",
        "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}],
        "livenessProbe": {"httpGet": {"port": 80}, "periodSeconds": 0},
        "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 5},
        "env": [{"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
    }])}
    assert apply_defaults(obj) is obj
    spec = obj["spec"]
    assert {k: spec[k] for k in ("restartPolicy", "terminationGracePeriodSeconds", "dnsPolicy",
                                 "schedulerName", "enableServiceLinks", "securityContext")} == {
        "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
        "schedulerName": "default-scheduler", "enableServiceLinks": True, "securityContext": {}}
    c = spec["containers"][0]
    assert [p["protocol"] for p in c["ports"]] == ["TCP", "UDP"]
    assert c["livenessProbe"] == {
        "httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
        "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3}
    assert c["readinessProbe"]["periodSeconds"] == 5
    assert c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"
    assert c["image"] == "nginx:1.25" and "imagePullPolicy" not in c  # knet pulls nothing
    assert spec["tolerations"] == NOT_READY_AND_UNREACHABLE_300S
    validate(obj)


def test_explicit_values_win():
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "w"},
           "spec": pod_spec(restartPolicy="Never", terminationGracePeriodSeconds=0, enableServiceLinks=False)}
    spec = apply_defaults(obj)["spec"]
    assert (spec["restartPolicy"], spec["terminationGracePeriodSeconds"], spec["enableServiceLinks"]) == (
        "Never", 0, False)


def test_host_network_pods_publish_container_ports_on_the_host():
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "w"}, "spec": pod_spec(
        hostNetwork=True, containers=[{"name": "web", "image": "node-exporter", "ports": [{"containerPort": 9100}]}])}
    assert apply_defaults(obj)["spec"]["containers"][0]["ports"][0]["hostPort"] == 9100
    validate(obj)


def svc(**spec):
    spec.setdefault("ports", [{"port": 80}])
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": spec}


def test_service_defaults():
    spec = apply_defaults(svc(selector={"app": "web"}, ports=[{"port": 80}, {"port": 53, "protocol": "UDP",
                                                                           "targetPort": "dns"}]))["spec"]
    assert spec == {
        "selector": {"app": "web"},
        "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80},
                  {"port": 53, "protocol": "UDP", "targetPort": "dns"}],
        "type": "ClusterIP", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
        "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"],
    }


def test_service_type_dependent_defaults():
    node_port = apply_defaults(svc(type="NodePort", sessionAffinity="ClientIP"))["spec"]
    assert node_port["externalTrafficPolicy"] == "Cluster"
    assert node_port["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    lb = apply_defaults(svc(type="LoadBalancer"))["spec"]
    assert lb["allocateLoadBalancerNodePorts"] is True and lb["externalTrafficPolicy"] == "Cluster"
    assert "externalTrafficPolicy" not in apply_defaults(svc())["spec"]
    external = apply_defaults(svc(type="ExternalName", externalName="db.example.com", ports=[]))["spec"]
    assert not {"ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy"} & set(external)
    for spec in (node_port, lb, external):
        validate({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": spec})


def test_cluster_ip_is_mirrored_with_its_family():
    spec = apply_defaults(svc(clusterIP="fd00::10"))["spec"]
    assert spec["clusterIPs"] == ["fd00::10"] and spec["ipFamilies"] == ["IPv6"]
    spec = apply_defaults(svc(clusterIPs=["10.96.0.10"]))["spec"]
    assert spec["clusterIP"] == "10.96.0.10" and spec["ipFamilies"] == ["IPv4"]
    spec = apply_defaults(svc(clusterIP="None", ports=[]))["spec"]
    assert spec["clusterIPs"] == ["None"] and spec["ipFamilies"] == ["IPv4"]


def workload(kind, **spec):
    spec.setdefault("selector", {"matchLabels": {"app": "web"}})
    spec.setdefault("template", {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec()})
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "web"}, "spec": spec}


def test_deployment_defaults():
    spec = apply_defaults(workload("Deployment"))["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert spec["revisionHistoryLimit"] == 10 and spec["progressDeadlineSeconds"] == 600
    assert spec["template"]["spec"]["restartPolicy"] == "Always"
    recreate = apply_defaults(workload("Deployment", replicas=0, strategy={"type": "Recreate"}))["spec"]
    assert recreate["strategy"] == {"type": "Recreate"} and recreate["replicas"] == 0


def test_other_workload_defaults():
    rs = apply_defaults(workload("ReplicaSet"))["spec"]
    assert rs["replicas"] == 1 and rs["template"]["spec"]["dnsPolicy"] == "ClusterFirst"
    ds = apply_defaults(workload("DaemonSet"))["spec"]
    assert ds["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert "replicas" not in ds
    sts = apply_defaults(workload("StatefulSet"))["spec"]
    assert sts["replicas"] == 1 and sts["podManagementPolicy"] == "OrderedReady"
    assert sts["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert sts["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    on_delete = apply_defaults(workload("StatefulSet", updateStrategy={"type": "OnDelete"}))["spec"]
    assert on_delete["updateStrategy"] == {"type": "OnDelete"}
    for kind in ("ReplicaSet", "DaemonSet", "StatefulSet"):
        validate(apply_defaults(workload(kind)))


def netpol(**spec):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "p"}, "spec": spec}


def test_networkpolicy_defaults():
    spec = apply_defaults(netpol(ingress=[{"ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]}]))["spec"]
    assert spec["podSelector"] == {}
    assert spec["policyTypes"] == ["Ingress"]
    assert spec["ingress"][0]["ports"] == [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]
    assert apply_defaults(netpol(egress=[{}]))["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert apply_defaults(netpol(egress=[]))["spec"]["policyTypes"] == ["Ingress"]
    assert apply_defaults(netpol(policyTypes=["Egress"]))["spec"]["policyTypes"] == ["Egress"]


def test_endpointslice_namespace_and_node_defaults():
    eps = apply_defaults({"kind": "EndpointSlice", "ports": [{"port": 80}]})
    assert eps["ports"] == [{"port": 80, "name": "", "protocol": "TCP"}]  # name "" as upstream defaults it
    ns = apply_defaults({"kind": "Namespace", "metadata": {"name": "team-a", "labels": {"x": "y"}}})
    assert ns["metadata"]["labels"] == {"x": "y", "kubernetes.io/metadata.name": "team-a"}
    node = apply_defaults({"kind": "Node", "metadata": {"name": "n"}, "spec": {"podCIDR": "10.244.1.0/24"}})
    assert node["spec"]["podCIDRs"] == ["10.244.1.0/24"]
    node = apply_defaults({"kind": "Node", "metadata": {"name": "n"}, "spec": {"podCIDRs": ["10.244.2.0/24"]}})
    assert node["spec"]["podCIDR"] == "10.244.2.0/24"


def test_defaulting_is_idempotent_and_tolerant():
    for obj in (workload("Deployment"), svc(type="NodePort"), netpol(egress=[{}])):
        once = copy.deepcopy(apply_defaults(obj))
        assert apply_defaults(obj) == once
    odd = {"kind": "Pod", "spec": {"containers": "nope"}}
    assert apply_defaults(odd)["spec"]["containers"] == "nope"
    assert apply_defaults({"kind": "PersistentVolume", "spec": {}}) == {"kind": "PersistentVolume", "spec": {}}
    assert apply_defaults({"kind": "Service", "spec": []}) == {"kind": "Service", "spec": []}


def test_session_affinity_none_drops_its_config():
    spec = apply_defaults(svc(sessionAffinity="None", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}))
    assert "sessionAffinityConfig" not in spec["spec"]
    validate(spec)
    unset = apply_defaults(svc(sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}))["spec"]
    assert unset["sessionAffinity"] == "None" and "sessionAffinityConfig" not in unset
    kept = apply_defaults(svc(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}))
    assert kept["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 60}}


def test_negative_grace_period_is_stored_as_one_for_pods_only():
    assert apply_defaults(pod(terminationGracePeriodSeconds=-5))["spec"]["terminationGracePeriodSeconds"] == 1
    assert apply_defaults(pod(terminationGracePeriodSeconds=0))["spec"]["terminationGracePeriodSeconds"] == 0
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
              "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
                  "metadata": {"labels": {"app": "web"}}, "spec": pod_spec(terminationGracePeriodSeconds=-5)}}}
    template = apply_defaults(deploy)["spec"]["template"]["spec"]
    assert template["terminationGracePeriodSeconds"] == -5  # the pods made from it get 1
    assert "tolerations" not in template  # admission adds them to pods, not templates


def test_default_toleration_seconds_admission():
    assert apply_defaults(pod())["spec"]["tolerations"] == NOT_READY_AND_UNREACHABLE_300S
    own = {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
           "tolerationSeconds": 6000}
    assert apply_defaults(pod(tolerations=[own]))["spec"]["tolerations"] == [own, NOT_READY_AND_UNREACHABLE_300S[0]]
    # A toleration with no key, or no effect, already tolerates the taint.
    for everything in ({"operator": "Exists"}, {"operator": "Exists", "effect": "NoExecute"}):
        assert apply_defaults(pod(tolerations=[everything]))["spec"]["tolerations"] == [everything]
    any_effect = {"key": "node.kubernetes.io/not-ready", "operator": "Exists"}
    assert apply_defaults(pod(tolerations=[any_effect]))["spec"]["tolerations"] == [
        any_effect, NOT_READY_AND_UNREACHABLE_300S[1]]
    # Another effect does not count: NoSchedule does not tolerate an eviction.
    no_schedule = {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"}
    assert apply_defaults(pod(tolerations=[no_schedule]))["spec"]["tolerations"] == [
        no_schedule, *NOT_READY_AND_UNREACHABLE_300S]
    twice = apply_defaults(apply_defaults(pod()))  # an update of an admitted pod adds nothing
    assert twice["spec"]["tolerations"] == NOT_READY_AND_UNREACHABLE_300S
    validate(twice)
