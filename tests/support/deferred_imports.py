"""Imports inside functions, and whether each is one the layering allows: an optional or heavy third-party module
(torch, transformers, peft, torch_xla, bitsandbytes, google-cloud-storage...), or a module of the package that
loads torch or transformers when imported (a command line that must start fast imports those late). An import
inside a function of a light module of the package, of the standard library or of the contract
(``gemma_operator``, pydantic) only hides a dependency, or a cycle (tests/support/import_graph finds those).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.support.import_graph import Edge, _named, module_files

HEAVY = {"torch", "transformers", "peft", "torch_xla", "bitsandbytes", "safetensors", "datasets", "accelerate"}
ALWAYS_LOADED = {"gemma_operator", "pydantic", "yaml", "__future__"}


def _imports(tree: ast.AST, in_function: bool = False) -> Iterator[tuple[ast.stmt, bool]]:
    """Every import statement with whether it runs inside a function (``if TYPE_CHECKING:`` blocks never run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, in_function
        yield from _imports(node, in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef))


def _targets(node: ast.stmt, module: str, path: Path, modules: dict[str, Path]) -> list[str]:
    return [name for name in _named(node, module, path, modules) if name]


def deferred_imports(root: Path, repo: Path) -> tuple[list[Edge], set[str]]:
    """Every import inside a function in the package at ROOT, and the package's modules that load a HEAVY module
    when imported (through their module-level imports, directly or through other modules of the package)."""
    modules = module_files(root)
    eager: dict[str, set[str]] = {}
    deferred: list[Edge] = []
    for module, path in modules.items():
        eager[module] = set()
        for node, in_function in _imports(ast.parse(path.read_text(), filename=str(path))):
            for target in _targets(node, module, path, modules):
                if in_function:
                    deferred.append(Edge(module, target, path.relative_to(repo).as_posix(), node.lineno))
                else:
                    eager[module].add(target)
    heavy = {m for m, targets in eager.items() if {t.split(".")[0] for t in targets} & HEAVY}
    grown = True
    while grown:
        grown = False
        for module, targets in eager.items():
            if module not in heavy and targets & heavy:
                heavy.add(module)
                grown = True
    return deferred, heavy


def unjustified(root: Path, repo: Path) -> list[Edge]:
    """The imports inside functions of the package at ROOT that name a light module of the package, the standard
    library or a module every process has loaded already."""
    deferred, heavy = deferred_imports(root, repo)
    package = root.name
    bad = []
    for item in deferred:
        top = item.target.split(".")[0]
        if top == package:
            if item.target not in heavy:
                bad.append(item)
        elif top in sys.stdlib_module_names or top in ALWAYS_LOADED:
            bad.append(item)
    return bad
