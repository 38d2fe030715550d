"""spec.evaluation: the issue's shape, field-level errors, the run id (evaluation is not trained), the CRD."""

from __future__ import annotations

import pytest
from gemma_api import SpecError, parse_finetune, run_id
from gemma_api.crd import build_crd
from gemma_api.evaluation import CHECK_KINDS, answers_key, gate

from tests.conftest import manifest

ISSUE_SHAPE = {
    "evalUri": "gs://bucket/eval.jsonl",
    "maxNewTokens": 64,
    "beatBase": True,
    "checks": [
        {"type": "jsonSchema", "schema": {"type": "object", "required": ["name", "age"]}, "minScore": 0.9},
        {"type": "exactMatch", "minScore": 0.8},
        {"type": "jsonValid", "minScore": 0.98},
        {"type": "regex", "pattern": "^\\{", "minScore": 1.0},
        {"type": "contains", "text": '"city"', "minScore": 0.5},
    ],
}


def problems(evaluation: dict) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_finetune(manifest(evaluation=evaluation))
    return [str(p) for p in info.value.problems]


def test_the_issue_shape_parses():
    spec = parse_finetune(manifest(evaluation=ISSUE_SHAPE)).spec
    ev = spec.evaluation
    assert (ev.eval_uri, ev.max_new_tokens, ev.beat_base) == ("gs://bucket/eval.jsonl", 64, True)
    assert [c.type for c in ev.checks] == ["jsonSchema", "exactMatch", "jsonValid", "regex", "contains"]
    assert ev.checks[0].json_schema == {"type": "object", "required": ["name", "age"]}
    assert spec.evaluation.to_api() == {**ISSUE_SHAPE, "batchSize": 8}


@pytest.mark.parametrize(("check", "field", "words"), [
    ({"type": "regex", "pattern": "(unclosed", "minScore": 1.0}, "spec.evaluation.checks[0].pattern", "regular"),
    ({"type": "jsonSchema", "schema": {"type": "thing"}, "minScore": 1.0}, "spec.evaluation.checks[0].schema",
     "JSON Schema"),
    ({"type": "exactMatch", "minScore": 1.5}, "spec.evaluation.checks[0].minScore", "less than or equal to 1"),
    ({"type": "exactMatch", "minScore": -0.1}, "spec.evaluation.checks[0].minScore", "greater than or equal"),
    ({"type": "bleu", "minScore": 0.5}, "spec.evaluation.checks[0].type", "jsonSchema"),
    ({"type": "regex", "minScore": 0.5}, "spec.evaluation.checks[0]", "pattern"),
    ({"type": "jsonSchema", "minScore": 0.5}, "spec.evaluation.checks[0]", "schema or schemaUri"),
    ({"type": "exactMatch", "text": "x", "minScore": 0.5}, "spec.evaluation.checks[0]", "text"),
])
def test_field_level_errors(check, field, words):
    found = problems({"evalUri": "gs://bkt/e.jsonl", "checks": [check]})
    assert any(p.startswith(field + ":") and words in p for p in found), found


def test_eval_rows_are_needed():
    found = problems({"checks": [{"type": "jsonValid", "minScore": 0.5}]})
    assert any(p.startswith("spec.evaluation.evalUri:") for p in found), found


def test_dataset_eval_uri_is_the_default():
    spec = parse_finetune(manifest(dataset={"trainUri": "gs://bkt/t.jsonl", "evalUri": "gs://bkt/e.jsonl"},
                                   evaluation={"checks": [{"type": "jsonValid", "minScore": 0.5}]})).spec
    assert spec.evaluation.rows_uri(spec) == "gs://bkt/e.jsonl"


def test_editing_only_the_evaluation_keeps_the_run_id():
    plain = parse_finetune(manifest()).spec
    evaluated = parse_finetune(manifest(evaluation=ISSUE_SHAPE)).spec
    other = parse_finetune(manifest(evaluation={**ISSUE_SHAPE, "maxNewTokens": 8})).spec
    assert run_id(plain) == run_id(evaluated) == run_id(other)
    assert answers_key(evaluated) != answers_key(other), "other answers need generating again"
    fewer = parse_finetune(manifest(evaluation={**ISSUE_SHAPE, "maxRows": 8})).spec
    assert answers_key(evaluated) != answers_key(fewer), "answers of fewer rows are another set"
    stricter = {**ISSUE_SHAPE, "checks": [{"type": "exactMatch", "minScore": 1.0}]}
    assert answers_key(evaluated) == answers_key(parse_finetune(manifest(evaluation=stricter)).spec), \
        "a change of checks rescores the same answers"


def test_every_check_type_has_a_crd_rule_and_the_schema_keeps_unknown_fields():
    crd = build_crd()
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    check = spec["properties"]["evaluation"]["properties"]["checks"]["items"]
    assert check["properties"]["type"]["enum"] == list(CHECK_KINDS)
    assert check["properties"]["schema"]["x-kubernetes-preserve-unknown-fields"] is True
    rules = " ".join(r["rule"] for r in check["x-kubernetes-validations"])
    for name, kind in CHECK_KINDS.items():
        if kind.fields:
            assert f"self.type != '{name}'" in rules


def test_gate_names_the_check_that_fell_short():
    spec = parse_finetune(manifest(evaluation=ISSUE_SHAPE)).spec
    checks = spec.evaluation.checks
    scores = [0.95, 0.5, 1.0, 1.0, 1.0]
    verdict = gate(checks, scores, [0.0] * 5, eval_loss=0.5, base_eval_loss=2.0, beat_base=True)
    assert not verdict.passed
    assert verdict.message == "checks[1] exactMatch scored 0.500, below its minScore 0.800"
    good = gate(checks, [1.0] * 5, [0.0] * 5, eval_loss=0.5, base_eval_loss=2.0, beat_base=True)
    assert good.passed and "checks passed" in good.message
    worse = gate(checks, [1.0] * 5, [1.0, 1.0, 1.0, 1.0, 1.0], eval_loss=2.5, base_eval_loss=2.0, beat_base=True)
    assert not worse.passed and "held-out loss" in worse.message
    below_base = gate(checks, [0.9, 1, 1, 1, 1], [1.0] * 5, eval_loss=0.5, base_eval_loss=2.0, beat_base=True)
    assert not below_base.passed and below_base.message.startswith("checks[0] jsonSchema scored 0.900, below the base")
