"""The package map of docs/architecture.md, checked: every import points down, no module
imports itself back through others, and the translation core stays pure.

Imports are read with ``ast`` from the source, including imports inside functions and under
``if TYPE_CHECKING:`` (a lazy import is still a dependency, and a circle through one is still a
circle)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "codex_proxy"

# What each part of the package may import from the others. The shared bottom modules
# (config and the _helpers) are importable by everyone but import nothing of the gateway.
BOTTOM = {"__init__", "config", "_files", "_json", "_sniff", "_image_options"}
MAY_IMPORT: dict[str, set[str]] = {
    "__init__": set(),
    "_files": set(),
    "_json": set(),
    "_sniff": set(),
    "_image_options": set(),
    "config": {"_image_options"},
    "translate": {"_image_options", "_sniff"},
    "upstream": {"translate", "config", "__init__", "_files", "_json"},
    "store": {"config", "_files", "_json", "_sniff"},
    "keys": {"config", "_files"},
    "server": {"upstream", "store", "translate", "keys"} | BOTTOM,
    "login": {"upstream", "config", "__init__"},
    "service": {"config", "_files"},
    "imagegen": {"__init__", "_files", "_sniff"},
    "mock": {"_sniff"},
    "cli": {"server", "service", "login", "upstream", "store", "translate", "mock", "keys"}
    | BOTTOM,
    "__main__": {"cli"},
}
# Never in the pure core: frameworks, the network, the disk, the environment.
IMPURE = {"starlette", "httpx", "httpcore", "uvicorn", "anyio", "sqlite3", "socket", "asyncio"}


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = modules()


def part_of(module: str) -> str:
    """``codex_proxy.server.app`` -> ``server``; ``codex_proxy`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(module: str) -> set[str]:
    """The names this module imports (absolute, resolved against its package)."""
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.add(target)
            # ``from codex_proxy.x import y`` may import the module ``codex_proxy.x.y``
            out.update(
                f"{target}.{alias.name}"
                for alias in node.names
                if f"{target}.{alias.name}" in MODULES
            )
    return out


def internal_imports(module: str) -> set[str]:
    return {name for name in imports(module) if name in MODULES and name != module}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "codex_proxy.__main__"))
def test_every_module_imports(module: str) -> None:
    importlib.import_module(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module: str) -> None:
    mine = part_of(module)
    assert mine in MAY_IMPORT, f"{module}: its package is missing from the map"
    wrong = {
        name
        for name in internal_imports(module)
        if part_of(name) != mine and part_of(name) not in MAY_IMPORT[mine]
    }
    assert not wrong, f"{module} ({mine}) must not import {sorted(wrong)}"


def test_the_map_has_no_circle() -> None:
    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in MAY_IMPORT[start]:
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    assert [p for p in MAY_IMPORT if reaches(p, p, set())] == []


def test_no_module_imports_itself_back() -> None:
    graph = {module: internal_imports(module) for module in MODULES}
    # a package's __init__ importing its own modules is how packages work, not a circle
    for module in graph:
        graph[module] = {n for n in graph[module] if not module.startswith(n + ".")}
    circles = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for nxt in sorted(graph[module]):
            if state.get(nxt) == 1:
                circles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert circles == []


@pytest.mark.parametrize("module", sorted(m for m in MODULES if part_of(m) == "translate"))
def test_the_translation_core_is_pure(module: str) -> None:
    roots = {name.split(".")[0] for name in imports(module)}
    assert not roots & IMPURE, f"{module} imports {sorted(roots & IMPURE)}"
    source = MODULES[module].read_text()
    assert "os.environ" not in source and "getenv" not in source


def test_the_checks_catch_what_they_forbid() -> None:
    """The walker really sees a lazy upward import (the kind the old layout had)."""
    sample = "def f():\n    from codex_proxy.cli.main import main\n"
    tree = ast.parse(sample)
    found = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert found == {"codex_proxy.cli.main"}
    assert part_of("codex_proxy.cli.main") not in MAY_IMPORT["server"]
