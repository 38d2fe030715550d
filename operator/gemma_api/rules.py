"""Semantic rules over a structurally valid spec. Each problem names the field and the fix."""

from __future__ import annotations

from .accelerators import names_of, profile, spelled_list
from .distillation import teacher_accelerator
from .facts import MODEL_PACKAGES, MODELS, tokenizer_family
from .memory import estimate
from .methods import smallest_weights_method, training_method
from .problem import Problem, accelerator_problems
from .serving_rules import check_serving
from .spec import GemmaFineTuneSpec
from .teacher_memory import teacher_estimate


def _smaller_fix(spec: GemmaFineTuneSpec) -> str:
    acc = profile(spec.accelerator.type)
    if acc.kind == "gpu":
        smaller = smallest_weights_method()
        if spec.method != smaller.name:
            return (f"use method {smaller.name} (4-bit base weights) or accelerator.type {acc.larger_alternative}, "
                    "or a smaller model")
        return f"use accelerator.type {acc.larger_alternative} (method lora) or a smaller model"
    if acc.kind == "tpu":
        chips = acc.topology(spec.topology).chips
        bigger = [t for t, s in acc.topologies.items() if s.chips > chips]
        return f"use a larger accelerator.topology ({', '.join(bigger[:3])}) or method lora"
    return "choose a smaller model"


def check_fit(spec: GemmaFineTuneSpec) -> list[Problem]:
    est = estimate(spec)
    if est.fits:
        return []
    where = profile(spec.accelerator.type).describe(spec.topology)
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


def check_rules(spec: GemmaFineTuneSpec, local_run: bool = False) -> list[Problem]:
    """Every rule, including those the CRD's CEL rules also enforce (a spec may arrive without the API server).
    ``local_run``: the spec runs on this machine (``--emulate-accelerator``, ``check-numerics``), where a local
    output folder is fine whatever the accelerator."""
    problems: list[Problem] = accelerator_problems(spec.accelerator, "spec.accelerator")
    acc = spec.accelerator
    if training_method(spec.method).needs_cuda and profile(acc.type).kind != "gpu":
        problems.append(Problem("spec.method",
                                f"method {spec.method} needs a CUDA GPU (bitsandbytes), not {acc.type}: use "
                                f"accelerator.type {spelled_list(names_of('gpu'))}, or method lora on "
                                f"{spelled_list(names_of('tpu'))}"))
    if not spec.output.uri.startswith("gs://") and acc.type != "cpu" and not local_run:
        problems.append(Problem("spec.output.uri",
                                "output.uri must be gs://BUCKET/PATH on GKE; a local path works only with "
                                "accelerator.type cpu"))
    problems.extend(Problem(field, message)
                    for field, message in training_method(spec.method).problems(spec, MODELS[spec.model]))
    if spec.training.eval_every_steps is not None and spec.dataset.eval_uri is None:
        problems.append(Problem("spec.training.evalEverySteps",
                                "evaluation needs data: set dataset.evalUri or remove evalEverySteps"))
    problems.extend(check_model_package(spec))
    problems.extend(check_pod_env(spec))
    if spec.distillation is not None:
        problems.extend(check_distillation(spec))
    if spec.evaluation is not None and spec.evaluation.rows_uri(spec) is None:
        problems.append(Problem("spec.evaluation.evalUri",
                                "the evaluation needs held-out rows: set evaluation.evalUri or dataset.evalUri"))
    if not problems:
        problems.extend(check_fit(spec))
    if spec.serving is not None and not problems:
        problems.extend(check_serving(spec))
    return problems


def _teacher_fit(spec: GemmaFineTuneSpec) -> list[Problem]:
    est = teacher_estimate(spec)
    if est.fits:
        return []
    teacher, acc = spec.distillation.teacher, teacher_accelerator(spec)
    where = profile(acc.type).describe(acc.topology)
    fixes = []
    if profile(acc.type).kind == "gpu" and teacher.quantization == "none":
        fixes.append("set distillation.teacher.quantization: nf4 (4-bit teacher weights)")
    fixes.append(f"set distillation.accelerator to {spelled_list(names_of('tpu'))} (a larger topology if needed)")
    return [Problem("spec.distillation.teacher.model",
                    f"teacher {teacher.model} does not fit {where} for its forward pass: {est.describe()}. "
                    f"Fix: {'; or '.join(fixes)}; or lower training.batchSize ({spec.training.batch_size}) "
                    f"or training.maxSeqLength ({spec.training.max_seq_length}).")]


def check_distillation(spec: GemmaFineTuneSpec) -> list[Problem]:
    """The teacher: its source fields, tokenizer family, quantization and forward-only fit."""
    d = spec.distillation
    teacher, acc = d.teacher, teacher_accelerator(spec)
    path = "spec.distillation.teacher"
    problems = accelerator_problems(d.accelerator, "spec.distillation.accelerator") if d.accelerator else []
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
    gpus, tpus = spelled_list(names_of("gpu")), spelled_list(names_of("tpu"))
    if profile(spec.accelerator.type).kind == "tpu":
        problems.append(Problem("spec.accelerator.type",
                                f"a distillation student trains on {gpus} or cpu (its loss is not built "
                                f"for XLA's static shapes yet): set accelerator.type {gpus}; the teacher "
                                f"can still run on {tpus} with distillation.accelerator"))
    if teacher.quantization == "nf4" and profile(acc.type).kind != "gpu":
        problems.append(Problem(f"{path}.quantization",
                                f"nf4 (a QLoRA teacher) needs a CUDA GPU (bitsandbytes), not {acc.type}: set "
                                f"quantization: none, or distillation.accelerator.type: {gpus}"))
    if d.accelerator is not None and not spec.output.uri.startswith("gs://") and acc.type != "cpu":
        problems.append(Problem("spec.distillation.accelerator.type",
                                "a local output.uri works only with accelerator type cpu for both stages: "
                                "use gs://BUCKET/PATH or type: cpu"))
    if not problems:
        problems.extend(_teacher_fit(spec))
    return problems
