"""``GemmaFineTune.spec.serving``: where and how the fine-tune is served (a vLLM Deployment and Service).

Serving never changes what is trained: it is not part of the run id (``resource.TRAINING_FIELDS``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from .accelerator_spec import Accelerator, cel_list
from .accelerators import names_of, spelled_list
from .base import ApiModel, cel, with_cel
from .container_resources import Resources
from .fields import Image, reject_bool
from .serving_engine import DEFAULT_GPU_MEMORY_UTILIZATION, MAX_LORA_RANKS

MaxLoraRank = Literal[MAX_LORA_RANKS]  # type: ignore[valid-type]


class Serving(ApiModel):
    """The served model: base weights plus the adapter of the newest run that passed (or Succeeded)."""

    model_config = with_cel(
        cel(f"self.accelerator.type in {cel_list(names_of('gpu'))}",
            f"serving runs vLLM on a CUDA GPU: use accelerator.type {spelled_list(names_of('gpu'))}",
            ".accelerator.type"),
    )

    accelerator: Accelerator
    """GPU of each serving replica (nvidia-tesla-t4, nvidia-l4, nvidia-h100-80gb); count GPUs split the model
    (tensor parallelism)."""
    replicas: int = Field(1, ge=0, le=64)
    """Serving pods behind the Service."""
    image: Image | None = None
    """vLLM OpenAI-compatible server image; default from the operator's settings (GEMMAFT_SERVING_IMAGE)."""
    max_model_length: int | None = Field(None, ge=16, le=131_072)
    """Longest prompt plus answer in tokens (vLLM --max-model-len); default training.maxSeqLength."""
    concurrent_sequences: int = Field(1, ge=1, le=1024)
    """Sequences of maxModelLength whose KV cache must fit at once (admission checks memory for them)."""
    max_lora_rank: Annotated[MaxLoraRank, BeforeValidator(reject_bool)] | None = None
    """vLLM --max-lora-rank (1, 8, 16, 32, 64, 128, 256, 320 or 512); default the smallest that holds lora.r."""
    gpu_memory_utilization: float = Field(DEFAULT_GPU_MEMORY_UTILIZATION, gt=0.0, le=0.98)
    """Fraction of each GPU vLLM may take (weights, activations, KV cache)."""
    resources: Resources | None = None
    """CPU and memory requests and limits of the server container (GPUs come from accelerator)."""
