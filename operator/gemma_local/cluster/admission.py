"""What the API server does to an object before storing it: defaults, pruning, validation.

* GemmaFineTune: the CRD's structural schema (from the generated CRD): unknown fields pruned (or refused with
  ``fieldValidation=Strict``, as ``kubectl apply`` sends by default), defaults applied, OpenAPI and CEL rules
  checked; a violation is ``422 Invalid`` naming the field, as the real API server answers.
* Job (batch/v1): the defaults that matter to controllers and kubectl (selector on the controller uid, pod
  template labels, completions, parallelism, backoffLimit, completionMode, suspend), and the immutable fields
  (template, selector, completions, completionMode, podFailurePolicy) refused on update.
* Pod: ``serviceAccountName`` defaults to ``default``, a new pod is ``Pending``.

Other kinds are stored as sent. There is no admission webhook, no ServiceAccount token, no LimitRange or
ResourceQuota, no Pod Security admission.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from gemma_api import KIND

from .. import crd_schema
from .errors import ApiError
from .objects import RESOURCES
from .store import StoredKey

JOB_IMMUTABLE = ("template", "selector", "completionMode", "podFailurePolicy", "completions")


class Invalid(Exception):
    """422 Invalid (or 400 for strict decoding) with the API server's message and causes."""

    def __init__(self, kind: str, group: str, name: str, causes: list[crd_schema.FieldError], code: int = 422):
        self.kind, self.group, self.name, self.causes, self.code = kind, group, name, causes, code
        listed = [str(c) for c in causes]
        detail = listed[0] if len(listed) == 1 else "[" + ", ".join(listed) + "]"
        qualified = f"{kind}.{group}" if group else kind
        if code == 400:
            super().__init__("strict decoding error: " + ", ".join(f'unknown field "{c.field}"' for c in causes))
        else:
            super().__init__(f'{qualified} "{name}" is invalid: {detail}')

    def error(self) -> ApiError:
        details = {"name": self.name, "group": self.group, "kind": self.kind,
                   "causes": [{"reason": c.reason, "message": c.message, "field": c.field} for c in self.causes]}
        return ApiError(self.code, str(self), details)


class Admission:
    """Mixin of :class:`~.server.HttpApi`: ``admit`` runs on every create and update."""

    def admit(self, resource: Any, key: StoredKey, obj: dict[str, Any], params: dict[str, str] | None = None,
              old: dict[str, Any] | None = None) -> dict[str, Any]:
        if resource == RESOURCES[KIND]:
            return self._admit_finetune(resource, key, obj, params or {})
        if resource == RESOURCES["Job"]:
            return _job_update(key, obj, old) if old is not None else _job_defaults(obj)
        if resource == RESOURCES["Pod"] and old is None:
            obj = copy.deepcopy(obj)
            obj.setdefault("spec", {}).setdefault("serviceAccountName", "default")
            obj.setdefault("status", {}).setdefault("phase", "Pending")
        elif resource == RESOURCES["Pod"]:
            _pod_update(key, obj, old)
        return obj

    @staticmethod
    def _admit_finetune(resource: Any, key: StoredKey, obj: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
        schema = crd_schema.openapi_schema()
        unknown = crd_schema.unknown_fields(obj, schema)
        if unknown and params.get("fieldValidation") == "Strict":
            raise Invalid(KIND, resource.group, key[2], unknown, code=400)
        obj = crd_schema.apply_defaults(crd_schema.prune(copy.deepcopy(obj), schema), schema)
        errors = crd_schema.field_errors(obj, schema)
        if errors:
            raise Invalid(KIND, resource.group, key[2], errors)
        return obj


def _job_defaults(job: dict[str, Any]) -> dict[str, Any]:
    job = copy.deepcopy(job)
    meta, spec = job.setdefault("metadata", {}), job.setdefault("spec", {})
    uid = meta.setdefault("uid", str(uuid.uuid4()))  # the store keeps this uid: the selector names it
    template_meta = spec.setdefault("template", {}).setdefault("metadata", {})
    labels = template_meta.setdefault("labels", {})
    if not spec.get("manualSelector"):
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        labels.update({"batch.kubernetes.io/controller-uid": uid, "controller-uid": uid})
    labels.update({"batch.kubernetes.io/job-name": meta.get("name", ""), "job-name": meta.get("name", "")})
    if "completions" not in spec and "parallelism" not in spec:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed")
    return job


def _job_update(key: StoredKey, job: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    changed = [f for f in JOB_IMMUTABLE if (job.get("spec") or {}).get(f) != (old.get("spec") or {}).get(f)]
    if changed:
        causes = [crd_schema.FieldError(f"spec.{f}", "Invalid value: field is immutable") for f in changed]
        raise Invalid("Job", "batch", key[2], causes)
    return job


def _pod_update(key: StoredKey, pod: dict[str, Any], old: dict[str, Any]) -> None:
    """A pod's spec is immutable but for container images, activeDeadlineSeconds and added tolerations."""
    def mutable_parts_cleared(spec: dict[str, Any]) -> dict[str, Any]:
        spec = {k: v for k, v in spec.items() if k not in ("activeDeadlineSeconds", "tolerations")}
        spec["containers"] = [{k: v for k, v in c.items() if k != "image"} for c in spec.get("containers") or ()]
        return spec

    new_spec, old_spec = pod.get("spec") or {}, old.get("spec") or {}
    kept = all(t in (new_spec.get("tolerations") or []) for t in old_spec.get("tolerations") or [])
    if mutable_parts_cleared(new_spec) != mutable_parts_cleared(old_spec) or not kept:
        raise Invalid("Pod", "", key[2], [crd_schema.FieldError(
            "spec", "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, "
                    "`spec.activeDeadlineSeconds` or `spec.tolerations` (only additions to existing tolerations)",
            "FieldValueForbidden")])
