"""Spec and a run in, the vLLM Deployment and Service that serve it out (``gemmaft serve-manifest``, the operator).

The run's adapter (or whole weights) reaches the pod through the Cloud Storage FUSE CSI driver: an ephemeral CSI
volume (``gcsfuse.csi.storage.gke.io``) mounting only the run's folder, read-only, with the pod annotation
``gke-gcsfuse/volumes: "true"`` that makes GKE inject its FUSE sidecar. Why not an init container that copies
the files: no second image with a GCS client to build, patch and allow; no copy before every start; the same
Workload Identity as the trainer (the pod's Kubernetes service account reads the bucket); and the volume is part
of the pod template, so a new run is a new volume and the Deployment rolls. It needs the GKE add-on
(``terraform/``: ``enable_gcs_fuse_csi_driver``). A gs:// base model is mounted the same way; an hf:// one is
downloaded by vLLM into the pod's scratch volume (HF_TOKEN from ``pod.hfTokenSecretRef``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gemma_api import GemmaFineTune
from gemma_api.accelerators import profile
from gemma_api.facts import MODELS
from gemma_api.run import SERVED_WEIGHTS
from gemma_api.serving_engine import SERVE_PORT, engine_family, serving_dtype
from gemma_api.serving_memory import max_model_length, served_lora_rank

from . import names as naming
from .manifests import LABEL_FINETUNE, MANAGED_BY, TRAINER_UID, render_template
from .placement import container_resources, serving_placement
from .settings import RenderSettings

GCSFUSE_DRIVER = "gcsfuse.csi.storage.gke.io"
GCSFUSE_ANNOTATION = "gke-gcsfuse/volumes"
LABEL_SERVED_RUN = "gemmaft.dev/served-run"
SERVING_APP = "gemma-serving"
WEIGHTS_MOUNT = "/models/run"
BASE_MOUNT = "/models/base"


@dataclass(frozen=True)
class ServedRun:
    """The run whose outputs are served: its id and folder (``<output.uri>/<runId>``)."""

    run_id: str
    run_uri: str


@dataclass(frozen=True)
class GcsMount:
    name: str
    bucket: str
    folder: str
    path: str


def gcs_mount(name: str, uri: str, path: str) -> GcsMount:
    bucket, _, folder = uri.removeprefix("gs://").partition("/")
    return GcsMount(name, bucket, folder.strip("/"), path)


def serving_selector(name: str) -> dict[str, str]:
    """The Service's selector: every replica of the fine-tune, whichever run it serves (rolls keep endpoints)."""
    return {"app.kubernetes.io/name": SERVING_APP, LABEL_FINETUNE: naming.label_value(name)}


def _mounts(ft: GemmaFineTune, run: ServedRun) -> list[GcsMount]:
    weights = SERVED_WEIGHTS[ft.spec.method]
    mounts = [gcs_mount("run-weights", f"{run.run_uri}/{weights.folder}", WEIGHTS_MOUNT)]
    if weights.adapter and ft.spec.resolved_model_uri.startswith("gs://"):
        mounts.append(gcs_mount("base-weights", ft.spec.resolved_model_uri, BASE_MOUNT))
    return mounts


def engine_args(ft: GemmaFineTune, run: ServedRun) -> list[str]:
    """The vLLM OpenAI server's arguments: the base with the run's adapter, or the run's whole weights."""
    spec, name = ft.spec, ft.metadata.name
    serving = spec.serving
    weights = SERVED_WEIGHTS[spec.method]
    base = spec.resolved_model_uri
    model = (BASE_MOUNT if base.startswith("gs://") else base.removeprefix("hf://")) if weights.adapter \
        else WEIGHTS_MOUNT
    acc = profile(serving.accelerator.type)
    dtype = serving_dtype(engine_family(MODELS[spec.model].family), acc.compute_dtype)
    args = ["--model", model, "--served-model-name", spec.model if weights.adapter else name,
            "--dtype", dtype, "--max-model-len", str(max_model_length(spec)),
            "--gpu-memory-utilization", str(serving.gpu_memory_utilization),
            "--tensor-parallel-size", str(acc.gpus(serving.accelerator.count)),
            "--host", "0.0.0.0", "--port", str(SERVE_PORT)]
    if weights.adapter:
        args += ["--enable-lora", "--max-loras", "1", "--max-lora-rank", str(served_lora_rank(spec)),
                 "--lora-modules", f"{name}={WEIGHTS_MOUNT}"]
    return args


def guaranteed_memory(resources: dict[str, Any]) -> dict[str, Any]:
    """Memory requested and limited alike (the one given fills the other): a serving pod is not evicted first
    under node memory pressure, and never grows past what it asked for."""
    requests, limits = dict(resources.get("requests", {})), dict(resources.get("limits", {}))
    memory = limits.get("memory") or requests.get("memory")
    if memory is None:
        return resources
    return {**resources, "requests": {"memory": memory, **requests}, "limits": {"memory": memory, **limits}}


def _env(ft: GemmaFineTune) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [{"name": "HOME", "value": "/tmp"}, {"name": "HF_HOME", "value": "/tmp/hf"}]
    ref = ft.spec.pod.hf_token_secret_ref
    if ref is not None:
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    return env


def render_serving(ft: GemmaFineTune, settings: RenderSettings, namespace: str,
                   run: ServedRun) -> list[dict[str, Any]]:
    """The Deployment and Service serving ``run`` of the fine-tune (owner references are the caller's)."""
    spec, name = ft.spec, ft.metadata.name
    serving = spec.serving
    where = serving_placement(spec)
    object_name = naming.serving_name(name)
    selector = serving_selector(name)
    labels = {**selector, "app.kubernetes.io/managed-by": MANAGED_BY, LABEL_SERVED_RUN: run.run_id}
    deployment = render_template(
        "serving-deployment.yaml.j2", name=object_name, namespace=namespace, labels=labels, selector=selector,
        replicas=serving.replicas, annotations={GCSFUSE_ANNOTATION: "true"},
        service_account=settings.serving_service_account,
        image=serving.image or settings.serving_image, args=engine_args(ft, run), env=_env(ft), port=SERVE_PORT,
        node_selector=where.node_selector, tolerations=where.tolerations, uid=TRAINER_UID,
        resources=guaranteed_memory(container_resources(serving.resources, where)), mounts=_mounts(ft, run), driver=GCSFUSE_DRIVER,
        scratch_limit=where.scratch_limit, shm_size=settings.shm_size,
    )
    service = render_template("serving-service.yaml.j2", name=object_name, namespace=namespace,
                              labels={k: v for k, v in labels.items() if k != LABEL_SERVED_RUN},
                              selector=selector, port=SERVE_PORT)
    return [deployment, service]
