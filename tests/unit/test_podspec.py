from knet.config import default_config
from knet.node.podspec import container_env, expand, security
from knet.node.podworker import Container, pod_phase, should_restart
from knet.node.sandbox import hosts_text, resolv_conf_text


def test_expand_like_kubernetes():
    env = {"A": "1", "B": "two"}
    assert expand("$(A)-$(B)", env) == "1-two"
    assert expand("$(MISSING)", env) == "$(MISSING)"
    assert expand("$$(A)", env) == "$(A)"
    assert expand("cost $5", env) == "cost $5"


POD = {"metadata": {"name": "web-0", "namespace": "shop", "uid": "u1", "labels": {"app": "web"}},
       "spec": {"nodeName": "worker-1", "securityContext": {"runAsUser": 1000, "supplementalGroups": [5]},
                "containers": []}, "status": {"podIP": "10.244.1.5"}}


def test_container_env_order_and_field_refs():
    c = {"name": "c", "env": [
        {"name": "X", "value": "x"}, {"name": "Y", "value": "$(X)$(X)"},
        {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}}]}
    env = container_env(POD, c, "192.168.56.11", {"KUBERNETES_SERVICE_HOST": "10.96.0.1"})
    assert env["Y"] == "xx" and env["N"] == "shop" and env["IP"] == "10.244.1.5" and env["APP"] == "web"
    assert env["HOST"] == "192.168.56.11" and env["HOSTNAME"] == "web-0"
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1" and "PATH" in env


def test_security_container_overrides_pod():
    c = {"name": "c", "securityContext": {"runAsGroup": 3000, "allowPrivilegeEscalation": False}}
    assert security(POD, c) == (1000, 3000, [5], True)
    assert security(POD, {"name": "c"}) == (1000, None, [5], False)


def test_resolv_conf_for_dns_policies():
    cfg = default_config()
    text = resolv_conf_text(cfg, POD)
    assert text == ("search shop.svc.cluster.local svc.cluster.local cluster.local\n"
                    "nameserver 10.96.0.10\noptions ndots:5\n")
    custom = dict(POD, spec=dict(POD["spec"], dnsPolicy="None", dnsConfig={
        "nameservers": ["1.1.1.1"], "searches": ["a.b"], "options": [{"name": "ndots", "value": "2"}]}))
    assert resolv_conf_text(cfg, custom) == "search a.b\nnameserver 1.1.1.1\noptions ndots:2\n"


def test_hosts_file():
    text = hosts_text(default_config(), POD, "10.244.1.5")
    assert "127.0.0.1\tlocalhost" in text and "10.244.1.5\tweb-0" in text


def c(state, last=None):
    x = Container({"name": "c"})
    x.state = state
    x.last_state = last or {}
    return x


def test_pod_phase_follows_kubelet():
    running = {"running": {}}
    ok, bad = {"terminated": {"exitCode": 0}}, {"terminated": {"exitCode": 1}}
    creating = {"waiting": {"reason": "ContainerCreating"}}
    backoff = {"waiting": {"reason": "CrashLoopBackOff"}}
    assert pod_phase([c(creating)], "Always") == "Pending"
    assert pod_phase([c(running), c(ok)], "Never") == "Running"
    assert pod_phase([c(ok), c(ok)], "Never") == "Succeeded"
    assert pod_phase([c(ok), c(bad)], "Never") == "Failed"
    assert pod_phase([c(backoff, bad)], "Always") == "Running"
    assert pod_phase([c(bad)], "OnFailure") == "Running"
    assert pod_phase([c(ok)], "OnFailure") == "Succeeded"


def test_restart_policy():
    assert should_restart("Always", 0) and should_restart("OnFailure", 1)
    assert not should_restart("OnFailure", 0) and not should_restart("Never", 1)
