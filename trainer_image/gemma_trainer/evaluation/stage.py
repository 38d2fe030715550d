"""The evaluation stage: base and adapter answers (resumable), the checks, ``results.json``, ``report.md``, the
scores in TensorBoard, and the exit code of the gate (``EXIT_BELOW_THRESHOLD`` when it fails).

``gemmaft train`` runs it after the training stages when the spec has ``evaluation`` (:func:`staged_run`);
``gemmaft evaluate`` runs it alone (:func:`run_evaluation`, ``adapter_uri`` naming another adapter). It runs on
the writer process only: the other processes of a launch have nothing to do.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from gemma_api.evaluation import answers_key, evaluation_key, schema_problem
from gemma_api.run import (
    ADAPTER_DIR,
    EVALUATION_REPORT_FILE,
    EVALUATION_RESULTS_FILE,
    EXIT_BELOW_THRESHOLD,
    EXIT_OK,
    EXIT_PREEMPTED,
    PROGRESS_FILE,
    RunProgress,
)
from gemma_api.status import EvaluationStatus

from ..errors import ConfigError
from ..object_store import StorageError
from ..process import work_dir
from ..progress import now_rfc3339
from ..rows import load_rows
from ..storage import open_store, split_uri
from .answers import AnswerChunks, answers_folder, complete
from .checks import prepared
from .prompts import eval_prompts
from .report import markdown_report
from .results import ModelAnswers, evaluation_results

log = logging.getLogger("gemma_trainer")


def read_schema(uri: str, field: str) -> dict:
    """The JSON Schema in the file at ``uri``; ConfigError naming ``field`` when unreadable or not a schema."""
    try:
        store, name = split_uri(uri)
        schema = json.loads(store.read_text(name))
    except (StorageError, ValueError) as err:
        raise ConfigError(field, [f"cannot read the schema at {uri}: {err}"]) from None
    problem = schema_problem(schema)
    if problem:
        raise ConfigError(field, [f"{uri}: {problem}"])
    return schema


class _Inputs:
    """The eval rows, their prompts and the prepared checks of a spec (checked before any model loads)."""

    def __init__(self, spec):
        self.uri = spec.evaluation.rows_uri(spec)
        rows, self.fmt = load_rows(self.uri, spec.dataset.format)
        self.rows = rows[:spec.evaluation.max_rows]  # None: every row
        self.prompts = eval_prompts(self.rows, self.fmt, self.uri)
        self.predicates = prepared(spec.evaluation.checks, read_schema)


def _model_answers(spec, setup, inputs: _Inputs, chunks: AnswerChunks, adapter_uri: str | None,
                   stop: Callable[[], bool], on_chunk: Callable[[], None] | None) -> ModelAnswers | None:
    """One model's answers and held-out loss, continuing what is committed; None when stopped."""
    from .generate import eval_loss, greedy_answers, load_for_evaluation

    ev = spec.evaluation
    committed = chunks.committed()
    if len(committed) == len(inputs.prompts) and chunks.loss() is not False:
        return ModelAnswers([committed[i] for i in range(len(inputs.prompts))], chunks.loss())
    model, tokenizer = load_for_evaluation(spec, setup, adapter_uri)

    def answer(batch: list[int]) -> list[str]:
        answers = greedy_answers(model, tokenizer, [inputs.prompts[i] for i in batch], ev.max_new_tokens)
        if on_chunk is not None:
            on_chunk()
        return answers

    answers = complete(chunks, len(inputs.prompts), ev.batch_size, answer, stop)
    if answers is None:
        return None
    if chunks.loss() is False:
        chunks.commit_loss(eval_loss(model, tokenizer, inputs.rows, inputs.fmt, spec))
    return ModelAnswers(answers, chunks.loss())


def run_evaluation(cfg, setup, adapter_uri: str | None = None, preemption=None,
                   on_chunk: Callable[[], None] | None = None) -> int:
    """Evaluate ``cfg``'s adapter (or ``adapter_uri``): EXIT_OK when the gate passed, EXIT_BELOW_THRESHOLD when
    not, EXIT_PREEMPTED when a SIGTERM stopped it (the committed answers are kept)."""
    spec = cfg.spec
    run_store = open_store(cfg.run_uri)
    adapter_uri = adapter_uri or run_store.url(ADAPTER_DIR)
    inputs = _Inputs(spec)
    key = answers_key(spec)
    stop = (lambda: preemption.requested) if preemption is not None else (lambda: False)
    sides = {}
    for side, adapter in (("base", None), ("tuned", adapter_uri)):
        chunks = AnswerChunks(run_store.child(answers_folder(key, adapter)))
        sides[side] = _model_answers(spec, setup, inputs, chunks, adapter, stop, on_chunk)
        if sides[side] is None:
            log.warning("evaluation preempted: committed answers are kept (exit %d)", EXIT_PREEMPTED)
            return EXIT_PREEMPTED
    results = evaluation_results(spec.evaluation, inputs.predicates, inputs.prompts, sides["base"], sides["tuned"],
                                 key, adapter_uri, run_store.url(EVALUATION_REPORT_FILE))
    _commit(cfg, run_store, results)
    return _verdict(results, run_store)


def _commit(cfg, run_store, results) -> None:
    from ..tb_events import write_scores  # transformers and torch's SummaryWriter

    run_store.write_text(EVALUATION_REPORT_FILE, markdown_report(results, f"{cfg.name} ({cfg.spec.model})"))
    run_store.write_text(EVALUATION_RESULTS_FILE, json.dumps(results.to_api(), indent=1))
    progress = _trained_progress(run_store)
    gate = _gate_status(results, run_store, evaluation_key(cfg.spec))
    run_store.write_text(PROGRESS_FILE, json.dumps(progress.model_copy(update={"evaluation": gate}).to_api(),
                                                   indent=1) + "\n")  # the operator's status.evaluation and condition
    write_scores(work_dir(cfg.run_id) / "evaluation-tensorboard", run_store.child(""), progress.step, results)


def _gate_status(results, run_store, key: str) -> EvaluationStatus:
    return EvaluationStatus(passed=results.passed, answers_key=results.answers_key, evaluation_key=key,
                            checks=results.checks,
                            eval_loss=results.eval_loss, base_eval_loss=results.base_eval_loss,
                            message=results.message, results_uri=run_store.url(EVALUATION_RESULTS_FILE),
                            report_uri=results.report_uri)


def _trained_progress(run_store) -> RunProgress:
    """The run's progress.json (its step is where the scores go in TensorBoard)."""
    if not run_store.exists(PROGRESS_FILE):
        return RunProgress(state="completed", updated_at=now_rfc3339())
    return RunProgress.model_validate_json(run_store.read_text(PROGRESS_FILE))


def _verdict(results, run_store) -> int:
    where = run_store.url(EVALUATION_RESULTS_FILE)
    if results.passed:
        log.info("evaluation gate passed: %s (%s)", results.message, where)
        return EXIT_OK
    log.error("evaluation gate failed: %s (%s; exit %d)", results.message, where, EXIT_BELOW_THRESHOLD)
    return EXIT_BELOW_THRESHOLD
