"""The import rules of CONTRIBUTING.md ("Layout"), read from the source: layers, libraries and cycles.

Every import counts, lazy and type-only ones too (see ``tests.helpers.import_graph``). An
import of a module of this repository that does not exist, or a relative import that does not
resolve, is itself a failure. Each failure reads ``file:line imports X: why``.
"""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest

from tests.helpers.import_graph import Edge, Graph, cycle_problems, top, walk

ROOT = Path(__file__).resolve().parents[1]
# Lowest first. A package may import its own modules and those of any lower layer; packages
# that share a layer must not import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("imaging",),
    ("core",),
    ("tasks",),
    ("flows",),
    ("webhook", "dashboard"),
    ("deployments",),
)
RANK = {package: rank for rank, layer in enumerate(LAYERS) for package in layer}
PACKAGES = tuple(RANK)
# Narrower than the layers (CONTRIBUTING.md): package -> {lower package it must not import: the
# modules of it that it may import all the same}.
NOT_DIRECTLY: dict[str, dict[str, tuple[str, ...]]] = {
    "flows": {"imaging": ()},  # flows orchestrate; pixels are the tasks' business
    "webhook": {"flows": ("flows.trigger",), "tasks": (), "imaging": ()},
    "dashboard": {"flows": ("flows.trigger",), "tasks": (), "imaging": ()},
    "deployments": {"webhook": ()},  # the CLI starts the webhook by its import string
}
# Each framework belongs to one package; no other package imports it.
FRAMEWORK_OWNER = {
    "fastapi": "webhook",
    "starlette": "webhook",
    "streamlit": "dashboard",
    "uvicorn": "deployments",
}
# imaging is pure: the standard library, Pillow and numpy, nothing else.
IMAGING_MAY_IMPORT = frozenset(sys.stdlib_module_names) | {"PIL", "numpy"}
NO_PREFECT = ("imaging", "core")
# (module, library) -> why it is allowed. An entry no longer needed fails the test.
EXEMPT = {
    ("core.storage.s3", "prefect_aws"): "an AWS credentials block, loaded only when configured",
}


def _layer_problem(edge: Edge, modules: frozenset[str]) -> str | None:
    source, target = top(edge.source), top(edge.target)
    if target not in RANK and not edge.target.startswith("."):
        return None
    if edge.target not in modules:
        return "no module of this repository has that name"
    if source == target:
        return None
    if RANK[target] > RANK[source]:
        return f"{source} sits below {target}"
    if RANK[target] == RANK[source]:
        return f"{source} and {target} share a layer and must not import each other"
    allowed = NOT_DIRECTLY.get(source, {}).get(target)
    if allowed is not None and not any(
        edge.target == name or edge.target.startswith(f"{name}.") for name in allowed
    ):
        only = f" (only {', '.join(allowed)})" if allowed else ""
        return f"{source} must not import {target} directly{only}"
    return None


def layer_problems(graph: Graph) -> list[str]:
    """Imports against the layer order, the narrower rules, or of nothing that exists."""
    return [
        f"{edge}: {problem}"
        for edge in graph.edges
        if (problem := _layer_problem(edge, graph.modules)) is not None
    ]


def _library_problem(edge: Edge) -> str | None:
    source, library = top(edge.source), top(edge.target)
    if library in RANK or edge.target.startswith("."):
        return None
    if source == "imaging" and library not in IMAGING_MAY_IMPORT:
        return "imaging imports only the standard library, Pillow and numpy"
    if source in NO_PREFECT and (library == "prefect" or library.startswith("prefect_")):
        return f"{source} must not import prefect"
    owner = FRAMEWORK_OWNER.get(library)
    if owner is not None and owner != source:
        return f"only {owner} imports {library}"
    return None


def library_problems(graph: Graph, exempt: dict[tuple[str, str], str]) -> list[str]:
    """Third-party imports a package must not make, and exemptions that are no longer used."""
    problems, used = [], set()
    for edge in graph.edges:
        problem = _library_problem(edge)
        key = (edge.source, top(edge.target))
        if problem is not None and key in exempt:
            used.add(key)
        elif problem is not None:
            problems.append(f"{edge}: {problem}")
    problems += [f"exemption {key} is no longer needed" for key in exempt.keys() - used]
    return problems


@cache
def repository() -> Graph:
    return walk(ROOT, PACKAGES)


def _fake_repo(root: Path, files: dict[str, str]) -> Graph:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return walk(root, PACKAGES)


