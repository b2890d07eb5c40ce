"""Check outcomes: what each check dials, asks or runs, and how it judges, against a fake cluster
seam (objects in a dict, connection outcomes by address, DNS answers by name, command outputs)."""

from __future__ import annotations

from knet.lab import checks
from knet.lab.checks import DnsAnswer, condition_met
from knet.lab.model import parse

CLUSTER = {"kind": "Cluster", "nodes": [{"role": "control-plane"}, {"role": "worker"}, {"role": "worker"}]}


def pod(name: str, ip: str, node: str = "worker-1", ns: str = "default", phase: str = "Running") -> dict:
    return {"kind": "Pod", "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}"},
            "spec": {"nodeName": node, "containers": [{"name": "c"}]},
            "status": {"phase": phase, "podIP": ip if phase == "Running" else None}}


def node(name: str, ip: str, cp: bool = False) -> dict:
    labels = {"node-role.kubernetes.io/control-plane": ""} if cp else {}
    return {"kind": "Node", "metadata": {"name": name, "labels": labels},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]}}


class FakeSeam:
    cluster = "lab-t"

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str | None, str], dict] = {}
        self.reachable: dict[tuple[str, int, str], tuple[bool, str]] = {}
        self.dialled: list[tuple] = []
        self.answers: dict[tuple[str, str], DnsAnswer] = {}
        self.outputs: dict[tuple[str, ...], tuple[int, str]] = {}
        self.ran: list[tuple] = []
        self.log_text = ""
        self.clock = 0.0
        self.on_sleep = None
        for n in (node("control-plane", "192.168.56.10", cp=True), node("worker-1", "192.168.56.11"),
                  node("worker-2", "192.168.56.12")):
            self.add(n)
        self.add(pod("a", "10.244.1.2"))
        self.add(pod("b", "10.244.2.2", "worker-2"))

    def add(self, obj: dict) -> None:
        m = obj["metadata"]
        self.objects[(obj["kind"], m.get("namespace"), m["name"])] = obj

    def get(self, kind, namespace, name):
        return self.objects.get((kind, namespace, name))

    def list(self, kind, namespace, selector=""):
        want = dict(p.split("=") for p in selector.split(",")) if selector else {}
        return [o for (k, ns, _), o in sorted(self.objects.items()) if k == kind and (namespace is None or ns == namespace)
                and all((o["metadata"].get("labels") or {}).get(a) == b for a, b in want.items())]

    def pod_netns(self, p):
        return f"/run/netns/pod-{p['metadata']['name']}"

    def node_netns(self, name):
        return f"/run/netns/{name}"

    def ext(self):
        return "/run/netns/ext", "192.168.56.1"

    def connect(self, netns, address, port, protocol, identity, timeout):
        self.dialled.append((netns, address, port, protocol, identity))
        return self.reachable.get((address, port, protocol), (False, "timeout"))

    def dns(self, p, name, qtype):
        return self.answers.get((name, qtype), DnsAnswer("NXDOMAIN", (), name + "."))

    def exec(self, p, container, argv, timeout):
        self.ran.append((str(p), container, argv))
        return self.outputs.get(argv, (127, "not found"))

    def logs(self, p, container):
        return self.log_text

    def now(self):
        return self.clock

    def sleep(self, seconds):
        self.clock += seconds
        if self.on_sleep:
            self.on_sleep(self)


def check(body: dict):
    lab = parse({"kind": "Lab", "name": "t", "title": "T", "cluster": CLUSTER,
                 "exercises": [{"text": "x", "checks": [body]}]}, "/nonexistent")
    return lab.exercises[0].checks[0]


