"""What rendering needs from the operator's configuration (built by ``OperatorSettings.render_settings``)."""

from __future__ import annotations

from dataclasses import dataclass

from gemma_api.accelerators import profile


@dataclass(frozen=True)
class RenderSettings:
    image_gpu: str = "gemmaft-trainer-gpu:0.1.0"
    """Default trainer image for GPU types (nvidia-tesla-t4, nvidia-l4, nvidia-h100-80gb)."""
    image_tpu: str = "gemmaft-trainer-tpu:0.1.0"
    """Default trainer image for TPU types (tpu-v3, tpu-v5e)."""
    image_cpu: str = "gemmaft-trainer-cpu:0.1.0"
    """Default trainer image for cpu runs."""
    service_account: str = "gemma-trainer"
    """Default Kubernetes service account of trainer pods."""
    grace_seconds: int = 60
    """Pod termination grace: time to finish a step and commit a checkpoint (spot nodes give about 30 s)."""
    shm_size: str = "8Gi"
    """Size limit of the in-memory /dev/shm volume."""
    serving_image: str = "vllm/vllm-openai:v0.11.0"
    """Default vLLM OpenAI-compatible server image of serving pods (its LoRA limits: api/serving_engine.py)."""
    serving_service_account: str = "gemma-server"
    """Default Kubernetes service account of serving pods (reads the run's adapter from GCS)."""

    def image_for(self, accelerator_type: str) -> str:
        images = {"gpu": self.image_gpu, "tpu": self.image_tpu, "cpu": self.image_cpu}
        return images[profile(accelerator_type).kind]
