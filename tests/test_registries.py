"""Registries in place of string switches: the training methods are one record each on the contract side
(``gemma_api.methods``) and one entry each on the torch side (``gemma_trainer.methods``); no other code
compares a method with a method's name. The model families are one record each (``gemma_api.families``)
with one chat template each in the trainer."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

from gemma_api.facts import MODELS
from gemma_api.families import FAMILIES
from gemma_api.fields import Method
from gemma_api.methods import METHODS
from gemma_trainer.methods import METHOD_STEPS
from gemma_trainer.templates import CHAT_TEMPLATES

from tests.conftest import REPO

SOURCES = [REPO / "operator" / "gemma_operator", REPO / "operator" / "gemma_local", REPO / "trainer_image" / "gemma_trainer"]
REGISTRIES = {REPO / "operator" / "gemma_operator" / "api" / "methods.py",
              REPO / "trainer_image" / "gemma_trainer" / "methods.py"}


def test_every_method_of_the_contract_has_its_torch_steps():
    assert list(METHOD_STEPS) == list(METHODS)


def test_the_spec_offers_the_registered_methods_in_order():
    assert typing.get_args(Method) == tuple(METHODS) == ("lora", "qlora", "freeze", "full")


def test_every_family_has_its_chat_template_and_every_model_its_family():
    assert list(CHAT_TEMPLATES) == list(FAMILIES)
    for name, arch in MODELS.items():
        assert arch.language_model_class == FAMILIES[arch.family].architecture, name


def _names(node: ast.expr) -> set[str]:
    """The method names a compared constant (or tuple, list, set of constants) spells."""
    items = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [node]
    return {i.value for i in items if isinstance(i, ast.Constant) and i.value in METHODS}


def method_switches(path: Path, root: Path = REPO) -> list[str]:
    """``x.method == "lora"``, ``method in ("lora", "qlora")`` and the like in one file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        if any(_names(side) for side in sides) and any("method" in ast.unparse(side).lower() for side in sides):
            found.append(f"{path.relative_to(root)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_code_outside_the_registries_switches_on_a_method_name():
    files = [p for root in SOURCES for p in sorted(root.rglob("*.py")) if p not in REGISTRIES]
    found = [switch for path in files for switch in method_switches(path)]
    assert not found, "\n".join(found)


def test_the_switch_finder_sees_comparisons_with_one_name_or_several(tmp_path):
    source = tmp_path / "switches.py"
    source.write_text('if spec.method == "qlora":\n    pass\nx = method in ("lora", "full")\ny = kind == "lora"\n')
    assert method_switches(source, tmp_path) == ["switches.py:1: spec.method == 'qlora'",
                                                 "switches.py:3: method in ('lora', 'full')"]
