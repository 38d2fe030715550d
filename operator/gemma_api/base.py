"""The pydantic base every API object shares: camelCase on the wire, unknown fields refused."""

from __future__ import annotations

from functools import cache
from types import UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )

    def to_api(self) -> dict[str, Any]:
        """The object as the Kubernetes API stores it: camelCase keys, unset optionals left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")

    @classmethod
    def split_unknown(cls, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the fields of ``data`` this model knows, the ones it does not), at every depth: an object's unknown
        keys, and those of each item of a list of objects (by index). A newer version's fields, read back from the
        API server, are kept apart this way instead of refused (:func:`merge_unknown` puts them back)."""
        fields = _wire_fields(cls)
        known: dict[str, Any] = {}
        unknown: dict[str, Any] = {}
        for key, value in data.items():
            if key not in fields:
                unknown[key] = value
                continue
            model, many = fields[key]
            if model is not None and many and isinstance(value, list):
                parts = [model.split_unknown(item) if isinstance(item, dict) else (item, {}) for item in value]
                known[key] = [part for part, _ in parts]
                if any(rest for _, rest in parts):
                    unknown[key] = [rest for _, rest in parts]
            elif model is not None and isinstance(value, dict):
                known[key], rest = model.split_unknown(value)
                if rest:
                    unknown[key] = rest
            else:
                known[key] = value
        return known, unknown


@cache
def _wire_fields(model: type[ApiModel]) -> dict[str, tuple[type[ApiModel] | None, bool]]:
    """The model's wire names, each with the API model it holds (and whether a list of them): read from the
    annotations once per class, not on every status a decision writes."""
    return {field.alias or name: _nested_model(field.annotation) for name, field in model.model_fields.items()}


def _nested_model(annotation: Any) -> tuple[type[ApiModel] | None, bool]:
    """(the API model a field holds, whether it holds a list of them), or (None, False)."""
    origin = get_origin(annotation)
    if origin is list:
        return _nested_model(get_args(annotation)[0])[0], True
    if origin in (Union, UnionType):
        found = [_nested_model(arg) for arg in get_args(annotation)]
        return next((f for f in found if f[0] is not None), (None, False))
    if isinstance(annotation, type) and issubclass(annotation, ApiModel):
        return annotation, False
    return None, False


def merge_unknown(wire: dict[str, Any], unknown: dict[str, Any]) -> dict[str, Any]:
    """``wire`` with the fields :meth:`ApiModel.split_unknown` kept apart put back where they were."""
    out = dict(wire)
    for key, value in unknown.items():
        have = out.get(key)
        if isinstance(value, dict) and isinstance(have, dict):
            out[key] = merge_unknown(have, value)
        elif isinstance(value, list) and isinstance(have, list):
            out[key] = [merge_unknown(item, rest) if isinstance(item, dict) else item
                        for item, rest in zip(have, value)] + have[len(value):]
        elif key not in out:
            out[key] = value
    return out


def cel(rule: str, message: str, field_path: str | None = None) -> dict[str, str]:
    """One ``x-kubernetes-validations`` entry (a CEL rule the API server evaluates)."""
    entry = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


def with_cel(*rules: dict[str, str]) -> ConfigDict:
    """Model config that adds CEL rules to the model's CRD schema."""
    return ConfigDict(json_schema_extra={"x-kubernetes-validations": list(rules)})

