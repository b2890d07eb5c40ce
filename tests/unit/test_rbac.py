"""RBAC as upstream's authorizer evaluates it, over a real store: request
attributes from paths (RequestInfo), rule matching (verbs, groups,
resources with subresources, resourceNames, nonResourceURLs, `*`), the
bootstrap policy (view, edit, admin aggregated), bindings of users, groups
and ServiceAccounts, the 403's words, the access reviews through the same
decision, impersonation, the Node authorizer, and the cache following the
RBAC objects' changes."""

from __future__ import annotations

import json

import pytest

from knet.api import authz, bootstrappolicy, rbac
from knet.api.authz import User
from knet.api.errors import ApiError
from knet.api.nodeauthz import NodeAuthorizer
from knet.api.registry import Registry
from knet.api.resources import by_kind
from knet.api.server import Request
from knet.store.sqlite import SqliteStore

GROUP = "rbac.authorization.k8s.io"
SA = User("system:serviceaccount:default:default",
          ("system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"))
READER = User("reader-user", ("system:authenticated",))


@pytest.fixture
def reg(tmp_path):
    reg = Registry(SqliteStore(str(tmp_path / "s.db")))
    reg.bootstrap()
    bootstrappolicy.bootstrap(reg)
    return reg


@pytest.fixture
def az(reg):
    return rbac.Authorizer(reg.store, NodeAuthorizer(reg.store))


def can(az, user, method, path, query=None) -> bool:
    return az.check(user, rbac.request_info(method, path, query or {}))[0]


def bind(reg, name, role, subject, namespace="default", kind="ClusterRole"):
    res = by_kind("RoleBinding" if namespace else "ClusterRoleBinding")
    return reg.create(res, namespace, {"metadata": {"name": name},
                                       "roleRef": {"apiGroup": GROUP, "kind": kind, "name": role},
                                       "subjects": [subject]})


@pytest.mark.parametrize(("method", "path", "query", "want"), [
    ("GET", "/api/v1/namespaces/default/pods", {}, ("list", "default", "", "pods", "", "")),
    ("GET", "/api/v1/namespaces/default/pods", {"watch": "true"}, ("watch", "default", "", "pods", "", "")),
    ("GET", "/api/v1/pods", {"fieldSelector": "metadata.name=a"}, ("list", "", "", "pods", "", "a")),
    ("GET", "/api/v1/namespaces/default/pods/web/log", {}, ("get", "default", "", "pods", "log", "web")),
    ("DELETE", "/apis/apps/v1/namespaces/x/deployments", {}, ("deletecollection", "x", "apps", "deployments", "", "")),
    ("PATCH", "/api/v1/nodes/w1/status", {}, ("patch", "", "", "nodes", "status", "w1")),
    ("GET", "/api/v1/namespaces/kube-system", {}, ("get", "kube-system", "", "namespaces", "", "kube-system")),
    ("PUT", "/api/v1/namespaces/x/finalize", {}, ("update", "x", "", "namespaces", "finalize", "x")),
    ("GET", "/api/v1/watch/namespaces/d/pods", {}, ("watch", "d", "", "pods", "", "")),
])
def test_request_attributes_are_read_from_the_path_as_requestinfo_reads_them(method, path, query, want):
    a = rbac.request_info(method, path, query)
    assert a.resource_request
    assert (a.verb, a.namespace, a.api_group, a.resource, a.subresource, a.name) == want


@pytest.mark.parametrize("path", ["/version", "/api", "/api/v1", "/apis/apps/v1", "/healthz", "/openapi/v3"])
def test_discovery_and_version_are_non_resource_requests(path):
    a = rbac.request_info("GET", path, {})
    assert not a.resource_request and a.verb == "get" and a.path == path


