"""Decoding request bodies as kube-apiserver does: Go's type errors word for
word, unknown fields pruned and reported per fieldValidation, duplicate keys,
bounded depth, and a schema that covers every served kind."""

import json
from pathlib import Path

import pytest
import yaml

from knet.api import schema
from knet.api.decode import MAX_DEPTH, decode_body, decode_typed, parse_json, warning_header
from knet.api.errors import ApiError
from knet.api.resources import RESOURCES, by_kind

POD, SVC, DEPLOY = by_kind("Pod"), by_kind("Service"), by_kind("Deployment")
DATA = Path(__file__).resolve().parents[1] / "data"


def body(obj) -> bytes:
    return obj if isinstance(obj, bytes) else json.dumps(obj).encode()


def refused(res, obj, mode=None, method="POST", name=None) -> ApiError:
    with pytest.raises(ApiError) as e:
        decode_body(res, body(obj), method, mode, name)
    return e.value


def svc_port(**port):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [port]}}


HANDLED = 'Service in version "v1" cannot be handled as a Service: '


@pytest.mark.parametrize("port, found", [
    ("80", "string"), (80.5, "number 80.5"), (80.0, "number 80.0"), (1e3, "number 1000.0"),
    (2 ** 31, "number 2147483648"), (True, "bool"), ([80], "array"), ({"n": 80}, "object"),
])
def test_a_wrong_type_for_an_int32_is_a_400_never_coerced(port, found):
    e = refused(SVC, svc_port(port=port))
    assert (e.code, e.reason) == (400, "BadRequest")
    assert e.message == HANDLED + (f"json: cannot unmarshal {found} into Go struct field "
                                   "ServicePort.spec.ports.port of type int32")


def test_number_literals_are_named_as_sent():
    raw = b'{"spec": {"ports": [{"port": 8e1}]}}'
    assert refused(SVC, raw).message.endswith("cannot unmarshal number 8e1 into Go struct field "
                                               "ServicePort.spec.ports.port of type int32")


@pytest.mark.parametrize("spec, message", [
    ({"ports": {"port": 80}}, "cannot unmarshal object into Go struct field ServiceSpec.spec.ports of type []v1.ServicePort"),
    ({"selector": ["app"]}, "cannot unmarshal array into Go struct field ServiceSpec.spec.selector of type map[string]string"),
    ({"selector": {"app": 1}}, "cannot unmarshal number into Go struct field ServiceSpec.spec.selector of type string"),
    ({"type": 1}, "cannot unmarshal number into Go struct field ServiceSpec.spec.type of type v1.ServiceType"),
    ({"ports": [{"port": 80, "targetPort": 1.5}]},
     "cannot unmarshal number 1.5 into Go struct field ServicePort.spec.ports.targetPort of type int32"),
    ({"ports": [{"port": 80, "targetPort": False}]},
     "cannot unmarshal bool into Go struct field ServicePort.spec.ports.targetPort of type int32"),
    ({"publishNotReadyAddresses": "yes"},
     "cannot unmarshal string into Go struct field ServiceSpec.spec.publishNotReadyAddresses of type bool"),
    ({"sessionAffinityConfig": "x"},
     "cannot unmarshal string into Go struct field ServiceSpec.spec.sessionAffinityConfig of type v1.SessionAffinityConfig"),
])
def test_type_errors_name_the_struct_the_field_path_and_the_go_type(spec, message):
    e = refused(SVC, {"spec": spec})
    assert e.message == HANDLED + "json: " + message


def test_the_first_type_error_wins_and_paths_have_no_indices():
    pod = {"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": 7, "ports": "x"}]}}
    assert refused(POD, pod).message == ('Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal '
                                         "number into Go struct field Container.spec.containers.image of type string")
    deploy = {"spec": {"template": {"spec": {"containers": [{"name": "a", "ports": [{"containerPort": "80"}]}]}}}}
    assert refused(DEPLOY, deploy).message.endswith(
        "Go struct field ContainerPort.spec.template.spec.containers.ports.containerPort of type int32")


