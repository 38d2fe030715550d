"""The scorers of ``spec.evaluation.checks``: one record per check type (the names of
``gemma_api.evaluation.CHECK_KINDS``), each a pure function of the check, the answer and the reference.

A check's score is the fraction of rows whose answer passes it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from gemma_api.evaluation import Check

Passes = Callable[[str, str], bool]
"""(answer, reference) -> whether the answer passes."""
SchemaReader = Callable[[str, str], dict]
"""(schemaUri, field path) -> the schema it holds (raises the trainer's ConfigError when it cannot)."""

_NOT_JSON = object()


def parsed_json(text: str) -> Any:
    """The JSON value of ``text`` (surrounding whitespace ignored), or ``_NOT_JSON``."""
    try:
        return json.loads(text.strip())
    except ValueError:
        return _NOT_JSON


def _json_schema(check: Check, path: str, read_schema: SchemaReader) -> Passes:
    from jsonschema import validators

    schema = check.json_schema if check.json_schema is not None else read_schema(check.schema_uri, path)
    validator = validators.validator_for(schema)(schema)

    def passes(answer: str, reference: str) -> bool:
        value = parsed_json(answer)
        return value is not _NOT_JSON and validator.is_valid(value)

    return passes


def _exact_match(check: Check, path: str, read_schema: SchemaReader) -> Passes:
    return lambda answer, reference: answer.strip() == reference.strip()


def _json_valid(check: Check, path: str, read_schema: SchemaReader) -> Passes:
    return lambda answer, reference: parsed_json(answer) is not _NOT_JSON


def _regex(check: Check, path: str, read_schema: SchemaReader) -> Passes:
    pattern = re.compile(check.pattern)
    return lambda answer, reference: pattern.search(answer) is not None


def _contains(check: Check, path: str, read_schema: SchemaReader) -> Passes:
    text = check.text
    return lambda answer, reference: text in answer


SCORERS: dict[str, Callable[[Check, str, SchemaReader], Passes]] = {
    "jsonSchema": _json_schema,
    "exactMatch": _exact_match,
    "jsonValid": _json_valid,
    "regex": _regex,
    "contains": _contains,
}


def prepared(checks: Sequence[Check], read_schema: SchemaReader) -> list[Passes]:
    """A pass/fail function per check (``read_schema`` reads a jsonSchema check's schemaUri)."""
    return [SCORERS[c.type](c, f"spec.evaluation.checks[{i}].schemaUri", read_schema) for i, c in enumerate(checks)]


def row_passes(predicates: Sequence[Passes], answer: str, reference: str) -> list[bool]:
    """Which checks one answer passes."""
    return [p(answer, reference) for p in predicates]


def scores(passes: Sequence[Sequence[bool]], n_checks: int) -> list[float]:
    """Per check, the fraction of rows that pass it (``passes``: one list per row); 0 without rows."""
    if not passes:
        return [0.0] * n_checks
    return [sum(row[i] for row in passes) / len(passes) for i in range(n_checks)]
