"""The end of ``gemmaft demo``: what the fine-tune changed, as the run's evaluation stage measured it.

The trainer pod ran the evaluation stage after training (``spec.evaluation`` of the demo's manifest): the base
model and the adapter answered the held-out rows greedily, the checks scored both, and the gate went into the
status (``status.evaluation``, the Evaluated condition). This module only reads ``<run>/evaluation/results.json``
from the bucket and prints it: the held-out loss before -> after, the gate, the report's path and a few rows.
"""

from __future__ import annotations

import json
from typing import Any

from gemma_api.evaluation_results import EvaluationResults


def read_results(status: dict[str, Any]) -> EvaluationResults | None:
    """The run's results.json (where status.evaluation.resultsUri says), or None without an evaluation."""
    from gemma_trainer.storage import split_uri

    uri = (status.get("evaluation") or {}).get("resultsUri")
    if not uri:
        return None
    store, name = split_uri(uri)
    return EvaluationResults.model_validate(json.loads(store.read_text(name)))


def summary_rows(results: EvaluationResults | None, trainer_eval) -> list[tuple[str, Any]]:
    """The summary's evaluation lines: held-out loss base -> fine-tuned, the gate, the scores, the report."""
    if results is None:
        return [("eval loss", trainer_eval)]
    scores = ", ".join(f"{c.type} {c.base_score:.2f} -> {c.score:.2f} (min {c.min_score:g})" for c in results.checks)
    loss = (f"{results.base_eval_loss:.3f} -> {results.eval_loss:.3f}   (base -> fine-tuned, per answer token of "
            f"{results.rows} held-out rows; the trainer's last eval: {trainer_eval})")
    return [("eval loss", loss),
            ("gate", f"{'PASSED' if results.passed else 'FAILED'}: {results.message}"),
            ("scores", f"{scores}   (base -> fine-tuned)"), ("report", results.report_uri)]


def side_by_side(results: EvaluationResults, rows: int = 3, width: int = 96) -> str:
    """The first held-out prompts with the base model's answer and the fine-tuned answer under it, pass or fail."""
    from gemma_trainer.compare import one_line

    lines = []
    for row in results.answers[:rows]:
        lines += [f"  prompt        {one_line(row.prompt, width)}",
                  f"    base        {one_line(row.base, width)}   [{_mark(row.base_passes)}]",
                  f"    fine-tuned  {one_line(row.tuned, width)}   [{_mark(row.tuned_passes)}]"]
    return "\n".join(lines)


def _mark(passes: list[bool]) -> str:
    return "pass" if all(passes) else "fail"