def test_quantities_times_and_int_or_strings():
    raw = b'{"spec": {"containers": [{"resources": {"limits": {"cpu": "500m", "memory": 1e3, "pods": 2}}}]}}'
    ok, _ = decode_body(POD, raw, "POST")
    assert ok["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "500m", "memory": "1e3", "pods": "2"}
    assert "quantities must match the regular expression" in refused(
        POD, {"spec": {"containers": [{"resources": {"limits": {"cpu": "lots"}}}]}}).message
    assert refused(POD, {"spec": {"containers": [{"resources": {"limits": {"cpu": "1Mm"}}}]}}).message.endswith(
        "unable to parse quantity's suffix")
    assert refused(POD, {"metadata": {"creationTimestamp": 5}}).message.endswith(
        "cannot unmarshal number into Go struct field ObjectMeta.metadata.creationTimestamp of type string")
    assert "parsing time" in refused(POD, {"metadata": {"creationTimestamp": "yesterday"}}).message
    ok, _ = decode_typed({"spec": {"ports": [{"port": 80, "targetPort": "http"}]}}, "Service")
    assert ok["spec"]["ports"][0]["targetPort"] == "http"


def test_nulls_are_absent_but_a_patch_keeps_them_to_delete():
    obj, _ = decode_typed({"metadata": {"name": "a", "labels": None}, "spec": {"containers": [None]}}, "Pod")
    assert obj == {"metadata": {"name": "a"}, "spec": {"containers": [{}]}}
    patch, _ = decode_typed({"metadata": {"labels": {"app": None}}, "spec": {"nodeName": None}}, "Pod", patch=True)
    assert patch == {"metadata": {"labels": {"app": None}}, "spec": {"nodeName": None}}


def test_unknown_fields_are_pruned_in_every_mode():
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "nmae": "x"},
           "spec": {"containers": [{"name": "c", "image": "i", "prots": [{"containerPort": 80}]}], "Spec": 1},
           "extra": {"deep": [1, 2]}}
    clean = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
             "spec": {"containers": [{"name": "c", "image": "i"}]}}
    unknown = ['unknown field "extra"', 'unknown field "metadata.nmae"', 'unknown field "spec.Spec"',
               'unknown field "spec.containers[0].prots"']
    assert decode_body(POD, body(pod), "POST", "Ignore") == (clean, [])
    obj, warnings = decode_body(POD, body(pod), "POST", None)  # Warn is the default, as upstream
    assert obj == clean and sorted(warnings) == unknown
    e = refused(POD, pod, "Strict")
    assert (e.code, e.reason) == (400, "BadRequest")
    assert e.message.startswith('Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown field "')
    assert sorted(e.message.split(": strict decoding error: ")[1].split(", ")) == unknown


def test_strict_names_the_typo_as_kubectl_shows_it():
    pod = {"spec": {"containers": [{"name": "c", "image": "i", "prots": [{"containerPort": 80}]}]}}
    assert refused(POD, pod, "Strict").message == (
        'Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown field "spec.containers[0].prots"')


def test_duplicate_keys_are_strict_errors_with_their_path():
    raw = b'{"metadata": {"name": "a", "labels": {"app": "x", "app": "y"}, "name": "b"}}'
    assert refused(POD, raw, "Strict").message == (
        'Pod in version "v1" cannot be handled as a Pod: strict decoding error: '
        'duplicate field "metadata.labels.app", duplicate field "metadata.name"')
    obj, warnings = decode_body(POD, raw, "POST", "Warn")
    assert obj["metadata"] == {"name": "b", "labels": {"app": "y"}}  # the last value wins, as in Go
    assert warnings == ['duplicate field "metadata.labels.app"', 'duplicate field "metadata.name"']


def test_a_type_error_trumps_strict_errors():
    e = refused(POD, {"spec": {"bogus": 1, "nodeName": 5}}, "Strict")
    assert "cannot unmarshal number into Go struct field PodSpec.spec.nodeName" in e.message
    assert "strict decoding error" not in e.message


