"""The package's shape: no import circles, and no module imports a layer above its own.

Layers, lowest first: shared data; how we reach a model, tools, the library; the teacher and the student;
task sources; the composition root; orchestration (the loop, evaluation, export, the server, fakes); the CLI.
Imports inside functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "agentkd"

LAYERS: dict[str, int] = {
    "agentkd": 9,  # the package's lazy public names
    "agentkd.version": 0, "agentkd.schema": 0, "agentkd.errors": 0, "agentkd.config": 0, "agentkd.prompts": 0,
    "agentkd.chat": 0,
    "agentkd.models": 1, "agentkd.tools": 1, "agentkd.library": 1,
    "agentkd.teacher": 2, "agentkd.student": 2,
    "agentkd.tasks": 3,
    "agentkd.parts": 4,
    "agentkd.distill": 5, "agentkd.eval": 5, "agentkd.sft": 5, "agentkd.server": 5, "agentkd.testing": 5,
    "agentkd.cli": 6,
}

SIBLINGS = {1, 2}  # backends of one layer never import each other: the composition root passes them in


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> tuple[str, int]:
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return prefix, LAYERS[prefix]
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS in {__file__}")


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The agentkd modules a file imports (``from agentkd.x import y`` counts y when y is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("agentkd"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("agentkd") and not node.level:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(files)
    return {name: {m for m in imports_of(path, known) if m in known and m != name} for name, path in files.items()}


def test_every_module_has_a_layer_and_imports_none_above_it() -> None:
    upward = []
    for module, deps in graph().items():
        if module == "agentkd" or module.endswith("__main__"):
            continue
        own, level = layer_of(module)
        for dep in deps:
            other, dep_level = layer_of(dep)
            if dep_level > level:
                upward.append(f"{module} (layer {level}) imports {dep} (layer {dep_level})")
            elif dep_level == level and other != own and level in SIBLINGS:
                upward.append(f"{module} imports its sibling {dep}: pass the part in instead")
    assert not upward, "\n".join(sorted(upward))


def test_no_import_circles() -> None:
    deps = graph()
    # package __init__ files that only re-export are edges too; a circle through one is still a circle
    seen: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def visit(node: str) -> None:
        seen[node] = 1
        stack.append(node)
        for nxt in sorted(deps[node]):
            if seen.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt):], nxt]
                # a package importing its own submodule (re-export) is not a circle by itself
                a, b = cycle[0], cycle[1]
                if not (len(cycle) == 3 and (b.startswith(a + ".") or a.startswith(b + "."))):
                    cycles.append(" -> ".join(cycle))
            elif nxt not in seen:
                visit(nxt)
        stack.pop()
        seen[node] = 2

    for node in sorted(deps):
        if node not in seen:
            visit(node)
    assert not cycles, "\n".join(cycles)


def test_each_sdk_is_imported_in_exactly_one_module() -> None:
    owners: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            for name in names:
                root = name.split(".")[0]
                if root in {"llama_cpp", "chromadb", "litellm", "openai", "langgraph"}:
                    # one owner may be split in files named after it: models/llamacpp.py, models/llamacpp_batch.py
                    owners.setdefault(root, set()).add(module_name(path).split("_")[0])
    many = {sdk: sorted(mods) for sdk, mods in owners.items() if len(mods) > 1}
    assert not many, many
