"""Apply the generated CRD's schema as the API server would: structural defaults, OpenAPI checks, CEL rules.

Used by the local API server (every create and update of a GemmaFineTune) and by the tests of the API.

The OpenAPI v3 schema Kubernetes uses is draft-4-like (boolean ``exclusiveMinimum``), so jsonschema's Draft4
validator checks it once the Kubernetes extensions are set aside; CEL rules run with the
``common-expression-language`` evaluator, with ``self`` bound to the node they are declared on.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from dataclasses import dataclass
from typing import Any

import cel
import jsonschema
from gemma_api.crd import build_crd


@functools.cache
def crd_version() -> dict[str, Any]:
    """The generated CRD's one version, built once (a pure function of the model); callers must not change it."""
    return build_crd()["spec"]["versions"][0]


def openapi_schema() -> dict[str, Any]:
    """The generated CRD's schema (of :func:`crd_version`); callers must not change it."""
    return crd_version()["schema"]["openAPIV3Schema"]


def without_keys(value: Any, prefix: str) -> Any:
    """``value`` with every mapping key that starts with ``prefix`` dropped, at any depth."""
    if isinstance(value, dict):
        return {k: without_keys(v, prefix) for k, v in value.items() if not k.startswith(prefix)}
    if isinstance(value, list):
        return [without_keys(v, prefix) for v in value]
    return value


def apply_defaults(obj: Any, schema: dict[str, Any]) -> Any:
    """Structural defaulting: a missing property with a default gets it, recursively."""
    if isinstance(obj, dict) and "properties" in schema:
        for key, sub in schema["properties"].items():
            if key not in obj and "default" in sub:
                obj[key] = copy.deepcopy(sub["default"])
            if key in obj:
                obj[key] = apply_defaults(obj[key], sub)
    elif isinstance(obj, list) and "items" in schema:
        return [apply_defaults(item, schema["items"]) for item in obj]
    return obj


def with_defaults(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest as the API server stores it: the CRD's defaults filled in."""
    return apply_defaults(copy.deepcopy(manifest), openapi_schema())


@dataclass(frozen=True)
class FieldError:
    """One rejected field, as the API server reports it in a 422 Invalid answer's ``details.causes``."""

    field: str
    message: str
    reason: str = "FieldValueInvalid"

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def _unknown_fields(obj: Any, schema: dict[str, Any], path: str) -> list[FieldError]:
    """Fields the schema does not declare (kubectl's strict field validation rejects them)."""
    errors: list[FieldError] = []
    if isinstance(obj, dict) and "properties" in schema:
        for key, value in obj.items():
            if key not in schema["properties"]:
                errors.append(FieldError(f"{path}.{key}", "unknown field", "FieldValueNotSupported"))
            else:
                errors += _unknown_fields(value, schema["properties"][key], f"{path}.{key}")
    elif isinstance(obj, list) and "items" in schema:
        for i, item in enumerate(obj):
            errors += _unknown_fields(item, schema["items"], f"{path}[{i}]")
    return errors


def unknown_fields(manifest: dict[str, Any], schema: dict[str, Any] | None = None) -> list[FieldError]:
    """Fields of spec and status the schema does not declare (``fieldValidation=Strict`` refuses them)."""
    schema = schema or openapi_schema()
    return [error for part in ("spec", "status") if part in schema["properties"]
            for error in _unknown_fields(manifest.get(part), schema["properties"][part], part)]


def prune(obj: Any, schema: dict[str, Any]) -> Any:
    """What the API server stores: fields the structural schema does not declare are dropped, and so are
    nulls of fields that are not ``nullable`` (pruned before defaulting, as since Kubernetes 1.20)."""
    if isinstance(obj, dict) and "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        props = schema["properties"]
        return {k: prune(v, props[k]) for k, v in obj.items()
                if k in props and (v is not None or props[k].get("nullable"))}
    if isinstance(obj, list) and "items" in schema:
        return [prune(item, schema["items"]) for item in obj]
    return obj


_cel_program = functools.cache(cel.compile)  # the CRD's few rules, parsed once instead of on every admission


def _cel_errors(obj: Any, schema: dict[str, Any], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for rule in schema.get("x-kubernetes-validations", ()):
        if not _cel_program(rule["rule"]).execute({"self": obj}):
            errors.append(FieldError(f"{path}{rule.get('fieldPath', '')}", f'Invalid value: "object": {rule["message"]}'))
    if isinstance(obj, dict):
        for key, sub in schema.get("properties", {}).items():
            if key in obj:
                errors += _cel_errors(obj[key], sub, f"{path}.{key}")
    return errors


def _go_pattern(validator, pattern, instance, schema):
    """``pattern`` as Go's RE2 reads it: ``$`` is the end of the text (Python's also matches before a final newline)."""
    if validator.is_type(instance, "string") and not re.search(re.sub(r"(?<!\\)\$", r"\\Z", pattern), instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


_Validator = jsonschema.validators.extend(jsonschema.Draft4Validator, {"pattern": _go_pattern})


@functools.cache
def _crd_validator() -> jsonschema.protocols.Validator:
    return _validator_for(openapi_schema())


def _validator_for(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    """Draft 4 with Go's patterns, over the schema with the Kubernetes extensions set aside."""
    return _Validator(without_keys(schema, "x-kubernetes-"))


def _path(parts) -> str:
    """``spec.pod.env[0].name``, the way the API server names a field."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out.lstrip(".")


def field_errors(manifest: dict[str, Any], schema: dict[str, Any] | None = None) -> list[FieldError]:
    """Errors the API server would report for this manifest (empty when it would be accepted)."""
    schema = schema or openapi_schema()
    obj = apply_defaults(copy.deepcopy(manifest), schema)
    errors = _unknown_fields(obj.get("spec"), schema["properties"]["spec"], "spec")
    validator = _crd_validator() if schema is openapi_schema() else _validator_for(schema)
    for err in validator.iter_errors(obj):
        field = _path(err.absolute_path) or "<root>"
        if err.validator == "required":
            errors.append(FieldError(field, f"Required value: {err.message}", "FieldValueRequired"))
        else:
            errors.append(FieldError(field, f"Invalid value: {json.dumps(err.instance)[:60]}: {err.message}"))
    if not errors:  # the API server runs CEL only on a schema-valid object
        errors += _cel_errors(obj["spec"], schema["properties"]["spec"], "spec")
    return errors


def validate(manifest: dict[str, Any]) -> list[str]:
    """``field_errors`` as ``"field: message"`` lines."""
    return [str(e) for e in field_errors(manifest, openapi_schema())]
