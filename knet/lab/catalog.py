"""Where labs are: the shipped ones in the checkout's labs/ folder, or any folder with a lab.yaml.

A shipped lab answers to its folder (`01-pods`), its folder without the number (`pods`), its
number (`1`) or the name its lab.yaml gives it.
"""

from __future__ import annotations

import os
import re

from knet.lab.model import Lab, LabError, load

LABS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "labs")


def shipped(root: str = LABS_DIR) -> list[str]:
    """The folders of the shipped labs, in their numbered order."""
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    return [os.path.join(root, n) for n in names if os.path.isfile(os.path.join(root, n, "lab.yaml"))]


def find(text: str, root: str = LABS_DIR) -> Lab:
    """The lab LAB names: a path to a folder, or a shipped lab's name."""
    if os.sep in text or text.startswith(".") or (os.path.isdir(text) and not _shipped_match(text, root)):
        if not os.path.isdir(text):
            raise LabError(f"lab {text}: no such folder")
        return load(text)
    for folder in _shipped_match(text, root):
        return load(folder)
    names = ", ".join(_name(f) for f in shipped(root))
    raise LabError(f'lab "{text}" not found: a folder with a lab.yaml, or one of: {names or "(none shipped)"}')


def _name(folder: str) -> str:
    try:
        return load(folder).name
    except LabError:
        return os.path.basename(folder)


def _shipped_match(text: str, root: str) -> list[str]:
    out = []
    for folder in shipped(root):
        base = os.path.basename(folder)
        number, _, bare = base.partition("-") if re.match(r"^\d+-", base) else ("", "", base)
        if text in (base, bare) or (number and text.isdigit() and int(text) == int(number)):
            out.append(folder)
    if out:
        return out
    for folder in shipped(root):  # the name lab.yaml gives, when it differs from the folder's
        try:
            if load(folder).name == text:
                out.append(folder)
        except LabError:
            continue
    return out
