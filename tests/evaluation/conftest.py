"""The tiny Gemma of the trainer tests, shared by the evaluation tests."""

from tests.trainer.conftest import tiny_model_dir  # noqa: F401 - a fixture
