"""Semantic rules over a structurally valid spec. Each problem names the field and the fix."""

from __future__ import annotations

from dataclasses import dataclass

from .accelerator import Accelerator
from .distillation import teacher_accelerator
from .facts import MODEL_PACKAGES, MODELS, TPU_V3_TOPOLOGIES, tokenizer_family
from .memory import estimate
from .spec import GemmaFineTuneSpec
from .teacher_memory import teacher_estimate


@dataclass(frozen=True)
class Problem:
    field: str  # dotted path in camelCase, e.g. "spec.accelerator.count"
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def _smaller_fix(spec: GemmaFineTuneSpec) -> str:
    if spec.accelerator.type == "nvidia-tesla-t4":
        if spec.method in ("lora", "freeze", "full"):
            return "use method qlora (4-bit base weights) or accelerator.type tpu-v3, or a smaller model"
        return "use accelerator.type tpu-v3 (method lora) or a smaller model"
    if spec.accelerator.type == "tpu-v3":
        bigger = [t for t, s in TPU_V3_TOPOLOGIES.items() if s.chips > TPU_V3_TOPOLOGIES[spec.topology].chips]
        return f"use a larger accelerator.topology ({', '.join(bigger[:3])}) or method lora"
    return "choose a smaller model"


def check_fit(spec: GemmaFineTuneSpec) -> list[Problem]:
    est = estimate(spec)
    if est.fits:
        return []
    where = spec.accelerator.type if spec.accelerator.type != "tpu-v3" else f"tpu-v3 {spec.topology}"
    msg = (
        f"{spec.model} with method {spec.method} does not fit {where}: {est.describe()}. "
        f"Fix: {_smaller_fix(spec)}; or lower training.batchSize ({spec.training.batch_size}) "
        f"or training.maxSeqLength ({spec.training.max_seq_length})."
    )
    return [Problem("spec.method", msg)]


PACKAGE_SCHEME = "pkg://"


def check_model_package(spec: GemmaFineTuneSpec) -> list[Problem]:
    """A ``pkg://NAME`` modelUri names a known weights package, and those weights are ``spec.model``."""
    uri = spec.model_uri or ""
    if not uri.startswith(PACKAGE_SCHEME):
        return []
    name = uri[len(PACKAGE_SCHEME):]
    package = MODEL_PACKAGES.get(name)
    if package is None:
        known = ", ".join(PACKAGE_SCHEME + n for n in MODEL_PACKAGES)
        return [Problem("spec.modelUri", f"unknown weights package {name!r}: use one of {known}, an hf://, "
                                         "gs:// or local model folder")]
    if package.model != spec.model:
        return [Problem("spec.model", f"{uri} holds {package.model} weights, not {spec.model}: "
                                      f"set model: {package.model} or choose another modelUri")]
    return []


# Environment names a spec may not set: the operator sets them, or they steer credentials and endpoints
# (an HF token in plain text, anonymous storage against any endpoint, another cloud identity, TPU host wiring).
RESERVED_ENV = frozenset({
    "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HOME", "HF_ENDPOINT", "HOME", "PYTHONUNBUFFERED", "PJRT_DEVICE",
    "STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_OAUTH_ACCESS_TOKEN", "CLOUDSDK_CONFIG",
    "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "NO_GCE_CHECK",
})
RESERVED_ENV_PREFIXES = ("GEMMAFT_", "AWS_", "AZURE_", "CLOUDSDK_AUTH_", "GCE_METADATA", "TPU_", "XLA_", "HF_HUB_")


def check_pod_env(spec: GemmaFineTuneSpec) -> list[Problem]:
    problems = []
    for i, env in enumerate(spec.pod.env or ()):
        name = env.name.upper()
        if name in RESERVED_ENV or name.startswith(RESERVED_ENV_PREFIXES):
            fix = ("use hfTokenSecretRef for the token" if "TOKEN" in name and name.startswith(("HF", "HUGGING"))
                   else "remove it; the operator sets the trainer's credentials, storage and runtime variables")
            problems.append(Problem(f"spec.pod.env[{i}].name", f"{env.name} is reserved: {fix}"))
    return problems


