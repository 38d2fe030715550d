"""``<run>/evaluation/report.md``: the gate, the loss curve, the scores and a sample of rows, for a person."""

from __future__ import annotations

from gemma_api.evaluation_results import EvaluationResults
from gemma_api.run import LOSS_PLOT_FILE

SAMPLE_ROWS = 8


def _cell(text: str, width: int = 80) -> str:
    flat = " ".join(text.split()).replace("|", "\\|") or "(empty)"
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def _mark(passes: list[bool]) -> str:
    return "pass" if all(passes) else "fail"


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown_report(results: EvaluationResults, title: str) -> str:
    """The report of ``results`` (the loss curve is the run's ``loss.png``, one folder up)."""
    verdict = "PASSED" if results.passed else "FAILED"
    lines = [f"# Evaluation of {title}", "", f"**Gate {verdict}**: {results.message}", "",
             f"![training loss](../{LOSS_PLOT_FILE})", "",
             f"Adapter: `{results.adapter_uri}`; {results.rows} held-out rows.", "",
             "| check | minScore | fine-tuned | base | passed |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {c.type} | {c.min_score:g} | {c.score:.3f} | {_num(c.base_score, 3)} | "
              f"{'yes' if c.passed else 'no'} |" for c in results.checks]
    lines += [f"| held-out loss | | {_num(results.eval_loss)} | {_num(results.base_eval_loss)} | |", "",
              f"## Sample rows (first {min(SAMPLE_ROWS, len(results.answers))} of {results.rows})", "",
              "| prompt | reference | base answer | | fine-tuned answer | |", "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {_cell(r.prompt)} | {_cell(r.reference)} | {_cell(r.base)} | {_mark(r.base_passes)} | "
              f"{_cell(r.tuned)} | {_mark(r.tuned_passes)} |" for r in results.answers[:SAMPLE_ROWS]]
    return "\n".join(lines) + "\n"
