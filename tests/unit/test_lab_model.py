"""The lab file: what it accepts, the field it names when it refuses, and finding labs."""

from __future__ import annotations

import copy
import os
import re

import pytest

from knet.lab import catalog, templates
from knet.lab.model import (
    DnsCheck,
    ExecCheck,
    LabError,
    ProbeCheck,
    WaitCheck,
    load,
    parse,
    split_jsonpath_for,
)
from knet.lab.session import exercise_text, not_ready

CLUSTER = {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4",
           "nodes": [{"role": "control-plane"}, {"role": "worker"}]}
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
       "spec": {"containers": [{"name": "c", "image": "agnhost"}]}}


def doc(*checks: dict, **top) -> dict:
    d = {"kind": "Lab", "name": "t", "title": "T", "cluster": CLUSTER, "manifests": [POD],
         "exercises": [{"text": "one", "checks": [{"probe": {"from": "a", "to": "b", "port": 80,
                                                             "expect": "connected"}}]},
                       {"text": "two", "checks": list(checks) or [{"field": {"object": "pod/a",
                                                                            "jsonpath": ".status.phase",
                                                                            "value": "Running"}}]}]}
    d.update(top)
    return d


def error(d: dict, folder: str = "/nonexistent/lab") -> str:
    with pytest.raises(LabError) as e:
        parse(d, folder)
    return str(e.value)


def test_a_good_lab_reads_into_checks(tmp_path):
    lab = parse(doc({"dns": {"from": "x/a", "name": "web", "answer": "{{ svc/web .spec.clusterIP }}"}},
                    {"exec": {"pod": "a", "command": "echo hi", "output": "^hi$"}},
                    {"wait": {"object": "deploy/web", "for": "condition=Available", "timeout": 30}},
                    {"probe": {"from": "ext", "service": "web.shop", "via": "nodePort", "node": "worker-1",
                               "port": 80, "protocol": "UDP", "expect": "blocked"}}), str(tmp_path))
    assert lab.name == "t" and lab.cluster_name == "lab-t"
    assert lab.cluster_config().name == "lab-t" and [n.name for n in lab.cluster_config("x1").nodes] == \
        ["control-plane", "worker-1"]
    assert lab.manifests[0].objects[0]["metadata"]["name"] == "a"
    dns, ex, wait, probe = lab.exercises[1].checks
    assert isinstance(dns, DnsCheck) and (dns.src.namespace, dns.src.name, dns.qtype) == ("x", "a", "A")
    assert dns.answer == ("{{ svc/web .spec.clusterIP }}",)
    assert isinstance(ex, ExecCheck) and ex.command == ("sh", "-c", "echo hi") and ex.exit_code == 0
    assert isinstance(wait, WaitCheck) and wait.obj.kind == "Deployment" and wait.timeout == 30
    assert isinstance(probe, ProbeCheck) and (probe.dst.kind, probe.dst.name, probe.dst.namespace) == \
        ("service", "web", "shop")
    assert (probe.via, probe.node, probe.protocol, probe.connected) == ("nodePort", "worker-1", "UDP", False)


