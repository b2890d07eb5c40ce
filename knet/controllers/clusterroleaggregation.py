"""The ClusterRole aggregation controller: a ClusterRole with an
aggregationRule holds the rules of every ClusterRole its selectors match
(admin, edit and view grow with roles labelled
rbac.authorization.k8s.io/aggregate-to-*), written back as upstream's
clusterrole-aggregation controller does, so `kubectl get clusterrole view
-o yaml` shows what it grants. (The authorizer computes the same rules
itself, so a grant never waits for this write.)"""

from __future__ import annotations

from knet.api.errors import ApiError
from knet.api.objects import deep_copy
from knet.api.rbac import aggregated_rules
from knet.api.resources import by_kind


def sync(reg) -> int:
    """Write each aggregated ClusterRole's rules where they changed; how many."""
    res = by_kind("ClusterRole")
    written = 0
    for _ in range(3):  # nested aggregation (admin <- edit <- view) settles in rounds
        roles = reg.list(res)[0]
        changed = 0
        for role in roles:
            rules = aggregated_rules(role, roles)
            if rules is None or rules == (role.get("rules") or []):
                continue
            new = deep_copy(role)
            new["rules"] = rules
            try:
                reg.update(res, None, role["metadata"]["name"], new)
                changed += 1
            except ApiError as e:
                if e.code not in (404, 409):
                    raise
        written += changed
        if not changed:
            break
    return written
