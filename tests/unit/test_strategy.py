"""The per-kind strategy records: each names hooks that exist, and the API
(discovery, admission, `knet get`'s columns) follows the records, including a
group served at a version other than v1."""

import pytest

from knet.api import discovery
from knet.api.registry import Registry
from knet.api.resources import RESOURCES, SERVED, Resource, by_kind
from knet.api.server import ApiServer, parse_path
from knet.api.validation import validation_errors
from knet.printers import table
from knet.store.sqlite import SqliteStore

HOOKS = ("names", "defaults", "validate", "validate_update", "prepare_update", "printer")

# A record the cluster does not serve, in a group served only at an alpha version.
ANP = Resource("ExampleNetworkPolicy", "examplenetworkpolicies", "example.networking.k8s.io", "v1alpha1",
               False, ("enp",))


@pytest.mark.parametrize("res", RESOURCES, ids=lambda r: r.kind)
def test_every_hook_a_record_names_is_a_function(res):
    named = [h for h in HOOKS if getattr(res, h)]
    assert "validate" in named and "names" in named and "printer" in named
    for hook in named:
        assert callable(res.hook(hook)), f"{res.kind}.{hook} = {getattr(res, hook)}"
    for hook in set(HOOKS) - set(named):
        assert res.hook(hook) is None


def test_records_are_unique_by_kind_path_and_short_name():
    assert len({r.kind for r in RESOURCES}) == len(RESOURCES)
    assert len({(r.group, r.version, r.plural) for r in RESOURCES}) == len(RESOURCES)
    names = [n for r in RESOURCES for n in (r.kind.lower(), r.plural, *r.short_names)]
    assert len(set(names)) == len(names)


def test_a_group_at_an_alpha_version_is_discovered_at_that_version():
    records = (*RESOURCES, ANP)
    groups = {g["name"]: g for g in discovery.document("/apis", records)["groups"]}
    example = groups["example.networking.k8s.io"]
    assert example["versions"] == [{"groupVersion": "example.networking.k8s.io/v1alpha1", "version": "v1alpha1"}]
    assert example["preferredVersion"]["version"] == "v1alpha1"
    assert groups["apps"]["preferredVersion"] == {"groupVersion": "apps/v1", "version": "v1"}
    listed = discovery.document("/apis/example.networking.k8s.io/v1alpha1", records)
    assert [(r["kind"], r["namespaced"], r["shortNames"]) for r in listed["resources"]] == [
        ("ExampleNetworkPolicy", False, ["enp"])]
    assert discovery.document("/apis/example.networking.k8s.io/v1", records) is None
    assert ANP.path(name="x") == "/apis/example.networking.k8s.io/v1alpha1/examplenetworkpolicies/x"
    assert "example.networking.k8s.io" not in {g["name"] for g in discovery.document("/apis", RESOURCES)["groups"]}


def test_admin_network_policies_are_served_at_policy_networking_v1alpha1():
    groups = {g["name"]: g for g in discovery.document("/apis", RESOURCES)["groups"]}
    assert groups["policy.networking.k8s.io"]["versions"] == [
        {"groupVersion": "policy.networking.k8s.io/v1alpha1", "version": "v1alpha1"}]
    listed = discovery.document("/apis/policy.networking.k8s.io/v1alpha1", RESOURCES)
    assert [(r["name"], r["kind"], r["namespaced"], r.get("shortNames")) for r in listed["resources"]] == [
        ("adminnetworkpolicies", "AdminNetworkPolicy", False, ["anp"]),
        ("adminnetworkpolicies/status", "AdminNetworkPolicy", False, None),
        ("baselineadminnetworkpolicies", "BaselineAdminNetworkPolicy", False, ["banp"]),
        ("baselineadminnetworkpolicies/status", "BaselineAdminNetworkPolicy", False, None)]
    assert discovery.document("/apis/policy.networking.k8s.io/v1", RESOURCES) is None
    assert by_kind("AdminNetworkPolicy").path(name="x") == (
        "/apis/policy.networking.k8s.io/v1alpha1/adminnetworkpolicies/x")


