"""Turn raw manifests into models, or into field-level problems a person can act on."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError

from .resource import GemmaFineTune
from .rules import Problem, check_rules
from .spec import GemmaFineTuneSpec


class SpecError(ValueError):
    """A manifest that is not a valid GemmaFineTune; ``problems`` name each field and its fix."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


def _known_fields(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """camelCase field names of the model at ``loc`` (the parent of an unknown field)."""
    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        match = [f for f in current.model_fields.values() if f.alias == part]
        if not match:
            return []
        current = match[0].annotation
        for arg in getattr(current, "__args__", ()):  # Optional[Model]
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                current = arg
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return []


def _problem(err: dict[str, Any], root: type[BaseModel], prefix: str) -> Problem:
    loc = tuple(err["loc"])
    path = ".".join([*([prefix] if prefix else []), *(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc)]).replace(".[", "[")
    kind = err["type"]
    if kind == "extra_forbidden":
        known = _known_fields(root, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean {close[0]}?" if close else f"known fields: {', '.join(known)}" if known else ""
        return Problem(path, f"unknown field: remove it{'; ' + hint if hint else ''}")
    if kind == "missing":
        return Problem(path, "required field is missing: add it")
    if kind == "string_pattern_mismatch" and loc and str(loc[-1]).endswith(("Uri", "uri")):
        return Problem(path, f"{err['input']!r} is not a valid location: use gs://BUCKET/PATH or a local path")
    got = err.get("input")
    shown = f" (got {got!r})" if got is not None and not isinstance(got, (dict, list)) else ""
    return Problem(path, f"{err['msg']}{shown}")


def problems_of(err: ValidationError, root: type[BaseModel], prefix: str) -> list[Problem]:
    return [_problem(e, root, prefix) for e in err.errors()]


def parse_spec(raw: Any, prefix: str = "spec") -> GemmaFineTuneSpec:
    """Validate a spec mapping: structure first, then the semantic rules."""
    try:
        spec = GemmaFineTuneSpec.model_validate(raw, strict=True)  # no coercion: as strict as the API server
    except ValidationError as err:
        raise SpecError(problems_of(err, GemmaFineTuneSpec, prefix)) from None
    problems = check_rules(spec)
    if problems:
        raise SpecError(problems)
    return spec


def parse_finetune(raw: Any, local_run: bool = False) -> GemmaFineTune:
    """Validate a whole GemmaFineTune manifest (status, if present, is ignored); ``local_run``: see
    ``rules.check_rules``."""
    if not isinstance(raw, dict):
        raise SpecError([Problem("(document)", "expected a YAML mapping with apiVersion, kind, metadata and spec")])
    body = {k: v for k, v in raw.items() if k != "status"}
    try:
        ft = GemmaFineTune.model_validate(body, strict=True)
    except ValidationError as err:
        raise SpecError(problems_of(err, GemmaFineTune, "")) from None
    problems = check_rules(ft.spec, local_run)
    if problems:
        raise SpecError(problems)
    return ft
