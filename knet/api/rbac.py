"""Authorization of every request: request attributes as kube-apiserver's
RequestInfo reads them from the path, the Node authorizer's rules for node
agents, and RBAC (rbac.authorization.k8s.io/v1) evaluated as upstream's
RBAC authorizer evaluates rules.

Why it is shaped like this: authorization runs on every request, so the cost
must not grow with the number of roles or bindings. The bindings are indexed
by subject (a user's name, each of its groups, a ServiceAccount's username)
and a user's compiled rules per namespace are cached until an RBAC object
changes (the store's events clear the cache; the next request rebuilds the
index from the store once). The cluster admin (system:masters) never reaches
RBAC: upstream's privileged-groups authorizer lets it through first.

The answers and the 403's words are upstream's (`pods is forbidden: User
"system:serviceaccount:default:default" cannot list resource "pods" in API
group "" in the namespace "default"`), so clients and users read them as they
read Kubernetes'. Pure but for the store reads: no I/O of its own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import NamedTuple

from knet.api import errors
from knet.api.authz import AUTHENTICATED, MASTERS, User

log = logging.getLogger("knet.api.rbac")

GROUP = "rbac.authorization.k8s.io"
NODES_GROUP = "system:nodes"
NODE_PREFIX = "system:node:"
SA_PREFIX = "system:serviceaccount:"
SA_GROUP = "system:serviceaccounts"
UNAUTHENTICATED = "system:unauthenticated"
RBAC_PREFIXES = ("/registry/roles/", "/registry/clusterroles/", "/registry/rolebindings/",
                 "/registry/clusterrolebindings/")
# RequestInfoFactory's: verbs that are a path's first segment, and what follows a namespace's name.
_SPECIAL_VERBS = ("proxy", "watch")
_NAMESPACE_SUBRESOURCES = ("status", "finalize")
_METHOD_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch",
                 "DELETE": "delete"}
_STREAMS = ("exec", "attach", "portforward")


class Attributes(NamedTuple):
    """authorizer.Attributes of one request (the user apart)."""

    verb: str
    resource_request: bool
    path: str = ""
    namespace: str = ""
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


def request_info(method: str, path: str, query: dict[str, str], headers: dict[str, str] | None = None) -> Attributes:
    """RequestInfoFactory.NewRequestInfo: what a request does, from its method
    and path alone (no knowledge of which kinds exist, as upstream)."""
    parts = [p for p in path.split("/") if p]
    nonresource = Attributes(method.lower(), False, path)
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return nonresource
    prefix, rest = parts[0], parts[1:]
    group = ""
    if prefix == "apis":
        if len(rest) < 3:
            return nonresource
        group, rest = rest[0], rest[1:]
    version, rest = rest[0], rest[1:]
    if rest[0] in _SPECIAL_VERBS:
        if len(rest) < 2:
            return nonresource
        verb, rest, by_method = rest[0], rest[1:], False
    else:
        verb, by_method = _METHOD_VERBS.get(method, ""), True
    namespace = ""
    if rest[0] == "namespaces":
        if len(rest) > 1:
            namespace = rest[1]
            if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
                rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) >= 2 else ""
    subresource = rest[2] if len(rest) >= 3 and verb != "proxy" else ""
    if by_method and not name and verb == "get":
        verb = "watch" if query.get("watch") in ("true", "1") else "list"
        selector = query.get("fieldSelector") or ""
        if selector.startswith("metadata.name=") and "," not in selector:
            name = selector[len("metadata.name="):]
    elif by_method and not name and verb == "delete":
        verb = "deletecollection"
    elif (by_method and verb == "get" and subresource in _STREAMS and headers
          and "upgrade" in headers.get("connection", "").lower()):
        verb = "create"  # a WebSocket exec/attach/portforward needs create, as a SPDY POST does
    return Attributes(verb, True, path, namespace, group, version, resource, subresource, name)


def review_attributes(spec: dict, resource: bool) -> Attributes:
    """The Attributes a SelfSubjectAccessReview asks about."""
    if not resource:
        return Attributes(str(spec.get("verb") or ""), False, str(spec.get("path") or ""))
    return Attributes(str(spec.get("verb") or ""), True, "", str(spec.get("namespace") or ""),
                      str(spec.get("group") or ""), str(spec.get("version") or ""),
                      str(spec.get("resource") or ""), str(spec.get("subresource") or ""),
                      str(spec.get("name") or ""))


def forbidden(user: User, a: Attributes, reason: str = "") -> errors.ApiError:
    """responsewriters.Forbidden: the 403 Status, worded as kube-apiserver words it."""
    if not a.resource_request:
        msg = f"User {json.dumps(user.name)} cannot {a.verb} path {json.dumps(a.path)}"
    else:
        res = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
        msg = f"User {json.dumps(user.name)} cannot {a.verb} resource {json.dumps(res)} in API group " \
              f"{json.dumps(a.api_group)}"
        msg += f" in the namespace {json.dumps(a.namespace)}" if a.namespace else " at the cluster scope"
    if reason:
        msg = f"{msg}: {reason}"
    qualified = f"{a.resource}.{a.api_group}" if a.resource and a.api_group else a.resource
    if not a.resource_request or not qualified:
        message = f"forbidden: {msg}"
    elif a.name:
        message = f"{qualified} {json.dumps(a.name)} is forbidden: {msg}"
    else:
        message = f"{qualified} is forbidden: {msg}"
    details = {"name": a.name, "group": a.api_group, "kind": a.resource} if a.resource_request else {}
    return errors.ApiError(403, "Forbidden", message, {k: v for k, v in details.items() if v} or None)


# -- rules --------------------------------------------------------------------------------------


class Rule(NamedTuple):
    """A PolicyRule compiled for matching: None stands for `*`."""

    verbs: frozenset | None
    groups: frozenset | None
    resources: frozenset
    names: frozenset
    urls: tuple
    source: dict


def compile_rule(rule: dict) -> Rule:
    def star(values) -> frozenset | None:
        values = frozenset(values or ())
        return None if "*" in values else values

    return Rule(star(rule.get("verbs")), star(rule.get("apiGroups")), frozenset(rule.get("resources") or ()),
                frozenset(rule.get("resourceNames") or ()), tuple(rule.get("nonResourceURLs") or ()), rule)


def _resource_matches(rule: Rule, resource: str, subresource: str) -> bool:
    """rbacv1helpers.ResourceMatches: `*`, the resource, `resource/sub`, `*/sub`."""
    res = rule.resources
    if "*" in res:
        return True
    if not subresource:
        return resource in res
    return f"{resource}/{subresource}" in res or f"*/{subresource}" in res


def _url_matches(rule: Rule, path: str) -> bool:
    for url in rule.urls:
        if url == "*" or url == path or (url.endswith("*") and path.startswith(url[:-1])):
            return True
    return False


def rule_allows(rule: Rule, a: Attributes) -> bool:
    """rbac.RuleAllows."""
    if rule.verbs is not None and a.verb not in rule.verbs:
        return False
    if not a.resource_request:
        return _url_matches(rule, a.path)
    if rule.urls and not rule.resources:
        return False
    if rule.groups is not None and a.api_group not in rule.groups:
        return False
    if not _resource_matches(rule, a.resource, a.subresource):
        return False
    return not rule.names or a.name in rule.names


# -- RBAC ---------------------------------------------------------------------------------------


def _subject_keys(subject: dict, binding_ns: str) -> list[tuple[str, str]]:
    kind, name = subject.get("kind"), subject.get("name") or ""
    if kind == "User":
        return [("u", name)]
    if kind == "Group":
        return [("g", name)]
    if kind == "ServiceAccount":
        return [("u", f"{SA_PREFIX}{subject.get('namespace') or binding_ns}:{name}")]
    return []


def _labels_match(selector: dict, labels: dict) -> bool:
    from knet.api.selectors import selector_from_label_selector

    try:
        return selector_from_label_selector(selector).matches(labels)
    except (ValueError, errors.ApiError):
        return False


def aggregated_rules(role: dict, roles: Iterable[dict]) -> list[dict] | None:
    """The rules of an aggregated ClusterRole (its aggregationRule's selected
    ClusterRoles' rules, each once, in name order), or None if it has none."""
    agg = role.get("aggregationRule")
    if not isinstance(agg, dict):
        return None
    selectors = agg.get("clusterRoleSelectors") or []
    out: list[dict] = []
    me = role["metadata"]["name"]
    for other in sorted(roles, key=lambda r: r["metadata"]["name"]):
        if other["metadata"]["name"] == me:
            continue
        labels = other["metadata"].get("labels") or {}
        if any(_labels_match(s, labels) for s in selectors):
            for rule in other.get("rules") or []:
                if rule not in out:
                    out.append(rule)
    return out


class Rbac:
    """rbac.RBACAuthorizer over the store's roles and bindings."""

    def __init__(self, store):
        self.store = store
        self._index: dict | None = None
        self._cache: dict[tuple, tuple[tuple[Rule, ...], tuple[str, ...]]] = {}
        self.builds = 0
        self.unsubscribe = store.subscribe(self._on_event)

    def _on_event(self, event) -> None:
        if event.key.startswith(RBAC_PREFIXES):
            self._index = None
            self._cache.clear()

    def _load(self, prefix: str) -> list[dict]:
        return [json.loads(v) for _, v, _ in self.store.list(prefix)[0]]

    def _build(self) -> dict:
        """Roles by (namespace, name), ClusterRoles by name with their effective
        rules, and bindings indexed by subject: cluster-wide, and per namespace."""
        self.builds += 1
        croles = self._load("/registry/clusterroles/")
        cluster_roles = {}
        for r in croles:
            rules = aggregated_rules(r, croles)
            rules = r.get("rules") or [] if rules is None else rules
            cluster_roles[r["metadata"]["name"]] = tuple(compile_rule(x) for x in rules)
        roles = {(r["metadata"]["namespace"], r["metadata"]["name"]): tuple(compile_rule(x) for x in r.get("rules") or [])
                 for r in self._load("/registry/roles/")}
        cluster: dict[tuple[str, str], list[dict]] = {}
        for b in self._load("/registry/clusterrolebindings/"):
            for s in b.get("subjects") or []:
                for key in _subject_keys(s, ""):
                    cluster.setdefault(key, []).append(b)
        namespaced: dict[str, dict[tuple[str, str], list[dict]]] = {}
        for b in self._load("/registry/rolebindings/"):
            ns = b["metadata"]["namespace"]
            for s in b.get("subjects") or []:
                for key in _subject_keys(s, ns):
                    namespaced.setdefault(ns, {}).setdefault(key, []).append(b)
        return {"cluster_roles": cluster_roles, "roles": roles, "cluster": cluster, "namespaced": namespaced}

    def index(self) -> dict:
        if self._index is None:
            self._index = self._build()
        return self._index

    def _role_rules(self, idx: dict, ref: dict, ns: str, errs: list[str]) -> tuple[Rule, ...]:
        name = ref.get("name") or ""
        if ref.get("kind") == "ClusterRole":
            rules = idx["cluster_roles"].get(name)
            if rules is None:
                errs.append(f'clusterrole.rbac.authorization.k8s.io "{name}" not found')
        else:
            rules = idx["roles"].get((ns, name))
            if rules is None:
                errs.append(f'role.rbac.authorization.k8s.io "{name}" not found')
        return rules or ()

    def rules_for(self, user: User, namespace: str) -> tuple[tuple[Rule, ...], tuple[str, ...]]:
        """(rules, errors): what the user's bindings give it in namespace ("" for
        cluster-wide only), and the roles they name that do not exist."""
        key = (user.name, user.groups, namespace)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        idx = self.index()
        subject_keys = [("u", user.name), *(("g", g) for g in user.groups)]
        rules: list[Rule] = []
        errs: list[str] = []
        seen: set[str] = set()
        for sk in subject_keys:
            for b in idx["cluster"].get(sk, ()):
                if b["metadata"]["name"] not in seen:
                    seen.add(b["metadata"]["name"])
                    rules += self._role_rules(idx, b.get("roleRef") or {}, "", errs)
        if namespace:
            seen.clear()
            for sk in subject_keys:
                for b in idx["namespaced"].get(namespace, {}).get(sk, ()):
                    if b["metadata"]["name"] not in seen:
                        seen.add(b["metadata"]["name"])
                        rules += self._role_rules(idx, b.get("roleRef") or {}, namespace, errs)
        if len(self._cache) > 4096:
            self._cache.clear()
        out = self._cache[key] = (tuple(rules), tuple(errs))
        return out

    def allows(self, user: User, a: Attributes) -> tuple[bool, str]:
        rules, errs = self.rules_for(user, a.namespace if a.resource_request else "")
        for rule in rules:
            if rule_allows(rule, a):
                return True, ""
        return False, ("RBAC: " + ", ".join(errs)) if errs else ""


# -- the chain ----------------------------------------------------------------------------------


class Authorizer:
    """kube-apiserver's --authorization-mode=Node,RBAC behind the privileged
    groups' short cut: system:masters may do anything; a node's credential
    is answered by the Node authorizer (knet/api/nodeauthz.py) and then RBAC;
    everyone else by RBAC alone. Also answers the access reviews
    (knet.api.authz.Authorizer's protocol) through the same decision."""

    def __init__(self, store, node: Callable[[User, Attributes], tuple[bool, str] | None] | None = None):
        self.rbac = Rbac(store)
        self.node = node

    def check(self, user: User, a: Attributes) -> tuple[bool, str]:
        if MASTERS in user.groups:
            return True, ""
        reason = ""
        if self.node is not None and NODES_GROUP in user.groups and user.name.startswith(NODE_PREFIX):
            decided = self.node(user, a)
            if decided is not None:
                if decided[0]:
                    return decided
                reason = decided[1]
        allowed, rbac_reason = self.rbac.allows(user, a)
        return allowed, rbac_reason or reason

    # knet.api.authz.Authorizer's protocol: the reviews
    def authorize(self, user: User, attributes: dict, resource: bool) -> tuple[bool, bool, str]:
        allowed, reason = self.check(user, review_attributes(attributes, resource))
        return allowed, False, reason

    def rules(self, user: User, namespace: str) -> tuple[list[dict], list[dict], bool]:
        if MASTERS in user.groups:
            return ([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                    [{"verbs": ["*"], "nonResourceURLs": ["*"]}], False)
        rules, errs = self.rbac.rules_for(user, namespace)
        incomplete = bool(errs)
        if self.node is not None and NODES_GROUP in user.groups and user.name.startswith(NODE_PREFIX):
            from knet.api.nodeauthz import RULES

            rules = (*RULES, *rules)
            incomplete = True  # the Node authorizer's "its own" limits are not rules a review can list
        resource_rules, non_resource = [], []
        for r in rules:
            src = r.source
            if src.get("nonResourceURLs"):
                non_resource.append({"verbs": list(src.get("verbs") or []),
                                     "nonResourceURLs": list(src["nonResourceURLs"])})
            else:
                out = {"verbs": list(src.get("verbs") or []), "apiGroups": list(src.get("apiGroups") or []),
                       "resources": list(src.get("resources") or [])}
                if src.get("resourceNames"):
                    out["resourceNames"] = list(src["resourceNames"])
                resource_rules.append(out)
        return resource_rules, non_resource, incomplete


# -- per request: who, impersonation, the decision ----------------------------------------------

_IMPERSONATE = ("impersonate-user", "impersonate-group", "impersonate-uid")


def user_from(value: object) -> User:
    """The authenticated user as the server holds it: a User, or (name, groups)."""
    if isinstance(value, User):
        return value
    if isinstance(value, tuple) and len(value) == 2:
        from knet.api.authz import ADMIN

        if value[0] == ADMIN.name and MASTERS in value[1]:
            return ADMIN
        return User(str(value[0]), tuple(value[1]))
    from knet.api.authz import ADMIN

    return ADMIN


def _impersonation(req) -> tuple[str | None, list[str], dict[str, list[str]]]:
    headers = getattr(req, "headers", {}) or {}
    raw = getattr(req, "raw_headers", None) or []
    groups: list[str] = []
    extra: dict[str, list[str]] = {}
    for k, v in raw:
        k = (k.decode("latin-1") if isinstance(k, bytes) else k).lower()
        v = v.decode("latin-1") if isinstance(v, bytes) else v
        if k == "impersonate-group":
            groups.append(v)
        elif k.startswith("impersonate-extra-"):
            from urllib.parse import unquote

            extra.setdefault(unquote(k[len("impersonate-extra-"):]), []).append(v)
    if not raw and headers.get("impersonate-group"):
        groups = [headers["impersonate-group"]]
    return headers.get("impersonate-user") or None, groups, extra


def impersonate(authorizer: Authorizer, req, user: User) -> User:
    """The impersonation filter: each of Impersonate-User, -Group, -Extra-*
    checked as the `impersonate` verb on users, groups, serviceaccounts and
    userextras; the user the request then acts as (system:authenticated
    added, a ServiceAccount's groups when it has none given)."""
    headers = getattr(req, "headers", None) or {}
    if not any(k.startswith("impersonate-") for k in headers):
        return user  # the common case, without a look at the raw headers
    name, groups, extra = _impersonation(req)
    if name is None:
        if groups or extra:
            raise errors.bad_request("requested impersonation of groups without impersonating a user")
        return user
    from knet.api.serviceaccounts import group_names, split_username

    sa = split_username(name)
    checks = [Attributes("impersonate", True, "", sa[0], "", "v1", "serviceaccounts", "", sa[1]) if sa
              else Attributes("impersonate", True, "", "", "", "v1", "users", "", name)]
    checks += [Attributes("impersonate", True, "", "", "", "v1", "groups", "", g) for g in groups]
    checks += [Attributes("impersonate", True, "", "", "authentication.k8s.io", "v1", "userextras", key, v)
               for key, values in extra.items() for v in values]
    for a in checks:
        allowed, reason = authorizer.check(user, a)
        if not allowed:
            raise forbidden(user, a, reason)
    if sa and not groups:
        groups = list(group_names(sa[0]))
    if name != "system:anonymous" and AUTHENTICATED not in groups:
        groups.append(AUTHENTICATED)
    # Done once: what reads the request later (the reviews) sees the impersonated user as it is.
    for key in _IMPERSONATE:
        req.headers.pop(key, None)
    if getattr(req, "raw_headers", None):
        req.raw_headers = [(k, v) for k, v in req.raw_headers
                           if not (k.decode("latin-1") if isinstance(k, bytes) else k).lower().startswith("impersonate-")]
    return User(name, tuple(groups), "", extra)


def authorize_request(authorizer: Authorizer, req) -> User:
    """Who the request acts as, once it may: raises the 403 otherwise."""
    user = impersonate(authorizer, req, user_from(req.user))
    if MASTERS in user.groups:
        return user  # allowed everything, escalation included: no attributes to work out
    a = request_info(req.method, req.path, req.query, req.headers)
    allowed, reason = authorizer.check(user, a)
    if not allowed:
        raise forbidden(user, a, reason)
    if (a.api_group == GROUP and a.resource in _RBAC_KINDS and not a.subresource
            and a.verb in ("create", "update", "patch") and MASTERS not in user.groups):
        prevent_escalation(authorizer, user, a, req)
    if (a.verb == "create" and not a.name and a.resource in ("nodes", "leases") and NODES_GROUP in user.groups
            and user.name.startswith(NODE_PREFIX)):
        from knet.api.nodeauthz import admit

        why = admit(user, a, _body(req))
        if why:
            raise forbidden(user, a._replace(name=str((_body(req).get("metadata") or {}).get("name") or "")), why)
    return user


# -- escalation prevention ----------------------------------------------------------------------

_RBAC_KINDS = {"roles": "Role", "clusterroles": "ClusterRole", "rolebindings": "RoleBinding",
               "clusterrolebindings": "ClusterRoleBinding"}


def _body(req) -> dict:
    """The request's object, JSON or a typed client's protobuf (read here before
    the server's own decoding: the check needs it first)."""
    body = getattr(req, "body", b"") or b""
    if "protobuf" in (req.headers.get("content-type") or ""):
        from knet.api import protobuf

        try:
            return protobuf.decode(body)
        except (protobuf.Unsupported, protobuf.Malformed):
            return {}
    try:
        value = json.loads(body) if body else {}
    except ValueError:
        return {}  # the server's decoder answers the 400
    return value if isinstance(value, dict) else {}


def _atoms(rule: dict):
    """A PolicyRule broken into the single rights it grants."""
    verbs = rule.get("verbs") or []
    urls = rule.get("nonResourceURLs") or []
    if urls:
        for verb in verbs:
            for url in urls:
                yield Attributes(verb, False, url), {"NonResourceURLs": [url], "Verbs": [verb]}
        return
    for group in rule.get("apiGroups") or []:
        for resource in rule.get("resources") or []:
            res, _, sub = resource.partition("/")
            for name in rule.get("resourceNames") or [""]:
                for verb in verbs:
                    shown = {"APIGroups": [group], "Resources": [resource], "Verbs": [verb]}
                    if name:
                        shown["ResourceNames"] = [name]
                    yield Attributes(verb, True, "", "", group, "", res, sub, name), shown


def _missing(authorizer: Authorizer, user: User, rules: list, namespace: str) -> list[str]:
    out = []
    for rule in rules or []:
        if not isinstance(rule, dict):
            continue
        for atom, shown in _atoms(rule):
            atom = atom._replace(namespace=namespace) if atom.resource_request else atom
            if not authorizer.check(user, atom)[0]:
                out.append("{" + ", ".join(f"{k}:[{' '.join(json.dumps(v) for v in vs)}]"
                                           for k, vs in shown.items()) + "}")
    return out


def _refuse(user: User, a: Attributes, name: str, missing: list[str]) -> errors.ApiError:
    groups = "[" + " ".join(json.dumps(g) for g in user.groups) + "]"
    msg = (f"user {json.dumps(user.name)} (groups={groups}) is attempting to grant RBAC permissions not currently "
           "held:\n" + "\n".join(missing))
    return errors.ApiError(403, "Forbidden", f"{a.resource}.{GROUP} {json.dumps(name)} is forbidden: {msg}",
                           {"name": name, "group": GROUP, "kind": a.resource})


def prevent_escalation(authorizer: Authorizer, user: User, a: Attributes, req) -> None:
    """RBAC's escalation check (pkg/registry/rbac/*/policybased): a Role or
    ClusterRole may grant only rights its writer holds, unless it may
    `escalate`; a binding may name only a role whose rights its writer holds,
    unless it may `bind` that role. A PATCH of a role's result is not known
    here, so it needs `escalate` outright (stricter than upstream, which checks
    the patched object); a binding's roleRef never changes, so its patch is
    checked against the stored one's role."""
    kind = _RBAC_KINDS[a.resource]
    binding = kind.endswith("Binding")
    if a.verb == "patch":
        obj = {}
    else:
        obj = _body(req)
    name = a.name or str((obj.get("metadata") or {}).get("name") or "")
    if not binding:
        if authorizer.check(user, a._replace(verb="escalate", name=name))[0]:
            return
        if a.verb == "patch":
            raise forbidden(user, a._replace(verb="escalate", name=name))
        missing = _missing(authorizer, user, obj.get("rules") or [], a.namespace)
        if missing:
            raise _refuse(user, a, name, missing)
        return
    if a.verb == "patch":  # roleRef never changes: the stored binding's is the patched one's
        prefix = f"/registry/{a.resource}/{a.namespace}/" if a.namespace else f"/registry/{a.resource}/"
        found = authorizer.rbac.store.get(prefix + name)
        obj = json.loads(found[0]) if found else {}
    ref = obj.get("roleRef") if isinstance(obj.get("roleRef"), dict) else {}
    role_kind = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
    bind = Attributes("bind", True, "", a.namespace, GROUP, "v1", role_kind, "", str(ref.get("name") or ""))
    if authorizer.check(user, bind)[0]:
        return
    idx = authorizer.rbac.index()
    errs: list[str] = []
    rules = authorizer.rbac._role_rules(idx, ref, a.namespace, errs)
    if errs:
        raise errors.ApiError(500, "InternalError", f"Internal error occurred: {errs[0]}")
    missing = _missing(authorizer, user, [r.source for r in rules], a.namespace)
    if missing:
        raise _refuse(user, a, name, missing)