def test_the_walker_finds_every_kind_of_import(tmp_path: Path) -> None:
    graph = _fake_repo(
        tmp_path,
        {
            "core/__init__.py": "",
            "core/a.py": "import core.b\nfrom . import c\nfrom .c import thing\n",
            "core/b.py": "def f():\n    from core import c\n",
            "core/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .d import x\n",
            "core/d.py": "try:\n    import numpy.linalg\nexcept ImportError:\n    pass\n",
            "core/sub/__init__.py": "from .. import a\nfrom ... import nowhere\n",
        },
    )
    assert graph.modules == {"core", "core.a", "core.b", "core.c", "core.d", "core.sub"}
    assert {(edge.source, edge.target, edge.line) for edge in graph.edges} == {
        ("core.a", "core.b", 1),
        ("core.a", "core.c", 2),
        ("core.a", "core.c", 3),
        ("core.b", "core.c", 2),
        ("core.c", "typing", 1),
        ("core.c", "core.d", 3),
        ("core.d", "numpy.linalg", 2),
        ("core.sub", "core.a", 1),
        ("core.sub", "...nowhere", 2),
    }


def test_the_checks_catch_each_kind_of_breach(tmp_path: Path) -> None:
    graph = _fake_repo(
        tmp_path,
        {
            "imaging/__init__.py": "import httpx\nfrom core import settings\n",
            "core/__init__.py": "",
            "core/settings.py": "def f():\n    import prefect\n",
            "core/db.py": "from core.errors import E\nimport prefect_aws\n",
            "core/errors.py": "def f():\n    from core.db import retry\n",
            "flows/__init__.py": "from imaging import x\nfrom .. import gone\n",
            "flows/trigger.py": "from .missing import y\n",
            "webhook/__init__.py": "from dashboard import y\nimport flows.trigger\nimport streamlit\n",
            "dashboard/__init__.py": "import flows\n",
        },
    )
    assert sorted(layer_problems(graph)) == [
        "dashboard/__init__.py:1 imports flows: dashboard must not import flows directly (only"
        " flows.trigger)",
        "flows/__init__.py:1 imports imaging: flows must not import imaging directly",
        "flows/__init__.py:2 imports ..gone: no module of this repository has that name",
        "flows/trigger.py:1 imports flows.missing: no module of this repository has that name",
        "imaging/__init__.py:2 imports core.settings: imaging sits below core",
        "webhook/__init__.py:1 imports dashboard: webhook and dashboard share a layer and must"
        " not import each other",
    ]
    exempt = {("core.settings", "prefect"): "lazy", ("core.db", "sqlmodel"): "unused"}
    assert sorted(library_problems(graph, exempt)) == [
        "core/db.py:2 imports prefect_aws: core must not import prefect",
        "exemption ('core.db', 'sqlmodel') is no longer needed",
        "imaging/__init__.py:1 imports httpx: imaging imports only the standard library, Pillow"
        " and numpy",
        "webhook/__init__.py:3 imports streamlit: only dashboard imports streamlit",
    ]
    assert cycle_problems(graph) == [
        "import cycle core.db -> core.errors -> core.db (core/db.py:1 imports core.errors;"
        " core/errors.py:2 imports core.db)"
    ]


def test_the_walker_reads_the_whole_repository() -> None:
    graph = repository()
    by_package = defaultdict(set)
    for module in graph.modules:
        by_package[top(module)].add(module)
    assert all(len(by_package[package]) >= 3 for package in PACKAGES), by_package
    crossings = {(top(edge.source), top(edge.target)) for edge in graph.edges}
    assert {("tasks", "core"), ("flows", "tasks"), ("webhook", "flows")} <= crossings


def test_imports_follow_the_layers() -> None:
    assert layer_problems(repository()) == []


def test_each_package_imports_only_its_libraries() -> None:
    assert library_problems(repository(), EXEMPT) == []


def test_no_modules_import_each_other() -> None:
    assert cycle_problems(repository()) == []


@pytest.mark.parametrize("module", ["flows.trigger"])
def test_the_trigger_module_loads_no_pipeline_code(module: str) -> None:
    # The webhook and the dashboard import it: it must not drag in tasks, pixels or the model.
    loaded = subprocess.run(
        [sys.executable, "-c", f"import sys, {module}; print(*sys.modules, sep='\\n')"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    heavy = {"tasks", "imaging", "numpy", "onnxruntime"}
    assert module in loaded
    assert sorted(name for name in loaded if top(name) in heavy) == []
