"""knet.cli.jsonpath against client-go's jsonpath: cases transcribed from
upstream's jsonpath_test.go and parser_test.go (Go structs written as the
JSON objects kubectl hands the engine), and the same templates run through the
real kubectl (`kubectl label --local -o jsonpath=`, no server needed) to
compare byte for byte."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from knet.cli.jsonpath import JSONPath, JSONPathError, go_sharp_v

KUBECTL = Path(sys.executable).with_name("kubectl")


def run(template: str, data: object, allow_missing: bool = False) -> str:
    return JSONPath(template, allow_missing_keys=allow_missing).execute(data)


TYPES = {
    "bools": [True, False, True, False],
    "integers": [1, 2, 3, 4],
    "floats": [1.0, 2.2, 3.3, 4.0],
    "strings": ["one", "two", "three", "four"],
    "interfaces": [True, "one", 1, 1.1],
    "maps": [{"name": "one", "value": 1}, {"name": "two", "value": 2.02},
             {"name": "three", "value": 3.03}, {"name": "four", "value": 4.04}],
}


@pytest.mark.parametrize("template,expected", [
    ("{ .bools }", "[true,false,true,false]"),
    ("{ .bools[0] }", "true"),
    ("{ .bools[-1] }", "false"),
    ("{ .bools[0:2] }", "true false"),
    ("{ .bools[:2] }", "true false"),
    ("{ .bools[:4:2] }", "true true"),
    ("{ .integers }", "[1,2,3,4]"),
    ("{ .integers[-2] }", "3"),
    ("{ .integers[:4:2] }", "1 3"),
    ("{ .floats }", "[1,2.2,3.3,4]"),
    ("{ .floats[0] }", "1"),
    ("{ .floats[-2] }", "3.3"),
    ("{ .floats[:4:2] }", "1 3.3"),
    ("{ .strings }", '["one","two","three","four"]'),
    ("{ .strings[-2] }", "three"),
    ("{ .strings[:4:2] }", "one three"),
    ("{ .interfaces }", '[true,"one",1,1.1]'),
    ("{ .interfaces[0:2] }", "true one"),
    ("{ .interfaces[:4:2] }", "true 1"),
    ("{ .maps }", '[{"name":"one","value":1},{"name":"two","value":2.02},{"name":"three","value":3.03},'
                  '{"name":"four","value":4.04}]'),
    ("{ .maps[-2] }", '{"name":"three","value":3.03}'),
    ("{ .maps[::2] }", '{"name":"one","value":1} {"name":"three","value":3.03}'),
    ("{ .maps[1::2] }", '{"name":"two","value":2.02} {"name":"four","value":4.04}'),
])
def test_types_input(template, expected):
    assert run(template, TYPES) == expected


STORE = {
    "Name": "jsonpath",
    "Book": [{"Category": "reference", "Author": "Nigel Rees", "Title": "Sayings of the Centurey", "Price": 8.95},
             {"Category": "fiction", "Author": "Evelyn Waugh", "Title": "Sword of Honour", "Price": 12.99},
             {"Category": "fiction", "Author": "Herman Melville", "Title": "Moby Dick", "Price": 8.99}],
    "Bicycle": [{"Color": "red", "Price": 19.95, "IsNew": True}, {"Color": "green", "Price": 20.01, "IsNew": False}],
    "Labels": {"engieer": 10, "web/html": 15, "k8s-app": 20},
    "Employees": {"jason": "manager", "dan": "clerk"},
}


@pytest.mark.parametrize("template,data,expected", [
    ("hello jsonpath", None, "hello jsonpath"),
    ("{..}", [1, 2, 3], "[1,2,3]"),
    ("{[?(@<5)]}", [2, 6, 3, 7], "2 3"),
    ('{"{"}', None, "{"),
    ("{[1,3,4]}", [0, 1, 2, 3, 4], "1 3 4"),
    ("{[0:2]}", ["Monday", "Tudesday"], "Monday Tudesday"),
    ("hello {.Name}", STORE, "hello jsonpath"),
    ("{$.Labels.web/html}", STORE, "15"),
    ("{$.Employees.jason}", STORE, "manager"),
    ("{.Labels.k8s-app}", STORE, "20"),
    ("{.Bicycle[*].Color}", STORE, "red green"),
    ("{.Book[*].Author}", STORE, "Nigel Rees Evelyn Waugh Herman Melville"),
    # upstream's struct visits Book before Bicycle; a map's keys come sorted here
    ("{..Price}", STORE, "19.95 20.01 8.95 12.99 8.99"),
    ("{...Price}", STORE, "19.95 20.01 8.95 12.99 8.99"),
    ("{.Book[-1:]}", STORE, '{"Author":"Herman Melville","Category":"fiction","Price":8.99,"Title":"Moby Dick"}'),
    ("{..Book[2]}", STORE, '{"Author":"Herman Melville","Category":"fiction","Price":8.99,"Title":"Moby Dick"}'),
    ("{.Bicycle[?(@.IsNew==true)]}", STORE, '{"Color":"red","IsNew":true,"Price":19.95}'),
    # Go visits map keys in random order; knet sorts them (one of kubectl's orders).
    ('{range .Bicycle[*]}{ "{" }{ @.* }{ "} " }{end}', STORE, "{red true 19.95} {green false 20.01} "),
])
def test_struct_input(template, data, expected):
    assert run(template, data) == expected


@pytest.mark.parametrize("template,expected", [
    ("{hello}", "unrecognized identifier hello"),
    ("{.hello}", "hello is not found"),
    ("{.Labels[0]}", "map[string]interface {} is not array or slice"),
    ("{.Book[?(@.Price<>10)]}", "unrecognized filter operator <>"),
    ("{range .Labels.*}{@}{end}{end}", "not in range, nothing to end"),
])
def test_execution_errors(template, expected):
    with pytest.raises(JSONPathError) as e:
        run(template, STORE)
    assert str(e.value) == expected


def test_missing_keys_print_nothing_when_allowed():
    assert run("{.hello}", STORE, allow_missing=True) == ""
    assert run("before-{.hello}after", STORE, allow_missing=True) == "before-after"
    assert JSONPath("{.hello}").execute(STORE) == ""  # kubectl's default: allowed


@pytest.mark.parametrize("template,expected", [
    ("{.hello", "unclosed action"),
    ("{*}", "unrecognized character in action: U+002A '*'"),
    ("{+12.3.0}", "cannot parse number +12.3.0"),
    ("{[1}", "unterminated array"),
    ("{[?(.price]}", "unterminated filter"),
    ("{........}", "invalid multiple recursive descent"),
    ("{............................................................Price}", "invalid multiple recursive descent"),
    ('{"abc}', "unterminated quoted string"),
    ("{[a]}", "invalid array index a"),
])
def test_parse_errors(template, expected):
    with pytest.raises(JSONPathError) as e:
        JSONPath(template)
    assert str(e.value) == expected


@pytest.mark.parametrize("template", [
    '{[?(@.status.nodeInfo.osImage == "()")]}',
    '{[?(@.status.nodeInfo.osImage == "(\\"\\")")]}',
    '{[?(@.test == "())(")]}',
    "{[?(@.status.nodeInfo.osImage == 'Linux')]}",
    '{[?(@.status.nodeInfo.osImage == "{[()]}")]}',
    "{[?(@.status.nodeInfo.osImage == \"''\")]}",
    "{[?(@.status.nodeInfo.osImage == '\"\"')]}",
    "{[?(@.status.nodeInfo.osImage == '\\\\\\'')]}",
    "{['book.price']}", "{['bicycle.price', 3, 'book.price']}", "{range .items}{.name},{end}",
    "{[-5:]}", "{[-1]}", "{[1:-1]}",
])
def test_parses_what_upstream_parses(template):
    JSONPath(template)


POINTS = json.loads("""[
    {"id": "i1", "x":4, "y":-5}, {"id": "i2", "x":-2, "y":-5, "z":1}, {"id": "i3", "x":  8, "y":  3 },
    {"id": "i4", "x": -6, "y": -1 }, {"id": "i5", "x":  0, "y":  2, "z": 1 }, {"id": "i6", "x":  1, "y":  4 },
    {"id": "i7", "x":  null, "y":  4 }]""")


def test_json_input():
    assert run("{[?(@.z)].id}", POINTS) == "i2 i5"
    assert run("{[0]['id']}", POINTS) == "i1"
    assert run("{[-1]['x']}", POINTS) == "null"


NODES = json.loads("""{
  "kind": "List",
  "items":[
    {"kind":"None", "metadata":{"name":"127.0.0.1", "labels":{"kubernetes.io/hostname":"127.0.0.1"}},
     "status":{"capacity":{"cpu":"4"}, "ready": true, "addresses":[{"type": "LegacyHostIP", "address":"127.0.0.1"}]}},
    {"kind":"None", "metadata":{"name":"127.0.0.2", "labels":{"kubernetes.io/hostname":"127.0.0.2"}},
     "status":{"capacity":{"cpu":"8"}, "ready": false, "addresses":[
        {"type": "LegacyHostIP", "address":"127.0.0.2"}, {"type": "another", "address":"127.0.0.3"}]}}
  ],
  "users":[{"name": "myself", "user": {}}, {"name": "e2e", "user": {"username": "admin", "password": "secret"}}]
}""")


@pytest.mark.parametrize("template,expected", [
    ("{range .items[*]}{.metadata.name}, {end}{.kind}", "127.0.0.1, 127.0.0.2, List"),
    ('{range .items[*]}{.metadata.name}{"\\t"}{end}', "127.0.0.1\t127.0.0.2\t"),
    ("{.items[*].status.addresses[*].address}", "127.0.0.1 127.0.0.2 127.0.0.3"),
    ("{range .items[*]}{range .status.addresses[*]}{.address}, {end}{end}", "127.0.0.1, 127.0.0.2, 127.0.0.3, "),
    ("{.items[*].metadata.name}", "127.0.0.1 127.0.0.2"),
    ("{.items[*]['metadata.name', 'status.capacity']}", '127.0.0.1 127.0.0.2 {"cpu":"4"} {"cpu":"8"}'),
    ("{range .items[*]}[{.metadata.name}, {.status.capacity}] {end}", '[127.0.0.1, {"cpu":"4"}] [127.0.0.2, {"cpu":"8"}] '),
    ('{.users[?(@.name=="e2e")].user.password}', "secret"),
    ("{.items[0].metadata.labels.kubernetes\\.io/hostname}", "127.0.0.1"),
    ('{.items[?(@.metadata.labels.kubernetes\\.io/hostname=="127.0.0.1")].kind}', "None"),
    ("{.items[?(@..ready==true)].metadata.name}", "127.0.0.1"),
])
def test_kubernetes(template, expected):
    assert run(template, NODES) == expected


def test_recursive_descent_visits_every_name():
    assert sorted(run("{..name}", NODES).split()) == sorted(["127.0.0.1", "127.0.0.2", "myself", "e2e"])


def test_empty_and_nested_ranges():
    empty = {"items": []}
    assert run("{range .items[*]}{.metadata.name}{end}", empty, True) == ""
    assert run('{range .items[*]}{.metadata.name}{":"}{range @.spec.containers[*]}{.name}{","}{end}{"+"}{end}',
               empty, True) == ""
    pods = {"items": [
        {"metadata": {"name": "pod1"}, "spec": {"containers": [
            {"name": "foo", "another": [{"name": "value1"}, {"name": "value2"}]},
            {"name": "bar", "another": [{"name": "value1"}, {"name": "value2"}]}]}},
        {"metadata": {"name": "pod2"}, "spec": {"containers": [
            {"name": "baz", "another": [{"name": "value1"}, {"name": "value2"}]}]}}]}
    assert run('{range .items[*]}{.metadata.name}{":"}{range @.spec.containers[*]}{.name}{","}{end}{"+"}{end}',
               pods) == "pod1:foo,bar,+pod2:baz,+"
    assert run('{range .items[*]}{.metadata.name}{"~"}{range @.spec.containers[*]}{.name}{":"}'
               '{range @.another[*]}{.name}{","}{end}{"+"}{end}{"#"}{end}', pods) == \
        "pod1~foo:value1,value2,+bar:value1,value2,+#pod2~baz:value1,value2,+#"
    assert run('{range .items[*]}{.metadata.name}{"\\t"}{range @.spec.containers[*]}{.name}{" "}{end}{"\\t"}'
               '{range @.spec.containers[*]}{.name}{" "}{end}{"\\n"}{end}', pods) == \
        "pod1\tfoo bar \tfoo bar \npod2\tbaz \tbaz \n"


def test_filter_with_some_keys_missing():
    data = {"kind": "List", "items": [
        {"kind": "Pod", "metadata": {"name": "pod1", "annotations": {"color": "blue"}}},
        {"kind": "Pod", "metadata": {"name": "pod2"}},
        {"kind": "Pod", "metadata": {"name": "pod3", "annotations": {"color": "green"}}},
        {"kind": "Pod", "metadata": {"name": "pod4", "annotations": {"color": "blue"}}}]}
    template = '{.items[?(@.metadata.annotations.color=="blue")].metadata.name}'
    assert run(template, data, allow_missing=True) == "pod1 pod4"
    with pytest.raises(JSONPathError):
        run(template, data, allow_missing=False)
    running = {"kind": "List", "items": [{"kind": "Pod", "metadata": {"name": f"pod{i}"},
                                          "status": {"phase": "Running"}} for i in (1, 2, 3)] + [{"resourceVersion": ""}]}
    assert run('{range .items[?(.status.phase=="Running")]}{.metadata.name}{" is Running\\n"}{end}', running, True) \
        == "pod1 is Running\npod2 is Running\npod3 is Running\n"


CONTAINERS = {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [
    {"image": "radial/busyboxplus:curl", "name": f"fake{i}"} for i in range(6)]}}


@pytest.mark.parametrize("template,expected", [
    ("{.spec.containers[0].name}", "fake0"),
    ("{.spec.containers[0:0].name}", ""),
    ("{.spec.containers[0:-1].name}", "fake0 fake1 fake2 fake3 fake4"),
    ("{.spec.containers[-1].name}", "fake5"),
    ("{.spec.containers[-1:].name}", "fake5"),
    ("{.spec.containers[-2:].name}", "fake4 fake5"),
    ("{.spec.containers[-6].name}", "fake0"),
    ("{.spec.containers[6:6].name}", ""),
    ("{.spec.containers[-7:-7].name}", ""),
    ("{.spec.containers[0:6:].name}", "fake0 fake1 fake2 fake3 fake4 fake5"),
    ("{.spec.containers[1:4:2].name}", "fake1 fake3"),
    ("{.spec.containers[1:4:4].name}", "fake1"),
    ("{.spec.containers[0:6:5].name}", "fake0 fake5"),
])
def test_slices_and_steps(template, expected):
    assert run(template, CONTAINERS) == expected


@pytest.mark.parametrize("template,expected", [
    ("{.spec.containers[-1:0].name}", "starting index 5 is greater than ending index 0"),
    ("{.spec.containers[-7].name}", "array index out of bounds: index -1, length 6"),
    ("{.spec.containers[3:1].name}", "starting index 3 is greater than ending index 1"),
    ("{.spec.containers[0:6:0].name}", "step must be > 0"),
    ("{.spec.containers[0:6:-1].name}", "step must be > 0"),
    ("{.spec.containers[9].name}", "array index out of bounds: index 9, length 6"),
])
def test_slice_errors(template, expected):
    with pytest.raises(JSONPathError) as e:
        run(template, CONTAINERS)
    assert str(e.value) == expected


def test_go_sharp_v_is_what_kubectl_shows_of_the_object():
    assert go_sharp_v({"b": [1, 1.5, None, True], "a": "x\"y"}) == \
        'map[string]interface {}{"a":"x\\"y", "b":[]interface {}{1, 1.5, interface {}(nil), true}}'


# -- the real kubectl as the oracle ---------------------------------------------------------

POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "wéb", "labels": {"app": "web"},
                    "annotations": {"note": "a<b & c>d", "multi": "line1\nline2"}},
       "spec": {"containers": [{"name": "a", "image": "nginx", "ports": [{"containerPort": 80}]},
                               {"name": "b", "image": "busybox"}]},
       "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
                  "x": None, "f": 1.5, "big": 1000000.0, "small": 0.000001, "l": [1.0, 2.5]}}

ORACLE_TEMPLATES = [
    "{.metadata.name}", "{.}", "{@}", "{.metadata.annotations}", "{.metadata.annotations.note}",
    "{.spec.containers[*].name}", "{.spec.containers[0].ports[0].containerPort}", "{.status.x}",
    "{.status.f} {.status.big} {.status.small}", "{.status.l}", "{.nope}", "{.nope.deeper}",
    "hello {.metadata.name} world", '{range .spec.containers[*]}{.name}{"\\t"}{.image}{"\\n"}{end}',
    '{.status.conditions[?(@.type=="Ready")].status}', '{.status.conditions[?(@.type!="Ready")].type}',
    "{.status.conditions[?(@.status)].type}", "{.status.conditions[?(@.nope)].type}",
    "{.spec.containers[0:1].name}", "{.spec.containers[-1:].name}", "{.spec.containers[5].name}",
    "{.spec.containers[1:0].name}", "{.spec.containers[*]['name', 'image']}", "{..containerPort}", "{..image}",
    "{.spec.containers[?(@.ports[0].containerPort>79)].name}", '{.spec.containers[?(@.name<"b")].name}',
    '{.spec.containers[?(@.name==1)].name}', "{range .spec.containers[*]}[{.name}]{end}{.kind}", "{end}",
    "{range .spec.containers[*]}{.name}", "{foo}", "{.items[}", "{.metadata.name", '{"a\\"b"}', "{.spec}",
    "{['metadata.name', 'kind']}", "{.spec.containers[*].ports[*].containerPort}", "{*}", "{....name}",
    "{true}", "{1.5}", "{12}", "{.metadata}", '{"<&>"}',
]


def _kubectl_jsonpath(tmp_path: Path, template: str, allow_missing: bool) -> str:
    """What kubectl prints for the template (or its error, shortened to the engine's words)."""
    manifest = tmp_path / "pod.json"
    manifest.write_text(json.dumps(POD))
    r = subprocess.run([str(KUBECTL), "label", "--local", "-f", str(manifest), "zz=1", "-o", "jsonpath=" + template,
                        f"--allow-missing-template-keys={str(allow_missing).lower()}"],
                       capture_output=True, text=True, env={**os.environ, "KUBECONFIG": str(tmp_path / "none")},
                       timeout=60)
    if r.returncode == 0:
        return r.stdout
    line = r.stderr.split("\n")[0]
    if line.startswith("error: error executing jsonpath"):
        return "ERR:" + line.split("Error executing template: ", 1)[1].removesuffix(
            ". Printing more information for debugging the template:")
    return "ERR:" + line.split(", ", 1)[1]


def _knet_jsonpath(template: str, allow_missing: bool) -> str:
    pod = json.loads(json.dumps(POD))
    pod["metadata"]["labels"]["zz"] = "1"
    try:
        return JSONPath(template, allow_missing_keys=allow_missing).execute(pod)
    except JSONPathError as e:
        return f"ERR:{e}"


def test_same_output_as_kubectl(tmp_path):
    differences = []
    for template in ORACLE_TEMPLATES:
        for allow in (True, False):
            theirs, ours = _kubectl_jsonpath(tmp_path, template, allow), _knet_jsonpath(template, allow)
            if theirs != ours:
                differences.append((template, allow, theirs, ours))
    assert differences == []
