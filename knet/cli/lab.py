"""knet lab list, up, check, run and down: the command over knet.lab (the format, the checks,
a lab's life). Each verb finds the lab, names its cluster (lab-<name>, or --cluster) and turns a
lab's error into the CLI's one line."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator

from knet.cli.common import CliError, Connect, require_root

TYPE_CHECKING = False
if TYPE_CHECKING:
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


def cmd_lab_up(args: argparse.Namespace, connect: Connect) -> int:
    require_root()
    from knet.lab import session

    lab, cluster = _lab(args)
    with _one_line():
        took = session.up(lab, cluster, timeout=args.timeout)
    print(f'Lab "{lab.name}" is up in {took:.1f}s. {session.how_to_reach(lab, cluster)}')
    print()
    print(session.exercise_text(lab, 0, cluster))
    return 0


def cmd_lab_check(args: argparse.Namespace, connect: Connect) -> int:
    require_root()
    from knet.lab import session

    lab, cluster = _lab(args)
    n = len(lab.exercises)
    if args.exercise is not None and not 1 <= args.exercise <= n:
        raise CliError(f"--exercise: invalid value {args.exercise}: lab {lab.name} has exercises 1 to {n}")
    with _one_line():
        total, failed = session.check(lab, cluster, exercise=args.exercise)
    print(f"{total - failed} of {total} checks passed" + (f", {failed} failed" if failed else ""))
    if not failed and args.exercise is not None and args.exercise < n:
        print()
        print(session.exercise_text(lab, args.exercise, cluster))
    return 1 if failed else 0


def cmd_lab_run(args: argparse.Namespace, connect: Connect) -> int:
    require_root()
    from knet.lab import session

    lab, cluster = _lab(args)
    with _one_line():
        failed = session.run(lab, cluster, timeout=args.timeout)
    return 1 if failed else 0


def cmd_lab_down(args: argparse.Namespace, connect: Connect) -> int:
    require_root()
    from knet.cluster import ClusterError, down

    _, cluster = _lab(args)
    try:
        down(cluster)
    except ClusterError as e:
        raise CliError(str(e)) from None
    return 0
