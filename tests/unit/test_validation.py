"""Validation: apimachinery wording and paths, all errors at once, update rules."""

import copy

import pytest

from knet.api.defaults import apply_defaults
from knet.api.errors import Invalid
from knet.api.validation import validate, validate_update, validation_errors
from knet.api.validation.fields import is_dns1123_label, is_env_var_name, is_port_name


def pod(**spec):
    """A Pod; each container gets an image (required) unless it says `image=None`."""
    spec.setdefault("containers", [{"name": "web"}])
    for key in ("containers", "initContainers"):
        for c in spec[key] if isinstance(spec.get(key), list) else []:
            if isinstance(c, dict) and c.setdefault("image", "nginx:1.25") is None:
                del c["image"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}, "spec": spec}


def service(**spec):
    spec.setdefault("selector", {"app": "web"})
    spec.setdefault("ports", [{"port": 80}])
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": spec}


def deployment(selector=None, labels=None, **spec):
    spec["selector"] = {"matchLabels": {"app": "web"}} if selector is None else selector
    spec["template"] = {"metadata": {"labels": labels or {"app": "web"}},
                        "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": spec}


def messages(obj, defaults=True):
    return [str(e) for e in validation_errors(apply_defaults(obj) if defaults else obj)]


def fields(obj, defaults=True):
    return [e.field for e in validation_errors(apply_defaults(obj) if defaults else obj)]


# -- exact wording ----------------------------------------------------------------


def test_port_range_message():
    assert messages(service(ports=[{"port": 70000, "targetPort": 80}])) == [
        "spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive"]


def test_dns_subdomain_name_message():
    obj = pod()
    obj["metadata"]["name"] = "Web_1"
    assert messages(obj) == [
        'metadata.name: Invalid value: "Web_1": a lowercase RFC 1123 subdomain must consist of lower '
        "case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
        "character (e.g. 'example.com', regex used for validation is "
        r"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"]


def test_dns1035_service_name_message():
    obj = service()
    obj["metadata"]["name"] = "1web"
    assert messages(obj) == [
        'metadata.name: Invalid value: "1web": a DNS-1035 label must consist of lower case '
        "alphanumeric characters or '-', start with an alphabetic character, and end with an "
        "alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is "
        "'[a-z]([-a-z0-9]*[a-z0-9])?')"]


def test_required_and_unsupported_messages():
    obj = pod(containers=[{"image": "nginx", "ports": [{"containerPort": 80, "protocol": "ICMP"}]}])
    assert messages(obj) == [
        "spec.containers[0].name: Required value",
        'spec.containers[0].ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"',
    ]


def test_selector_mismatch_message():
    assert messages(deployment(labels={"app": "other"})) == [
        'spec.template.metadata.labels: Invalid value: {"app": "other"}: `selector` does not match template `labels`']


def test_invalid_collects_every_error_into_one_status():
    obj = pod(containers=[{"name": "Web", "ports": [{"containerPort": 0}]}], restartPolicy="Sometimes")
    obj["metadata"]["name"] = "Web_1"
    with pytest.raises(Invalid) as exc:
        validate(apply_defaults(obj))
    err = exc.value
    assert err.code == 422 and err.reason == "Invalid"
    assert err.message.startswith('Pod "Web_1" is invalid: [metadata.name: Invalid value: "Web_1": ')
    assert [c["field"] for c in err.details["causes"]] == [
        "metadata.name", "spec.containers[0].name", "spec.containers[0].ports[0].containerPort",
        "spec.restartPolicy"]
    assert err.details["causes"][-1]["reason"] == "FieldValueNotSupported"
    assert 'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"' in err.message


# -- kind, apiVersion, metadata -----------------------------------------------------


def test_api_version_must_match_kind():
    obj = deployment()
    obj["apiVersion"] = "v1"
    assert messages(obj) == ['apiVersion: Unsupported value: "v1": supported values: "apps/v1"']


def test_unknown_kind_and_unknown_top_level_fields():
    assert fields({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "s"}}) == ["kind"]
    obj = pod()
    obj["extra"] = {"ignored": True}
    validate(obj)


def test_generate_name_stands_in_for_name():
    obj = pod()
    obj["metadata"] = {"generateName": "web-"}
    validate(obj)
    obj["metadata"] = {}
    assert messages(obj) == ["metadata.name: Required value: name or generateName is required"]