@pytest.mark.parametrize("check, want", [
    ({"probe": {"from": "a", "to": "b", "port": 0, "expect": "connected"}},
     "exercises[1].checks[0].probe.port: Invalid value: 0: must be between 1 and 65535, inclusive"),
    ({"probe": {"from": "a", "to": "b", "port": "80", "expect": "connected"}},
     'exercises[1].checks[0].probe.port: Invalid value: "80": must be between 1 and 65535, inclusive'),
    ({"probe": {"from": "a", "to": "b", "port": 80}},
     "exercises[1].checks[0].probe.expect: Required value: connected or blocked"),
    ({"probe": {"from": "a", "to": "b", "port": 80, "expect": "open"}},
     'exercises[1].checks[0].probe.expect: Unsupported value: "open": supported values: "blocked", "connected"'),
    ({"probe": {"from": "a", "to": "b", "port": 80, "protocol": "SCTP", "expect": "connected"}},
     'exercises[1].checks[0].probe.protocol: Unsupported value: "SCTP": supported values: "TCP", "UDP"'),
    ({"probe": {"from": "a", "to": "b", "service": "web", "port": 80, "expect": "connected"}},
     'exercises[1].checks[0].probe.service: Invalid value: "web": only one of to, service, address (also given: to)'),
    ({"probe": {"from": "a", "to": "b", "via": "nodePort", "port": 80, "expect": "connected"}},
     'exercises[1].checks[0].probe.via: Invalid value: "nodePort": only for a probe of a service'),
    ({"probe": {"from": "a", "address": "10.0.0.300", "port": 80, "expect": "connected"}},
     'exercises[1].checks[0].probe.address: Invalid value: "10.0.0.300": must be an IP address'),
    ({"probe": {"from": "a/b/c", "to": "b", "port": 80, "expect": "connected"}},
     'exercises[1].checks[0].probe.from: Invalid value: "a/b/c": must be a pod (NAME or NAMESPACE/NAME), '
     "node/NAME or ext"),
    ({"probe": {"from": "a", "to": "b", "prot": 80}},
     'unknown field "exercises[1].checks[0].probe.prot" (known: from, to, service, address, via, node, port, '
     "protocol, expect, namespace, timeout)"),
    ({"probe": {"from": "a", "to": "b", "port": 80, "expect": "blocked", "timeout": 0}},
     "exercises[1].checks[0].probe.timeout: Invalid value: 0: must be more than 0 and at most 30 seconds"),
    ({"dns": {"from": "a", "name": "web", "type": "AXFR"}},
     'exercises[1].checks[0].dns.type: Unsupported value: "AXFR": supported values: "A", "AAAA", "CNAME", "MX", '
     '"NS", "PTR", "SOA", "SRV", "TXT"'),
    ({"dns": {"from": "a", "name": "web", "rcode": "NOANSWER"}},
     'exercises[1].checks[0].dns.rcode: Unsupported value: "NOANSWER": supported values: "NOERROR", "FORMERR", '
     '"SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "TIMEOUT"'),
    ({"dns": {"from": "a", "name": "web", "rcode": "NXDOMAIN", "count": 1}},
     'exercises[1].checks[0].dns.rcode: Invalid value: "NXDOMAIN": an answer, pattern or count expects NOERROR'),
    ({"dns": {"from": "a", "name": "web", "pattern": "("}},
     'exercises[1].checks[0].dns.pattern: Invalid value: "(": not a regular expression: missing ), '
     "unterminated subpattern at position 0"),
    ({"exec": {"pod": "a", "command": ["ip", -4]}},
     "exercises[1].checks[0].exec.command[1]: Invalid value: -4: must be a string (quote it in YAML)"),
    ({"exec": {"pod": "a"}}, "exercises[1].checks[0].exec.command: Required value"),
    ({"exec": {"pod": "a", "command": "true", "exitCode": 256}},
     "exercises[1].checks[0].exec.exitCode: Invalid value: 256: must be between 0 and 255, inclusive (null: any)"),
    ({"exec": {"pod": "a", "command": "curl http://{{ pod/b }}/"}},
     'exercises[1].checks[0].exec.command: Invalid value: "curl http://{{ pod/b }}/": a template is '
     "{{ KIND/NAME JSONPATH }}, such as {{ pod/web .status.podIP }}"),
    ({"exec": {"pod": "a", "command": "echo {{ gizmo/b .x }}"}},
     'exercises[1].checks[0].exec.command: Invalid value: "echo {{ gizmo/b .x }}": the server doesn\'t have a '
     'resource type "gizmo"'),
    ({"logs": {"pod": "a"}},
     "exercises[1].checks[0].logs.output: Required value: output (a pattern the log must match) or absent "
     "(one it must not)"),
    ({"field": {"object": "pod/a", "jsonpath": "{.status.phase", "value": "x"}},
     'exercises[1].checks[0].field.jsonpath: Invalid value: "{.status.phase": not a JSONPath template: '
     "unclosed action"),
    ({"field": {"object": "gizmo/a", "jsonpath": ".x", "value": "x"}},
     'exercises[1].checks[0].field.object: Invalid value: "gizmo/a": the server doesn\'t have a resource '
     'type "gizmo"'),
    ({"field": {"object": "pod/a", "jsonpath": ".status.phase"}},
     "exercises[1].checks[0].field.value: Required value: value (what the path prints) or pattern (a regex "
     "it matches)"),
    ({"wait": {"object": "deploy/web", "for": "ready"}},
     'exercises[1].checks[0].wait.for: Invalid value: "ready": must be condition=NAME[=VALUE], delete, create '
     "or jsonpath={PATH}=VALUE (kubectl wait's --for)"),
    ({"wait": {"object": "pods", "for": "delete"}},
     'exercises[1].checks[0].wait.object: Invalid value: "pods": must be KIND/NAME (or KIND with a selector)'),
    ({"wait": {"object": "deploy/web", "for": "delete", "timeout": 601}},
     "exercises[1].checks[0].wait.timeout: Invalid value: 601: must be more than 0 and at most 600 seconds"),
    ({"probe": {"from": "a", "to": "b", "port": 80, "expect": "connected"}, "dns": {"from": "a", "name": "x"}},
     'exercises[1].checks[0]: Invalid value: "probe, dns": exactly one of probe, dns, exec, logs, field, wait'),
    ({"ping": {}}, 'unknown field "exercises[1].checks[0].ping" (known: probe, dns, exec, logs, field, wait)'),
])
def test_a_bad_check_is_refused_naming_its_field(check, want):
    assert error(doc(check)) == want


