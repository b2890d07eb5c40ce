"""The shared manifest corpus: every invalid manifest is rejected at the field its
`# field:` header names; every valid one is accepted, defaulted or not.

The same files are replayed against a live API server, so the header format
(first line, `# field: <path>`) is part of the contract."""

import re
from pathlib import Path

import pytest
import yaml

from knet.api.defaults import apply_defaults
from knet.api.errors import Invalid
from knet.api.resources import RESOURCES
from knet.api.validation import validate

DATA = Path(__file__).resolve().parents[1] / "data"
INVALID = sorted((DATA / "invalid").glob("*.yaml"))
VALID = sorted((DATA / "valid").glob("*.yaml"))
HEADER = re.compile(r"# field: (\S+)")
NAME = re.compile(r"\d\d-[a-z0-9-]+\.yaml")


def load(path: Path) -> dict:
    docs = list(yaml.safe_load_all(path.read_text()))
    assert len(docs) == 1, f"{path.name} must hold exactly one object"
    return docs[0]


def declared_field(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    m = HEADER.fullmatch(first)
    assert m, f"{path.name}: first line must be '# field: <path>', got {first!r}"
    return m.group(1)


def test_corpus_shape():
    assert len(INVALID) >= 60 and len(VALID) >= 10
    for path in INVALID + VALID:
        assert NAME.fullmatch(path.name), path.name
    kinds = {load(p)["kind"] for p in INVALID}
    assert kinds == {r.kind for r in RESOURCES}


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_manifest_is_rejected_at_declared_field(path):
    field = declared_field(path)
    with pytest.raises(Invalid) as exc:
        validate(apply_defaults(load(path)))
    causes = [c["field"] for c in exc.value.details["causes"]]
    assert field in causes, exc.value.message


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_manifest_is_accepted(path):
    validate(load(path))
    validate(apply_defaults(load(path)))