def check_rules(spec: GemmaFineTuneSpec) -> list[Problem]:
    """Every rule, including those the CRD's CEL rules also enforce (a spec may arrive without the API server)."""
    problems: list[Problem] = _accelerator_problems(spec.accelerator, "spec.accelerator")
    acc = spec.accelerator
    if spec.method == "qlora" and acc.type != "nvidia-tesla-t4":
        problems.append(Problem("spec.method",
                                f"method qlora needs a CUDA GPU (bitsandbytes), not {acc.type}: use accelerator.type "
                                "nvidia-tesla-t4, or method lora on tpu-v3"))
    if not spec.output.uri.startswith("gs://") and acc.type != "cpu":
        problems.append(Problem("spec.output.uri",
                                "output.uri must be gs://BUCKET/PATH on GKE; a local path works only with "
                                "accelerator.type cpu"))
    layers = MODELS[spec.model].layers
    if spec.method == "freeze" and spec.freeze.trainable_layers > layers:
        problems.append(Problem("spec.freeze.trainableLayers",
                                f"{spec.model} has {layers} decoder layers: set trainableLayers to at most {layers}"))
    if spec.training.eval_every_steps is not None and spec.dataset.eval_uri is None:
        problems.append(Problem("spec.training.evalEverySteps",
                                "evaluation needs data: set dataset.evalUri or remove evalEverySteps"))
    problems.extend(check_model_package(spec))
    problems.extend(check_pod_env(spec))
    if spec.distillation is not None:
        problems.extend(check_distillation(spec))
    if not problems:
        problems.extend(check_fit(spec))
    return problems


def _accelerator_problems(acc: Accelerator, path: str) -> list[Problem]:
    problems = []
    if acc.count is not None and acc.type != "nvidia-tesla-t4":
        problems.append(Problem(f"{path}.count",
                                f"count applies only to nvidia-tesla-t4, not {acc.type}: remove it "
                                "(a TPU slice is sized by topology)"))
    if acc.topology is not None and acc.type != "tpu-v3":
        problems.append(Problem(f"{path}.topology",
                                "topology applies only to tpu-v3: remove it or set type: tpu-v3"))
    return problems


def _teacher_fit(spec: GemmaFineTuneSpec) -> list[Problem]:
    est = teacher_estimate(spec)
    if est.fits:
        return []
    teacher, acc = spec.distillation.teacher, teacher_accelerator(spec)
    where = acc.type if acc.type != "tpu-v3" else f"tpu-v3 {acc.topology or '2x2'}"
    fixes = []
    if acc.type == "nvidia-tesla-t4" and teacher.quantization == "none":
        fixes.append("set distillation.teacher.quantization: nf4 (4-bit teacher weights)")
    fixes.append("set distillation.accelerator to tpu-v3 (a larger topology if needed)")
    return [Problem("spec.distillation.teacher.model",
                    f"teacher {teacher.model} does not fit {where} for its forward pass: {est.describe()}. "
                    f"Fix: {'; or '.join(fixes)}; or lower training.batchSize ({spec.training.batch_size}) "
                    f"or training.maxSeqLength ({spec.training.max_seq_length}).")]


def check_distillation(spec: GemmaFineTuneSpec) -> list[Problem]:
    """The teacher: its source fields, tokenizer family, quantization and forward-only fit."""
    d = spec.distillation
    teacher, acc = d.teacher, teacher_accelerator(spec)
    path = "spec.distillation.teacher"
    problems = _accelerator_problems(d.accelerator, "spec.distillation.accelerator") if d.accelerator else []
    if teacher.from_fine_tune is not None and (teacher.model_uri or teacher.adapter_uri):
        problems.append(Problem(f"{path}.fromFineTune",
                                "fromFineTune takes the weights and adapter of that fine-tune: remove "
                                "teacher.modelUri and teacher.adapterUri"))
    student_family, teacher_family = tokenizer_family(spec.model), tokenizer_family(teacher.model)
    if student_family != teacher_family:
        problems.append(Problem(f"{path}.model",
                                f"teacher {teacher.model} uses the {teacher_family} tokenizer and the student "
                                f"{spec.model} the {student_family} one: the student learns the teacher's "
                                "distribution over the same token ids. Fix: choose a teacher of the student's "
                                "family, or a student of the teacher's"))
    if spec.accelerator.type == "tpu-v3":
        problems.append(Problem("spec.accelerator.type",
                                "a distillation student trains on nvidia-tesla-t4 or cpu (its loss is not built "
                                "for XLA's static shapes yet): set accelerator.type nvidia-tesla-t4; the teacher "
                                "can still run on tpu-v3 with distillation.accelerator"))
    if teacher.quantization == "nf4" and acc.type != "nvidia-tesla-t4":
        problems.append(Problem(f"{path}.quantization",
                                f"nf4 (a QLoRA teacher) needs a CUDA GPU (bitsandbytes), not {acc.type}: set "
                                "quantization: none, or distillation.accelerator.type: nvidia-tesla-t4"))
    if d.accelerator is not None and not spec.output.uri.startswith("gs://") and acc.type != "cpu":
        problems.append(Problem("spec.distillation.accelerator.type",
                                "a local output.uri works only with accelerator type cpu for both stages: "
                                "use gs://BUCKET/PATH or type: cpu"))
    if not problems:
        problems.extend(_teacher_fit(spec))
    return problems
