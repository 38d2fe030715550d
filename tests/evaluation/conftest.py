"""Fixtures of the evaluation tests: the tiny Gemma of the trainer tests, the local cluster and operator."""

from tests.operator.conftest import cluster, kubeconfig, operator, operator_factory  # noqa: F401 - fixtures
from tests.trainer.conftest import tiny_model_dir  # noqa: F401 - a fixture
