"""Read the run config (a GemmaFineTune manifest or the mounted GemmaFineTuneRun), validated as the operator
validates it. Which device a run trains on, and how, is ``gemma_trainer.backends``."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from gemma_api import RUN_CONFIG_KIND, RunConfig, SpecError, parse_finetune
from gemma_api.distillation import stage_spec as spec_for_stage
from gemma_api.rules import Problem, check_rules
from gemma_api.validation import problems_of
from gemma_api.yamlio import YamlError, load_documents
from pydantic import ValidationError

from .errors import ConfigError


def _read_document(path: str) -> Any:
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ConfigError(path, [f"cannot read: {err.strerror or err}"]) from None
    try:
        docs = load_documents(text, path)  # YAML 1.2 numbers, as kubectl reads the manifest
    except YamlError as err:
        raise ConfigError(path, [str(err).removeprefix(f"{path}: ").replace("\n", " ")]) from None
    if len(docs) != 1:
        raise ConfigError(path, [f"expected exactly one YAML document, found {len(docs)}"])
    if not isinstance(docs[0], dict):
        raise ConfigError(path, ["expected a mapping with apiVersion, kind, ..."])
    return docs[0]


def _override(spec: dict, output_uri: str | None, max_steps: int | None) -> None:
    if output_uri:
        spec.setdefault("output", {})["uri"] = output_uri
    if max_steps is not None:
        spec.setdefault("training", {})["maxSteps"] = max_steps


def load_run_config(path: str, output_uri: str | None = None, max_steps: int | None = None,
                    local_run: bool = False) -> RunConfig:
    """The validated run config from FILE; overrides are applied before validation (so they are validated too).
    ``local_run``: it runs on this machine whatever its accelerator (a local output folder is fine)."""
    raw = copy.deepcopy(_read_document(path))
    kind = raw.get("kind")
    if kind == RUN_CONFIG_KIND:
        spec = raw.get("spec")
        if isinstance(spec, dict):
            _override(spec, output_uri, max_steps)
        try:
            cfg = RunConfig.model_validate(raw)
        except ValidationError as err:
            raise ConfigError(path, [str(p) for p in problems_of(err, RunConfig, "")]) from None
        problems: list[Problem] = check_rules(cfg.spec, local_run)
        if problems:
            raise ConfigError(path, [str(p) for p in problems])
        if output_uri:
            moved = {"run_uri": f"{output_uri.rstrip('/')}/{cfg.run_id}"}
            if cfg.teacher_uri:  # distillation: the teacher folder moves with the output too
                moved["teacher_uri"] = f"{output_uri.rstrip('/')}/{cfg.teacher_uri.rstrip('/').rsplit('/', 1)[-1]}"
            cfg = cfg.model_copy(update=moved)
        return cfg
    if isinstance(raw.get("spec"), dict):
        _override(raw["spec"], output_uri, max_steps)
    try:
        ft = parse_finetune(raw, local_run)
    except SpecError as err:
        raise ConfigError(path, [str(p) for p in err.problems]) from None
    return RunConfig.for_finetune(ft)


def stage_spec(cfg: RunConfig, stage: str | None = None):
    """The spec whose accelerator runs ``stage`` of ``cfg`` (default: the config's own stage)."""
    return spec_for_stage(cfg.spec, stage or cfg.stage)
