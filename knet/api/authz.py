"""Authorization as the API answers questions about it: SelfSubjectAccessReview
(`kubectl auth can-i`), SelfSubjectRulesReview (`kubectl auth can-i --list`)
and SelfSubjectReview (`kubectl auth whoami`).

knet authenticates one kind of client today: the cluster's admin (its bearer
token, or its client certificate: CN=kubernetes-admin, O=system:masters, as
kubeadm's admin.conf). Upstream lets system:masters do everything without
consulting RBAC, so the truthful answer to every review today is "allowed".
The decision is an `Authorizer` so that RBAC (issue 15) plugs in: set the API
server's `authorizer` attribute, and the request's `user` when authentication
knows more than one user; these reviews then ask it instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from knet.api import errors
from knet.api.errors import FieldError

ADMIN_USER = "kubernetes-admin"
MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"


@dataclass(frozen=True)
class User:
    """authentication.k8s.io UserInfo."""

    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: dict = field(default_factory=dict, hash=False, compare=False)

    def info(self) -> dict:
        out: dict = {"username": self.name, "groups": list(self.groups)}
        if self.uid:
            out["uid"] = self.uid
        if self.extra:
            out["extra"] = dict(self.extra)
        return out


ADMIN = User(ADMIN_USER, (MASTERS, AUTHENTICATED))


class Authorizer(Protocol):
    def authorize(self, user: User, attributes: dict, resource: bool) -> tuple[bool, bool, str]:
        """(allowed, denied, reason) for resourceAttributes (resource=True) or
        nonResourceAttributes; neither allowed nor denied is "no opinion"."""

    def rules(self, user: User, namespace: str) -> tuple[list[dict], list[dict], bool]:
        """(resourceRules, nonResourceRules, incomplete) the user has in namespace."""


class PrivilegedGroups:
    """Upstream's first authorizer: members of system:masters may do anything
    (with no reason given); everyone else gets no opinion here, which with no
    other authorizer is a denial."""

    def __init__(self, groups: tuple[str, ...] = (MASTERS,)):
        self.groups = groups

    def _privileged(self, user: User) -> bool:
        return any(g in self.groups for g in user.groups)

    def authorize(self, user: User, attributes: dict, resource: bool) -> tuple[bool, bool, str]:
        # No opinion otherwise, and no reason given: what kube-apiserver answers a user no rule allows.
        return self._privileged(user), False, ""

    def rules(self, user: User, namespace: str) -> tuple[list[dict], list[dict], bool]:
        if self._privileged(user):
            return ([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                    [{"verbs": ["*"], "nonResourceURLs": ["*"]}], False)
        # Upstream's default policy lets any authenticated user ask these questions.
        return ([{"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
                  "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]},
                 {"verbs": ["create"], "apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"]}],
                [], False)


DEFAULT = PrivilegedGroups()


def user_of(req: object) -> User:
    """Who the request is for: what authentication put on it (else the admin,
    the only identity knet's credentials carry today), or the user it
    impersonates (`kubectl --as=jane --as-group=dev`), which the admin may."""
    user = getattr(req, "user", None)
    if isinstance(user, User):
        return user  # the server's, after impersonation (knet.api.rbac.authorize_request)
    if isinstance(user, tuple) and len(user) == 2:  # the server's (name, groups)
        user = User(str(user[0]), tuple(user[1]))
    else:
        user = ADMIN
    return impersonated(req, user)


def impersonated(req: object, user: User) -> User:
    """The Impersonate-User / Impersonate-Group headers' user, as upstream's
    impersonation filter makes it (system:authenticated added); only a user
    allowed everything may impersonate here (a 403 otherwise)."""
    headers = getattr(req, "headers", {}) or {}
    name = headers.get("impersonate-user")
    raw = getattr(req, "raw_headers", None) or []
    groups = [v.decode("latin-1") if isinstance(v, bytes) else v for k, v in raw
              if (k.decode("latin-1") if isinstance(k, bytes) else k).lower() == "impersonate-group"]
    if not groups and headers.get("impersonate-group"):
        groups = [headers["impersonate-group"]]
    if not name:
        if groups:
            raise errors.bad_request("requested impersonation of groups without impersonating a user")
        return user
    if MASTERS not in user.groups:
        raise errors.ApiError(403, "Forbidden", f'users "{name}" is forbidden: User "{user.name}" cannot impersonate '
                              'resource "users" in API group "" at the cluster scope')
    groups = [g for g in groups if g != AUTHENTICATED] + [AUTHENTICATED]
    return User(name, tuple(groups))


def _meta() -> dict:
    return {"creationTimestamp": None}


def _spec(kind: str, body: dict) -> dict:
    spec = body.get("spec")
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise errors.bad_request(f"{kind}.spec: must be an object")
    return spec


def _check_kind(body: dict, kind: str, api_version: str) -> None:
    if body.get("kind") not in (None, "", kind):
        raise errors.bad_request(f"the kind {errors.render_value(body['kind'])} in the body does not match "
                                 f"the path's kind {kind!r}")
    if body.get("apiVersion") not in (None, "", api_version):
        raise errors.bad_request(f"the API version {errors.render_value(body['apiVersion'])} in the body does not "
                                 f"match {api_version!r} for {kind}")


def access_review(authorizer: Authorizer, user: User, body: dict) -> dict:
    """POST selfsubjectaccessreviews: may this user do this?"""
    kind, api_version = "SelfSubjectAccessReview", "authorization.k8s.io/v1"
    _check_kind(body, kind, api_version)
    spec = _spec(kind, body)
    res, non = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if res is not None and not isinstance(res, dict):
        raise errors.bad_request("spec.resourceAttributes: must be an object")
    if non is not None and not isinstance(non, dict):
        raise errors.bad_request("spec.nonResourceAttributes: must be an object")
    if res is None and non is None:
        raise errors.Invalid(kind, "", [FieldError("spec.resourceAttributes", "Invalid value", "null",
                                                   "exactly one of nonResourceAttributes or resourceAttributes "
                                                   "must be specified")])
    if res is not None and non is not None:
        raise errors.Invalid(kind, "", [FieldError("spec.nonResourceAttributes", "Invalid value", non,
                                                   "cannot be specified in combination with resourceAttributes")])
    allowed, denied, reason = authorizer.authorize(user, res if res is not None else non, res is not None)
    status: dict = {"allowed": allowed}
    if denied:
        status["denied"] = True
    if reason:
        status["reason"] = reason
    return {"kind": kind, "apiVersion": api_version, "metadata": _meta(), "spec": spec, "status": status}


def rules_review(authorizer: Authorizer, user: User, body: dict) -> dict:
    """POST selfsubjectrulesreviews: everything this user may do in a namespace."""
    kind, api_version = "SelfSubjectRulesReview", "authorization.k8s.io/v1"
    _check_kind(body, kind, api_version)
    spec = _spec(kind, body)
    namespace = spec.get("namespace") or ""
    if not isinstance(namespace, str):
        raise errors.bad_request("spec.namespace: must be a string")
    resource_rules, non_resource_rules, incomplete = authorizer.rules(user, namespace)
    return {"kind": kind, "apiVersion": api_version, "metadata": _meta(), "spec": spec,
            "status": {"resourceRules": resource_rules, "nonResourceRules": non_resource_rules,
                       "incomplete": incomplete}}


def self_review(user: User, body: dict) -> dict:
    """POST selfsubjectreviews: who am I?"""
    kind, api_version = "SelfSubjectReview", "authentication.k8s.io/v1"
    _check_kind(body, kind, api_version)
    return {"kind": kind, "apiVersion": api_version, "metadata": _meta(), "status": {"userInfo": user.info()}}


def review(kind: str, authorizer: Authorizer | None, user: User, body: dict) -> dict:
    """Answer a review of `kind` (a record of knet.api.resources.REVIEWS)."""
    authorizer = authorizer or DEFAULT
    if kind == "SelfSubjectAccessReview":
        return access_review(authorizer, user, body)
    if kind == "SelfSubjectRulesReview":
        return rules_review(authorizer, user, body)
    if kind == "SelfSubjectReview":
        return self_review(user, body)
    raise errors.not_found("kind", kind)
