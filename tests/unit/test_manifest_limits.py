"""The manifest loader bounds what untrusted input may cost before it is
expanded: alias expansion by go-yaml's rule (kubectl's YAML decoder), nesting,
size per input; and it refuses what is not a manifest as kubectl does, in one
line naming the file (and the line and column where YAML has them)."""

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from knet.api import manifests
from knet.api.manifests import (
    MAX_DEPTH,
    ManifestError,
    allowed_alias_ratio,
    excessive_aliasing,
    load,
    load_with_sources,
    parse,
)

ROOT = Path(__file__).resolve().parents[2]
POD = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: i\n"


def laughs(levels: int, fanout: int) -> str:
    """The "billion laughs": each level a list of `fanout` aliases of the one before."""
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata: {name: lol}",
             "l0: &l0 [" + ", ".join(['"lol"'] * fanout) + "]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * fanout) + "]")
    lines.append(f"data: {{x: *l{levels - 1}}}")
    return "\n".join(lines) + "\n"


def refused(text: str, source: str = "f.yaml") -> str:
    with pytest.raises(ManifestError) as e:
        parse(text, source)
    message = str(e.value)
    assert "\n" not in message
    return message


# -- alias expansion ----------------------------------------------------------------------


def test_allowed_alias_ratio_is_go_yamls():
    assert allowed_alias_ratio(1_000) == 0.99
    assert allowed_alias_ratio(400_000) == 0.99
    assert allowed_alias_ratio(4_000_000) == 0.10
    assert allowed_alias_ratio(40_000_000) == 0.10
    assert allowed_alias_ratio(2_200_000) == pytest.approx(0.99 - 0.89 * 0.5)
    # go-yaml tests nothing until 100 aliased and 1,000 decoded nodes
    assert not excessive_aliasing(1_000, 999)
    assert not excessive_aliasing(100_000, 100)
    assert excessive_aliasing(1_001, 1_000)
    assert excessive_aliasing(4_000_001, 400_001) and not excessive_aliasing(4_000_001, 400_000)


def test_billion_laughs_is_refused_at_once():
    text = laughs(9, 10)
    assert len(text) < 700
    message = refused(text, "bomb.yaml")
    assert message.startswith("error parsing bomb.yaml: yaml: document contains excessive aliasing")


def test_expansion_within_go_yamls_bound_is_loaded():
    # 3 levels of 10: ~1,100 nodes from aliases of ~50 written, as go-yaml accepts (99% under 400,000)
    (obj,) = parse(laughs(3, 10), "ok.yaml")
    assert len(obj["data"]["x"]) == 10 and obj["data"]["x"][9][9] == ["lol"] * 10
    # the everyday use of anchors: shared defaults merged into many objects
    text = "base: &b {a: 1, b: 2}\n" + "".join(f"k{i}: {{<<: *b, c: {i}}}\n" for i in range(200))
    (obj,) = parse("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\n" + text, "m.yaml")
    assert obj["k199"] == {"a": 1, "b": 2, "c": 199}


def test_a_large_expansion_of_a_large_anchor_is_refused():
    # go-yaml's own limit test, smaller: many written nodes, then 100 aliases of all of them
    text = "{a: &a [{a}" + ",{a}" * 20_000 + "], b: &b [*a" + ",*a" * 99 + "]}"
    assert "excessive aliasing" in refused(text)
    # the same nodes written out, no aliases: loaded
    (doc,) = parse("{apiVersion: v1, kind: ConfigMap, a: [{a}" + ",{a}" * 20_000 + "]}", "big.yaml")
    assert len(doc["a"]) == 20_001


def test_anchor_that_contains_itself_and_unknown_anchor():
    assert refused("a: &x [1, *x]\n").endswith("line 1, column 11: anchor 'x' value contains itself")
    assert refused("a: &x {b: *x}\n").endswith("anchor 'x' value contains itself")
    assert refused("a: 1\nb: *nope\n").endswith("line 2, column 4: unknown anchor 'nope' referenced")


def test_anchors_are_per_document():
    text = POD + "x: &a 1\n---\n" + POD + "y: *a\n"
    assert "unknown anchor 'a'" in refused(text)