def test_bad_top_level_fields_and_steps_are_named():
    assert error(doc(name="Lab_1")).startswith('name: Invalid value: "Lab_1": a lab name is 1-16 lowercase')
    assert error(doc(title=None)) == "title: Required value"
    assert error(doc(exercises=[])) == "exercises: Required value: a lab has at least one exercise"
    assert error(doc(kind="Pod")) == 'kind: Unsupported value: "Pod": supported values: "Lab"'
    assert error(doc(cluster=None)).startswith("cluster: Required value")
    bad = copy.deepcopy(CLUSTER)
    bad["nodes"][1]["role"] = "boss"
    assert error(doc(cluster=bad)) == ("cluster.nodes[1].role: Unsupported value: 'boss': supported values: "
                                       '"control-plane", "worker"')
    assert error(doc(manifests=["nope.yaml"])).startswith('manifests[0]: Invalid value: "nope.yaml": no such file')
    assert error(doc(manifests=[{"kind": "Pod"}])) == \
        'manifests[0]: error validating "lab.yaml manifests[0]": error validating data: apiVersion not set'
    d = doc()
    d["exercises"][0]["do"] = ["rm -rf /"]
    assert error(d) == ('exercises[0].do[0]: Invalid value: "rm -rf /": must start with knet or kubectl (the lab '
                        "runs it against its own cluster)")
    d["exercises"][0]["do"] = ["knet --cluster knet delete pod a"]
    assert error(d).endswith("must not name a cluster: the lab runs it against its own")
    d["exercises"][0]["do"] = ["knet get pods"]
    d["exercises"][0]["hint"] = "x"
    assert error(d) == 'unknown field "exercises[0].hint" (known: title, text, do, checks)'


def test_files_are_read_relative_to_the_lab_and_their_errors_named(tmp_path):
    (tmp_path / "cluster.yaml").write_text("kind: Cluster\nnodes:\n- role: control-plane\n- role: worker\n")
    (tmp_path / "app.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\n"
                                       "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n")
    d = doc(cluster="cluster.yaml", manifests=["app.yaml", POD])
    lab = parse(d, str(tmp_path))
    assert [n.role for n in lab.cluster_config().nodes] == ["control-plane", "worker"]
    assert [(m.source, [o["kind"] for o in m.objects]) for m in lab.manifests] == [
        ("app.yaml", ["Pod", "Service"]), ("lab.yaml manifests[1]", ["Pod"])]
    (tmp_path / "app.yaml").write_text("kind: Pod\n  bad: [\n")
    assert error(d, str(tmp_path)).startswith("manifests[0]: error parsing ")
    (tmp_path / "lab.yaml").write_text("kind: Lab\ntitle: T\ncluster: cluster.yaml\nexercises:\n- text: x\n"
                                       "  checks:\n  - field: {object: pod/a, jsonpath: .x, value: y}\n")
    folder = tmp_path / "07-rollout"
    folder.mkdir()
    (folder / "lab.yaml").write_text((tmp_path / "lab.yaml").read_text().replace("cluster.yaml", "{}"))
    assert load(str(folder)).name == "rollout"


