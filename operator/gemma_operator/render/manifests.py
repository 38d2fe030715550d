"""Spec in, Kubernetes objects out: the run's ConfigMap, the headless Service of a slice, and the Job."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jinja2
import yaml
from gemma_api import GemmaFineTune, RunConfig
from gemma_api.distillation import stage_spec
from gemma_api.facts import KUEUE_QUEUE_LABEL
from gemma_api.run import (
    CONFIG_DIR,
    CONFIG_FILE,
    EXIT_BELOW_THRESHOLD,
    EXIT_INPUTS_CHANGED,
    EXIT_INVALID_INPUT,
    EXIT_NON_FINITE,
    EXIT_PREEMPTED,
)
from gemma_api.yamlio import dump_yaml

from . import names as naming
from .placement import Placement, container_resources, placement, slice_affinity
from .settings import RenderSettings

TRAINER_UID = 10001
MANAGED_BY = "gemma-finetune-operator"
LABEL_FINETUNE = "gemmaft.dev/finetune"
LABEL_RUN = "gemmaft.dev/run-id"
LABEL_ATTEMPT = "gemmaft.dev/attempt"
LABEL_STAGE = "gemmaft.dev/stage"


@dataclass(frozen=True)
class RunNames:
    job: str
    service: str
    config_map: str


def run_names(name: str, run_id: str, attempt: int = 0) -> RunNames:
    return RunNames(
        job=naming.job_name(name, run_id, attempt),
        service=naming.service_name(name, run_id, attempt),
        config_map=naming.config_map_name(name, run_id),
    )


def run_labels(name: str, run_id: str, attempt: int | None = None) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/name": "gemma-finetune",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        LABEL_FINETUNE: naming.label_value(name),
        LABEL_RUN: run_id,
    }
    if attempt is not None:
        labels[LABEL_ATTEMPT] = str(attempt)
    return labels


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: the same result, ~10x faster
# JSON writes a character outside the BMP as a UTF-16 surrogate pair (\ud83d\ude00), which YAML refuses; YAML's own
# escape for it is \U0001f600. An escaped backslash (\\) is matched first, so "\\ud83d" typed as text stays text.
_SURROGATE_PAIR = re.compile(r"\\\\|\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})")


def _yaml_escape(match: re.Match[str]) -> str:
    if match.group(1) is None:
        return match.group(0)
    high, low = int(match.group(1), 16), int(match.group(2), 16)
    return f"\\U{0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00):08x}"


def as_yaml_value(value: Any) -> str:
    """``value`` as a YAML flow scalar/collection: JSON (no injection), with YAML's escapes where JSON's differ."""
    return _SURROGATE_PAIR.sub(_yaml_escape, json.dumps(value))


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gemma_operator.render", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["j"] = as_yaml_value  # every value is emitted as JSON: valid YAML, no injection
    return env


def render_template(template: str, **context: Any) -> dict[str, Any]:
    return yaml.load(_environment().get_template(template).render(**context), Loader=_LOADER)  # a SafeLoader


def _env_vars(ft: GemmaFineTune, config: RunConfig, where: Placement, image: str) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "GEMMAFT_RUN_ID", "value": config.run_id},
        {"name": "GEMMAFT_TRAINER_IMAGE", "value": image},  # recorded in the run's run.json
        {"name": "GEMMAFT_RUN_URI", "value": config.run_uri},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "HOME", "value": "/tmp"},
        {"name": "HF_HOME", "value": "/tmp/hf"},
    ]
    env += [{"name": k, "value": v} for k, v in where.env.items()]
    ref = ft.spec.pod.hf_token_secret_ref
    if ref is not None:  # only ever a reference: the token never enters the ConfigMap or the pod spec
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    tracking = ft.spec.tracking
    if tracking is not None:
        run = naming.run_key(config.run_id, config.stage)
        env += [{"name": k, "value": v} for k, v in tracking.environment(run).items()]
    env += [{"name": e.name, "value": e.value} for e in ft.spec.pod.env or ()]
    return env


def _env_from(ft: GemmaFineTune) -> list[dict[str, Any]]:
    """spec.tracking's Secret, every key of it (the tracker's server and credentials): only ever a reference."""
    tracking = ft.spec.tracking
    if tracking is None or tracking.secret_ref is None:
        return []
    return [{"secretRef": {"name": tracking.secret_ref.name}}]


def render_run(
    ft: GemmaFineTune, settings: RenderSettings, namespace: str, attempt: int = 0, config: RunConfig | None = None
) -> list[dict[str, Any]]:
    """Every object one attempt of the fine-tune's current run needs (owner references are the caller's).
    ``config``: the run config to mount, e.g. one stage of a distillation (its Job runs on that stage's
    accelerator and its names carry the stage)."""
    name = ft.metadata.name
    config = config or RunConfig.for_finetune(ft, namespace=namespace)
    spec = stage_spec(ft.spec, config.stage)
    where = placement(spec)
    names = run_names(name, naming.run_key(config.run_id, config.stage), attempt)
    labels = run_labels(name, config.run_id)
    attempt_labels = run_labels(name, config.run_id, attempt)
    if config.stage:
        labels[LABEL_STAGE] = attempt_labels[LABEL_STAGE] = config.stage
    job_labels = dict(attempt_labels)
    if spec.pod.queue_name:
        job_labels[KUEUE_QUEUE_LABEL] = spec.pod.queue_name
    pod_labels = {**(spec.pod.labels or {}), **attempt_labels}
    command = ["gemmaft", "train", "-f", f"{CONFIG_DIR}/{CONFIG_FILE}"]
    image = spec.pod.image or settings.image_for(spec.accelerator.type)
    objects = [
        render_template(
            "configmap.yaml.j2", names=names, namespace=namespace, labels=labels, config_file=CONFIG_FILE,
            run_config_yaml=dump_yaml(config.to_api()),
        )
    ]
    if where.multi_host:
        objects.append(render_template("service.yaml.j2", names=names, namespace=namespace, labels=attempt_labels,
                               selector=attempt_labels))
    objects.append(
        render_template(
            "job.yaml.j2",
            names=names, namespace=namespace, spec=spec, pod=spec.pod, placement=where,
            job_labels=job_labels, pod_labels=pod_labels,
            suspend=spec.run_policy.suspend or bool(spec.pod.queue_name),
            service_account=spec.pod.service_account_name or settings.service_account,
            grace_seconds=settings.grace_seconds, shm_size=settings.shm_size, uid=TRAINER_UID,
            node_selector={**(spec.pod.node_selector or {}), **where.node_selector},
            tolerations=where.tolerations + [t.to_api() for t in spec.pod.tolerations or ()],
            image=image,
            affinity=slice_affinity(names.job) if where.multi_host else None,
            command=command, env=_env_vars(ft, config, where, image), env_from=_env_from(ft),
            resources=container_resources(ft.spec.pod.resources, where),
            config_dir=CONFIG_DIR, exit_permanent=[EXIT_INVALID_INPUT, EXIT_NON_FINITE, EXIT_BELOW_THRESHOLD,
                                                           EXIT_INPUTS_CHANGED],
            exit_preempted=EXIT_PREEMPTED,
        )
    )
    return objects
