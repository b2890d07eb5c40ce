"""Go's printing of the float64s a JSON value decodes to, shared by knet's
jsonpath (knet/cli/jsonpath.py) and describe's generic printer (knet/printers.py):
both print what kubectl, a Go program, would, and fmt and encoding/json write
floats differently from Python's repr."""

from __future__ import annotations


def go_float(f: float) -> str:
    """fmt's %v of a float64: shortest digits, exponent form from 1e+06 or below 1e-04."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    return _decimal(f, -4, 6, 2)


def json_float(f: float) -> str:
    """encoding/json's float64: plain digits unless the exponent is below -6 or from 21."""
    return _decimal(f, -6, 21, 1)


def _decimal(f: float, low: int, high: int, exp_width: int) -> str:
    """The shortest digits of a finite f, in exponent form when the exponent is below
    `low` or from `high` (its digits zero-padded to `exp_width`), else plain."""
    if f == 0:
        return "0"
    digits, point = _digits(abs(f))
    sign = "-" if f < 0 else ""
    exp = point - 1
    if exp < low or exp >= high:
        body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{body}e{'-' if exp < 0 else '+'}{abs(exp):0{exp_width}d}"
    return sign + _place(digits, point)


def _digits(f: float) -> tuple[str, int]:
    """The shortest round-tripping digits of f > 0 and where the decimal point goes."""
    mantissa, _, exp_text = repr(f).partition("e")
    whole, _, frac = mantissa.partition(".")
    raw = whole + frac.rstrip("0")
    stripped = raw.lstrip("0")
    point = len(whole) + int(exp_text or 0) - (len(raw) - len(stripped))
    return stripped.rstrip("0") or "0", point


def _place(digits: str, point: int) -> str:
    if point <= 0:
        return "0." + "0" * -point + digits
    if point >= len(digits):
        return digits + "0" * (point - len(digits))
    return digits[:point] + "." + digits[point:]