# -- depth and size -----------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["flow", "block", "mapping"])
def test_nesting_is_bounded_before_anything_is_built(shape):
    n = 100_000  # the C composer recurses per level: this many crash it (SIGSEGV)
    text = {"flow": "a: " + "[" * n + "]" * n,
            "block": "- " * n + "x\n",
            "mapping": "".join(" " * i + "k:\n" for i in range(0, 2000))}[shape]
    message = refused(text)
    assert message.endswith(f"exceeded max depth of {MAX_DEPTH}")
    assert "line " in message and "column " in message


def test_nesting_up_to_the_bound_is_loaded_and_serializable():
    import json

    inner = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    (obj,) = parse(f"{{apiVersion: v1, kind: ConfigMap, x: {inner}}}", "ok.yaml")
    json.dumps(obj)  # what the client does with it next
    refused(f"{{apiVersion: v1, kind: ConfigMap, x: [{inner}]}}")


def test_deep_json_is_refused_not_a_recursion_error():
    deep = '{"apiVersion": "v1", "kind": "ConfigMap", "x": ' + '{"a": ' * 5000 + "1" + "}" * 5001
    assert refused(deep, "d.json") == f"error parsing d.json: exceeded max depth of {MAX_DEPTH}"
    shallow_enough = '{"apiVersion": "v1", "kind": "ConfigMap", "x": ' + "[" * 600 + "]" * 600 + "}"
    assert refused(shallow_enough, "d.json") == f"error parsing d.json: exceeded max depth of {MAX_DEPTH}"


def test_input_over_the_size_limit_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setattr(manifests, "MAX_INPUT_BYTES", 4096)
    big = tmp_path / "big.yaml"
    big.write_text(POD + "# " + "x" * 5000 + "\n")
    with pytest.raises(ManifestError, match=r"over 0 MiB, the limit for one manifest input"):
        load([str(big)])
    small = tmp_path / "small.yaml"
    small.write_text(POD)
    assert load([str(small)])[0]["metadata"]["name"] == "web"


def test_bomb_under_a_memory_limit_is_a_clean_refusal(tmp_path):
    """The real `knet apply` in a process limited to 1 GiB of address space
    (the bomb took 17 GB before): refused in one line, exit 1, no traceback."""
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(laughs(9, 10))

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    out = subprocess.run([sys.executable, "-I", "-S", str(ROOT / "scripts" / "knet-launch"),
                          "--cluster", "nosuchcluster", "apply", "-f", str(bomb)],
                         preexec_fn=limit, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "KNET_STATE_ROOT": str(tmp_path / "state")})
    assert out.returncode == 1, out.stderr
    assert out.stderr.startswith(f"error: error parsing {bomb}: yaml: document contains excessive aliasing")
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


# -- not a manifest ---------------------------------------------------------------------------


@pytest.mark.parametrize("text, tail", [
    ("hello\n", "the document is a string, not an object with apiVersion and kind"),
    ("- a\n- b\n", "the document is an array, not an object with apiVersion and kind"),
    ("5\n", "the document is a number, not an object with apiVersion and kind"),
    ("metadata: {name: a}\n", "[apiVersion not set, kind not set]"),
    ("kind: Pod\n", "apiVersion not set"),
    ("apiVersion: v1\n", "kind not set"),
    ("apiVersion: v1\nkind: 5\n", "kind: got number, expected string"),
    ("apiVersion: v1\nkind: Pod\nmetadata: web\n", "metadata: got string, expected object"),
    ("apiVersion: v1\nkind: List\nitems: [1, 2]\n", "items[0]: got number, expected object"),
    ("apiVersion: v1\nkind: PodList\nitems: {a: 1}\n", "items: got object, expected array"),
    ("apiVersion: v1\nkind: List\nitems: [{apiVersion: v1}]\n", "items[0]: kind not set"),
    (POD + "---\n- a\n", "document 2: the document is an array, not an object with apiVersion and kind"),
])
def test_what_is_not_a_manifest_is_refused_as_kubectl_does(text, tail):
    assert refused(text) == f'error validating "f.yaml": error validating data: {tail}'


def test_invalid_yaml_names_line_and_column():
    assert refused("a: b: c\n") == ("error parsing f.yaml: yaml: line 1, column 5: "
                                    "mapping values are not allowed in this context")
    assert refused("a: [1, 2\n") == ("error parsing f.yaml: yaml: line 2, column 1: did not find expected ',' "
                                     "or ']' (while parsing a flow sequence at line 1, column 4)")


