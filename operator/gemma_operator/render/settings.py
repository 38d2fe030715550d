"""What rendering needs from the operator's configuration (built by ``OperatorSettings.render_settings``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RenderSettings:
    image_gpu: str = "gemmaft-trainer-gpu:0.1.0"
    """Default trainer image for nvidia-tesla-t4."""
    image_tpu: str = "gemmaft-trainer-tpu:0.1.0"
    """Default trainer image for tpu-v3."""
    image_cpu: str = "gemmaft-trainer-cpu:0.1.0"
    """Default trainer image for cpu runs."""
    service_account: str = "gemma-trainer"
    """Default Kubernetes service account of trainer pods."""
    grace_seconds: int = 60
    """Pod termination grace: time to finish a step and commit a checkpoint (spot nodes give about 30 s)."""
    shm_size: str = "8Gi"
    """Size limit of the in-memory /dev/shm volume."""

    def image_for(self, accelerator_type: str) -> str:
        return {"nvidia-tesla-t4": self.image_gpu, "tpu-v3": self.image_tpu}.get(accelerator_type, self.image_cpu)
