"""Whether the operator runs a fine-tune at all: a valid spec, and pods the operator's policy allows."""

from __future__ import annotations

from dataclasses import dataclass

from gemma_operator.settings import OperatorSettings

from .staged_run import InvalidSpec, StagedRun


@dataclass(frozen=True)
class Refusal:
    reason: str
    message: str


def admit(run: StagedRun | InvalidSpec, policy: OperatorSettings) -> StagedRun | Refusal:
    """The run, or why the operator refuses it: an invalid spec, or pods its policy does not allow."""
    if isinstance(run, InvalidSpec):
        return Refusal("InvalidSpec", "invalid spec: " + "; ".join(run.problems))
    ft = run.ft
    pod = ft.spec.pod
    image = pod.image or policy.render_settings().image_for(ft.spec.accelerator.type)
    if not policy.image_allowed(image):
        allowed = ", ".join(policy.image_prefixes())
        return Refusal("ImageNotAllowed", f"spec.pod.image: image {image!r} is not allowed: it must be under one of "
                                          f"the operator's image prefixes ({allowed}); use an image from there or "
                                          "ask the operator's admin to add its repository")
    serving_image = ft.spec.serving.image if ft.spec.serving is not None else None
    if serving_image and not policy.serving_image_allowed(serving_image):
        allowed = ", ".join((*policy.image_prefixes(), policy.serving_image))
        return Refusal("ImageNotAllowed", f"spec.serving.image: image {serving_image!r} is not allowed: use the "
                                          f"operator's serving image's repository or one of its image prefixes "
                                          f"({allowed}), or remove the field")
    account = pod.service_account_name or policy.trainer_service_account
    if not policy.service_account_allowed(account):
        allowed = ", ".join(policy.service_accounts())
        return Refusal("ServiceAccountNotAllowed",
                       f"spec.pod.serviceAccountName: {account!r} is not one of the service accounts this operator "
                       f"lets trainer pods use ({allowed}); remove the field or use one of those")
    return run