def test_a_serviceaccount_has_only_the_bootstrap_rights_until_bound(az):
    assert not can(az, SA, "GET", "/api/v1/namespaces/default/pods")
    assert can(az, SA, "GET", "/version") and can(az, SA, "GET", "/apis/apps/v1")
    assert can(az, SA, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
    assert can(az, SA, "GET", "/openid/v1/jwks")
    assert not can(az, SA, "GET", "/metrics")


def test_the_403_is_kubernetes_words():
    a = rbac.request_info("GET", "/api/v1/namespaces/default/pods", {})
    e = rbac.forbidden(SA, a)
    assert (e.code, e.reason) == (403, "Forbidden")
    assert e.message == ('pods is forbidden: User "system:serviceaccount:default:default" cannot list resource '
                         '"pods" in API group "" in the namespace "default"')
    assert e.status()["details"] == {"kind": "pods"}
    e = rbac.forbidden(READER, rbac.request_info("DELETE", "/apis/apps/v1/namespaces/x/deployments/web", {}))
    assert e.message == ('deployments.apps "web" is forbidden: User "reader-user" cannot delete resource '
                         '"deployments" in API group "apps" in the namespace "x"')
    e = rbac.forbidden(READER, rbac.request_info("GET", "/api/v1/nodes", {}), "RBAC: role x")
    assert e.message.endswith('cannot list resource "nodes" in API group "" at the cluster scope: RBAC: role x')
    e = rbac.forbidden(READER, rbac.request_info("GET", "/metrics", {}))
    assert e.message == 'forbidden: User "reader-user" cannot get path "/metrics"'


def test_view_lists_pods_and_reads_logs_but_cannot_delete_exec_or_read_secrets(reg, az):
    bind(reg, "sa-view", "view", {"kind": "ServiceAccount", "name": "default"})
    assert can(az, SA, "GET", "/api/v1/namespaces/default/pods")
    assert can(az, SA, "GET", "/api/v1/namespaces/default/pods/a/log")
    assert can(az, SA, "GET", "/apis/apps/v1/namespaces/default/deployments/web/scale")
    assert not can(az, SA, "DELETE", "/api/v1/namespaces/default/pods/a")
    assert not can(az, SA, "POST", "/api/v1/namespaces/default/pods/a/exec")
    assert not can(az, SA, "GET", "/api/v1/namespaces/default/secrets")
    assert not can(az, SA, "GET", "/api/v1/namespaces/kube-system/pods")  # a RoleBinding: its namespace only
    assert not can(az, SA, "GET", "/api/v1/pods")


def test_edit_and_admin_are_aggregated_from_their_parts(reg, az):
    roles = {r["metadata"]["name"]: r for r in reg.list(by_kind("ClusterRole"))[0]}
    view, edit, admin = (roles[n]["rules"] for n in ("view", "edit", "admin"))
    assert all(r in edit for r in view) and all(r in admin for r in edit)
    bind(reg, "ed", "edit", {"kind": "User", "apiGroup": GROUP, "name": "reader-user"})
    assert can(az, READER, "DELETE", "/api/v1/namespaces/default/pods/a")
    assert can(az, READER, "POST", "/api/v1/namespaces/default/pods/a/exec")
    assert not can(az, READER, "POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles")
    # A role labelled aggregate-to-view extends view (and so edit and admin) at once.
    reg.create(by_kind("ClusterRole"), None, {
        "metadata": {"name": "leases-reader", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
        "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get"]}]})
    bind(reg, "sa-view", "view", {"kind": "ServiceAccount", "name": "default"})
    assert can(az, SA, "GET", "/apis/coordination.k8s.io/v1/namespaces/default/leases/x")


def test_seed_002_role_binding_and_clusterrole(reg, az):
    reg.create(by_kind("Role"), "default", {"metadata": {"name": "test", "creationTimestamp": None},
                                            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]})
    bind(reg, "reader", "test", {"apiGroup": GROUP, "kind": "User", "name": "reader-user"}, kind="Role")
    assert can(az, READER, "GET", "/api/v1/namespaces/default/pods")
    assert not can(az, READER, "GET", "/api/v1/namespaces/default/pods/a")  # list only, not get
    reg.create(by_kind("ClusterRole"), None, {"metadata": {"name": "test"}, "rules": [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "get"]}]})
    assert not can(az, READER, "GET", "/api/v1/namespaces")
    bind(reg, "reader-ns", "test", {"apiGroup": GROUP, "kind": "User", "name": "reader-user"}, namespace=None)
    assert can(az, READER, "GET", "/api/v1/namespaces") and can(az, READER, "GET", "/api/v1/namespaces/default")


