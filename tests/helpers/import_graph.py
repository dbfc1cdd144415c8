"""Read a source tree's imports into a graph: every import, wherever it sits, and its cycles.

Used by ``tests/test_architecture.py``. Every ``import`` and ``from … import`` counts: at module
level, inside a function, under ``if TYPE_CHECKING:`` or in a ``try:``. A lazy import is still
a dependency, and a type-only one still ties the modules together. Relative imports are
resolved; one that climbs above the tree is kept as written (``..gone``).
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

__all__ = ["Edge", "Graph", "cycle_problems", "top", "walk"]


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``target`` (a module of this repo, else the dotted name as written)."""

    source: str
    target: str
    file: Path
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line} imports {self.target}"


@dataclass(frozen=True)
class Graph:
    modules: frozenset[str]
    edges: tuple[Edge, ...]


def _module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _from_base(node: ast.ImportFrom, module: str, is_package: bool) -> str | None:
    """The absolute name ``from <this> import …`` refers to; None when it climbs above the root."""
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    kept = len(package) - (node.level - 1)
    if kept <= 0:
        return None
    return ".".join([*package[:kept], *([node.module] if node.module else [])])


def _imports(root: Path, path: Path, modules: set[str]) -> Iterator[Edge]:
    module = _module_name(root, path)
    file = path.relative_to(root)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Edge(module, alias.name, file, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = _from_base(node, module, path.name == "__init__.py")
            for alias in node.names:
                if base is None:  # kept as written, so the report shows what failed
                    written = ".".join(filter(None, [node.module, alias.name]))
                    yield Edge(module, "." * node.level + written, file, node.lineno)
                    continue
                submodule = f"{base}.{alias.name}"
                target = submodule if submodule in modules else base
                yield Edge(module, target, file, node.lineno)


def walk(root: Path, packages: Iterable[str]) -> Graph:
    """Every module under ``root``'s ``packages`` and every import each of them makes."""
    paths = sorted(path for package in packages for path in (root / package).rglob("*.py"))
    modules = {_module_name(root, path) for path in paths}
    edges = tuple(dict.fromkeys(edge for path in paths for edge in _imports(root, path, modules)))
    return Graph(frozenset(modules), edges)


def top(name: str) -> str:
    return name.split(".")[0]


def _components(graph: dict[str, dict[str, Edge]]) -> list[list[str]]:
    """Tarjan's strongly connected components."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _shortest_cycle(graph: dict[str, dict[str, Edge]], start: str) -> list[str]:
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(graph[node]):
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if nxt not in parent:
                parent[nxt] = node
                queue.append(nxt)
    raise AssertionError(f"{start} is on no cycle")


def cycle_problems(graph: Graph) -> list[str]:
    """One shortest cycle for every group of modules that import each other."""
    between: dict[str, dict[str, Edge]] = {module: {} for module in graph.modules}
    for edge in graph.edges:
        if edge.target in graph.modules:
            between[edge.source].setdefault(edge.target, edge)
    problems = []
    for component in _components(between):
        start = min(component)
        if len(component) == 1 and start not in between[start]:
            continue
        path = _shortest_cycle(between, start)
        hops = "; ".join(str(between[a][b]) for a, b in pairwise(path))
        problems.append(f"import cycle {' -> '.join(path)} ({hops})")
    return problems
