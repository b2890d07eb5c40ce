"""Validation of apps/v1: Deployment, ReplicaSet, DaemonSet, StatefulSet
(selectors against templates, rollout strategies, what may change after creation)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from knet.api.errors import ApiError
from knet.api.selectors import (
    selector_from_label_selector,
)
from knet.api.validation.core import (
    _pod_spec,
)
from knet.api.validation.fields import (
    Errors,
    _annotations,
    _int_or_percent,
    _is_int,
    _label_selector,
    _labels,
    _name_check,
    _nonnegative,
    _not_over_100_percent,
    _obj,
    is_dns1123_label,
)

# -- workloads --------------------------------------------------------------------

# The noun each workload's empty-selector message uses (ReplicaSet's says
# "deployment" in Kubernetes too).
_EMPTY_SELECTOR_NOUN = {"Deployment": "deployment", "ReplicaSet": "deployment",
                        "DaemonSet": "daemonset", "StatefulSet": "statefulset"}


def _workload_selector_and_template(errs: Errors, kind: str, spec: dict) -> None:
    selector = spec.get("selector")
    if selector is None:
        errs.required("spec.selector")
    else:
        _label_selector(errs, selector, "spec.selector")
        if isinstance(selector, dict) and not selector.get("matchLabels") and not selector.get("matchExpressions"):
            errs.invalid("spec.selector", selector, f"empty selector is invalid for {_EMPTY_SELECTOR_NOUN[kind]}")
    template = _obj(errs, spec.get("template"), "spec.template")
    tmeta = _obj(errs, template.get("metadata"), "spec.template.metadata")
    if selector is not None:
        try:
            sel = selector_from_label_selector(selector)
        except ApiError:
            sel = None  # already reported with field paths above
        labels = tmeta.get("labels") or {}
        if sel is not None and not sel.empty and isinstance(labels, dict) and not sel.matches(labels):
            errs.invalid("spec.template.metadata.labels", labels, "`selector` does not match template `labels`")
    # Kubernetes validates template labels at spec.template.labels (sic).
    _labels(errs, tmeta.get("labels"), "spec.template.labels")
    _annotations(errs, tmeta.get("annotations"), "spec.template.annotations")
    _pod_spec(errs, template.get("spec"), "spec.template.spec", in_pod=False)
    tspec = template.get("spec") if isinstance(template.get("spec"), dict) else {}
    restart = tspec.get("restartPolicy")
    if restart not in (None, "Always"):
        errs.unsupported("spec.template.spec.restartPolicy", restart, ["Always"])
    if tspec.get("activeDeadlineSeconds") is not None:
        errs.forbidden("spec.template.spec.activeDeadlineSeconds", f"activeDeadlineSeconds in {kind} is not Supported")


def _workload_counts(errs: Errors, spec: dict, keys: Iterable[str]) -> None:
    for key in keys:
        _nonnegative(errs, spec.get(key), f"spec.{key}")


def validate_deployment(errs: Errors, obj: dict) -> None:
    spec = _obj(errs, obj.get("spec"), "spec")
    _workload_counts(errs, spec, ("replicas", "minReadySeconds", "revisionHistoryLimit", "progressDeadlineSeconds"))
    _workload_selector_and_template(errs, "Deployment", spec)
    _deployment_strategy(errs, spec.get("strategy"))
    deadline, min_ready = spec.get("progressDeadlineSeconds"), spec.get("minReadySeconds") or 0
    if _is_int(deadline) and _is_int(min_ready) and deadline <= min_ready:
        errs.invalid("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds")


def _deployment_strategy(errs: Errors, strategy: Any) -> None:
    strategy = _obj(errs, strategy, "spec.strategy")
    kind = strategy.get("type") or "RollingUpdate"
    rolling = strategy.get("rollingUpdate")
    if kind == "Recreate":
        if rolling is not None:
            errs.forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'")
    elif kind == "RollingUpdate":
        if rolling is not None:
            _rolling_update_deployment(errs, _obj(errs, rolling, "spec.strategy.rollingUpdate"))
    else:
        errs.unsupported("spec.strategy", strategy, ["Recreate", "RollingUpdate"])


def _rolling_update_deployment(errs: Errors, rolling: dict) -> None:
    path = "spec.strategy.rollingUpdate"
    unavailable = rolling.get("maxUnavailable", "25%")
    surge = rolling.get("maxSurge", "25%")
    u = _int_or_percent(errs, unavailable, f"{path}.maxUnavailable")
    s = _int_or_percent(errs, surge, f"{path}.maxSurge")
    if u == 0 and s == 0:
        errs.invalid(f"{path}.maxUnavailable", unavailable, "may not be 0 when `maxSurge` is 0")
    _not_over_100_percent(errs, unavailable, f"{path}.maxUnavailable")


def validate_replicaset(errs: Errors, obj: dict) -> None:
    spec = _obj(errs, obj.get("spec"), "spec")
    _workload_counts(errs, spec, ("replicas", "minReadySeconds"))
    _workload_selector_and_template(errs, "ReplicaSet", spec)


def validate_daemonset(errs: Errors, obj: dict) -> None:
    spec = _obj(errs, obj.get("spec"), "spec")
    _workload_counts(errs, spec, ("minReadySeconds", "revisionHistoryLimit"))
    _workload_selector_and_template(errs, "DaemonSet", spec)
    strategy = _obj(errs, spec.get("updateStrategy"), "spec.updateStrategy")
    kind = strategy.get("type") or "RollingUpdate"
    if kind == "RollingUpdate" and strategy.get("rollingUpdate") is not None:
        _rolling_update_daemonset(errs, _obj(errs, strategy["rollingUpdate"], "spec.updateStrategy.rollingUpdate"))
    elif kind not in ("RollingUpdate", "OnDelete"):
        errs.unsupported("spec.updateStrategy", strategy, ["RollingUpdate", "OnDelete"])


def _rolling_update_daemonset(errs: Errors, rolling: dict) -> None:
    """A DaemonSet rolls by surging or by taking nodes down, never both."""
    path = "spec.updateStrategy.rollingUpdate"
    unavailable, surge = rolling.get("maxUnavailable", 1), rolling.get("maxSurge", 0)
    u = _int_or_percent(errs, unavailable, f"{path}.maxUnavailable")
    s = _int_or_percent(errs, surge, f"{path}.maxSurge")
    _not_over_100_percent(errs, unavailable, f"{path}.maxUnavailable")
    _not_over_100_percent(errs, surge, f"{path}.maxSurge")
    if u is None or s is None:
        return
    if u and s:
        errs.invalid(f"{path}.maxSurge", surge, "may not be set when maxUnavailable is non-zero")
    elif not u and not s:
        errs.required(f"{path}.maxUnavailable", "cannot be 0 when maxSurge is 0")


def validate_statefulset(errs: Errors, obj: dict) -> None:
    spec = _obj(errs, obj.get("spec"), "spec")
    _workload_counts(errs, spec, ("replicas", "minReadySeconds", "revisionHistoryLimit"))
    policy = spec.get("podManagementPolicy")
    if policy == "":
        errs.required("spec.podManagementPolicy")
    elif policy is not None and policy not in ("OrderedReady", "Parallel"):
        errs.invalid("spec.podManagementPolicy", policy, "must be 'OrderedReady' or 'Parallel'")
    _statefulset_strategy(errs, spec.get("updateStrategy"))
    # Pods get DNS names <pod>.<serviceName>, so the governing service must be a label.
    if spec.get("serviceName"):
        _name_check(errs, spec["serviceName"], "spec.serviceName", is_dns1123_label)
    retention = _obj(errs, spec.get("persistentVolumeClaimRetentionPolicy"),
                     "spec.persistentVolumeClaimRetentionPolicy")
    for key in ("whenDeleted", "whenScaled"):
        if retention.get(key) is not None and retention[key] not in ("Retain", "Delete"):
            errs.unsupported(f"spec.persistentVolumeClaimRetentionPolicy.{key}", retention[key], ["Retain", "Delete"])
    _workload_selector_and_template(errs, "StatefulSet", spec)


def _statefulset_strategy(errs: Errors, strategy: Any) -> None:
    strategy = _obj(errs, strategy, "spec.updateStrategy")
    kind = strategy.get("type")
    rolling = strategy.get("rollingUpdate")
    if kind == "":
        errs.required("spec.updateStrategy")
    elif kind == "OnDelete":
        if rolling is not None:
            errs.invalid("spec.updateStrategy.rollingUpdate", rolling, "only allowed for updateStrategy 'RollingUpdate'")
    elif kind in (None, "RollingUpdate"):
        if rolling is not None:
            rolling = _obj(errs, rolling, "spec.updateStrategy.rollingUpdate")
            _nonnegative(errs, rolling.get("partition"), "spec.updateStrategy.rollingUpdate.partition")
            if rolling.get("maxUnavailable") is not None:
                path = "spec.updateStrategy.rollingUpdate.maxUnavailable"
                if _int_or_percent(errs, rolling["maxUnavailable"], path) == 0:
                    errs.invalid(path, rolling["maxUnavailable"], "cannot be 0")
                _not_over_100_percent(errs, rolling["maxUnavailable"], path)
    else:
        errs.invalid("spec.updateStrategy", strategy, "must be 'RollingUpdate' or 'OnDelete'")


def validate_selector_update(errs: Errors, new: dict, old: dict, *_: dict) -> None:
    if new.get("selector") != old.get("selector"):
        errs.invalid("spec.selector", new.get("selector"), "field is immutable")


_STATEFULSET_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy",
                        "persistentVolumeClaimRetentionPolicy", "minReadySeconds")


def validate_statefulset_update(errs: Errors, new: dict, old: dict, *_: dict) -> None:
    """Everything but a few fields (selector, serviceName, podManagementPolicy,
    volumeClaimTemplates...) is fixed for a StatefulSet's life."""
    def frozen(spec: dict) -> dict:
        return {k: v for k, v in spec.items() if k not in _STATEFULSET_MUTABLE}
    if frozen(new) != frozen(old):
        errs.forbidden("spec", "updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                       "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
                       "'minReadySeconds' are forbidden")
