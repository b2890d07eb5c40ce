"""Validation of coordination.k8s.io/v1: Lease, as upstream's
ValidateLeaseSpec words it (the node agents' heartbeats are Leases)."""

from __future__ import annotations

from knet.api.validation.fields import Errors, _int, _nonnegative, _obj, _str

# coordination/v1 LeaseSpec.strategy: the one coordinated-election strategy upstream defines.
_STRATEGIES = ("OldestEmulationVersion",)


def validate_lease(errs: Errors, obj: dict) -> None:
    spec = _obj(errs, obj.get("spec"), "spec")
    _str(errs, spec.get("holderIdentity"), "spec.holderIdentity")
    duration = _int(errs, spec.get("leaseDurationSeconds"), "spec.leaseDurationSeconds")
    if duration is not None and duration <= 0:
        errs.invalid("spec.leaseDurationSeconds", duration, "must be greater than 0")
    _nonnegative(errs, spec.get("leaseTransitions"), "spec.leaseTransitions")
    strategy = _str(errs, spec.get("strategy"), "spec.strategy")
    if strategy and strategy not in _STRATEGIES:
        errs.unsupported("spec.strategy", strategy, _STRATEGIES)
    preferred = _str(errs, spec.get("preferredHolder"), "spec.preferredHolder")
    if preferred and not strategy:
        errs.forbidden("spec.preferredHolder", "may only be specified if `strategy` is defined")