def test_every_shipped_lab_reads_and_has_a_readme_naming_its_seed():
    folders = catalog.shipped()
    assert len(folders) >= 4
    names = set()
    for folder in folders:
        lab = load(folder)
        names.add(lab.name)
        assert 1 <= len(lab.cluster_config().nodes) <= 4
        readme = open(os.path.join(folder, "README.md")).read()
        assert re.search(r"[Ss]eeds? 00\d", readme), folder
        assert "knet lab run " + lab.name in readme or "knet lab up " + lab.name in readme, folder
        for i in range(len(lab.exercises)):
            assert exercise_text(lab, i, lab.cluster_name).endswith(f"knet lab check {lab.name} --exercise {i + 1}")
    assert {"pods", "services"} <= names


def test_labs_are_found_by_name_number_folder_or_path(tmp_path):
    for text in ("pods", "01-pods", "1", "01", os.path.join(catalog.LABS_DIR, "01-pods")):
        assert catalog.find(text).name == "pods"
    with pytest.raises(LabError, match=r'lab "nope" not found: a folder with a lab.yaml, or one of: pods, '):
        catalog.find("nope")
    with pytest.raises(LabError, match="no lab.yaml"):
        catalog.find(str(tmp_path))


def test_templates_render_and_escape_in_patterns():
    seen = []

    def resolve(ns, kind, name, path):
        seen.append((ns, kind, name, path))
        return "10.0.0.1"
    assert templates.render("ip {{ pod/b .status.podIP }}!", resolve) == "ip 10.0.0.1!"
    assert templates.render("^{{ x/svc/web .spec.clusterIP }}$", resolve, regex=True) == r"^10\.0\.0\.1$"
    assert seen == [(None, "pod", "b", "{.status.podIP}"), ("x", "svc", "web", "{.spec.clusterIP}")]
    assert templates.blank("a {{ pod/b .x }} c") == "a x c"


def test_kubectl_wait_for_jsonpath_is_split_as_kubectl_splits_it():
    assert split_jsonpath_for("jsonpath={.status.phase}=Running") == ("{.status.phase}", "Running")
    assert split_jsonpath_for("jsonpath=.status.phase=Running") == (".status.phase", "Running")
    assert split_jsonpath_for("jsonpath={.status.phase}") == ("{.status.phase}", None)


def test_ready_is_judged_per_kind():
    pod = {"kind": "Pod", "spec": {}, "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    assert not_ready(pod) is None
    pod["status"]["conditions"][0]["status"] = "False"
    assert not_ready(pod) == "phase Running, not Ready"
    job_like = {"kind": "Pod", "spec": {"restartPolicy": "Never"}, "status": {"phase": "Succeeded"}}
    assert not_ready(job_like) is None
    deploy = {"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 3},
              "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2}}
    assert not_ready(deploy) == "2/3 available"
    deploy["status"]["availableReplicas"] = 3
    assert not_ready(deploy) is None
    deploy["metadata"]["generation"] = 3
    assert not_ready(deploy) == "not observed yet"
    assert not_ready({"kind": "StatefulSet", "metadata": {}, "spec": {"replicas": 2},
                      "status": {"replicas": 2, "readyReplicas": 1}}) == "1/2 ready"
    lb = {"kind": "Service", "spec": {"type": "LoadBalancer"}, "status": {}}
    assert not_ready(lb) == "no LoadBalancer address yet"
    lb["status"] = {"loadBalancer": {"ingress": [{"ip": "192.168.56.200"}]}}
    assert not_ready(lb) is None
    assert not_ready({"kind": "NetworkPolicy", "spec": {}}) is None


def test_knet_lab_list_prints_every_shipped_lab(capsys, tmp_path, monkeypatch):
    from knet.cli.main import main

    monkeypatch.chdir(tmp_path)  # the FOLDER column does not depend on where one stands
    assert main(["lab", "list"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split() == ["NAME", "TITLE", "EXERCISES", "FOLDER"]
    labs = [load(f) for f in catalog.shipped()]
    assert [r.split()[0] for r in rows[1:]] == [lab.name for lab in labs]
    for row, lab, folder in zip(rows[1:], labs, catalog.shipped(), strict=True):
        assert lab.title in row and row.split()[-2:] == [str(len(lab.exercises)), "labs/" + os.path.basename(folder)]