def test_a_group_with_several_versions_prefers_ga_then_beta_then_alpha():
    records = [ANP._replace(version=v) for v in ("v1alpha1", "v1beta1", "v2alpha1", "v1")]
    group = discovery.document("/apis", records)["groups"][0]
    assert [v["version"] for v in group["versions"]] == ["v1", "v1beta1", "v2alpha1", "v1alpha1"]
    assert group["preferredVersion"]["version"] == "v1"


def test_version_priority_is_kube_aware():
    # The order apimachinery's CompareKubeAwareVersionStrings documents.
    expected = ["v10", "v2", "v1", "v11beta2", "v10beta3", "v3beta1", "v12alpha1", "v11alpha2", "foo1", "foo10"]
    assert sorted(reversed(expected), key=discovery.version_priority) == expected


def test_core_versions_come_from_the_records():
    assert discovery.document("/api", RESOURCES) == {"kind": "APIVersions", "versions": ["v1"]}
    assert discovery.document("/api", [ANP._replace(group="", version="v2"), *RESOURCES])["versions"] == ["v2", "v1"]


def test_the_server_serves_the_records_discovery(tmp_path):
    server = ApiServer(Registry(SqliteStore(str(tmp_path / "d.db"))), "t")
    code, body = server.handle(_get("/apis"))
    assert code == 200
    assert {(g["name"], g["preferredVersion"]["version"]) for g in body["groups"]} == {
        (r.group, r.version) for r in SERVED if r.group}
    code, body = server.handle(_get("/apis/discovery.k8s.io/v1"))
    assert [r["kind"] for r in body["resources"]] == ["EndpointSlice"]


def test_routing_is_by_the_records_group_and_version():
    route = parse_path("/apis/apps/v1/namespaces/d/deployments/web/status")
    assert (route.res, route.namespace, route.name, route.subresource) == (by_kind("Deployment"), "d", "web", "status")
    assert parse_path("/apis/apps/v1beta1/namespaces/d/deployments") is None
    assert parse_path("/api/v1/deployments") is None


def _get(path):
    from knet.api.server import Request
    return Request("GET", path, {}, {}, b"")


def test_status_subresource_follows_the_record(tmp_path):
    """A kind with a status subresource keeps its stored status on a write of
    the main resource; a kind without one stores what was sent."""
    reg = Registry(SqliteStore(str(tmp_path / "s.db")))
    reg.bootstrap()
    ns = by_kind("Namespace")
    assert ns.status and not by_kind("NetworkPolicy").status
    obj = reg.get(ns, None, "default")
    obj["status"] = {"phase": "Terminating"}
    assert reg.update(ns, None, "default", obj)["status"]["phase"] == "Active"
    netpol = by_kind("NetworkPolicy")
    reg.create(netpol, "default", {"metadata": {"name": "p"}, "spec": {"podSelector": {}}})
    obj = reg.get(netpol, "default", "p")
    obj["status"] = {"conditions": []}
    assert reg.update(netpol, "default", "p", obj)["status"] == {"conditions": []}


def test_an_unknown_kind_is_refused_naming_the_served_ones():
    errs = validation_errors({"apiVersion": "v1", "kind": "Widget", "metadata": {"name": "w"}})
    assert [(e.field, e.type) for e in errs] == [("kind", "Unsupported value")]
    for r in RESOURCES:
        assert f'"{r.kind}"' in errs[0].detail


def test_the_name_check_is_the_records():
    # A Service name is a DNS-1035 label (no leading digit); a Pod's a DNS-1123 subdomain.
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "1web", "namespace": "d"},
           "spec": {"ports": [{"port": 80}]}}
    assert [e.field for e in validation_errors(svc)] == ["metadata.name"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "1web.x", "namespace": "d"},
           "spec": {"containers": [{"name": "c", "image": "i"}]}}
    assert validation_errors(pod) == []


@pytest.mark.parametrize("res", RESOURCES, ids=lambda r: r.kind)
def test_get_tables_use_the_records_columns(res):
    obj = {"apiVersion": res.api_version, "kind": res.kind,
           "metadata": {"name": "x", "namespace": "d", "creationTimestamp": "2024-01-01T00:00:00Z"}}
    for wide in (False, True):
        header = table(res.kind, [obj], wide=wide, now=1.8e9).splitlines()[0].split()
        assert " ".join(header) == " ".join(res.column_headers(wide))
    assert len(res.column_headers(True)) >= len(res.column_headers(False))
