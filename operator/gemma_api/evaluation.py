"""``spec.evaluation``: the checks a fine-tuned model's greedy answers must pass before anyone uses it, and the gate.

The evaluation stage runs after training (``gemma_trainer.evaluation``): the base model and the adapter answer
every eval row greedily, each check scores the fraction of rows whose answer passes it (the reference answer is
the row's completion / last assistant turn), and the gate passes when every score reaches its ``minScore`` (and,
with ``beatBase``, the adapter scores at least the base on every check and has the lower held-out loss).

Evaluation is not trained: it is not part of the run id, so editing only ``spec.evaluation`` re-evaluates the
same adapter. The answers depend only on the rows and ``maxNewTokens`` (:func:`answers_key`); a change of the
checks rescores the committed answers.

``CHECK_KINDS`` is the one record per check type of the contract (the fields each type takes); the trainer's
scorers (``gemma_trainer.evaluation.checks``) are registered under the same names.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .base import ApiModel, cel, with_cel
from .fields import Uri

CheckType = Literal["jsonSchema", "exactMatch", "jsonValid", "regex", "contains"]

# Reasons of the Evaluated condition when the gate fails.
BELOW_THRESHOLD = "BelowThreshold"
BELOW_BASE = "BelowBase"
PASSED = "ChecksPassed"


@dataclass(frozen=True)
class CheckKind:
    """One check type of the contract: the fields it takes (exactly one of them is required when any)."""

    fields: tuple[str, ...]
    summary: str

    def wire_names(self) -> list[str]:
        return [Check.model_fields[f].alias or f for f in self.fields]


CHECK_KINDS: dict[str, CheckKind] = {
    "jsonSchema": CheckKind(("json_schema", "schema_uri"), "the answer is JSON that the schema accepts"),
    "exactMatch": CheckKind((), "the answer equals the reference answer (surrounding whitespace ignored)"),
    "jsonValid": CheckKind((), "the answer parses as JSON"),
    "regex": CheckKind(("pattern",), "the pattern matches the answer (Python re.search)"),
    "contains": CheckKind(("text",), "the answer contains the text"),
}
OWN_FIELDS = ("json_schema", "schema_uri", "pattern", "text")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _kind_rules() -> list[dict[str, str]]:
    """A CEL rule per check type with fields: it must have one of them."""
    rules = []
    for name, kind in CHECK_KINDS.items():
        wire = ["schema" if f == "json_schema" else _camel(f) for f in kind.fields]
        if wire:
            has = " || ".join(f"has(self.{w})" for w in wire)
            rules.append(cel(f"self.type != '{name}' || {has}", f"a {name} check needs {' or '.join(wire)}"))
    return rules


def schema_problem(schema: Any) -> str | None:
    """Why ``schema`` is not a JSON Schema, or None."""
    from jsonschema import SchemaError, validators

    if not isinstance(schema, dict):
        return "a JSON Schema is a mapping"
    try:
        validators.validator_for(schema).check_schema(schema)
    except SchemaError as err:
        return f"not a valid JSON Schema: {err.message}"
    return None


class Check(ApiModel):
    """One pass/fail check on every eval row's answer; its score is the fraction of rows that pass."""

    model_config = with_cel(*_kind_rules())

    type: CheckType
    """jsonSchema, exactMatch, jsonValid, regex or contains."""
    min_score: float = Field(ge=0.0, le=1.0)
    """The gate: the fine-tuned model's score must reach this (0 to 1)."""
    json_schema: dict[str, Any] | None = Field(None, alias="schema")
    """jsonSchema: the JSON Schema the answer must satisfy (or schemaUri)."""
    schema_uri: Uri | None = None
    """jsonSchema: a JSON file holding the schema (gs://... or a local path)."""
    pattern: str | None = Field(None, min_length=1, max_length=4096)
    """regex: a Python regular expression searched in the answer."""
    text: str | None = Field(None, min_length=1, max_length=4096)
    """contains: the text the answer must contain."""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as err:
                raise ValueError(f"not a regular expression: {err}") from None
        return value

    @field_validator("json_schema")
    @classmethod
    def _is_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        problem = None if value is None else schema_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _fields_of_its_type(self) -> Check:
        kind = CHECK_KINDS[self.type]
        given = [f for f in OWN_FIELDS if getattr(self, f) is not None]
        stray = [f for f in given if f not in kind.fields]
        if stray:
            names = ", ".join(Check.model_fields[f].alias or f for f in stray)
            raise ValueError(f"a {self.type} check takes no {names}: remove it")
        if kind.fields and len(given) != 1:
            raise ValueError(f"a {self.type} check needs exactly one of {' or '.join(kind.wire_names())}")
        return self

    def label(self, index: int) -> str:
        return f"checks[{index}] {self.type}"


