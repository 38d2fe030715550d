"""The evaluation stage's pure parts: scorers (one per check type), prompts and references, chunk batching,
results and the report."""

from __future__ import annotations

import pytest
from gemma_api import parse_finetune
from gemma_api.evaluation import CHECK_KINDS
from gemma_trainer.evaluation.answers import pending_batches
from gemma_trainer.evaluation.checks import SCORERS, prepared, scores
from gemma_trainer.evaluation.prompts import eval_prompt
from gemma_trainer.evaluation.report import markdown_report
from gemma_trainer.evaluation.results import ModelAnswers, evaluation_results
from gemma_trainer.rows import DataError

from tests.conftest import manifest
from tests.evaluation.test_api import ISSUE_SHAPE


def checks_of(evaluation: dict):
    return parse_finetune(manifest(evaluation=evaluation)).spec.evaluation


def no_schema_file(uri, field):
    raise AssertionError("no schemaUri in these checks")


def test_one_scorer_per_check_type_of_the_contract():
    assert list(SCORERS) == list(CHECK_KINDS)


REF = '{"name": "Idris", "age": 74, "city": "Lisbon"}'


@pytest.mark.parametrize(("answer", "expected"), [
    (REF, [True, True, True, True, True]),
    (' {"name": "Idris", "age": 74, "city": "Lisbon"} \n', [True, True, True, False, True]),
    ('{"name": "Idris", "city": "Lisbon"}', [False, False, True, True, True]),
    ('{"name": "Idris", "age": 74', [False, False, False, True, False]),
    ("Idris is 74", [False, False, False, False, False]),
])
def test_each_check_passes_or_fails_an_answer(answer, expected):
    predicates = prepared(checks_of(ISSUE_SHAPE).checks, no_schema_file)
    assert [p(answer, REF) for p in predicates] == expected


def test_a_score_is_the_fraction_of_rows_that_pass():
    assert scores([[True, False], [True, True], [False, False], [True, False]], 2) == [0.75, 0.25]
    assert scores([], 3) == [0.0, 0.0, 0.0]


def test_reference_is_the_completion_or_the_last_assistant_turn():
    pc = eval_prompt({"prompt": "p", "completion": "c"}, "prompt-completion", "f", 1)
    assert (pc.messages, pc.reference, pc.text) == ([{"role": "user", "content": "p"}], "c", "p")
    row = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                        {"role": "user", "content": "c"}, {"role": "model", "content": "d"}]}
    conv = eval_prompt(row, "messages", "f", 1)
    assert conv.reference == "d" and conv.messages[-1] == {"role": "user", "content": "c"} and len(conv.messages) == 3
    with pytest.raises(DataError, match="reference answer"):
        eval_prompt({"text": "t"}, "text", "f", 3)


def test_pending_batches_skip_committed_rows():
    assert list(pending_batches(7, {}, 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(pending_batches(7, {0: "a", 1: "b", 2: "c", 5: "x"}, 3)) == [[3, 4], [6]]


def test_results_and_report_carry_both_models_and_the_gate():
    ev = checks_of({**ISSUE_SHAPE, "beatBase": True})
    prompts = [eval_prompt({"prompt": f"p{i}", "completion": REF}, "prompt-completion", "f", i) for i in range(4)]
    tuned = ModelAnswers([REF, REF, REF, "no"], 0.5)
    base = ModelAnswers(["no"] * 4, 2.0)
    results = evaluation_results(ev, prepared(ev.checks, no_schema_file), prompts, base, tuned, "key", "gs://a/b")
    first = results.checks[0]
    assert (first.type, first.min_score, first.score, first.base_score) == ("jsonSchema", 0.9, 0.75, 0.0)
    assert not results.passed and results.reason == "BelowThreshold" and not results.base_passed
    assert results.message == "checks[0] jsonSchema scored 0.750, below its minScore 0.900"
    assert (results.eval_loss, results.base_eval_loss, results.rows) == (0.5, 2.0, 4)
    assert results.answers[3].tuned_passes == [False] * 5
    text = markdown_report(results, "demo")
    assert "**Gate FAILED**: checks[0] jsonSchema scored 0.750" in text
    assert "| jsonSchema | 0.9 | 0.750 | 0.000 | no |" in text and "![training loss](../loss.png)" in text
    assert "| p3 |" in text and "| no | fail |" in text
