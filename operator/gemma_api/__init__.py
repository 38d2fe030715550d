"""The GemmaFineTune API: one pydantic model from which the CRD, validation and the trainer's config come.

Imports only pydantic, so the trainer image can use it without kopf or the Kubernetes client.
"""

from .accelerators import ACCELERATORS
from .facts import MODELS
from .memory import MemoryEstimate, estimate
from .resource import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    RUN_CONFIG_KIND,
    TRAINING_FIELDS,
    VERSION,
    GemmaFineTune,
    ObjectMeta,
    RunConfig,
    run_id,
    run_uri,
)
from .rules import Problem, check_rules
from .spec import GemmaFineTuneSpec
from .status import Condition, GemmaFineTuneStatus, Progress
from .validation import SpecError, parse_finetune, parse_spec

__all__ = [
    "ACCELERATORS",
    "API_VERSION",
    "GROUP",
    "KIND",
    "MODELS",
    "PLURAL",
    "RUN_CONFIG_KIND",
    "TRAINING_FIELDS",
    "VERSION",
    "Condition",
    "GemmaFineTune",
    "GemmaFineTuneSpec",
    "GemmaFineTuneStatus",
    "MemoryEstimate",
    "ObjectMeta",
    "Problem",
    "Progress",
    "RunConfig",
    "SpecError",
    "check_rules",
    "estimate",
    "parse_finetune",
    "parse_spec",
    "run_id",
    "run_uri",
]
