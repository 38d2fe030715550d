"""Label and field selectors as the API server reads them from ``labelSelector`` / ``fieldSelector``.

Label selectors: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k``, ``!k``, comma-separated.
Field selectors: ``path=v``, ``path==v``, ``path!=v`` on dotted paths (``metadata.name``, ``status.phase``,
``involvedObject.name``...). The real API server allows only a few fields per kind; this one allows any path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Matcher = Callable[[dict[str, Any]], bool]

_SET = re.compile(r"^\s*(!?)([A-Za-z0-9_./-]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")
_EQ = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|=|!=)\s*([A-Za-z0-9_./-]*)\s*$")


class SelectorError(ValueError):
    """A selector the API server would refuse (answered 400 BadRequest)."""


def _split(text: str) -> list[str]:
    """Split on commas that are not inside ``( )``."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p for p in parts if p.strip()]


def _label_term(term: str) -> Callable[[dict[str, str]], bool]:
    eq = _EQ.match(term)
    if eq:
        key, op, value = eq.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    found = _SET.match(term)
    if not found:
        raise SelectorError(f"unable to parse requirement: {term.strip()!r}")
    negated, key, op, values = found.groups()
    if op and negated:
        raise SelectorError(f"unable to parse requirement: {term.strip()!r}")
    if op:
        allowed = {v.strip() for v in values.split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in allowed
        return lambda labels: labels.get(key) not in allowed
    if negated:
        return lambda labels: key not in labels
    return lambda labels: key in labels


def label_selector(text: str | None) -> Matcher:
    terms = [_label_term(t) for t in _split(text or "")]
    return lambda obj: all(term((obj.get("metadata") or {}).get("labels") or {}) for term in terms)


def field_value(obj: dict[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def field_selector(text: str | None) -> Matcher:
    terms = []
    for term in _split(text or ""):
        eq = _EQ.match(term)
        if not eq:
            raise SelectorError(f"invalid field selector: {term.strip()!r}")
        path, op, value = eq.groups()
        terms.append((path, op != "!=", value))
    return lambda obj: all((field_value(obj, path) == value) is equal for path, equal, value in terms)


def selector_from(params: dict[str, str]) -> Matcher:
    """The matcher for a request's ``labelSelector`` and ``fieldSelector`` parameters."""
    labels, fields = label_selector(params.get("labelSelector")), field_selector(params.get("fieldSelector"))
    return lambda obj: labels(obj) and fields(obj)


def match_expression(expr: dict[str, Any], labels: dict[str, str]) -> bool:
    key, op, values = expr.get("key"), expr.get("operator"), set(expr.get("values") or ())
    if op == "In":
        return labels.get(key) in values
    if op == "NotIn":
        return labels.get(key) not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op in ("Gt", "Lt") and key in labels and values:
        try:
            have, want = int(labels[key]), int(next(iter(values)))
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False