@pytest.mark.parametrize("labels, ok", [
    ({"app": "web"}, True),
    ({"example.com/app": "web", "a": ""}, True),
    ({"app": "x" * 63}, True),
    ({"app": "x" * 64}, False),
    ({"a" * 64: "x"}, False),
    ({"Example.com/app": "x"}, False),
    ({"a/b/c": "x"}, False),
    ({"/app": "x"}, False),
    ({"app": "-web"}, False),
    ({"app": 3}, False),
])
def test_label_syntax(labels, ok):
    obj = pod()
    obj["metadata"]["labels"] = labels
    assert (fields(obj) == []) is ok
    assert all(f == "metadata.labels" for f in fields(obj))


def test_namespace_name_is_a_label_and_node_name_a_subdomain():
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team.a"}}
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1.example.com"}}
    assert fields(ns) == ["metadata.name"]
    assert fields(node) == []


# -- pods ---------------------------------------------------------------------------


def test_container_image_is_required_in_pods_and_templates():
    assert messages(pod(containers=[{"name": "web", "image": None}])) == ["spec.containers[0].image: Required value"]
    assert messages(pod(containers=[{"name": "web", "image": ""}])) == ["spec.containers[0].image: Required value"]
    assert fields(pod(initContainers=[{"name": "init", "image": None}])) == ["spec.initContainers[0].image"]
    template = deployment()
    del template["spec"]["template"]["spec"]["containers"][0]["image"]
    assert messages(template) == ["spec.template.spec.containers[0].image: Required value"]
    # Any image will do: knet pulls nothing, and a container without a command
    # runs the built-in server whatever its image says.
    validate(apply_defaults(pod(containers=[{"name": "web", "image": "knet/builtin"}])))
    assert messages(pod(containers=[{"name": "web", "image": " nginx"}])) == [
        'spec.containers[0].image: Invalid value: " nginx": must not have leading or trailing whitespace']


def test_undefaulted_input_reports_only_what_is_really_missing():
    assert fields(pod(containers=[]), defaults=False) == ["spec.containers"]
    assert fields(service(ports=[]), defaults=False) == ["spec.ports"]
    validate(service())  # type, protocol, sessionAffinity... will be defaulted
    validate(deployment())


@pytest.mark.parametrize("name, ok", [
    ("http", True), ("h2c-8080", True), ("a" * 15, True), ("a" * 16, False), ("8080", False),
    ("HTTP", False), ("my--port", False), ("-http", False), ("http-", False), ("web_port", False),
])
def test_iana_port_names(name, ok):
    assert (is_port_name(name) == []) is ok


@pytest.mark.parametrize("name, ok", [
    ("MY_VAR", True), ("my.var-1", True), ("_x", True), ("1VAR", False), ("MY=VAR", False),
    ("..x", False), (".", False), ("", False),
])
def test_env_var_names(name, ok):
    assert (is_env_var_name(name) == []) is ok


def test_dns_label_length():
    assert is_dns1123_label("a" * 63) == []
    assert is_dns1123_label("a" * 64) == ["must be no more than 63 characters"]


def test_port_names_unique_per_container_only():
    obj = pod(containers=[
        {"name": "a", "ports": [{"name": "http", "containerPort": 80}, {"name": "http", "containerPort": 81}]},
        {"name": "b", "ports": [{"name": "http", "containerPort": 82}]},
    ])
    assert messages(obj) == ['spec.containers[0].ports[1].name: Duplicate value: "http"']


