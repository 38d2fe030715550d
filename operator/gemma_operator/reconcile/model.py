"""What a decision sees (:class:`Observed`) and what it asks for (:class:`Decision`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from gemma_api.base import merge_unknown
from gemma_api.run import RunProgress
from gemma_api.status import GemmaFineTuneStatus

from .staged_run import InvalidSpec, StagedRun, staged_run


@dataclass(frozen=True)
class Event:
    type: str  # Normal or Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Observed:
    body: dict[str, Any]
    """The GemmaFineTune as read from the API."""
    jobs: list[dict[str, Any]] = field(default_factory=list)
    """Its Jobs (any run, any attempt) from the operator's watch-fed cache."""
    pods: list[dict[str, Any]] = field(default_factory=list)
    """Its pods from the cache."""
    gone_jobs: list[dict[str, Any]] = field(default_factory=list)
    """Last watched state of its Jobs deleted meanwhile (TTL, a person, garbage collection)."""
    gone_pods: list[dict[str, Any]] = field(default_factory=list)
    """Last watched state of its deleted pods."""
    job_problems: dict[str, str] = field(default_factory=dict)
    """Job name -> why the Job controller could not create its pods (its last FailedCreate Event)."""
    awaited: frozenset[str] = frozenset()
    """Jobs this operator created that its cache has not shown yet (not vanished: not seen yet)."""
    progress: RunProgress | None = None
    """The current run's progress.json, if it was read."""
    source: dict[str, Any] | None = None
    """Distillation: the GemmaFineTune named by spec.distillation.teacher.fromFineTune, from the cache."""
    teacher_progress: RunProgress | None = None
    """Distillation: the teacher stage's progress.json (``<output.uri>/teacher-<key>/``), if it was read."""
    now: str = "1970-01-01T00:00:00Z"
    staged: StagedRun | InvalidSpec | None = None
    """The run the body asks for, as the runtime computed it before reading progress (computed from ``body`` and
    ``source`` here when not given)."""

    def __post_init__(self) -> None:
        if self.staged is None:
            object.__setattr__(self, "staged", staged_run(self.body, self.source))


@dataclass(frozen=True)
class Actions:
    """What a part of a decision asks the runtime to do; parts combine with ``+`` in the order they were decided."""

    create: tuple[dict[str, Any], ...] = ()
    apply: tuple[dict[str, Any], ...] = ()
    patch_jobs: tuple[tuple[str, dict[str, Any]], ...] = ()
    delete: tuple[tuple[str, str], ...] = ()
    events: tuple[Event, ...] = ()
    results: tuple[str, ...] = ()
    new_preemptions: int = 0
    slice_restarts: int = 0

    def __add__(self, other: Actions) -> Actions:
        return Actions(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Actions)))

    def decision(self, status: dict[str, Any], active: bool = False) -> Decision:
        """The decision with ``status`` (as the decision built it, JSON) typed by the model the CRD's schema comes
        from; fields it carried over that the model does not know are kept apart (``unknown_status``)."""
        known, unknown = GemmaFineTuneStatus.split_unknown(status)
        return Decision(create=list(self.create), apply=list(self.apply), patch_jobs=list(self.patch_jobs),
                        delete=list(self.delete), status=GemmaFineTuneStatus.model_validate(known),
                        unknown_status=unknown, events=list(self.events),
                        results=list(self.results), new_preemptions=self.new_preemptions,
                        slice_restarts=self.slice_restarts, active=active)


@dataclass
class Decision:
    create: list[dict[str, Any]] = field(default_factory=list)
    """Objects to create, in order, owner references set ("already exists" counts as done)."""
    apply: list[dict[str, Any]] = field(default_factory=list)
    """Objects to create, or to merge-patch (labels and spec) when they exist: the serving Deployment."""
    patch_jobs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """(Job name, merge patch)."""
    delete: list[tuple[str, str]] = field(default_factory=list)
    """(kind, name) to delete after the status write ("not found" counts as done)."""
    status: GemmaFineTuneStatus = field(default_factory=GemmaFineTuneStatus)
    """The whole new status, typed by the model the CRD's schema comes from (a status it does not describe fails
    here, not in the API server)."""
    unknown_status: dict[str, Any] = field(default_factory=dict)
    """Fields of the last status this operator's model does not know (a newer operator wrote them, and the operator
    was rolled back under the newer CRD): written back as they were, never dropped."""
    events: list[Event] = field(default_factory=list)
    results: list[str] = field(default_factory=list)
    """Runs that finished in this step: succeeded or failed (for metrics)."""
    new_preemptions: int = 0
    slice_restarts: int = 0
    active: bool = False
    """Whether a trainer is running, so its progress.json is worth polling. Pending, Suspended and finished
    runs change only through objects the operator watches."""

    @property
    def wire_status(self) -> dict[str, Any]:
        """The status to write, as JSON; the runtime fills in ``job.uid`` from the create answer of ``job.name``."""
        return merge_unknown(self.status.to_wire(), self.unknown_status)

