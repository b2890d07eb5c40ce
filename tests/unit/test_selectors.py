"""Label and field selectors: kubectl syntax, API LabelSelector semantics, matching."""

import pytest

from knet.api.errors import ApiError
from knet.api.selectors import (
    EVERYTHING,
    NOTHING,
    parse_field_selector,
    parse_label_selector,
    selector_from_label_selector,
    selector_from_map,
)

LABELS = {"app": "web", "tier": "frontend", "env": "", "replicas": "3"}


@pytest.mark.parametrize("text, expected", [
    ("app=web", True),
    ("app==web", True),
    ("app=db", False),
    ("app!=db", True),
    ("app!=web", False),
    ("missing!=x", True),           # != matches objects without the key
    ("tier in (frontend,backend)", True),
    ("tier in (backend)", False),
    ("tier notin (backend)", True),
    ("tier notin (frontend)", False),
    ("missing notin (x)", True),
    ("app", True),
    ("missing", False),
    ("!missing", True),
    ("!app", False),
    ("env=", True),                 # an empty value is a value
    ("env in ()", True),            # as in apimachinery, () holds ""
    ("replicas>2", True),
    ("replicas<2", False),
    ("app>2", False),               # non-numeric labels never compare
    ("app=web,tier=frontend", True),
    ("app=web,tier=backend", False),
    ("  app = web ,  tier in ( frontend , backend )  ", True),
    ("", True),
])
def test_parse_and_match(text, expected):
    assert parse_label_selector(text).matches(LABELS) is expected


def test_canonical_text_is_sorted_and_round_trips():
    sel = parse_label_selector("tier in (b,a),app==web,!x, y")
    assert str(sel) == "app=web,tier in (a,b),!x,y"
    assert parse_label_selector(str(sel)) == sel


def test_empty_selector():
    assert parse_label_selector("").empty
    assert not parse_label_selector("app").empty
    assert not NOTHING.empty
    assert EVERYTHING.matches(None)


@pytest.mark.parametrize("text, message", [
    ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
    ("a in (x", "unable to parse requirement: found '', expected: ',' or ')'"),
    ("a in x", "unable to parse requirement: found 'x' expected: '('"),
    ("a,", "unable to parse requirement: found '', expected: identifier after ','"),
    ("a=b c", "unable to parse requirement: found 'c', expected: ',' or 'end of string'"),
    ("a>x", "unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer"),
    (",a", "unable to parse requirement: found ',', expected: !, identifier, or 'end of string'"),
])
def test_syntax_errors_are_bad_requests(text, message):
    with pytest.raises(ApiError) as exc:
        parse_label_selector(text)
    assert exc.value.code == 400
    assert exc.value.message == message


def test_invalid_key_and_value_are_rejected():
    with pytest.raises(ApiError) as exc:
        parse_label_selector("-app=web")
    assert exc.value.message.startswith('unable to parse requirement: Invalid value: "-app": name part must consist of')
    with pytest.raises(ApiError):
        parse_label_selector("app=-web")


def test_label_selector_object_semantics():
    assert selector_from_label_selector(None).matches(LABELS) is False
    assert selector_from_label_selector({}).matches({}) is True
    sel = selector_from_label_selector({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["frontend", "backend"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "env", "operator": "Exists"},
        ],
    })
    assert str(sel) == "app=web,!canary,env,tier in (backend,frontend)"
    assert sel.matches(LABELS)
    assert not sel.matches({**LABELS, "canary": "yes"})


@pytest.mark.parametrize("sel", [
    {"matchExpressions": [{"key": "a", "operator": "Contains", "values": ["x"]}]},
    {"matchExpressions": [{"key": "a", "operator": "In"}]},
    {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
    {"matchLabels": {"bad key": "x"}},
    "app=web",
])
def test_invalid_label_selector_objects(sel):
    with pytest.raises(ApiError) as exc:
        selector_from_label_selector(sel)
    assert exc.value.code == 400


def test_map_selectors():
    assert selector_from_map(None).matches(LABELS) is False
    assert selector_from_map({}).matches(LABELS) is False
    assert selector_from_map({}, match_all_if_empty=True).matches(LABELS) is True
    sel = selector_from_map({"tier": "frontend", "app": "web"})
    assert str(sel) == "app=web,tier=frontend"
    assert sel.matches(LABELS) and not sel.matches({"app": "web"})


POD = {
    "metadata": {"name": "web-1", "namespace": "default"},
    "spec": {"nodeName": "node-1", "restartPolicy": "Always"},
    "status": {"phase": "Running", "podIPs": [{"ip": "10.244.1.5"}]},
}


def test_field_selector_parse_and_match():
    fs = parse_field_selector("status.phase!=Pending,spec.nodeName==node-1")
    assert fs.requirements == (("spec.nodeName", "=", "node-1"), ("status.phase", "!=", "Pending"))
    assert fs.requirements[0].path == "spec.nodeName"
    assert fs.exact("spec.nodeName") == "node-1"
    assert fs.exact("status.phase") is None
    assert fs.matches(POD)
    assert not parse_field_selector("spec.nodeName=node-2").matches(POD)
    assert parse_field_selector("spec.nodeName=").matches({"spec": {}})  # unscheduled pods
    assert parse_field_selector("spec.hostNetwork=false").matches(POD)
    assert parse_field_selector("status.podIPs=10.244.1.5").matches(POD)
    assert str(fs) == "spec.nodeName=node-1,status.phase!=Pending"
    assert parse_field_selector("").empty


def test_field_selector_escapes():
    fs = parse_field_selector(r"metadata.name=a\,b\=c")
    assert fs.requirements[0].value == "a,b=c"
    assert fs.matches({"metadata": {"name": "a,b=c"}})
    assert str(fs) == r"metadata.name=a\,b\=c"


@pytest.mark.parametrize("text, message", [
    ("spec.nodeName", "invalid selector: 'spec.nodeName'; can't understand 'spec.nodeName'"),
    ("=x", "invalid selector: '=x'; can't understand '=x'"),
    (r"metadata.name=a\x", r"invalid field selector: invalid escape sequence: \x"),
])
def test_field_selector_errors(text, message):
    with pytest.raises(ApiError) as exc:
        parse_field_selector(text)
    assert exc.value.code == 400 and exc.value.message == message


def test_field_labels_per_kind():
    assert parse_field_selector("spec.nodeName=n1", kind="Pod").exact("spec.nodeName") == "n1"
    assert parse_field_selector("metadata.name=x", kind="Service").exact("metadata.name") == "x"
    with pytest.raises(ApiError) as exc:
        parse_field_selector("spec.nodeName=n1", kind="Service")
    assert exc.value.message == "field label not supported: spec.nodeName"
    event = {"involvedObject": {"kind": "Pod"}, "source": {"component": "kubelet"}}
    assert parse_field_selector("source=kubelet,involvedObject.kind=Pod", kind="Event").matches(event)