def test_a_probe_dials_the_pod_ip_from_the_client_namespace_and_names_the_trace_when_it_fails():
    s = FakeSeam()
    s.reachable[("10.244.2.2", 80, "TCP")] = (True, "connected")
    r = checks.run(s, check({"probe": {"from": "a", "to": "b", "port": 80, "expect": "connected"}}))
    assert r.ok and r.seen == "connected (connected, dialled 10.244.2.2:80)" and r.hint == ""
    assert s.dialled == [("/run/netns/pod-a", "10.244.2.2", 80, "TCP", "default/b")]
    r = checks.run(s, check({"probe": {"from": "a", "to": "b", "port": 80, "expect": "blocked"}}))
    assert not r.ok and r.expected == "blocked" and r.seen.startswith("connected")
    assert r.hint == "look at: knet --cluster lab-t trace a --to b:80"
    r = checks.run(s, check({"probe": {"from": "a", "to": "b", "port": 81, "protocol": "UDP", "expect": "connected"}}))
    assert not r.ok and r.seen == "blocked (timeout, dialled 10.244.2.2:81)"
    assert r.hint == "look at: knet --cluster lab-t trace a --to b:81 --protocol UDP"


def test_a_probe_of_a_service_dials_the_address_its_via_names():
    s = FakeSeam()
    s.add({"kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
           "spec": {"clusterIP": "10.96.0.20", "externalIPs": ["203.0.113.10"],
                    "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]},
           "status": {"loadBalancer": {"ingress": [{"ip": "192.168.56.200"}]}}})
    for address, port in (("10.96.0.20", 80), ("192.168.56.11", 30080), ("192.168.56.10", 30080),
                          ("192.168.56.200", 80), ("203.0.113.10", 80)):
        s.reachable[(address, port, "TCP")] = (True, "connected")
    cases = [({}, ("10.96.0.20", 80)), ({"via": "nodePort"}, ("192.168.56.11", 30080)),
             ({"via": "nodePort", "node": "control-plane"}, ("192.168.56.10", 30080)),
             ({"via": "loadBalancer"}, ("192.168.56.200", 80)), ({"via": "externalIP"}, ("203.0.113.10", 80))]
    for extra, (address, port) in cases:
        r = checks.run(s, check({"probe": {"from": "ext", "service": "web.shop", "port": 80, "expect": "connected",
                                           **extra}}))
        assert r.ok, (extra, r)
        assert s.dialled[-1] == ("/run/netns/ext", address, port, "TCP", None)
    r = checks.run(s, check({"probe": {"from": "ext", "service": "web.shop", "port": 80, "via": "nodePort",
                                       "node": "worker-2", "expect": "connected"}}))
    assert not r.ok and r.hint == "look at: knet --cluster lab-t trace ext --to 192.168.56.12:30080"
    r = checks.run(s, check({"probe": {"from": "ext", "service": "web.shop", "port": 81, "via": "nodePort",
                                       "expect": "connected"}}))
    assert not r.ok and r.seen == "service shop/web has no port 81/TCP"
    assert r.hint == "look at: knet --cluster lab-t trace ext --to web.shop:81"


def test_a_probe_from_a_pod_that_is_not_running_fails_saying_so():
    s = FakeSeam()
    s.add(pod("c", "", phase="Pending"))
    r = checks.run(s, check({"probe": {"from": "c", "to": "b", "port": 80, "expect": "blocked"}}))
    assert not r.ok and r.seen == "pod default/c is not running (phase Pending)" and s.dialled == []
    r = checks.run(s, check({"probe": {"from": "a", "to": "zz", "port": 80, "expect": "blocked"}}))
    assert not r.ok and r.seen == "pod default/zz not found"


def test_a_probe_to_a_templated_address():
    s = FakeSeam()
    s.reachable[("10.244.2.2", 80, "TCP")] = (True, "connected")
    r = checks.run(s, check({"probe": {"from": "node/worker-1", "address": "{{ pod/b .status.podIP }}", "port": 80,
                                       "expect": "connected"}}))
    assert r.ok and s.dialled[-1][:2] == ("/run/netns/worker-1", "10.244.2.2")


def test_dns_compares_the_record_set_with_templates_and_names_the_search_result():
    s = FakeSeam()
    s.add({"kind": "Service", "metadata": {"name": "web", "namespace": "default"}, "spec": {"clusterIP": "10.96.0.20"}})
    s.answers[("web", "A")] = DnsAnswer("NOERROR", ("10.96.0.20",), "web.default.svc.cluster.local.")
    r = checks.run(s, check({"dns": {"from": "a", "name": "web", "answer": "{{ svc/web .spec.clusterIP }}"}}))
    assert r.ok and r.seen == "NOERROR, 10.96.0.20 (as web.default.svc.cluster.local.)"
    r = checks.run(s, check({"dns": {"from": "a", "name": "web", "answer": ["10.96.0.20", "10.96.0.21"]}}))
    assert not r.ok and r.expected == "NOERROR, 10.96.0.20 10.96.0.21"
    assert r.hint == "look at: knet --cluster lab-t exec -n default a -- dig web A +search"
    assert checks.run(s, check({"dns": {"from": "a", "name": "web", "count": 1, "pattern": r"^10\.96\."}})).ok
    assert not checks.run(s, check({"dns": {"from": "a", "name": "web", "count": 2}})).ok
    r = checks.run(s, check({"dns": {"from": "a", "name": "nope.default.svc.cluster.local", "rcode": "NXDOMAIN"}}))
    assert r.ok and r.seen == "NXDOMAIN, no records"
    s.answers[("web", "SRV")] = DnsAnswer("NOERROR", ("0 100 80 web.default.svc.cluster.local.",), "x")
    assert checks.run(s, check({"dns": {"from": "a", "name": "web", "type": "SRV",
                                        "answer": "0 100 80 web.default.svc.cluster.local"}})).ok


def test_exec_judges_output_exit_code_and_absent_lines_with_escaped_template_values():
    s = FakeSeam()
    argv = ("curl", "-s", "http://10.244.2.2/clientip")
    s.outputs[argv] = (0, "10.244.1.2:40000\n")
    body = {"pod": "a", "command": ["curl", "-s", "http://{{ pod/b .status.podIP }}/clientip"],
            "output": r"^{{ pod/a .status.podIP }}:\d+$"}
    r = checks.run(s, check({"exec": body}))
    assert r.ok and s.ran[-1] == ("default/a", None, argv) and r.seen == "exit 0: 10.244.1.2:40000"
    s.outputs[argv] = (0, "10x244x1x2:40000\n")
    r = checks.run(s, check({"exec": body}))
    assert not r.ok and r.seen == "exit 0: 10x244x1x2:40000 (no match)"
    assert r.hint == "look at: knet --cluster lab-t describe pod -n default a"
    s.outputs[("sh", "-c", "false")] = (1, "")
    r = checks.run(s, check({"exec": {"pod": "a", "command": "false"}}))
    assert not r.ok and r.expected == "exit 0" and r.seen == "exit 1: (no output)"
    assert checks.run(s, check({"exec": {"pod": "a", "command": "false", "exitCode": 1}})).ok
    assert checks.run(s, check({"exec": {"pod": "a", "command": "false", "exitCode": None}})).ok
    s.outputs[("sh", "-c", "t")] = (0, "ok\nok\nFAIL 12:00:01\nok\n")
    r = checks.run(s, check({"exec": {"pod": "ext", "command": "t", "output": "^ok$", "absent": "FAIL"}}))
    assert not r.ok and r.seen.endswith("(found 'FAIL 12:00:01')") and s.ran[-1][0] == "ext"


def test_logs_must_match_and_must_not():
    s = FakeSeam()
    s.log_text = "ok\nok\n"
    assert checks.run(s, check({"logs": {"pod": "a", "output": "^ok$", "absent": "FAIL"}})).ok
    s.log_text += "FAIL refused\n"
    r = checks.run(s, check({"logs": {"pod": "a", "output": "^ok$", "absent": "FAIL"}}))
    assert not r.ok and r.seen == "ok | ok | FAIL refused (found 'FAIL refused')"


def test_field_compares_the_printed_value_or_a_pattern():
    s = FakeSeam()
    assert checks.run(s, check({"field": {"object": "pod/a", "jsonpath": ".spec.nodeName", "value": "worker-1"}})).ok
    r = checks.run(s, check({"field": {"object": "pod/a", "jsonpath": "{.spec.nodeName}", "value": "worker-2"}}))
    assert not r.ok and (r.expected, r.seen) == ("'worker-2'", "'worker-1'")
    assert r.hint == "look at: knet --cluster lab-t describe -n default pod a"
    assert checks.run(s, check({"field": {"object": "no/worker-2", "jsonpath": ".status.addresses[0].address",
                                          "pattern": r"^192\.168\.56\.12$"}})).ok
    assert checks.run(s, check({"field": {"object": "pod/a", "jsonpath": ".status.podIP",
                                          "value": "{{ pod/a .status.podIP }}"}})).ok
    r = checks.run(s, check({"field": {"object": "pod/zz", "jsonpath": ".x", "value": "1"}}))
    assert not r.ok and r.seen == "pod/zz not found"
    r = checks.run(s, check({"field": {"object": "pod/a", "jsonpath": ".x", "value": "{{ pod/zz .x }}"}}))
    assert not r.ok and r.seen == "pod/zz in default not found (named by a template)"


def test_wait_polls_until_the_condition_or_its_timeout():
    s = FakeSeam()
    deploy = {"kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
              "status": {"conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}]}}
    s.add(deploy)

    def later(seam):
        if seam.clock >= 1.0:
            deploy["status"]["conditions"][0]["status"] = "True"
    s.on_sleep = later
    r = checks.run(s, check({"wait": {"object": "deploy/web", "for": "condition=Available", "timeout": 5}}))
    assert r.ok and r.seen == "met" and 1.0 <= s.clock < 1.2
    s.clock, s.on_sleep = 0.0, None
    deploy["status"]["conditions"][0]["status"] = "False"
    r = checks.run(s, check({"wait": {"object": "deploy/web", "for": "condition=Available", "timeout": 2}}))
    assert not r.ok and r.seen == "not met by web: Available=False (MinimumReplicasUnavailable)"
    assert s.clock >= 2.0
    assert checks.run(s, check({"wait": {"object": "deploy/web", "for": "condition=Available=false", "timeout": 1}})).ok
    s.clock = 0.0
    r = checks.run(s, check({"wait": {"object": "pod/b", "for": "delete", "timeout": 1}}))
    assert not r.ok and r.seen == "1 still there"
    assert checks.run(s, check({"wait": {"object": "pod/zz", "for": "delete", "timeout": 1}})).ok
    s.add({**pod("w1", "10.244.1.9"), "metadata": {"name": "w1", "namespace": "default", "labels": {"app": "w"}}})
    s.add({**pod("w2", "", phase="Pending"), "metadata": {"name": "w2", "namespace": "default", "labels": {"app": "w"}}})
    r = checks.run(s, check({"wait": {"object": "pods", "selector": "app=w", "for": "jsonpath={.status.phase}=Running",
                                      "timeout": 1}}))
    assert not r.ok and r.seen.startswith("not met by w2")
    assert checks.run(s, check({"wait": {"object": "pods", "selector": "app=w", "for": "create", "timeout": 1}})).ok


def test_condition_met_as_kubectl_wait():
    obj = {"status": {"conditions": [{"type": "Ready", "status": "True"}], "phase": "Running"}}
    assert condition_met(obj, "condition=Ready") and condition_met(obj, "condition=ready=true")
    assert not condition_met(obj, "condition=Ready=False") and not condition_met(obj, "condition=Available")
    assert condition_met(obj, "jsonpath={.status.phase}=Running") and not condition_met(obj, "jsonpath={.status.phase}=x")