class Evaluation(ApiModel):
    """An evaluation stage after training: greedy answers of the base model and the adapter, scored by checks."""

    eval_uri: Uri | None = None
    """Held-out rows (JSONL or Parquet, the dataset's format); default dataset.evalUri."""
    max_new_tokens: int = Field(64, ge=1, le=4096)
    """Longest greedy answer, in tokens."""
    beat_base: bool = False
    """The adapter must score at least the base model on every check, and have the lower held-out loss."""
    max_rows: int | None = Field(None, ge=1, le=1_000_000)
    """Evaluate the first maxRows held-out rows only (default: every row): generation costs a forward pass per
    answer token, and the first rows of a large held-out set are a cheaper gate."""
    batch_size: int = Field(8, ge=1, le=512)
    """Rows answered per batch of greedy generation."""
    checks: list[Check] = Field(default_factory=list, max_length=32)
    """The checks and their gates (minScore)."""

    def rows_uri(self, spec) -> str | None:
        """The eval rows: evalUri, else the spec's dataset.evalUri."""
        return self.eval_uri or spec.dataset.eval_uri


def answers_key(spec) -> str:
    """Content hash of the stage's answers: the rows, the row format, the answer length and the tokenisation
    length. The checks and the gate are not part of it (they rescore the same answers)."""
    ev = spec.evaluation
    fields = {"rows": ev.rows_uri(spec), "format": spec.dataset.format, "maxNewTokens": ev.max_new_tokens,
              "maxSeqLength": spec.training.max_seq_length}
    if ev.max_rows is not None:  # only when set: the keys of answers committed before the field existed stay
        fields["maxRows"] = ev.max_rows
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:10]


def evaluation_key(spec) -> str:
    """Content hash of the whole ``spec.evaluation`` (rows, checks, gate): a finished run whose recorded gate has
    another key is evaluated again (the operator's evaluate stage), its adapter unchanged."""
    fields = {**spec.evaluation.to_api(), "rows": spec.evaluation.rows_uri(spec)}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Gate:
    """The gate's verdict: the Evaluated condition's status, reason and message."""

    passed: bool
    reason: str
    message: str


def _score_line(checks: list[Check], scores: list[float]) -> str:
    return ", ".join(f"{c.type} {s:.3f} (min {c.min_score:g})" for c, s in zip(checks, scores, strict=True))


def gate(checks: list[Check], scores: list[float], base_scores: list[float] | None, eval_loss: float | None,
         base_eval_loss: float | None, beat_base: bool) -> Gate:
    """Whether the scores pass: every check reaches its minScore; with ``beat_base`` also the base's score on
    every check and the base's held-out loss. The first shortfall names the check, the score and the bound."""
    for i, (check, score) in enumerate(zip(checks, scores, strict=True)):
        if score < check.min_score:
            return Gate(False, BELOW_THRESHOLD,
                        f"{check.label(i)} scored {score:.3f}, below its minScore {check.min_score:.3f}")
    if beat_base and base_scores is not None:
        for i, (check, score, base) in enumerate(zip(checks, scores, base_scores, strict=True)):
            if score < base:
                return Gate(False, BELOW_BASE, f"{check.label(i)} scored {score:.3f}, below the base model's "
                                               f"{base:.3f} (beatBase)")
        if eval_loss is not None and base_eval_loss is not None and eval_loss >= base_eval_loss:
            return Gate(False, BELOW_BASE, f"held-out loss {eval_loss:.4f} is not below the base model's "
                                           f"{base_eval_loss:.4f} (beatBase)")
    return Gate(True, PASSED, f"{len(checks)} checks passed: {_score_line(checks, scores)}")
