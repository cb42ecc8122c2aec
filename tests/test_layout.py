"""The package's layout holds: no import circle between its modules (type-only imports included), and
lower folders never import higher ones: the shared core (training/) knows no method, a method knows
no other method, and nothing below the CLI imports it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "metarl"

#: Each folder (or top-level module) may import only from the levels below it.
LEVELS = {
    "keys": 0, "envs": 0, "algorithms": 0, "cli_errors": 0, "tracking": 1, "plot": 1, "console": 1,
    "data": 1, "nets": 1, "config_files": 1,
    "training": 2,
    "methods": 3,
    "cli": 4, "exits": 4, "__main__": 5, "__init__": 0,
}


def _module(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("metarl"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    targets.add(full if full in modules else node.module)
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.startswith("metarl")}
        # A package's __init__ re-exports its modules; importing the package means importing them.
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def test_no_import_circle() -> None:
    graph = _imports()
    inits = {m for m in graph if (PACKAGE.parent / m.replace(".", "/") / "__init__.py").exists()}
    # Edges into a package's __init__ are edges to what it re-exports: follow them, but never
    # count an __init__ importing its own submodules as a circle through itself.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if node in inits and nxt.startswith(node + "."):
                continue
            if state.get(nxt) == 1:
                raise AssertionError("import circle: " + " -> ".join([*stack[stack.index(nxt):], nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def _level(module: str) -> tuple[int, str]:
    top = module.split(".")[1] if "." in module else "__init__"
    return LEVELS[top], top


def test_lower_folders_never_import_higher_ones() -> None:
    for module, targets in _imports().items():
        level, top = _level(module)
        for target in targets:
            t_level, t_top = _level(target)
            assert t_level <= level or t_top == top, f"{module} (level {level}) imports {target} (level {t_level})"
            if top == "methods" and t_top == "methods":
                assert module.split(".")[2] == target.split(".")[2] or len(target.split(".")) == 2, \
                    f"method {module} imports another method's {target}"
