"""`knet get`'s kubectl output formats against knet's API server in this
process: -o jsonpath / custom-columns (and their error wording), and -w: the
header once, a row per event aligned as kubectl's remembering tabwriter aligns
it, a closed watch resumed from the last resourceVersion, a 410 relisted, Ctrl-C
ending with exit 0. (tests/integration/test_cli_kubectl_parity.py compares the
same outputs with the real kubectl on a live cluster.)"""

from __future__ import annotations

import pytest

from knet.api.errors import ApiError
from knet.api.resources import by_kind
from knet.cli import columns
from knet.cli.common import prepare
from knet.cli.main import main
from knet.printers import tabwrite

PODS = by_kind("Pod")


def pod(name: str, node: str | None = None, **labels: str) -> dict:
    spec = {"containers": [{"name": "c", "image": "agnhost", "ports": [{"containerPort": 80}, {"containerPort": 81}]}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": spec}


@pytest.fixture
def stored(server):
    client = server.client()
    client.create(PODS, "default", pod("web-0", "worker-1", app="web", tier="fe"))
    client.create(PODS, "default", pod("db-0", app="db"))
    return client


# -- custom-columns ------------------------------------------------------------------------


def test_custom_columns_cells_as_kubectl_prints_them(knet, stored):
    code, out, err = knet("get", "pods", "-o", "custom-columns=NAME:.metadata.name,NODE:spec.nodeName,"
                                               "PORTS:{.spec.containers[*].ports[*].containerPort},"
                                               "LABELS:.metadata.labels,NOPE:.nope")
    assert (code, err) == (0, "")
    assert out == ("NAME    NODE       PORTS   LABELS                 NOPE\n"
                   "db-0    <none>     80,81   map[app:db]            <none>\n"
                   "web-0   worker-1   80,81   map[app:web tier:fe]   <none>\n")


def test_custom_columns_header_alone_when_nothing_matches(knet, stored):
    assert knet("get", "pods", "-l", "app=none", "-o", "custom-columns=NAME:.metadata.name") == (0, "NAME\n", "")
    assert knet("get", "pods", "--no-headers", "-o", "custom-columns=N:.metadata.name") == (0, "db-0\nweb-0\n", "")


def test_custom_columns_file(knet, stored, tmp_path):
    spec = tmp_path / "cols"
    spec.write_text("NAME   APP\n.metadata.name   {.metadata.labels.app}\n")
    assert knet("get", "pods", "-o", f"custom-columns-file={spec}") == (
        0, "NAME    APP\ndb-0    db\nweb-0   web\n", "")


@pytest.mark.parametrize("spec,message", [
    ("", "custom-columns format specified but no custom columns given"),
    ("NAME", "unexpected custom-columns spec: NAME, expected <header>:<json-path-expr>"),
    ("N:{{.a}}", "unexpected path string, expected a 'name1.name2' or '.name1.name2' or '{name1.name2}' or "
                 "'{.name1.name2}'"),
])
def test_custom_columns_refusals(spec, message):
    with pytest.raises(columns.ColumnsError) as e:
        columns.from_spec(spec)
    assert str(e.value) == message


def test_custom_columns_file_refusals():
    with pytest.raises(columns.ColumnsError, match="missing spec line"):
        columns.from_file("NAME\n")
    with pytest.raises(columns.ColumnsError, match=r"number of headers \(2\) and field specifications \(1\)"):
        columns.from_file("A B\n.a\n")


def test_relaxed_paths():
    assert [columns.relaxed_path(p) for p in ("a.b", ".a.b", "{a.b}", "{.a.b}", "")] == \
        ["{.a.b}", "{.a.b}", "{.a.b}", "{.a.b}", ""]


# -- jsonpath through the CLI --------------------------------------------------------------


def test_jsonpath_on_a_list_and_on_one_object(knet, stored):
    assert knet("get", "pods", "-o", "jsonpath={.items[*].metadata.name}") == (0, "db-0 web-0", "")
    assert knet("get", "pods", "-o", "jsonpath={.kind} {.metadata}") == (0, 'List {"resourceVersion":""}', "")
    assert knet("get", "pod", "web-0", "-o", "jsonpath={.spec.nodeName}") == (0, "worker-1", "")
    assert knet("get", "pods", "-o", "jsonpath={.metadata.name}") == (0, "", "")  # a List has no name
    assert knet("get", "pods", "-o", 'jsonpath={range .items[*]}{.metadata.name}{"\\n"}{end}') == \
        (0, "db-0\nweb-0\n", "")


def test_jsonpath_errors_in_kubectls_words(knet, stored):
    code, out, err = knet("get", "pod", "db-0", "-o", "jsonpath={.nope}", "--allow-missing-template-keys=false")
    assert (code, out) == (1, "")
    head, obj = err.split("object given to jsonpath engine was:\n\t\t")
    assert head == ('error: error executing jsonpath "{.nope}": Error executing template: nope is not found. '
                    "Printing more information for debugging the template:\n\ttemplate was:\n\t\t{.nope}\n\t")
    assert obj.startswith('map[string]interface {}{"apiVersion":"v1", "kind":"Pod", "metadata":map[string]interface {}{')
    assert obj.endswith("}\n\n\n")
    assert knet("get", "pods", "-o", "jsonpath={.items[}") == (
        1, "", "error: error parsing jsonpath {.items[}, unterminated array\n")
    assert knet("get", "pods", "-o", "jsonpath=") == (1, "", "error: template format specified but no template given\n")


def test_output_watch_events_needs_a_watch(knet, stored):
    assert knet("get", "pods", "--output-watch-events") == (
        1, "", "error: --output-watch-events option can only be used with --watch or --watch-only\n")
    assert knet("get", "pods,svc", "-w") == (1, "", "error: you may only specify a single resource type\n")


# -- watch --------------------------------------------------------------------------------


def test_remembered_widths_align_later_rows_as_kubectl():
    # kubectl get pods -w, printed by the real kubectl when two pods were deleted.
    widths: list[int] = []
    first = tabwrite([["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
                      ["web-h8qfx8rflx-2d5jl", "1/1", "Running", "0", "95s"],
                      ["web-h8qfx8rflx-9c2d8", "1/1", "Running", "0", "95s"]], widths)
    later = tabwrite([["web-h8qfx8rflx-2d5jl", "1/1", "Terminating", "0", "97s"]], widths)
    last = tabwrite([["web-h8qfx8rflx-9c2d8", "0/1", "Terminating", "0", "97s"]], widths)
    assert first + later + last == (
        "NAME                   READY   STATUS    RESTARTS   AGE\n"
        "web-h8qfx8rflx-2d5jl   1/1     Running   0          95s\n"
        "web-h8qfx8rflx-9c2d8   1/1     Running   0          95s\n"
        "web-h8qfx8rflx-2d5jl   1/1     Terminating   0          97s\n"
        "web-h8qfx8rflx-9c2d8   0/1     Terminating   0          97s\n")
    assert tabwrite([["a", "b"]], None) == "a     b\n"  # without memory: Go's tabwriter, minimum width 6


class Scripted:
    """The test's client: the real one, but each watch() runs one step of a
    script (changes made through the real client, then the real watch's events
    up to a count, or an error), and Ctrl-C once the script is done."""

    def __init__(self, client, steps):
        self.client, self.steps, self.watched_from = client, list(steps), []

    def __getattr__(self, name):
        return getattr(self.client, name)

    def watch(self, res, namespace=None, resource_version=None, label_selector=None, field_selector=None):
        self.watched_from.append(resource_version)
        if not self.steps:
            raise KeyboardInterrupt
        change, events, error = self.steps.pop(0)
        change(self.client)
        if error is not None:
            raise error
        seen = 0
        for ev in self.client.watch(res, namespace, resource_version, label_selector, field_selector):
            if ev["type"] == "BOOKMARK":
                continue
            yield ev
            seen += 1
            if seen == events:
                return  # the server closed the watch here


def run_watch(server, capsys, steps, *argv):
    client = Scripted(prepare(server.client()), steps)
    code = main(["get", "pods", *argv], client=client)
    out = capsys.readouterr()
    return code, out.out, out.err, client


def ages_out(text: str) -> list[list[str]]:
    return [line.split()[:-1] for line in text.splitlines()]


def test_watch_lists_then_prints_a_row_per_event(server, capsys, stored):
    steps = [(lambda c: c.delete(PODS, "default", "db-0", grace=0), 1, None),  # the stream then closes
             (lambda c: c.create(PODS, "default", pod("new-0")), 1, None)]
    code, out, err, client = run_watch(server, capsys, steps, "-w")
    assert (code, err) == (0, "")  # Ctrl-C: exit 0, quietly
    assert ages_out(out) == [["NAME", "READY", "STATUS", "RESTARTS"],
                             ["db-0", "0/1", "Pending", "0"],
                             ["web-0", "0/1", "Pending", "0"],
                             ["db-0", "0/1", "Pending", "0"],  # its deletion, as kubectl prints it
                             ["new-0", "0/1", "Pending", "0"]]
    assert out.splitlines()[3].startswith("db-0    0/1     Pending   0          ")  # the header's widths
    listed_rv, resumed_rv = client.watched_from[:2]
    assert int(resumed_rv) > int(listed_rv)  # resumed after the closed watch, from the deletion's revision


def test_watch_only_with_event_types(server, capsys, stored):
    steps = [(lambda c: c.delete(PODS, "default", "db-0", grace=0), 1, None)]
    code, out, err, _ = run_watch(server, capsys, steps, "--watch-only", "--output-watch-events")
    assert (code, err) == (0, "")
    assert ages_out(out) == [["EVENT", "NAME", "READY", "STATUS", "RESTARTS"],
                             ["DELETED", "db-0", "0/1", "Pending", "0"]]


def test_watch_lists_again_after_410(server, capsys, stored):
    def meanwhile(c):
        c.delete(PODS, "default", "db-0", grace=0)
        c.create(PODS, "default", pod("late-0"))
        c.patch(PODS, "default", "web-0", {"metadata": {"labels": {"changed": "yes"}}})

    steps = [(meanwhile, 0, ApiError(410, "Expired", "too old resource version: 1 (5)"))]
    code, out, err, _ = run_watch(server, capsys, steps, "-w", "--output-watch-events", "-o",
                                  "custom-columns=NAME:.object.metadata.name,TYPE:.type")
    assert (code, err) == (0, "")
    assert out.splitlines() == ["NAME    TYPE", "db-0    ADDED", "web-0   ADDED",  # one flush
                                "late-0   ADDED", "web-0    MODIFIED", "db-0     DELETED"]  # the next, wider


def test_watch_survives_an_unreachable_server(server, capsys, stored):
    from knet.api.client import Unreachable

    def gone(c):
        raise Unreachable("the API server is not reachable")

    steps = [(gone, 0, None), (lambda c: c.delete(PODS, "default", "db-0", grace=0), 1, None)]
    code, out, err, client = run_watch(server, capsys, steps, "--watch-only", "-o", "name")
    assert (code, out, err) == (0, "pod/db-0\n", "")
    assert client.watched_from[0] == client.watched_from[1]  # resumed where it was


def test_watch_of_one_object_as_json_events(server, capsys, stored):
    steps = [(lambda c: c.patch(PODS, "default", "web-0", {"metadata": {"annotations": {"x": "<y>"}}}), 1, None)]
    code, out, err, _ = run_watch(server, capsys, steps, "web-0", "-w", "-o", "json", "--output-watch-events")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert [line[:24] for line in lines] == ['{"type":"ADDED","object"', '{"type":"MODIFIED","obje']
    assert '"x":"\\u003cy\\u003e"' in lines[1]  # Go's encoder escapes <, > and &


def test_watch_of_a_missing_object_is_kubectls_error(knet, stored):
    assert knet("get", "pod", "nope", "-w") == (1, "", 'Error from server (NotFound): pods "nope" not found\n')


# -- label columns, several names ----------------------------------------------------------


def test_label_columns_and_show_labels(knet, stored):
    code, out, err = knet("get", "pods", "-L", "app,tier", "--show-labels")
    assert (code, err) == (0, "")
    assert [line.split()[:1] + line.split()[5:] for line in out.splitlines()] == [
        ["NAME", "APP", "TIER", "LABELS"], ["db-0", "db", "app=db"], ["web-0", "web", "fe", "app=web,tier=fe"]]
    assert knet("get", "pods", "--show-labels", "-o", "json") == (
        1, "", "error: --show-labels option cannot be used with json printer\n")


def test_several_names_print_those_found_then_the_errors(knet, stored):
    code, out, err = knet("get", "pods", "web-0", "nope", "-o", "name")
    assert (code, out, err) == (1, "pod/web-0\n", 'Error from server (NotFound): pods "nope" not found\n')
    assert knet("get", "pods", "web-0", "nope", "-o", "name", "--ignore-not-found") == (0, "pod/web-0\n", "")
    assert knet("get", "pod", "nope", "-o", "json", "--ignore-not-found") == (0, "", "")
    assert knet("get", "pods", "-l", "app=none", "--ignore-not-found") == (0, "", "")


def test_jsonpath_template_flag(knet, stored):
    assert knet("get", "pods", "-o", "jsonpath", "--template={.items[0].metadata.name}") == (0, "db-0", "")


def test_get_all_is_the_all_category_in_discovery_order(knet, stored):
    code, out, err = knet("get", "all", "-o", "name")
    assert (code, err) == (0, "")
    assert out.splitlines() == ["pod/db-0", "pod/web-0", "service/kubernetes"]
