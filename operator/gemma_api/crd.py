"""Generate the CustomResourceDefinition from the pydantic models (``gemmaft crd``).

Pydantic emits JSON Schema 2020-12; Kubernetes wants a *structural* OpenAPI v3 schema: no ``$ref``, no
``anyOf`` for optionals, boolean ``exclusiveMinimum``, explicit ``type`` everywhere. ``structural`` does that
translation; everything else (defaults, enums, bounds, patterns, CEL rules, descriptions) is taken as is.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from .resource import CATEGORIES, GROUP, KIND, PLURAL, SHORT_NAMES, SINGULAR, VERSION
from .spec import GemmaFineTuneSpec
from .status import GemmaFineTuneStatus

_DROPPED = {"title", "$defs"}
_LIST_MAP_KEYS = {"conditions": ["type"]}


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, defs)
    any_of = node.get("anyOf")
    if any_of is not None:
        kinds = [a for a in any_of if a.get("type") != "null"]
        if len(kinds) == 1:  # Optional[X]: absent instead of null
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            if rest.get("default", 0) is None:
                rest.pop("default")
            return _resolve({**kinds[0], **rest}, defs)
    return node


def structural(node: dict[str, Any], defs: dict[str, Any], name: str = "") -> dict[str, Any]:
    """Translate one pydantic JSON-schema node into a Kubernetes structural schema node."""
    node = _resolve(node, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "properties":
            required = set(node.get("required", ()))
            props = {}
            for prop, sub in value.items():
                child = structural(sub, defs, prop)
                if prop not in required and child.get("type") == "object" and "default" not in child \
                        and "anyOf" not in sub and "properties" in child:
                    child["default"] = {}  # nested defaults apply even when the section is left out
                props[prop] = child
            out["properties"] = props
        elif key == "items":
            out["items"] = structural(value, defs)
        elif key == "additionalProperties":
            if isinstance(value, dict):  # a map; `false` is implied by a structural schema
                out["additionalProperties"] = structural(value, defs)
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        elif key == "const":
            out["enum"] = [value]
        else:
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = {str: "string", int: "integer", float: "number", bool: "boolean"}[type(out["enum"][0])]
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if out.get("type") == "array" and name in _LIST_MAP_KEYS:
        out["x-kubernetes-list-type"] = "map"
        out["x-kubernetes-list-map-keys"] = _LIST_MAP_KEYS[name]
    if out.get("required") == []:
        out.pop("required")
    return out


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return structural(raw, raw.get("$defs", {}))


PRINTER_COLUMNS = [
    {"name": "Model", "type": "string", "jsonPath": ".spec.model"},
    {"name": "Method", "type": "string", "jsonPath": ".spec.method", "priority": 1},
    {"name": "Accelerator", "type": "string", "jsonPath": ".spec.accelerator.type"},
    {"name": "Topology", "type": "string", "jsonPath": ".spec.accelerator.topology", "priority": 1},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Stage", "type": "string", "jsonPath": ".status.stage", "priority": 1,
     "description": "Distillation: WaitingForTeacher, Teacher or Student"},
    {"name": "Progress", "type": "string", "jsonPath": ".status.progress.percent",
     "description": "Percent of the current run's steps done"},
    {"name": "Loss", "type": "number", "jsonPath": ".status.progress.loss"},
    {"name": "Run", "type": "string", "jsonPath": ".status.runId", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def build_crd() -> dict[str, Any]:
    spec_schema = schema_of(GemmaFineTuneSpec)
    status_schema = schema_of(GemmaFineTuneStatus)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": list(CATEGORIES),
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "GemmaFineTune runs one Gemma 2 fine-tune (LoRA, QLoRA, last layers or "
                            "full) on GKE T4 GPUs or TPU v3 slices and reports it in status.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }
