"""Apply the generated CRD's schema as the API server would: structural defaults, OpenAPI checks, CEL rules.

The OpenAPI v3 schema Kubernetes uses is draft-4-like (boolean ``exclusiveMinimum``), so jsonschema's Draft4
validator checks it once the Kubernetes extensions are set aside; CEL rules run with the
``common-expression-language`` evaluator, with ``self`` bound to the node they are declared on.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import cel
import jsonschema

from gemma_operator.api.crd import build_crd


def openapi_schema() -> dict[str, Any]:
    return build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


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


def _strip_extensions(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _strip_extensions(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if isinstance(schema, list):
        return [_strip_extensions(v) for v in schema]
    return schema


def _unknown_fields(obj: Any, schema: dict[str, Any], path: str) -> list[str]:
    """Fields the schema does not declare (kubectl's strict field validation rejects them)."""
    errors: list[str] = []
    if isinstance(obj, dict) and "properties" in schema:
        for key, value in obj.items():
            if key not in schema["properties"]:
                errors.append(f"{path}.{key}: unknown field")
            else:
                errors += _unknown_fields(value, schema["properties"][key], f"{path}.{key}")
    elif isinstance(obj, list) and "items" in schema:
        for i, item in enumerate(obj):
            errors += _unknown_fields(item, schema["items"], f"{path}[{i}]")
    return errors


def _cel_errors(obj: Any, schema: dict[str, Any], path: str) -> list[str]:
    errors: list[str] = []
    for rule in schema.get("x-kubernetes-validations", ()):
        if not cel.evaluate(rule["rule"], {"self": obj}):
            errors.append(f"{path}{rule.get('fieldPath', '')}: {rule['message']}")
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


def validate(manifest: dict[str, Any]) -> list[str]:
    """Errors the API server would report for this manifest (empty when it would be accepted)."""
    schema = openapi_schema()
    obj = apply_defaults(copy.deepcopy(manifest), schema)
    errors = _unknown_fields(obj.get("spec"), schema["properties"]["spec"], "spec")
    validator = _Validator(_strip_extensions(schema))
    for err in validator.iter_errors(obj):
        errors.append(f"{'.'.join(str(p) for p in err.absolute_path)}: {err.message}")
    if not errors:  # the API server runs CEL only on a schema-valid object
        errors += _cel_errors(obj["spec"], schema["properties"]["spec"], "spec")
    return errors
