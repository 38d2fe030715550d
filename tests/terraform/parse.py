"""terraform/ read with python-hcl2 (the google provider cannot be downloaded here, so `terraform validate` cannot
run; these tests read the HCL and check what the configuration promises), and lookups in what was read."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import hcl2

from tests.conftest import REPO

TF = REPO / "terraform"
CHART = REPO / "charts" / "gemma-finetune-operator"
EXAMPLE_TFVARS = TF / "examples" / "terraform.tfvars.example"


def unquote(value: Any) -> Any:
    """python-hcl2 8 keeps the quotes of string literals and marks blocks; return plain Python values."""
    if isinstance(value, dict):
        return {unquote(k): unquote(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [unquote(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"')
    return value


def load_hcl(path: Path) -> dict[str, Any]:
    with path.open() as f:
        return unquote(hcl2.load(f))


def tf_resource(tf: dict, rtype: str, name: str) -> dict:
    assert (rtype, name) in tf["resource"], f"missing resource {rtype}.{name}"
    return tf["resource"][(rtype, name)]


def single_block(body: dict, block: str) -> dict:
    """The single nested block `block` of a resource body."""
    blocks = body.get(block)
    assert isinstance(blocks, list) and len(blocks) == 1, f"expected one {block} block, got {blocks!r}"
    return blocks[0]


def resolve_local(tf: dict, value: Any) -> Any:
    """Follow a bare `${local.NAME}` reference to its literal value in locals.tf."""
    m = re.fullmatch(r"\$\{local\.(\w+)\}", value) if isinstance(value, str) else None
    return resolve_local(tf, tf["locals"][m.group(1)]) if m else value


def allowed_values(tf: dict, name: str) -> list:
    """The list in a variable's `contains([...], var.NAME)` validation."""
    for v in tf["variable"][name].get("validation", []):
        m = re.search(r"contains\((\[[^\]]*\]),\s*var\." + name + r"\)", v["condition"])
        if m:
            return json.loads(m.group(1))
    raise AssertionError(f"variable {name} has no contains([...], var.{name}) validation")


def pool_call(tf: dict, name: str) -> dict:
    """The call of the local node-pool module named ``name``."""
    assert name in tf["module"], f"missing module {name}"
    call = tf["module"][name]
    assert call["source"] == "./modules/node-pool", name
    return call
