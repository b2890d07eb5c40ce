"""Reading manifests: files, directories and stdin; multi-document YAML and
`kind: List`, exactly what `kubectl apply -f` accepts."""

from __future__ import annotations

import json
import os
import sys


class ManifestError(ValueError):
    pass


def _load_text(text: str, source: str) -> list[dict]:
    docs = None
    if text.lstrip().startswith("{"):  # JSON needs no YAML parser (whose import is most of a quick apply)
        try:
            docs = [json.loads(text)]
        except json.JSONDecodeError:
            pass  # YAML flow style also starts with "{"
    if docs is None:
        import yaml

        try:  # libyaml's parser where PyYAML has it: several times faster on big files
            docs = list(yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
        except yaml.YAMLError as e:
            raise ManifestError(f"{source}: invalid YAML: {e}") from None
    out: list[dict] = []
    for i, doc in enumerate(docs):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ManifestError(f"{source}: document {i + 1} is not a mapping")
        if doc.get("kind", "").endswith("List") and isinstance(doc.get("items"), list):
            out.extend(doc["items"])
        else:
            out.append(doc)
    for obj in out:
        if not obj.get("kind"):
            raise ManifestError(f"{source}: Object 'Kind' is missing in {json.dumps(obj)[:120]}")
        if not obj.get("apiVersion"):
            raise ManifestError(f"{source}: Object 'apiVersion' is missing in {json.dumps(obj)[:120]}")
    return out


def load(paths: list[str]) -> list[dict]:
    """Objects from each path: `-` is stdin, a directory is its .yaml/.yml/.json files."""
    objects: list[dict] = []
    for path in paths:
        if path == "-":
            objects += _load_text(sys.stdin.read(), "stdin")
        elif os.path.isdir(path):
            for name in sorted(os.listdir(path)):
                if name.endswith((".yaml", ".yml", ".json")):
                    full = os.path.join(path, name)
                    with open(full) as f:
                        objects += _load_text(f.read(), full)
        else:
            try:
                with open(path) as f:
                    objects += _load_text(f.read(), path)
            except FileNotFoundError:
                raise ManifestError(f'the path "{path}" does not exist') from None
    return objects
