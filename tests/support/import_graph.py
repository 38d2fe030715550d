"""The import graph of one package's modules, read from the AST of its files, and the cycles in it.

Every ``import`` and ``from ... import`` counts wherever it stands (module level, inside a function, under ``if``),
relative imports are resolved against the importing module, and only edges between the package's own modules
are kept. ``import a.b.c`` (or ``from a.b.c import x``) is an edge to ``a.b.c`` and to each package on the way
(``a.b``) that is not already a package of the importer, since Python executes those ``__init__`` modules too.
Imports by name at run time (``importlib.import_module``) are not seen.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Edge:
    """One import statement: ``source`` imports ``target`` at ``path:line``."""

    source: str
    target: str
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} ({self.path}:{self.line})"


def module_files(root: Path) -> dict[str, Path]:
    """Module name -> file, for the package whose folder is ROOT (``pkg/sub/__init__.py`` is ``pkg.sub``)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _package_of(module: str, path: Path) -> str:
    """The package a relative import in MODULE is resolved against."""
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _absolute(node: ast.ImportFrom, module: str, path: Path) -> str:
    """The module named after ``from`` (``..x`` in ``pkg.sub.mod`` is ``pkg.x``)."""
    if not node.level:
        return node.module or ""
    base = _package_of(module, path).split(".")
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _named(node: ast.AST, module: str, path: Path, modules: dict[str, Path]) -> Iterator[str]:
    """The modules an import statement names: ``from p import x`` names ``p.x`` where that is a module, else ``p``
    (x is then defined by p's code)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        origin = _absolute(node, module, path)
        for alias in node.names:
            yield f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in modules else origin


def _with_packages(name: str, importer: str) -> Iterator[str]:
    """NAME and each package on the way to it that is not a package of IMPORTER (Python runs their __init__)."""
    parts = name.split(".")
    for end in range(1, len(parts) + 1):
        prefix = ".".join(parts[:end])
        if end == len(parts) or not (importer == prefix or importer.startswith(prefix + ".")):
            yield prefix


def module_edges(modules: dict[str, Path], repo: Path) -> list[Edge]:
    """Every import between MODULES, one Edge per statement and target."""
    edges = []
    for module, path in modules.items():
        where = path.relative_to(repo).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets = {t for name in _named(node, module, path, modules) for t in _with_packages(name, module)}
            edges.extend(Edge(module, target, where, node.lineno)
                         for target in sorted(targets & modules.keys()) if target != module)
    return edges


def strongly_connected(nodes: list[str], edges: list[Edge]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module (a cycle each), largest first."""
    after = defaultdict(set)
    for edge in edges:
        after[edge.source].add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(after[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
            components.append(sorted(component))

    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return sorted((c for c in components if len(c) > 1), key=lambda c: (-len(c), c))


def shortest_cycle(component: list[str], edges: list[Edge]) -> list[Edge]:
    """A shortest import cycle through the component's first module, as the statements that make it."""
    inside = [e for e in edges if e.source in component and e.target in component]
    start = component[0]
    came_by: dict[str, Edge] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for edge in (e for e in inside if e.source == node):
                if edge.target == start:
                    return _walk_back(came_by, edge, start)
                if edge.target not in came_by:
                    came_by[edge.target] = edge
                    following.append(edge.target)
        frontier = following
    raise AssertionError(f"{component} is not strongly connected")


def _walk_back(came_by: dict[str, Edge], last: Edge, start: str) -> list[Edge]:
    path = [last]
    while path[0].source != start:
        path.insert(0, came_by[path[0].source])
    return path


@dataclass(frozen=True)
class Cycle:
    """Modules that import each other, directly or not: a shortest cycle among them and every import inside."""

    modules: list[str]
    shortest: list[Edge]
    edges: list[Edge]

    def __str__(self) -> str:
        return "\n".join([f"{len(self.modules)} modules in an import cycle: {', '.join(self.modules)}",
                          "  a shortest cycle:", *(f"    {e}" for e in self.shortest),
                          "  every import between them:", *(f"    {e}" for e in self.edges)])


def import_cycles(root: Path, repo: Path) -> list[Cycle]:
    """The import cycles among the modules of the package at ROOT, one per strongly connected component."""
    modules = module_files(root)
    edges = module_edges(modules, repo)
    return [Cycle(component, shortest_cycle(component, edges),
                  sorted((e for e in edges if e.source in component and e.target in component),
                         key=lambda e: (e.path, e.line, e.target)))
            for component in strongly_connected(list(modules), edges)]
