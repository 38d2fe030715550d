"""The operator's settings, read once from the environment (the Helm chart sets the same variable names)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from gemma_operator.render.settings import RenderSettings


def _list(value: str | None) -> tuple[str, ...]:
    return tuple(item.strip() for item in (value or "").split(",") if item.strip())


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ValueError(f"{name}={value} must be at least {minimum}")
    return value


@dataclass(frozen=True)
class OperatorSettings:
    namespaces: tuple[str, ...] = ()
    """GEMMAFT_NAMESPACES: comma-separated namespaces to watch; empty watches the whole cluster."""
    image_gpu: str = RenderSettings.image_gpu
    """GEMMAFT_IMAGE_GPU: default trainer image for the GPU accelerators (nvidia-tesla-t4, nvidia-l4,
    nvidia-h100-80gb)."""
    image_tpu: str = RenderSettings.image_tpu
    """GEMMAFT_IMAGE_TPU: default trainer image for the TPU accelerators (tpu-v3, tpu-v5e)."""
    image_cpu: str = RenderSettings.image_cpu
    """GEMMAFT_IMAGE_CPU: default trainer image for accelerator cpu."""
    allowed_image_prefixes: tuple[str, ...] = ()
    """GEMMAFT_ALLOWED_IMAGE_PREFIXES: comma-separated image prefixes, compared on whole path segments
    (``registry/project/`` allows ``registry/project/trainer:1``, not ``registry/project-x/...``); empty: only
    the repositories of the three default trainer images."""
    trainer_service_account: str = RenderSettings.service_account
    """GEMMAFT_TRAINER_SERVICE_ACCOUNT: default Kubernetes service account of trainer pods."""
    allowed_service_accounts: tuple[str, ...] = ()
    """GEMMAFT_ALLOWED_SERVICE_ACCOUNTS: comma-separated service accounts spec.pod.serviceAccountName may name;
    empty: only GEMMAFT_TRAINER_SERVICE_ACCOUNT."""
    serving_image: str = RenderSettings.serving_image
    """GEMMAFT_SERVING_IMAGE: default vLLM image of serving pods (spec.serving.image wins)."""
    serving_service_account: str = RenderSettings.serving_service_account
    """GEMMAFT_SERVING_SERVICE_ACCOUNT: Kubernetes service account of serving pods (reads run folders in GCS)."""
    metrics_port: int = 9090
    """GEMMAFT_METRICS_PORT: Prometheus metrics on http://:PORT/metrics (0 disables)."""
    health_port: int = 8080
    """GEMMAFT_HEALTH_PORT: liveness probe on http://:PORT/healthz (0 disables)."""
    log_format: str = "json"
    """GEMMAFT_LOG_FORMAT: json (one object per line) or plain."""
    run_history: int = 10
    """GEMMAFT_RUN_HISTORY: runs kept in status.runs (newest first)."""
    progress_interval_seconds: float = 30.0
    """GEMMAFT_PROGRESS_INTERVAL_SECONDS: how often a running trainer's progress.json is read (nothing else is polled)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorSettings:
        env = os.environ if env is None else env
        d = cls()
        log_format = (env.get("GEMMAFT_LOG_FORMAT") or d.log_format).lower()
        if log_format not in ("json", "plain"):
            raise ValueError(f"GEMMAFT_LOG_FORMAT={log_format!r}: use json or plain")
        interval_raw = env.get("GEMMAFT_PROGRESS_INTERVAL_SECONDS")
        try:
            interval = float(interval_raw) if interval_raw else d.progress_interval_seconds
        except ValueError:
            raise ValueError(f"GEMMAFT_PROGRESS_INTERVAL_SECONDS={interval_raw!r} is not a number") from None
        if interval <= 0:
            raise ValueError("GEMMAFT_PROGRESS_INTERVAL_SECONDS must be positive")
        return cls(
            namespaces=_list(env.get("GEMMAFT_NAMESPACES")),
            image_gpu=env.get("GEMMAFT_IMAGE_GPU") or d.image_gpu,
            image_tpu=env.get("GEMMAFT_IMAGE_TPU") or d.image_tpu,
            image_cpu=env.get("GEMMAFT_IMAGE_CPU") or d.image_cpu,
            allowed_image_prefixes=_list(env.get("GEMMAFT_ALLOWED_IMAGE_PREFIXES")),
            trainer_service_account=env.get("GEMMAFT_TRAINER_SERVICE_ACCOUNT") or d.trainer_service_account,
            allowed_service_accounts=_list(env.get("GEMMAFT_ALLOWED_SERVICE_ACCOUNTS")),
            serving_image=env.get("GEMMAFT_SERVING_IMAGE") or d.serving_image,
            serving_service_account=env.get("GEMMAFT_SERVING_SERVICE_ACCOUNT") or d.serving_service_account,
            metrics_port=_int(env, "GEMMAFT_METRICS_PORT", d.metrics_port),
            health_port=_int(env, "GEMMAFT_HEALTH_PORT", d.health_port),
            log_format=log_format,
            run_history=_int(env, "GEMMAFT_RUN_HISTORY", d.run_history, minimum=1),
            progress_interval_seconds=interval,
        )

    def render_settings(self) -> RenderSettings:
        return RenderSettings(image_gpu=self.image_gpu, image_tpu=self.image_tpu, image_cpu=self.image_cpu,
                              service_account=self.trainer_service_account, serving_image=self.serving_image,
                              serving_service_account=self.serving_service_account)

    def image_prefixes(self) -> tuple[str, ...]:
        """The allowed prefixes; by default the repositories of the default trainer images."""
        if self.allowed_image_prefixes:
            return self.allowed_image_prefixes
        return tuple(dict.fromkeys(_repository(i) for i in (self.image_gpu, self.image_tpu, self.image_cpu)))

    def image_allowed(self, image: str) -> bool:
        segments = _segments(_repository(image))
        for prefix in self.image_prefixes():
            want = _segments(prefix)
            if want and segments[: len(want)] == want:
                return True
        return False

    def serving_image_allowed(self, image: str) -> bool:
        """spec.serving.image: the default serving image's repository, or under the allowed prefixes."""
        return _repository(image) == _repository(self.serving_image) or self.image_allowed(image)

    def service_accounts(self) -> tuple[str, ...]:
        return self.allowed_service_accounts or (self.trainer_service_account,)

    def service_account_allowed(self, name: str) -> bool:
        return name in self.service_accounts()


def _repository(image: str) -> str:
    """``registry/path/name`` of an image reference, without its tag or digest."""
    name = image.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    last = last.split(":", 1)[0]
    return f"{head}/{last}" if head else last


def _segments(ref: str) -> list[str]:
    return [s for s in ref.strip().split("/") if s]