def test_resource_names_subresources_stars_and_urls():
    def allows(rule, method, path, query=None):
        return rbac.rule_allows(rbac.compile_rule(rule), rbac.request_info(method, path, query or {}))

    named = {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"], "verbs": ["get", "list"]}
    assert allows(named, "GET", "/api/v1/namespaces/d/configmaps/a")
    assert not allows(named, "GET", "/api/v1/namespaces/d/configmaps/b")
    assert not allows(named, "GET", "/api/v1/namespaces/d/configmaps")  # a list names no object
    assert allows(named, "GET", "/api/v1/namespaces/d/configmaps", {"fieldSelector": "metadata.name=a"})
    pods = {"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}
    assert allows(pods, "DELETE", "/api/v1/namespaces/d/pods/x")
    assert not allows(pods, "GET", "/api/v1/namespaces/d/pods/x/log")  # a subresource is named on its own
    assert allows({"apiGroups": ["*"], "resources": ["*/scale"], "verbs": ["get"]},
                  "GET", "/apis/apps/v1/namespaces/d/deployments/w/scale")
    assert not allows({"apiGroups": ["apps"], "resources": ["*"], "verbs": ["get"]}, "GET", "/api/v1/nodes/n")
    urls = {"nonResourceURLs": ["/healthz", "/logs/*"], "verbs": ["get"]}
    assert allows(urls, "GET", "/healthz") and allows(urls, "GET", "/logs/kube.log")
    assert not allows(urls, "GET", "/metrics") and not allows(urls, "POST", "/healthz")
    assert not allows(urls, "GET", "/api/v1/namespaces/d/pods")


def test_groups_bind_and_masters_need_no_binding(reg, az):
    dev = User("jane", ("dev", "system:authenticated"))
    assert not can(az, dev, "GET", "/api/v1/namespaces/default/services")
    bind(reg, "devs", "view", {"apiGroup": GROUP, "kind": "Group", "name": "dev"})
    assert can(az, dev, "GET", "/api/v1/namespaces/default/services")
    assert can(az, authz.ADMIN, "DELETE", "/api/v1/nodes/x")
    all_sas = User("system:serviceaccount:x:y", ("system:serviceaccounts", "system:authenticated"))
    assert not can(az, all_sas, "GET", "/api/v1/namespaces/default/services")


def test_the_cache_follows_bindings_and_names_a_missing_role(reg, az):
    assert not can(az, SA, "GET", "/api/v1/namespaces/default/pods")
    bind(reg, "sa-view", "view", {"kind": "ServiceAccount", "name": "default"})
    assert can(az, SA, "GET", "/api/v1/namespaces/default/pods")
    builds = az.rbac.builds
    for _ in range(50):
        can(az, SA, "GET", "/api/v1/namespaces/default/pods")
    assert az.rbac.builds == builds  # no RBAC change: no rebuild
    reg.delete(by_kind("RoleBinding"), "default", "sa-view")
    assert not can(az, SA, "GET", "/api/v1/namespaces/default/pods")
    bind(reg, "ghost", "nothing-here", {"kind": "ServiceAccount", "name": "default"}, kind="Role")
    allowed, reason = az.check(SA, rbac.request_info("GET", "/api/v1/namespaces/default/pods", {}))
    assert not allowed and reason == 'RBAC: role.rbac.authorization.k8s.io "nothing-here" not found'


def test_access_reviews_answer_through_the_same_decision(reg, az):
    bind(reg, "sa-view", "view", {"kind": "ServiceAccount", "name": "default"})
    ask = {"spec": {"resourceAttributes": {"namespace": "default", "verb": "list", "resource": "pods"}}}
    assert authz.review("SelfSubjectAccessReview", az, SA, ask)["status"] == {"allowed": True}
    ask["spec"]["resourceAttributes"]["verb"] = "delete"
    assert authz.review("SelfSubjectAccessReview", az, SA, ask)["status"] == {"allowed": False}
    rules = authz.review("SelfSubjectRulesReview", az, SA, {"spec": {"namespace": "default"}})["status"]
    assert {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["namespaces"]} in rules[
        "resourceRules"]
    assert {"verbs": ["get"], "nonResourceURLs": bootstrappolicy.DISCOVERY_URLS} in rules["nonResourceRules"]
    assert rules["incomplete"] is False


def _request(method, path, headers=None, user=None):
    r = Request(method, path, {}, headers or {}, b"")
    r.raw_headers = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    r.user = user
    return r


def test_impersonation_is_checked_as_the_impersonate_verb(reg, az):
    r = _request("GET", "/api/v1/namespaces/default/pods", {"impersonate-user": "reader-user"}, authz.ADMIN)
    with pytest.raises(ApiError) as e:
        rbac.authorize_request(az, r)  # the admin may impersonate; reader-user may not list pods
    assert e.value.message.startswith('pods is forbidden: User "reader-user" cannot list')
    r = _request("GET", "/api/v1/namespaces/default/pods", {"impersonate-user": "jane"}, READER)
    with pytest.raises(ApiError) as e:
        rbac.authorize_request(az, r)
    assert e.value.message == ('users "jane" is forbidden: User "reader-user" cannot impersonate resource "users" '
                               'in API group "" at the cluster scope')
    reg.create(by_kind("ClusterRole"), None, {"metadata": {"name": "imp"}, "rules": [
        {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]}]})
    bind(reg, "imp", "imp", {"apiGroup": GROUP, "kind": "User", "name": "reader-user"}, namespace=None)
    r = _request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                 {"impersonate-user": "system:serviceaccount:default:default"}, READER)
    user = rbac.authorize_request(az, r)
    assert user.groups == SA.groups and "impersonate-user" not in r.headers
    r.user = user  # as the server keeps it
    assert authz.user_of(r) == user  # the reviews see the impersonated user, once


