"""What rendering needs from the operator's configuration."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class RenderSettings:
    image_gpu: str = "gemmaft-trainer-gpu:0.1.0"
    """Default trainer image for nvidia-tesla-t4 (GEMMAFT_IMAGE_GPU)."""
    image_tpu: str = "gemmaft-trainer-tpu:0.1.0"
    """Default trainer image for tpu-v3 (GEMMAFT_IMAGE_TPU)."""
    image_cpu: str = "gemmaft-trainer-cpu:0.1.0"
    """Default trainer image for cpu runs (GEMMAFT_IMAGE_CPU)."""
    service_account: str = "gemma-trainer"
    """Default Kubernetes service account of trainer pods (GEMMAFT_TRAINER_SERVICE_ACCOUNT)."""
    grace_seconds: int = 60
    """Pod termination grace: time to finish a step and commit a checkpoint (spot nodes give about 30 s)."""
    shm_size: str = "8Gi"
    """Size limit of the in-memory /dev/shm volume."""

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> RenderSettings:
        env = os.environ if env is None else env
        defaults = cls()
        return cls(
            image_gpu=env.get("GEMMAFT_IMAGE_GPU") or defaults.image_gpu,
            image_tpu=env.get("GEMMAFT_IMAGE_TPU") or defaults.image_tpu,
            image_cpu=env.get("GEMMAFT_IMAGE_CPU") or defaults.image_cpu,
            service_account=env.get("GEMMAFT_TRAINER_SERVICE_ACCOUNT") or defaults.service_account,
        )

    def image_for(self, accelerator_type: str) -> str:
        return {"nvidia-tesla-t4": self.image_gpu, "tpu-v3": self.image_tpu}.get(accelerator_type, self.image_cpu)