def test_probe_rules():
    obj = pod(containers=[{
        "name": "web",
        "livenessProbe": {"httpGet": {"port": "http"}, "successThreshold": 2},
        "readinessProbe": {"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}, "periodSeconds": 0},
        "startupProbe": {"periodSeconds": 5},
    }])
    assert messages(obj, defaults=False) == [
        "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
        "spec.containers[0].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
        "spec.containers[0].readinessProbe.periodSeconds: Invalid value: 0: must be greater than or equal to 1",
        "spec.containers[0].startupProbe: Required value: must specify a handler type",
    ]
    # Defaulting turns the zero period into 10, as Kubernetes does.
    assert fields(obj) == ["spec.containers[0].livenessProbe.successThreshold",
                           "spec.containers[0].readinessProbe.tcpSocket",
                           "spec.containers[0].startupProbe"]


def test_init_containers_share_names_and_may_not_probe():
    obj = pod(initContainers=[{"name": "web", "livenessProbe": {"tcpSocket": {"port": 80}}}])
    assert messages(obj) == [
        'spec.initContainers[0].name: Duplicate value: "web"',
        "spec.initContainers[0].livenessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
    ]


def test_security_context_ids_both_levels():
    obj = pod(securityContext={"runAsUser": -1, "runAsGroup": 3000},
              containers=[{"name": "web", "securityContext": {"runAsUser": 1000, "runAsGroup": -1}}])
    assert messages(obj) == [
        "spec.containers[0].securityContext.runAsGroup: Invalid value: -1: must be between 0 and 2147483647, inclusive",
        "spec.securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive",
    ]


def test_negative_termination_grace_period_is_never_refused():
    obj = apply_defaults(pod(terminationGracePeriodSeconds=-5))
    validate(obj)
    assert obj["spec"]["terminationGracePeriodSeconds"] == 1  # stored as 1, as kube-apiserver does
    template = deployment()
    template["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = -5
    validate(apply_defaults(template))  # templates keep theirs; their pods get 1
    assert fields(pod(terminationGracePeriodSeconds="30")) == ["spec.terminationGracePeriodSeconds"]


def test_tolerations():
    obj = pod(tolerations=[
        {"operator": "Exists"},                                  # tolerate everything: fine
        {"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"},
        {"key": "k", "value": "v"},                              # empty operator means Equal
        {"value": "v"},
        {"key": "k", "operator": "Exists", "value": "v"},
    ])
    assert fields(obj) == ["spec.tolerations[3].operator", "spec.tolerations[4].operator"]


def test_node_affinity_operators():
    def affinity(*exprs):
        return pod(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": list(exprs)}]}}})
    base = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions"
    assert fields(affinity({"key": "a", "operator": "Gt", "values": ["1"]},
                           {"key": "b", "operator": "DoesNotExist"})) == []
    assert messages(affinity({"key": "a", "operator": "Lt", "values": ["1", "2"]})) == [
        f"{base}[0].values: Required value: must be specified single value when `operator` is 'Lt' or 'Gt'"]
    assert messages(affinity({"key": "a", "operator": "Exists", "values": ["1"]})) == [
        f"{base}[0].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"]
    assert messages(affinity({"key": "a", "operator": "Near", "values": ["1"]})) == [
        f'{base}[0].operator: Invalid value: "Near": not a valid selector operator']


def test_wrong_types_are_reported_not_crashed_on():
    obj = pod(containers={"name": "web"}, nodeSelector=["a"], hostNetwork="yes")
    assert fields(obj) == ["spec.hostNetwork", "spec.containers", "spec.containers", "spec.nodeSelector"]
    assert fields({"apiVersion": "v1", "kind": "Pod", "metadata": "x", "spec": []})[:2] == ["metadata", "metadata.name"]
    assert fields(pod(containers=[{"name": "web", "command": ["sleep", 5]}])) == ["spec.containers[0].command[1]"]


# The corpus keeps to 99 files; these are its other cases.
@pytest.mark.parametrize("obj, field", [
    (pod(containers=[{"name": "web", "env": [{"value": "x"}]}]), "spec.containers[0].env[0].name"),
    (pod(containers=[{"name": "web", "readinessProbe": {"tcpSocket": {"port": 80}, "failureThreshold": -3}}]),
     "spec.containers[0].readinessProbe.failureThreshold"),
    (pod(containers=[{"name": "web", "livenessProbe": {"httpGet": {"port": 80, "scheme": "FTP"}}}]),
     "spec.containers[0].livenessProbe.httpGet.scheme"),
    (pod(containers=[{"name": "web", "ports": [{"name": "HTTP", "containerPort": 80}]}]),
     "spec.containers[0].ports[0].name"),
    (pod(activeDeadlineSeconds=0), "spec.activeDeadlineSeconds"),
    (pod(hostname="web.example"), "spec.hostname"),
    (pod(containers=[{"name": "web", "ports": [{"name": "http"}]}]), "spec.containers[0].ports[0].containerPort"),
    (service(ports=[{"name": "http", "port": 80}, {"name": "http", "port": 81}]), "spec.ports[1].name"),
    (service(ports=[{"port": 80, "targetPort": "8080"}]), "spec.ports[0].targetPort"),
    (service(type="LoadBalancer", clusterIP="None"), "spec.clusterIPs[0]"),
    (service(externalIPs=["127.0.0.1"]), "spec.externalIPs[0]"),
    (service(clusterIP="fd00::10", ipFamilies=["IPv4"]), "spec.clusterIPs[0]"),
    (service(loadBalancerSourceRanges=["10.0.0.0/8"]), "spec.LoadBalancerSourceRanges"),
    (deployment(strategy={"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}), "spec.strategy.rollingUpdate"),
    (deployment(progressDeadlineSeconds=5, minReadySeconds=10), "spec.progressDeadlineSeconds"),
    (deployment(labels={"app": "web"}, selector={"matchLabels": {"app": "web"}},
                revisionHistoryLimit=-1), "spec.revisionHistoryLimit"),
])
def test_more_invalid_cases(obj, field):
    assert field in fields(obj)


def test_workload_template_rules():
    obj = deployment()
    obj["spec"]["template"]["spec"]["activeDeadlineSeconds"] = 30
    assert messages(obj) == [
        "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in Deployment is not Supported"]
    ds = deployment(selector={})
    ds["kind"] = "DaemonSet"
    assert messages(ds) == ["spec.selector: Invalid value: {}: empty selector is invalid for daemonset"]


def test_daemonset_rolling_update_is_surge_or_unavailable():
    ds = deployment(updateStrategy={"rollingUpdate": {"maxUnavailable": 1, "maxSurge": "10%"}})
    ds["kind"] = "DaemonSet"
    assert messages(ds) == [
        'spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: "10%": may not be set when maxUnavailable is non-zero']


def test_service_cluster_ip_shapes():
    assert fields(service(clusterIP="10.96.0.10")) == []
    assert fields(service(clusterIP="fd00::10")) == []
    assert fields(service(clusterIP="None", ports=[])) == []
    assert fields(service(clusterIP="10.96.0.10", clusterIPs=["10.96.0.11"])) == ["spec.clusterIPs"]
    assert fields(service(clusterIP="10.0.0.300"), defaults=False) == ["spec.clusterIP"]


def test_externally_accessible_services_get_traffic_policy():
    assert fields(service(type="NodePort", externalTrafficPolicy="Local")) == []
    assert fields(service(externalIPs=["192.0.2.10"], externalTrafficPolicy="Local")) == []
    assert fields(service(type="NodePort", externalTrafficPolicy="Nearest")) == ["spec.externalTrafficPolicy"]


def test_endpointslice_addresses_follow_address_type():
    def slice_(address_type, *addresses):
        return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "s"},
                "addressType": address_type, "endpoints": [{"addresses": list(addresses)}]}
    assert fields(slice_("IPv6", "fd00::1")) == []
    assert fields(slice_("IPv4", "fd00::1")) == ["endpoints[0].addresses[0]"]
    assert fields(slice_("FQDN", "db.example.com")) == []
    assert fields(slice_("FQDN", "db")) == ["endpoints[0].addresses[0]"]
    assert fields(slice_("IPv4", *[f"10.0.0.{i}" for i in range(1, 102)])) == ["endpoints[0].addresses"]
    two_unnamed = slice_("IPv4", "10.0.0.1")
    two_unnamed["ports"] = [{"port": 80}, {"port": 81}]
    assert messages(two_unnamed) == ['ports[1].name: Duplicate value: ""']


def test_networkpolicy_selector_may_be_empty_but_not_absent():
    np = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "p"}, "spec": {}}
    assert fields(np, defaults=False) == ["spec.podSelector"]
    assert fields(np) == []  # defaulting fills podSelector: {}


def test_node_taints_are_reported_under_metadata():
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
            "spec": {"taints": [{"key": "k", "effect": "Sometimes"}]}}
    assert messages(node) == [
        'metadata.taints[0].effect: Unsupported value: "Sometimes": supported values: '
        '"NoSchedule", "PreferNoSchedule", "NoExecute"']


# -- updates ------------------------------------------------------------------------


def stored(obj):
    obj = apply_defaults(obj)
    obj["metadata"].update(uid="1234", creationTimestamp="2024-01-01T00:00:00Z")
    return obj


def updated(obj, change):
    new = copy.deepcopy(obj)
    change(new)
    return apply_defaults(new)


def update_messages(old, change):
    try:
        validate_update(updated(old, change), old)
    except Invalid as e:
        return [f'{c["field"]}: {c["message"]}' for c in e.details["causes"]]  # as kubectl prints causes
    return []


def test_pod_update_allows_image_deadline_and_added_tolerations():
    old = stored(pod(activeDeadlineSeconds=60, tolerations=[{"key": "a", "operator": "Exists"}]))

    def change(p):
        p["spec"]["containers"][0]["image"] = "nginx:1.26"
        p["spec"]["activeDeadlineSeconds"] = 30
        p["spec"]["tolerations"].append({"key": "b", "operator": "Exists"})
        p["metadata"]["labels"] = {"app": "web"}
    assert update_messages(old, change) == []


def test_pod_update_forbids_other_spec_changes():
    old = stored(pod())
    msgs = update_messages(old, lambda p: p["spec"].update(nodeName="node-1"))
    assert len(msgs) == 1
    assert msgs[0].startswith(
        "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions "
        "to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it "
        "was previously negative)\n")
    assert 'spec.nodeName: null -> "node-1"' in msgs[0]


def test_pod_update_specific_rules():
    old = stored(pod(activeDeadlineSeconds=60, tolerations=[{"key": "a", "operator": "Exists"}]))
    assert update_messages(old, lambda p: p["spec"].update(activeDeadlineSeconds=120)) == [
        "spec.activeDeadlineSeconds: Invalid value: 120: must be less than or equal to previous value"]
    assert update_messages(old, lambda p: p["spec"].update(tolerations=[])) == [
        "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"]
    assert update_messages(old, lambda p: p["spec"]["containers"].append({"name": "b"})) == [
        "spec.containers: Forbidden: pod updates may not add or remove containers"]


def test_metadata_identity_is_immutable():
    old = stored(pod())
    assert update_messages(old, lambda p: p["metadata"].update(uid="other")) == [
        'metadata.uid: Invalid value: "other": field is immutable']
    assert update_messages(old, lambda p: p["metadata"].pop("uid")) == []  # the server fills it back


def test_workload_selectors_are_immutable():
    old = stored(deployment())

    def change(d):
        d["spec"]["selector"] = {"matchLabels": {"app": "web", "v": "2"}}
        d["spec"]["template"]["metadata"]["labels"]["v"] = "2"
    assert update_messages(old, change) == [
        'spec.selector: Invalid value: {"matchLabels": {"app": "web", "v": "2"}}: field is immutable']
    assert update_messages(old, lambda d: d["spec"].update(replicas=5)) == []


def test_statefulset_spec_is_mostly_frozen():
    sts = deployment(serviceName="web")
    sts["kind"] = "StatefulSet"
    old = stored(sts)
    assert update_messages(old, lambda s: s["spec"].update(replicas=5)) == []
    assert update_messages(old, lambda s: s["spec"].update(serviceName="other")) == [
        "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', "
        "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"]


def test_service_cluster_ip_is_immutable_once_set():
    old = stored(service(clusterIP="10.96.0.10"))

    def change(s):
        s["spec"]["clusterIP"] = "10.96.0.11"
        s["spec"]["clusterIPs"] = ["10.96.0.11"]
    assert update_messages(old, change) == [
        'spec.clusterIPs[0]: Invalid value: ["10.96.0.11"]: may not change once set']

    def omit(s):
        del s["spec"]["clusterIP"], s["spec"]["clusterIPs"]
    assert update_messages(old, omit) == []
    unallocated = stored(service())
    assert update_messages(unallocated, lambda s: s["spec"].update(clusterIP="10.96.0.12")) == []


def test_node_pod_cidr_and_slice_address_type_are_immutable():
    node = stored({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.1.0/24"}})

    def change(n):
        n["spec"]["podCIDR"] = "10.244.2.0/24"
        n["spec"]["podCIDRs"] = ["10.244.2.0/24"]
    assert update_messages(node, change) == [
        'spec.podCIDRs: Forbidden: node updates may not change podCIDR except from "" to valid']
    unassigned = stored({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    assert update_messages(unassigned, lambda n: n.setdefault("spec", {}).update(podCIDR="10.244.3.0/24")) == []
    eps = stored({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "s"},
                  "addressType": "IPv4", "endpoints": []})
    assert update_messages(eps, lambda s: s.update(addressType="IPv6")) == [
        'addressType: Invalid value: "IPv6": field is immutable']


def test_health_check_node_port_only_for_local_load_balancers():
    refused = "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"
    for obj in (service(healthCheckNodePort=30100),
                service(type="NodePort", externalTrafficPolicy="Local", healthCheckNodePort=30100),
                service(type="LoadBalancer", externalTrafficPolicy="Cluster", healthCheckNodePort=30100),
                service(type="LoadBalancer", healthCheckNodePort=30100)):  # the policy defaults to Cluster
        assert messages(obj) == [f"spec.healthCheckNodePort: Invalid value: 30100: {refused}"]
    assert messages(service(type="LoadBalancer", externalTrafficPolicy="Local", healthCheckNodePort=30100)) == []
    assert messages(service(type="LoadBalancer", externalTrafficPolicy="Local", healthCheckNodePort=70000)) == [
        "spec.healthCheckNodePort: Invalid value: 70000: must be between 1 and 65535, inclusive"]