def _pod(reg, name, node, **spec):
    return reg.create(by_kind("Pod"), "default", {"metadata": {"name": name}, "spec": {
        "nodeName": node, "containers": [{"name": "c", "image": "i"}], **spec}})


def test_a_node_has_node_rights_only(reg, az):
    node = User("system:node:worker-1", ("system:nodes", "system:authenticated"))
    _pod(reg, "mine", "worker-1", volumes=[{"name": "v", "configMap": {"name": "settings"}}],
         serviceAccountName="robot")
    _pod(reg, "theirs", "worker-2", volumes=[{"name": "v", "secret": {"secretName": "other"}}])
    assert can(az, node, "GET", "/api/v1/pods", {"fieldSelector": "spec.nodeName=worker-1"})
    assert can(az, node, "GET", "/api/v1/namespaces/default/services")
    assert can(az, node, "GET", "/apis/discovery.k8s.io/v1/endpointslices", {"watch": "1"})
    assert can(az, node, "PATCH", "/api/v1/nodes/worker-1/status")
    assert not can(az, node, "PATCH", "/api/v1/nodes/worker-2/status")
    assert can(az, node, "PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/worker-1")
    assert not can(az, node, "PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/worker-2")
    assert can(az, node, "PATCH", "/api/v1/namespaces/default/pods/mine/status")
    assert not can(az, node, "PATCH", "/api/v1/namespaces/default/pods/theirs/status")
    assert can(az, node, "DELETE", "/api/v1/namespaces/default/pods/mine")
    assert not can(az, node, "DELETE", "/api/v1/namespaces/default/pods/theirs")
    assert can(az, node, "GET", "/api/v1/namespaces/default/configmaps/settings")
    assert not can(az, node, "GET", "/api/v1/namespaces/default/secrets/other")
    assert not can(az, node, "GET", "/api/v1/namespaces/default/secrets")
    assert can(az, node, "POST", "/api/v1/namespaces/default/serviceaccounts/robot/token")
    assert not can(az, node, "POST", "/api/v1/namespaces/default/serviceaccounts/default/token")
    assert can(az, node, "POST", "/api/v1/namespaces/default/events")
    assert can(az, node, "POST", "/knet/v1/progress")
    assert can(az, node, "POST", "/knet/v1/bookmarks")  # an informer asking for prompt BOOKMARKs
    allowed, reason = az.check(node, rbac.request_info("DELETE", "/api/v1/namespaces/default/services/x", {}))
    assert not allowed
    assert not can(az, node, "DELETE", "/api/v1/nodes/worker-1")
    allowed, reason = az.check(node, rbac.request_info("PATCH", "/api/v1/nodes/worker-2", {}))
    assert not allowed and reason == 'node "worker-1" is not allowed to modify node "worker-2"'


