"""The layers hold: the import contract in pyproject.toml passes, it names every library module, no import
circle anywhere in zoo or tasks, and the library names no task."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
APP = "zoo.app"
TASK_NAMES = re.compile(r"AddingProblem|SequentialMNIST|LanguageModelling|CopyMemory|gradient_study")


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    """Every import in zoo and tasks, at the top of a file or inside a function; imports made only for type
    hints (``if TYPE_CHECKING:``) are not run, so they cannot close a circle."""
    return grimp.build_graph("zoo", "tasks", cache_dir=None, exclude_type_checking_imports=True)


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_import_contracts_hold():
    script = ("import sys; from importlinter.cli import lint_imports; "
              "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout and "3 kept" in result.stdout, result.stdout


def test_the_contract_names_every_library_module(graph):
    """A library module left out of the contract would escape it: the list must be every child of zoo but the app."""
    (library,) = [c for c in _contracts() if "tasks" in c["forbidden_modules"] and c.get("as_packages", True)
                  and c["source_modules"] != ["tasks"]]
    children = graph.find_children("zoo") - {APP, "zoo.__main__"}  # __main__ is the `python -m zoo` entry: the app's
    assert set(library["source_modules"]) == children


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module in the direct-import graph (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return groups


def test_no_import_cycle_in_zoo_or_tasks(graph):
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    g = grimp.ImportGraph()
    for name in ("a", "a.x", "a.y", "a.z"):
        g.add_module(name)
    g.add_import(importer="a.x", imported="a.y")
    g.add_import(importer="a.y", imported="a.x")
    g.add_import(importer="a.y", imported="a.z")
    assert _cycles(g) == [["a.x", "a.y"]]


def test_only_the_app_imports_tasks(graph):
    importers = set()
    for module in graph.find_descendants("tasks") | {"tasks"}:
        importers |= graph.find_modules_that_directly_import(module)
    outside = sorted(m for m in importers if not (m == APP or m.startswith(APP + ".") or m.split(".")[0] == "tasks"
                                                  or m == "zoo.__main__"))
    assert outside == []


def test_the_library_names_no_task():
    """Nothing outside the app branches on (or even mentions) a particular task: a new task needs no edit there."""
    hits = []
    for path in sorted((ROOT / "zoo").rglob("*.py")):
        if (ROOT / "zoo" / "app") in path.parents:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if TASK_NAMES.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert hits == []
