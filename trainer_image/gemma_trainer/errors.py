"""The trainer's expected errors that several layers raise, each mapped to an exit code by ``gemma_trainer.cli``.

The lowest layer of the trainer: it imports nothing from the package. Errors that belong to one layer stay
there (``rows.DataError``, ``object_store.StorageError``, ``checkpoints.CheckpointError``).
"""

from __future__ import annotations


class ConfigError(Exception):
    """The run config cannot be used; ``lines`` are field-level messages (exit code 2)."""

    def __init__(self, source: str, lines: list[str]):
        self.source = source
        self.lines = lines
        super().__init__(f"{source}: " + "; ".join(lines))

    def describe(self) -> str:
        if len(self.lines) == 1:
            return f"{self.source}: {self.lines[0]}"
        return "\n".join([f"{self.source}: invalid run config", *(f"  - {line}" for line in self.lines)])


class ModelError(Exception):
    """The model cannot be found or used as asked (exit code 2)."""


class AcceleratorUnavailable(Exception):
    """The accelerator the spec asks for is not visible in this container (exit code 1: retried)."""
