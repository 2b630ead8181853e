"""The layer table of docs/ARCHITECTURE.md is the rule: every import in solireward/ must follow it."""

from __future__ import annotations

import ast
import io
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "solireward"


def layer_table() -> tuple[dict[str, str], dict[str, set[str]]]:
    """(module -> layer, layer -> layers it may import) from the 'Layers' table of ARCHITECTURE.md."""
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    layer_of: dict[str, str] = {}
    allowed: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[0] in ("layer", "") or set(cells[0]) <= {"-"}:
            continue
        layer, modules, may = cells[0], re.findall(r"`([\w.*]+)`", cells[1]), cells[2]
        for module in modules:
            layer_of[module] = layer
        allowed[layer] = {layer} | ({"*"} if may == "all" else {m.strip() for m in may.split(",") if m.strip() != "—"})
    return layer_of, allowed


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str, layer_of: dict[str, str]) -> str | None:
    """The layer of a dotted module below the package; a package (`models`) has its modules' layer."""
    if module in ("", "__version__"):
        return "base"  # the package itself: `from solireward import __version__`
    for pattern, name in layer_of.items():
        stem = pattern.removesuffix(".*")
        if module == pattern or module == stem or module.startswith(stem + ".") and pattern.endswith(".*") \
                or pattern.startswith(module + "."):
            return name
    return None


def imports(path: Path) -> list[str]:
    """Package modules a file imports: `solireward.x.y` -> `x.y`; `from solireward import d` -> `d`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "solireward":
            below = node.module.partition(".")[2]
            found += [below] if below else [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            found += [a.name.partition(".")[2] for a in node.names if a.name.split(".")[0] == "solireward"]
    return found


def test_every_module_has_a_layer() -> None:
    layer_of, _ = layer_table()
    missing = [module_name(p) for p in PACKAGE.rglob("*.py")
               if module_name(p) not in ("", "__init__") and layer(module_name(p), layer_of) is None]
    assert not missing, f"modules missing from the Layers table of docs/ARCHITECTURE.md: {missing}"


def test_imports_follow_the_layer_table() -> None:
    layer_of, allowed = layer_table()
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = layer(module_name(path), layer_of) or "base"
        for target in imports(path):
            there = layer(target, layer_of)
            if "*" not in allowed[here] and there not in allowed[here]:
                wrong.append(f"{module_name(path)} ({here}) imports {target} ({there})")
    assert not wrong, "imports against docs/ARCHITECTURE.md's Layers table:\n" + "\n".join(wrong)


def test_the_layer_checker_can_fail() -> None:
    """The table parses as written, and an import against it (reporting -> training) is not allowed."""
    layer_of, allowed = layer_table()
    assert layer("training.trainer", layer_of) == "training" and "training" not in allowed["reporting"]
    assert layer("models", layer_of) == "models" and layer("data.video", layer_of) == "data"
    assert layer("commands.train", layer_of) == "commands" and "*" in allowed["commands"]
    assert allowed["scoring"] == {"scoring", "base", "data"}


def module_graph(type_checking: bool = True) -> dict[str, set[str]]:
    """Module -> the package modules it imports (a `from package import name` names the submodule when there
    is one), imports under ``if TYPE_CHECKING`` included: a cycle in type hints is a cycle of the design."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "solireward":
                below = node.module.partition(".")[2]
                targets = [f"{below}.{a.name}".strip(".") if f"{below}.{a.name}".strip(".") in modules else below
                           for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name.partition(".")[2] for a in node.names if a.name.split(".")[0] == "solireward"]
            found |= {t for t in targets if t in modules and t != name}
        graph[name] = found
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_module_imports_have_no_cycle() -> None:
    """Imports are one-way between modules too (a package's __init__ that re-exports its modules aside)."""
    graph = {m: {t for t in targets if not (m == t.rpartition(".")[0] or t == m.rpartition(".")[0])}
             for m, targets in module_graph().items()}
    assert cycles(graph) == []


def test_the_cycle_finder_can_fail() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_unused_import_or_variable() -> None:
    """pyflakes over the package, the tests and the benchmarks: no unused import or local, no undefined name."""
    from pyflakes.api import checkPath
    from pyflakes.reporter import Reporter

    out, err = io.StringIO(), io.StringIO()
    found = sum(checkPath(str(path), Reporter(out, err)) for folder in ("solireward", "tests", "bench")
                for path in sorted((REPO / folder).rglob("*.py")))
    assert found == 0, out.getvalue() + err.getvalue()
