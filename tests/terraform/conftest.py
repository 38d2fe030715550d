"""Every .tf file of terraform/ parsed once per module."""

from __future__ import annotations

from typing import Any

import pytest

from tests.terraform.parse import TF, load_hcl


@pytest.fixture(scope="module")
def tf() -> dict[str, Any]:
    """Every .tf file of terraform/ merged: variables, outputs, locals, resources by (type, name), terraform blocks."""
    merged: dict[str, Any] = {"variable": {}, "output": {}, "locals": {}, "resource": {}, "data": {},
                              "module": {}, "terraform": [], "files": {}}
    for path in sorted(TF.glob("*.tf")):
        doc = load_hcl(path)
        merged["files"][path.name] = path.read_text()
        for block in doc.get("variable", []):
            merged["variable"].update(block)
        for block in doc.get("output", []):
            merged["output"].update(block)
        for block in doc.get("locals", []):
            merged["locals"].update(block)
        for block in doc.get("module", []):
            for name, body in block.items():
                assert name not in merged["module"], f"module {name} declared twice"
                merged["module"][name] = body
        for kind in ("resource", "data"):
            for block in doc.get(kind, []):
                for rtype, by_name in block.items():
                    for name, body in by_name.items():
                        assert (rtype, name) not in merged[kind], f"{rtype}.{name} declared twice"
                        merged[kind][(rtype, name)] = body
        merged["terraform"].extend(doc.get("terraform", []))
    return merged
