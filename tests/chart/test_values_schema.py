"""The chart's values.schema.json: unknown keys and bad values rejected naming the key, every object closed, and
every value documented with a ## @param line."""

from __future__ import annotations

import json
import re

import helm_python
import pytest
import yaml

from tests.chart.rendering import CHART, render_raw

BAD_VALUES = [
    ({"bogus": 1}, "'bogus'"),
    ({"image": {"pullpolicy": "Always"}}, "'pullpolicy'"),
    ({"serviceMonitor": {"enable": True}}, "'enable'"),
    ({"resources": {"requests": {"gpu": "1"}}}, "'gpu'"),
    ({"trainerServiceAccount": {"annotation": {}}}, "'annotation'"),
    ({"containerSecurityContext": {"capabilities": {"drop": ["ALL"], "ad": []}}}, "'ad'"),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ({"logFormat": "xml"}, "/logFormat"),
    ({"metrics": {"port": 70000}}, "/metrics/port"),
    ({"runHistory": 0}, "/runHistory"),
    ({"image": {"digest": "latest"}}, "/image/digest"),
    ({"watchNamespaces": ["Not_A_Namespace"]}, "/watchNamespaces/0"),
    ({"watchNamespaces": "a,b"}, "/watchNamespaces"),
    ({"resources": {"limits": {"memory": "lots"}}}, "/resources/limits/memory"),
    ({"containerSecurityContext": {"allowPrivilegeEscalation": True}}, "/containerSecurityContext/allowPrivilegeEscalation"),
    ({"containerSecurityContext": {"privileged": True}}, "/containerSecurityContext/privileged"),
    ({"containerSecurityContext": {"capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]}}},
     "/containerSecurityContext/capabilities/add/0"),
    ({"containerSecurityContext": {"capabilities": {"drop": ["NET_RAW"]}}}, "/containerSecurityContext/capabilities/drop"),
    ({"podSecurityContext": {"runAsNonRoot": False}}, "/podSecurityContext/runAsNonRoot"),
    ({"podSecurityContext": {"seccompProfile": {"type": "Unconfined"}}}, "/podSecurityContext/seccompProfile/type"),
    ({"trainerImages": {"gpu": "has space:1"}}, "/trainerImages/gpu"),
]


@pytest.mark.parametrize("values,named", BAD_VALUES, ids=[n for _, n in BAD_VALUES])
def test_schema_rejects_unknown_keys_and_bad_values_naming_the_key(chart, values, named):
    with pytest.raises(helm_python.HelmValuesError) as err:
        render_raw(chart, values)
    assert named in str(err.value)


def _schema_objects(node: dict, path: str = ""):
    if isinstance(node, dict):
        if "properties" in node:
            yield path, node
            for key, sub in node["properties"].items():
                yield from _schema_objects(sub, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            yield from _schema_objects(node["items"], f"{path}[]")


def test_schema_closes_every_object_with_declared_properties():
    schema = json.loads((CHART / "values.schema.json").read_text())
    found = list(_schema_objects(schema))
    assert len(found) > 20
    for path, node in found:
        assert node.get("additionalProperties") is False, f"{path or '(root)'} accepts unknown keys"
    # Objects without declared properties are string maps or Kubernetes pass-through structures.
    def walk(node, path=""):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" not in node:
                extra = node.get("additionalProperties")
                is_map = isinstance(extra, dict) and extra.get("type") == "string"
                assert is_map or path.startswith((".affinity.", ".networkPolicy.metricsFrom[].")), path
            for key, sub in node.get("properties", {}).items():
                walk(sub, f"{path}.{key}")
            if isinstance(node.get("items"), dict):
                walk(node["items"], f"{path}[]")
    walk(schema)


def _leaf_keys(node, prefix=""):
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _leaf_keys(value, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix


def test_every_value_is_documented_with_a_param_line():
    text = (CHART / "values.yaml").read_text()
    documented = set(re.findall(r"^## @param (\S+) \S", text, flags=re.MULTILINE))
    leaves = set(_leaf_keys(yaml.safe_load(text)))
    assert leaves - documented == set(), "values without a ## @param line"
    assert documented - leaves == set(), "## @param lines naming no value"
