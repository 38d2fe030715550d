"""Pure decisions: observed state (a GemmaFineTune, its Jobs and pods, the run's progress) in, actions out.

No I/O here: ``runtime`` observes the cluster (from its watch-fed cache), calls :func:`decide`, and carries out
the :class:`Decision`. Concerns, one module each: ``admission`` (refusals), ``runs`` (run identity, history,
retries), ``attempts`` (one Job: phase, restarts, slice failures), ``problems`` (pod problems), ``changes``
(live edits), ``conditions`` (kstatus), ``decide`` (the order they run in).
"""

from .conditions import kstatus_conditions, set_condition
from .decide import decide
from .model import Decision, Event, Observed
from .pods import JobView, PodView, job_view, pod_view

__all__ = [
    "Decision", "Event", "JobView", "Observed", "PodView", "decide", "job_view", "kstatus_conditions",
    "pod_view", "set_condition",
]
