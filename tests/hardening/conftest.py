"""The hardening tests reuse the trainer's tiny Gemma 2 (one per session) and the operator's local cluster."""

from tests.operator.conftest import cluster, kubeconfig, operator_factory  # noqa: F401
from tests.trainer.conftest import tiny_model_dir  # noqa: F401