def test_strict_errors_are_capped_and_deduplicated():
    many = {f"f{i}": i for i in range(150)}
    _, warnings = decode_body(POD, body({"spec": many}), "POST", "Warn")
    assert len(warnings) == 100
    raw = b'{"spec": {"x": 1, "x": 2}}'  # an unknown field is reported once, not also as a duplicate
    _, warnings = decode_body(POD, raw, "POST", "Warn")
    assert warnings == ['unknown field "spec.x"']


def test_a_patch_is_refused_at_the_patch_field_as_upstream_does():
    patch = {"spec": {"containers": [{"name": "c", "prots": []}]}}
    e = refused(POD, patch, "Strict", "PATCH", "web")
    assert (e.code, e.reason) == (422, "Invalid")
    assert e.details["causes"][0]["field"] == "patch"
    assert e.message.startswith('Pod "web" is invalid: patch: Invalid value: ')
    assert e.message.endswith(': strict decoding error: unknown field "spec.containers[0].prots"')
    e = refused(SVC, {"spec": {"ports": [{"port": "80"}]}}, None, "PATCH", "web")
    assert e.code == 422 and e.message.endswith(
        ": json: cannot unmarshal string into Go struct field ServicePort.spec.ports.port of type int32")


def test_an_unknown_field_validation_value_is_refused():
    e = refused(POD, {}, "strict")
    assert e.code == 422
    assert e.message == ('CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "strict": '
                         'supported values: "", "Ignore", "Strict", "Warn"')


@pytest.mark.parametrize("raw, message", [
    (b"", "the request has no body"),
    (b"\xff\xfe", "the request body is not valid UTF-8"),
    (b'{"a": NaN}', "the request body is not valid JSON"),
    (b'{"a": ', "the request body is not valid JSON"),
    (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "nested too deeply: more than 100 levels"),
    (b"[" * 100000 + b"]" * 100000, "nested too deeply: more than 100 levels"),
    (b'{"metadata": {"annotations": ' + b'{"a": ' * 200 + b"1" + b"}" * 200 + b"}}", "nested too deeply"),
])
def test_unparseable_bodies_are_clean_400s(raw, message):
    e = refused(POD, raw)
    assert (e.code, e.reason) == (400, "BadRequest") and message in e.message


def test_depth_up_to_the_limit_is_fine():
    nested = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert parse_json(nested) is not None


def test_a_body_that_is_not_an_object():
    assert refused(POD, [1]).message.startswith(
        "couldn't get version/kind; json parse error: json: cannot unmarshal array into Go value of type struct")


def test_warning_headers_are_quoted_and_stay_on_one_line():
    assert warning_header('unknown field "spec.prots"') == r'299 - "unknown field \"spec.prots\""'
    assert "\n" not in warning_header('unknown field "a\nb\u00e9"')


# -- the schema itself ---------------------------------------------------------------


def _types(t: str):
    if t.startswith("[]"):
        yield from _types(t[2:])
    elif t.startswith("map[string]"):
        yield from _types(t[len("map[string]"):])
    else:
        yield t


def test_schema_is_closed_and_covers_every_served_kind():
    # Each served kind decodes into the struct named as its kind (its Go type).
    assert all(r.kind in schema.STRUCTS for r in RESOURCES)
    for struct, fields in schema.STRUCTS.items():
        for name, t in fields.items():
            for leaf in _types(schema.ALIASES.get(t, t)):
                leaf = schema.ALIASES.get(leaf, leaf)
                for inner in _types(leaf):
                    assert inner in schema.STRUCTS or inner in schema.NAMED_STRINGS or inner in schema.SCALARS, (
                        f"{struct}.{name}: {t}")


@pytest.mark.parametrize("path", sorted((DATA / "valid").glob("*.yaml")) + sorted((DATA / "invalid").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_the_manifest_corpus_has_no_field_the_schema_lacks(path):
    """Real-world manifests (the shared corpus) decode with no unknown field:
    what they spell, the schema knows."""
    obj = yaml.safe_load(path.read_text())
    _, strict = decode_typed(obj, obj["kind"])
    assert strict == []
