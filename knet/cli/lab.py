"""knet lab list, up, check, run and down: the command over knet.lab (the format, the checks,
a lab's life). Each verb finds the lab, names its cluster (lab-<name>, or --cluster) and turns a
lab's error into the CLI's one line. With --context (or --kubeconfig) up, check and down act on
a cluster that is already there, through the API alone (knet.lab.viaapi): no root, any machine
that holds the kubeconfig."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator

from knet.cli.common import CliError, Connect, require_root

TYPE_CHECKING = False
if TYPE_CHECKING:
    from knet.api.client import Client
    from knet.lab.model import Lab


@contextlib.contextmanager
def _one_line() -> Iterator[None]:
    """A lab's error (its file, its cluster, its manifests) as the CLI's one line."""
    from knet.lab.model import LabError

    try:
        yield
    except LabError as e:
        raise CliError(str(e)) from None


def _lab(args: argparse.Namespace) -> tuple[Lab, str]:
    from knet.lab.catalog import find

    with _one_line():
        lab = find(args.lab)
    cluster = getattr(args, "cluster", None) or lab.cluster_name  # never $KNET_CLUSTER: not the user's cluster
    return lab, cluster


def cmd_lab_list(args: argparse.Namespace, connect: Connect) -> int:
    from knet.lab.catalog import LABS_DIR, shipped
    from knet.lab.model import LabError, load

    rows = [("NAME", "TITLE", "EXERCISES", "FOLDER")]
    for folder in shipped():
        where = os.path.relpath(folder, os.path.dirname(LABS_DIR))  # labs/01-pods, wherever one stands
        try:
            lab = load(folder)
            rows.append((lab.name, lab.title, str(len(lab.exercises)), where))
        except LabError as e:
            rows.append((os.path.basename(folder), f"(invalid: {e})", "-", where))
    if len(rows) == 1:
        print("No labs found.")
        return 0
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("   ".join(cell.ljust(w) for cell, w in zip(r[:3], widths, strict=True)) + "   " + r[3])
    return 0


def _through_context(args: argparse.Namespace) -> bool:
    """The verb acts through a kubeconfig context (--context, or --kubeconfig's current one), not
    on the lab's own cluster on this machine."""
    return bool(getattr(args, "context", None) or getattr(args, "kubeconfig_file", None))


def _context_client(args: argparse.Namespace) -> Client:
    """The context's client, its server and credentials tried once (a clear error, exit 1)."""
    from knet.cli.common import prepare
    from knet.cli.kubecontext import check_access, client_for

    client = prepare(client_for(args.context, args.kubeconfig_file))
    check_access(client)
    return client


def cmd_lab_up(args: argparse.Namespace, connect: Connect) -> int:
    from knet.lab import session

    if _through_context(args):  # the manifests on a cluster that is there already
        lab, _ = _lab(args)
        client = _context_client(args)
        with _one_line():
            took = session.up_through(lab, client, timeout=args.timeout)
        print(f'Lab "{lab.name}" is up on context "{client.context}" in {took:.1f}s.')
        print()
        print(session.exercise_text(lab, 0, lab.cluster_name, context=client.context))
        return 0
    require_root()
    lab, cluster = _lab(args)
    with _one_line():
        took = session.up(lab, cluster, timeout=args.timeout)
    print(f'Lab "{lab.name}" is up in {took:.1f}s. {session.how_to_reach(lab, cluster)}')
    print()
    print(session.exercise_text(lab, 0, cluster))
    return 0


def cmd_lab_check(args: argparse.Namespace, connect: Connect) -> int:
    from knet.lab import session

    lab, cluster = _lab(args)
    n = len(lab.exercises)
    if args.exercise is not None and not 1 <= args.exercise <= n:
        raise CliError(f"--exercise: invalid value {args.exercise}: lab {lab.name} has exercises 1 to {n}")
    the_seam, context = None, None
    if _through_context(args):  # through the API only: any machine with the kubeconfig, no root
        the_seam = session.api_seam(_context_client(args))
        cluster, context = the_seam.cluster, the_seam.context
    else:
        require_root()
    with _one_line():
        total, failed = session.check(lab, cluster, exercise=args.exercise, the_seam=the_seam)
    print(f"{total - failed} of {total} checks passed" + (f", {failed} failed" if failed else ""))
    if not failed and args.exercise is not None and args.exercise < n:
        print()
        print(session.exercise_text(lab, args.exercise, cluster, context=context))
    return 1 if failed else 0


def cmd_lab_run(args: argparse.Namespace, connect: Connect) -> int:
    if _through_context(args):
        raise CliError("--context: knet lab run makes the lab's own cluster and types its commands there (knet probe, "
                       "knet exec ext...); on a cluster named by a context, use knet lab up LAB --context CTX, then "
                       "knet lab check LAB --context CTX and knet lab down LAB --context CTX")
    require_root()
    from knet.lab import session

    lab, cluster = _lab(args)
    with _one_line():
        failed = session.run(lab, cluster, timeout=args.timeout)
    return 1 if failed else 0


def cmd_lab_down(args: argparse.Namespace, connect: Connect) -> int:
    if _through_context(args):  # the lab's objects go, the cluster stays
        from knet.lab import session

        lab, _ = _lab(args)
        client = _context_client(args)
        with _one_line():
            n = session.down_through(lab, client)
        print(f'Lab "{lab.name}": {n} objects deleted from context "{client.context}".')
        return 0
    require_root()
    from knet.cluster import ClusterError, down

    _, cluster = _lab(args)
    try:
        down(cluster)
    except ClusterError as e:
        raise CliError(str(e)) from None
    return 0
