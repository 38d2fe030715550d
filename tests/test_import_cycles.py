"""No import cycle among the modules of any package, counting imports inside functions (tests/support/import_graph)."""

from __future__ import annotations

import pytest

from tests.conftest import REPO
from tests.support.deferred_imports import unjustified
from tests.support.import_graph import import_cycles

PACKAGES = {
    "gemma_operator": REPO / "operator" / "gemma_operator",
    "gemma_local": REPO / "operator" / "gemma_local",
    "gemma_trainer": REPO / "trainer_image" / "gemma_trainer",
}


@pytest.mark.parametrize("package", ["gemma_operator", "gemma_local", "gemma_trainer"])
def test_no_import_cycle_among_the_modules_of(package):
    cycles = import_cycles(PACKAGES[package], REPO)
    assert not cycles, "\n".join(str(cycle) for cycle in cycles)


def test_the_graph_sees_imports_inside_functions_and_relative_imports(tmp_path):
    """A cycle made of a function-level import and a relative one is found and named with its lines."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("import os\n\n\ndef late():\n    from pkg.sub import b\n    return b\n")
    (package / "sub" / "b.py").write_text("from .. import a\n")
    (package / "c.py").write_text("from . import a\n")  # imports into the cycle, is not part of it
    (cycle,) = import_cycles(package, tmp_path)
    assert cycle.modules == ["pkg.a", "pkg.sub.b"]
    assert [str(e) for e in cycle.shortest] == ["pkg.a -> pkg.sub.b (pkg/a.py:5)", "pkg.sub.b -> pkg.a (pkg/sub/b.py:1)"]


def test_the_trainer_imports_inside_functions_only_heavy_or_optional_modules():
    """torch, transformers, peft, torch_xla, bitsandbytes... or a trainer module that loads them (so that
    ``gemmaft train`` starts without them until it needs them); never a light module of the trainer, the standard
    library or the contract package."""
    found = unjustified(PACKAGES["gemma_trainer"], REPO)
    assert not found, "\n".join(f"{edge}: inside a function" for edge in found)


def test_deferred_imports_are_judged_by_what_the_imported_module_loads(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "heavy.py").write_text("import torch\n")
    (package / "light.py").write_text("import os\n")
    (package / "user.py").write_text("def f():\n    import json\n    from . import heavy, light\n    import peft\n")
    assert [str(edge) for edge in unjustified(package, tmp_path)] == [
        "pkg.user -> json (pkg/user.py:2)",
        "pkg.user -> pkg.light (pkg/user.py:3)",
    ]
