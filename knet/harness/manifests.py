"""Manifests as a test holds them (YAML text, dicts, files, folders) turned
into the one stream `knet apply -f -` reads, so the harness applies them
exactly as a user's `knet apply` would, with its validation and messages.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


def _is_path(text: str) -> bool:
    # A manifest always has a newline or a colon+space ("kind: Pod"); a path has neither.
    return "\n" not in text and ": " not in text and text.strip() != ""


def _from_path(path: Path) -> list[str]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in MANIFEST_SUFFIXES and p.is_file())
        if not files:
            raise ValueError(f"manifests: {path}: the folder holds no {'/'.join(MANIFEST_SUFFIXES)} file")
        return [p.read_text() for p in files]
    try:
        return [path.read_text()]
    except OSError as e:
        raise ValueError(f"manifests: {path}: {(e.strerror or str(e)).lower()}") from None


def manifest_text(manifests: object) -> str:
    """One YAML stream: each text or file as it is, each dict as a JSON
    document (YAML reads JSON), separated by `---`."""
    parts: list[str] = []

    def add(item: object) -> None:
        if isinstance(item, Path) or (isinstance(item, str) and _is_path(item)):
            parts.extend(_from_path(Path(os.fspath(item))))
        elif isinstance(item, str):
            parts.append(item)
        elif isinstance(item, dict):
            parts.append(json.dumps(item))
        elif isinstance(item, (list, tuple)):
            for x in item:
                add(x)
        else:
            raise TypeError(f"manifests: expected YAML text, a dict, a path or a list of them, "
                            f"got {type(item).__name__}")

    add(manifests)
    if not parts:
        raise ValueError("manifests: nothing to apply")
    return "\n---\n".join(p.strip("\n") for p in parts) + "\n"