def _write(az, user, path, body, method="POST"):
    r = Request(method, path, {}, {"content-type": "application/json"}, json.dumps(body).encode())
    r.user = user
    return rbac.authorize_request(az, r)


def test_roles_and_bindings_grant_only_what_their_writer_holds(reg, az):
    ns_admin = User("ann", ("system:authenticated",))
    bind(reg, "ann-admin", "admin", {"apiGroup": GROUP, "kind": "User", "name": "ann"})
    roles = "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles"
    held = {"metadata": {"name": "pod-reader"}, "rules": [
        {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]}]}
    assert _write(az, ns_admin, roles, held) == ns_admin
    more = {"metadata": {"name": "node-reader"}, "rules": [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]}]}
    with pytest.raises(ApiError) as e:
        _write(az, ns_admin, roles, more)
    assert e.value.code == 403 and e.value.message == (
        'roles.rbac.authorization.k8s.io "node-reader" is forbidden: user "ann" (groups=["system:authenticated"]) '
        'is attempting to grant RBAC permissions not currently held:\n'
        '{APIGroups:[""], Resources:["nodes"], Verbs:["get"]}\n{APIGroups:[""], Resources:["nodes"], Verbs:["list"]}')
    bindings = "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings"
    reg.create(by_kind("Role"), "default", held)
    to_reader = {"metadata": {"name": "b1"}, "roleRef": {"apiGroup": GROUP, "kind": "Role", "name": "pod-reader"},
                 "subjects": [{"kind": "User", "apiGroup": GROUP, "name": "bob"}]}
    assert _write(az, ns_admin, bindings, to_reader) == ns_admin
    to_admin = dict(to_reader, roleRef={"apiGroup": GROUP, "kind": "ClusterRole", "name": "cluster-admin"})
    with pytest.raises(ApiError) as e:
        _write(az, ns_admin, bindings, to_admin)
    assert "is attempting to grant RBAC permissions not currently held" in e.value.message
    # `escalate` and `bind` lift the checks, as upstream.
    reg.create(by_kind("ClusterRole"), None, {"metadata": {"name": "escalator"}, "rules": [
        {"apiGroups": [GROUP], "resources": ["roles"], "verbs": ["escalate"]},
        {"apiGroups": [GROUP], "resources": ["clusterroles"], "verbs": ["bind"], "resourceNames": ["cluster-admin"]}]})
    bind(reg, "ann-esc", "escalator", {"apiGroup": GROUP, "kind": "User", "name": "ann"})
    assert _write(az, ns_admin, roles, more) == ns_admin
    assert _write(az, ns_admin, bindings, to_admin) == ns_admin


def test_a_node_creates_only_its_own_node_and_lease(reg, az):
    node = User("system:node:worker-1", ("system:nodes", "system:authenticated"))
    leases = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
    assert _write(az, node, leases, {"metadata": {"name": "worker-1"}}) == node
    assert _write(az, node, "/api/v1/nodes", {"metadata": {"name": "worker-1"}}) == node
    with pytest.raises(ApiError) as e:
        _write(az, node, leases, {"metadata": {"name": "worker-2"}})
    assert e.value.message == (
        'leases.coordination.k8s.io "worker-2" is forbidden: User "system:node:worker-1" cannot create resource '
        '"leases" in API group "coordination.k8s.io" in the namespace "kube-node-lease": node "worker-1" can only '
        'access leases with name "worker-1" in namespace "kube-node-lease"')
    with pytest.raises(ApiError):
        _write(az, node, "/api/v1/nodes", {"metadata": {"name": "worker-2"}})
    with pytest.raises(ApiError):
        _write(az, node, "/apis/coordination.k8s.io/v1/namespaces/default/leases", {"metadata": {"name": "worker-1"}})
