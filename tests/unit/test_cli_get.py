"""`knet get` and `knet describe` against knet's API server running in this
process (no root, no cluster): the command's output and exit code for what
the test stored, through the same parser, client and error handling as the
installed command."""

from __future__ import annotations

import json

import pytest
import yaml

from knet.api.resources import by_kind

PODS, NODES, EVENTS = by_kind("Pod"), by_kind("Node"), by_kind("Event")


def pod(name: str, namespace: str = "default", node: str | None = None, **labels: str) -> dict:
    spec = {"containers": [{"name": "c", "image": "agnhost"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": spec}


def rows(text: str) -> list[list[str]]:
    """A table's rows split into cells, the AGE column (time-dependent) left out."""
    lines = [line.split() for line in text.splitlines()]
    head = lines[0]
    if "AGE" not in head:
        return lines
    age = head.index("AGE")
    return [line[:age] + line[age + 1:] for line in lines]


@pytest.fixture
def stored(server):
    client = server.client()
    client.create(NODES, None, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker-1"}})
    client.create(by_kind("Namespace"), None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    client.create(PODS, "default", pod("web-0", node="worker-1", app="web"))
    client.create(PODS, "default", pod("web-1", app="web"))
    client.create(PODS, "default", pod("db-0", app="db"))
    client.create(PODS, "team", pod("tool", "team", app="tool"))
    return client


def test_get_pods_is_kubectls_table(knet, stored):
    code, out, err = knet("get", "pods")
    assert (code, err) == (0, "")
    assert rows(out) == [["NAME", "READY", "STATUS", "RESTARTS"],
                         ["db-0", "0/1", "Pending", "0"],
                         ["web-0", "0/1", "Pending", "0"],
                         ["web-1", "0/1", "Pending", "0"]]
    assert out.splitlines()[0] == "NAME    READY   STATUS    RESTARTS   AGE"


def test_get_selects_by_label_field_namespace_and_name(knet, stored):
    assert [r[0] for r in rows(knet("get", "pods", "-l", "app=web")[1])] == ["NAME", "web-0", "web-1"]
    assert [r[0] for r in rows(knet("get", "pods", "-l", "app!=web")[1])] == ["NAME", "db-0"]
    assert [r[0] for r in rows(knet("get", "pods", "--field-selector", "spec.nodeName=worker-1")[1])] == \
        ["NAME", "web-0"]
    assert [r[0] for r in rows(knet("get", "pods", "-n", "team")[1])] == ["NAME", "tool"]
    assert [r[:2] for r in rows(knet("get", "pods", "-A")[1])] == [
        ["NAMESPACE", "NAME"], ["default", "db-0"], ["default", "web-0"], ["default", "web-1"], ["team", "tool"]]
    assert [r[0] for r in rows(knet("get", "pod", "web-1", "db-0")[1])] == ["NAME", "web-1", "db-0"]
    code, out, _ = knet("get", "pods", "--no-headers", "-l", "app=db")
    assert code == 0 and out.startswith("db-0 ") and "NAME" not in out


def test_get_wide_and_several_kinds(knet, stored):
    code, out, _ = knet("get", "pods", "-o", "wide", "-l", "app=web")
    assert code == 0
    # kubectl's columns, then knet's ISOLATED and POLICIES (tests/unit/test_policy_api.py)
    assert rows(out) == [["NAME", "READY", "STATUS", "RESTARTS", "IP", "NODE", "NOMINATED", "NODE", "READINESS", "GATES",
                          "ISOLATED", "POLICIES"],
                         ["web-0", "0/1", "Pending", "0", "<none>", "worker-1", "<none>", "<none>", "<none>", "<none>"],
                         ["web-1", "0/1", "Pending", "0", "<none>", "<none>", "<none>", "<none>", "<none>", "<none>"]]
    code, out, _ = knet("get", "po,svc", "-l", "app=db")  # kinds with nothing to show are left out
    assert code == 0 and rows(out) == [["NAME", "READY", "STATUS", "RESTARTS"], ["pod/db-0", "0/1", "Pending", "0"]]
    pods, services = knet("get", "po,svc")[1].split("\n\n")
    assert [r[0] for r in rows(pods)] == ["NAME", "pod/db-0", "pod/web-0", "pod/web-1"]
    assert rows(services) == [["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"],
                              ["service/kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP"]]


def test_get_as_json_yaml_and_names(knet, stored):
    code, out, _ = knet("get", "pod", "web-0", "-o", "json")
    assert code == 0 and out.endswith("}\n")
    assert json.loads(out) == stored.get(PODS, "default", "web-0")
    listed = yaml.safe_load(knet("get", "pods", "-l", "app=web", "-o", "yaml")[1])
    assert (listed["apiVersion"], listed["kind"]) == ("v1", "List")  # kubectl prints every listing as a List
    assert [p["metadata"]["name"] for p in listed["items"]] == ["web-0", "web-1"]
    mixed = json.loads(knet("get", "po,no", "-o", "json")[1])
    assert mixed["kind"] == "List" and {o["kind"] for o in mixed["items"]} == {"Pod", "Node"}
    assert knet("get", "pods,nodes", "-o", "name") == (0, "pod/db-0\npod/web-0\npod/web-1\nnode/worker-1\n", "")
    assert knet("get", "deploy", "-o", "name") == (0, "", "")


def test_get_errors_and_nothing_found(knet, stored):
    assert knet("get", "gadgets") == (1, "", 'error: the server doesn\'t have a resource type "gadgets"\n')
    assert knet("get", "pod", "nope") == (1, "", 'Error from server (NotFound): pods "nope" not found\n')
    assert knet("get", "pods", "-o", "xml") == (
        1, "", 'error: unable to match a printer suitable for the output format "xml", allowed formats are: '
               "custom-columns,custom-columns-file,json,jsonpath,jsonpath-as-json,jsonpath-file,name,wide,yaml\n")
    assert knet("get", "pods", "-n", "empty") == (0, "", "No resources found in empty namespace.\n")
    assert knet("get", "deploy", "-A") == (0, "", "No resources found\n")  # kubectl's words, no period
    assert knet("get", "networkpolicies,nodes", "-l", "none=here") == (0, "", "No resources found\n")  # nodes: not namespaced
    assert knet("get", "pods", "-l", "a=(")[0] == 1  # a bad selector is the server's 400, one line
    assert knet("get", "pods", "-l", "a=(")[2].startswith("Error from server (BadRequest): ")


def test_describe_shows_the_object_and_its_events(knet, stored):
    target = stored.get(PODS, "default", "web-0")
    stored.create(EVENTS, "default", {
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "web-0.1"}, "type": "Warning",
        "reason": "BackOff", "message": "Back-off restarting failed container c", "count": 3,
        "source": {"component": "kubelet"}, "firstTimestamp": target["metadata"]["creationTimestamp"],
        "lastTimestamp": target["metadata"]["creationTimestamp"],
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-0", "uid": target["metadata"]["uid"]}})
    code, out, err = knet("describe", "pod", "web-0")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert [line.split() for line in lines[:4]] == [["Name:", "web-0"], ["Namespace:", "default"], ["Priority:", "0"],
                                                    ["Node:", "worker-1/"]]  # priority: the Priority admission's
    events = lines[lines.index(next(line for line in lines if line.startswith("Events:"))):]
    assert events[1].split() == ["Type", "Reason", "Age", "From", "Message"]
    assert events[3].split()[:2] == ["Warning", "BackOff"] and events[3].endswith("Back-off restarting failed container c")
    # Without names: every match, separated by two blank lines, and (kubectl's rule for several
    # objects) no events unless --show-events asks for them.
    code, out, _ = knet("describe", "pods", "-l", "app=web")
    first, second = out.split("\n\n\n")
    assert code == 0 and first.startswith("Name:         web-0\n") and second.startswith("Name:         web-1\n")
    assert "Events:" not in out
    code, out, _ = knet("describe", "pods", "-l", "app=web", "--show-events")
    first, second = out.split("\n\n\n")
    assert "BackOff" in first and "\nEvents:           <none>\n" in second
    # A name not found is tried as a prefix (kubectl's DescribeMatchingResources): each match, no events.
    code, out, _ = knet("describe", "pod", "web")
    assert code == 0 and out.count("Name:  ") == 2 and "Events:" not in out
    # knet's addition follows kubectl's text: what isolates the pod (nothing here)
    assert second.endswith("Network Policies:\n  Isolated for Ingress:        <none> (not isolated)\n"
                           "  Isolated for Egress:         <none> (not isolated)\n"
                           "  AdminNetworkPolicies:        <none>\n  BaselineAdminNetworkPolicy:  <none>\n")
    assert knet("describe", "pod", "nope") == (1, "", 'Error from server (NotFound): pods "nope" not found\n')
    assert knet("describe", "gadget", "x") == (1, "", 'error: the server doesn\'t have a resource type "gadget"\n')
