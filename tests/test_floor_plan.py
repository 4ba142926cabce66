"""The floor plan (docs/architecture.md) holds: the layers contract passes, would fail on an upward
import, and no two modules import each other in a circle."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

REPO_ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _contract_config() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_layers_contract_is_kept() -> None:
    done = _lint_imports(REPO_ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    for package in _contract_config()["root_packages"]:
        shutil.copytree(REPO_ROOT / package, tmp_path / package)
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    # a format module that reaches for the roof: exactly what the floor plan forbids
    (tmp_path / "prompts" / "upward.py").write_text("from promptus.errors import CommandError\n")
    done = _lint_imports(tmp_path)
    assert done.returncode != 0
    assert "BROKEN" in done.stdout and "prompts.upward -> promptus.errors" in done.stdout


def test_no_module_imports_itself_through_others() -> None:
    """No import circle between files, counting imports made only for type checking."""
    packages = _contract_config()["root_packages"]
    graph = grimp.build_graph(*packages, cache_dir=None)
    modules = sorted(graph.modules)
    edges = {m: graph.find_modules_directly_imported_by(m) & graph.modules for m in modules}
    circles = _strongly_connected(modules, edges)
    assert circles == [], f"import circles: {circles}"


def _strongly_connected(nodes: list[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm; the components of more than one module (each a circle of imports)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in edges[node]:
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in nodes:
        if node not in index:
            visit(node)
    return found