def test_lists_are_flattened_in_order_and_empty_documents_skipped():
    text = ("---\n---\napiVersion: v1\nkind: List\nitems:\n"
            "- {apiVersion: v1, kind: List, items: [{apiVersion: v1, kind: Pod, metadata: {name: a}}]}\n"
            "- {apiVersion: v1, kind: Pod, metadata: {name: b}}\n---\n" + POD)
    assert [o["metadata"]["name"] for o in parse(text, "f.yaml")] == ["a", "b", "web"]


def test_values_are_what_yaml_to_json_gives():
    (obj,) = parse("apiVersion: v1\nkind: ConfigMap\nts: 2024-01-02T03:04:05Z\nday: 2024-01-02\n"
                   "bin: !!binary aGk=\nset: !!set {a, b}\nmetadata:\n", "f.yaml")
    assert obj["ts"] == "2024-01-02T03:04:05Z" and obj["day"] == "2024-01-02"
    assert obj["bin"] == "aGk=" and obj["set"] == {"a": None, "b": None}
    assert "metadata" not in obj  # `metadata:` with nothing under it


def test_files_directories_stdin_and_their_errors(tmp_path):
    (tmp_path / "a.yaml").write_text(POD)
    (tmp_path / "b.json").write_text('{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}')
    (tmp_path / "notes.txt").write_text("not read")
    (tmp_path / "bin.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    got = load_with_sources([str(tmp_path / "a.yaml"), str(tmp_path / "b.json")])
    assert [(s.rsplit("/", 1)[1], o["kind"]) for s, o in got] == [("a.yaml", "Pod"), ("b.json", "Namespace")]
    with pytest.raises(ManifestError) as e:
        load([str(tmp_path / "bin.yaml")])
    assert str(e.value) == f"error parsing {tmp_path}/bin.yaml: not UTF-8 text (byte 0x89 at offset 0): is it a manifest?"
    with pytest.raises(ManifestError) as e:
        load([str(tmp_path)])  # the directory holds bin.yaml too
    assert "not UTF-8 text" in str(e.value)
    (tmp_path / "bin.yaml").unlink()
    assert [o["kind"] for o in load([str(tmp_path)])] == ["Pod", "Namespace"]
    with pytest.raises(ManifestError, match=r'^the path ".*/missing.yaml" does not exist$'):
        load([str(tmp_path / "missing.yaml")])
    with pytest.raises(ManifestError, match=r"^unable to read URL \"https://example.com/a.yaml\": knet reads only"):
        load(["https://example.com/a.yaml"])
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "nothing.yaml").write_text("# only a comment\n")
    assert load([str(empty)]) == []


def test_a_repeated_key_is_refused_not_silently_dropped():
    """PyYAML and json keep the last of two equal keys; the JSON sent would
    then hide the repeat from the server's strict decoding."""
    assert refused(POD + "metadata:\n  name: again\n") == \
        'error parsing f.yaml: yaml: line 9, column 1: key "metadata" already set in map'
    assert refused("apiVersion: v1\nkind: Pod\nmetadata: {name: a, labels: {x: 1, x: 2}}\n").endswith(
        'line 3, column 36: key "x" already set in map')
    assert refused('{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "name": "b"}}', "p.json") == \
        'error parsing p.json: key "name" already set in map'
    # equal keys in different mappings, and repeated merge keys, are fine
    text = ("apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Pod, metadata: {name: a}}\n"
            "- {apiVersion: v1, kind: Pod, metadata: {name: b}}\n"
            "x: &x {k: 1}\ny: &y {j: 2}\nz: {<<: *x, <<: *y}\n")
    assert [o["metadata"]["name"] for o in parse(text, "f.yaml")] == ["a", "b"]


def test_whole_number_floats_become_integers_as_kubectl_sends_them():
    """kubectl's YAML-to-JSON writes `80.0` as 80 (Go's float encoding), so an
    int32 field given 80.0 is accepted; 80.5 stays a float for the server's
    typed decoding to refuse."""
    text = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: 80.0}, {port: 80.5}]\n"
    ports = parse(text, "svc.yaml")[0]["spec"]["ports"]
    assert ports == [{"port": 80}, {"port": 80.5}]
    assert type(ports[0]["port"]) is int
