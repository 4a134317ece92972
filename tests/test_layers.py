"""The tree shows the layers, and imports run one way: no cycle, no import of a higher layer."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "agent_guard"

RANKS = {
    "identity": 1,
    "authorization": 2,
    "stores": 2,
    "audit": 3,
    "execution": 4,
    "cli": 5,
}
"""Layer of each sub-package; top-level modules are ranked below by name."""

TOP_LEVEL = {
    "exceptions": 0, "reasons": 0, "semconv": 0, "_frozen": 0, "_redact": 0, "_text": 0, "_version": 0, "_decision": 0,
    "planning": 2, "jwks": 2, "telemetry": 3, "testing": 5, "__init__": 6,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _rank(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return TOP_LEVEL["__init__"]
    if parts[1] in RANKS:
        return RANKS[parts[1]]
    return TOP_LEVEL[parts[1]]


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every agent_guard module ``path`` imports (also under TYPE_CHECKING and inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("agent_guard"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("agent_guard"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
    return found & set(modules)


def test_every_module_has_a_layer() -> None:
    """A new module must be placed in a layer (this test names it)."""
    for name in _modules():
        _rank(name)


def test_no_module_imports_a_higher_layer() -> None:
    """identity < authorization, stores < audit < execution < cli: a lower layer never reaches up."""
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        for target in _imports(path, modules):
            if _rank(target) > _rank(name):
                wrong.append(f"{name} -> {target}")
    assert not wrong, "imports of a higher layer:\n" + "\n".join(sorted(wrong))


def test_the_import_graph_has_no_cycle() -> None:
    """Static imports (TYPE_CHECKING ones included) form a DAG."""
    modules = _modules()
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt):], nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
