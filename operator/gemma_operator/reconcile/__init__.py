"""Pure decisions: observed state (a GemmaFineTune, its Jobs and pods, the run's progress) in, actions out.

No I/O here: ``runtime`` observes the cluster, calls :func:`decide`, and carries out the :class:`Decision`.
"""

from .conditions import set_condition
from .decide import Decision, Event, Observed, Policy, decide
from .pods import JobView, PodView, job_view, pod_view

__all__ = [
    "Decision", "Event", "JobView", "Observed", "PodView", "Policy", "decide", "job_view", "pod_view",
    "set_condition",
]
