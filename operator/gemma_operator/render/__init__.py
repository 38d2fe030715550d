"""Pure rendering: a validated GemmaFineTune in, the Kubernetes objects of one run attempt out."""

from . import names
from .manifests import (
    LABEL_ATTEMPT,
    LABEL_FINETUNE,
    LABEL_RUN,
    LABEL_STAGE,
    MANAGED_BY,
    RunNames,
    render_run,
    run_labels,
    run_names,
)
from .placement import Placement, placement, serving_placement
from .serving import ServedRun, render_serving
from .settings import RenderSettings

__all__ = [
    "LABEL_ATTEMPT", "LABEL_FINETUNE", "LABEL_RUN", "LABEL_STAGE", "MANAGED_BY", "Placement", "RenderSettings", "RunNames",
    "ServedRun", "names", "placement", "render_run", "render_serving", "run_labels", "run_names",
    "serving_placement",
]
