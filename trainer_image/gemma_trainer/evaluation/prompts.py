"""The eval rows as the evaluation stage asks them: the conversation up to the last assistant turn (the prompt)
and that turn's text (the reference answer)."""

from __future__ import annotations

from dataclasses import dataclass

from ..data import to_messages
from ..rows import DataError


@dataclass(frozen=True)
class EvalPrompt:
    messages: list[dict]
    """The conversation the model answers (ends with a user turn)."""
    reference: str
    """The row's completion / last assistant turn."""

    @property
    def text(self) -> str:
        """The last user turn, for reports."""
        return next((m["content"] for m in reversed(self.messages) if m["role"] == "user"), "")


def eval_prompt(row: dict, fmt: str, source: str, line: int) -> EvalPrompt:
    """The prompt and reference answer of one row; a row without an assistant turn to compare with is a DataError."""
    if fmt == "text":
        raise DataError(source, line, "the evaluation needs messages or prompt-completion rows (a reference answer "
                                      "to compare with); text rows have none")
    messages = to_messages(row, fmt)
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if last is None:
        raise DataError(source, line, "the row has no assistant turn to use as the reference answer")
    return EvalPrompt(messages[:last], messages[last]["content"])


def eval_prompts(rows: list[dict], fmt: str, source: str) -> list[EvalPrompt]:
    return [eval_prompt(row, fmt, source, i + 1) for i, row in enumerate(rows)]
