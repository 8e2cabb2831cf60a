"""Imports run one way: base → scenario → data, models, measures → engine → sinks → tui → api → cli.

The test reads every module of the package with `ast` (lazy imports inside functions count; imports under
`if TYPE_CHECKING:` do not), and fails on an import of a higher layer, on a package cycle and on a file cycle.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ibtui"

# Layer of each top-level module or sub-package of ibtui; a module may import its own layer or lower ones.
LAYERS = {
    "errors": 0, "version": 0, "records": 0, "controls": 0, "quantities": 0, "files": 0, "compiled": 0,
    "scenario": 1, "resources": 1,
    "data": 2, "models": 2, "measures": 2,
    "engine": 3,
    "sinks": 4,
    "tui": 5, "reproduce": 5,
    "api": 6,  # the Python face (ibtui.run, ibtui.load): the CLI runs through it
    "monitor": 6,  # ibtui.watch: your own model, measured by the engine's probes and sinks (beside api)
    "cli": 7, "__main__": 7,
    "__init__": 8,  # imports ibtui.api lazily (module __getattr__), so `import ibtui.x` stays light
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _unit(module: str) -> str:
    """The layer unit of a dotted module name: "ibtui.engine.trainer" → "engine"."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path, module: str) -> set[str]:
    """Every ibtui module imported by `path` (function-level imports included, TYPE_CHECKING blocks excluded)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "ibtui")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            if base.split(".")[0] == "ibtui":
                for alias in node.names:  # `from ibtui.engine import rng` imports the module ibtui.engine.rng
                    sub = f"{base}.{alias.name}"
                    found.add(sub if _exists(sub) else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _exists(module: str) -> bool:
    p = PACKAGE.parent.joinpath(*module.split("."))
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        graph[module] = {m for m in _imports(path, module) if m != module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            strong(v)
    return out


def test_every_unit_has_a_layer():
    units = {_unit(m) for m in _graph()}
    assert units <= set(LAYERS), f"modules without a layer in this test: {sorted(units - set(LAYERS))}"


def test_no_import_goes_up():
    upward = [f"{m} → {t}" for m, targets in _graph().items() for t in sorted(targets)
              if LAYERS[_unit(t)] > LAYERS[_unit(m)]]
    assert not upward, "imports that go up a layer:\n" + "\n".join(upward)


def test_no_file_cycle():
    assert not _cycles(_graph()), f"modules that import each other in a loop: {_cycles(_graph())}"


def test_no_package_cycle():
    """Between the layer units (ibtui.data, ibtui.engine, ibtui.tui with its panes, …)."""
    packages: dict[str, set[str]] = {}
    for m, targets in _graph().items():
        packages.setdefault(_unit(m), set()).update(_unit(t) for t in targets if _unit(t) != _unit(m))
    assert not _cycles(packages), f"packages that import each other in a loop: {_cycles(packages)}"


def test_the_base_and_the_command_line_start_without_torch():
    """`ibtui --help`, `show` and every bad-input error must not pay for the torch import."""
    code = ("import sys, ibtui.cli, ibtui.errors, ibtui.records, ibtui.controls, ibtui.quantities, ibtui.scenario; "
            "print(sorted(m for m in ('torch', 'numpy', 'textual', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent).stdout.strip()
    assert out == "[]"


def test_the_python_api_reads_an_export_without_torch(tmp_path):
    """`import ibtui` and `ibtui.load` never import torch (only `ibtui.run` does, when the run starts)."""
    (tmp_path / "r.csv").write_text("run,sweep,seed,epoch,step,layer,quantity,estimator,value\n"
                                    "r,,mean,0,0,1,I(X;T),bin30,1.5\n", encoding="utf-8")
    code = ("import sys, ibtui; r = ibtui.load(sys.argv[1]); ibtui.run; "
            "print(r.series('I(X;T)', layer=1)[1].tolist(), sorted(m for m in ('torch', 'textual', 'matplotlib') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "r.csv")], capture_output=True, text=True,
                         check=True, cwd=PACKAGE.parent).stdout.strip()
    assert out == "[1.5] []"


def test_no_pane_imports_another():
    """Panes share only panes/base.py: each can change (or go) without touching the others."""
    panes = {m: t for m, t in _graph().items() if m.startswith("ibtui.tui.panes.")}
    crossing = [f"{m} → {t}" for m, targets in panes.items() for t in sorted(targets)
                if t.startswith("ibtui.tui.panes.") and t != "ibtui.tui.panes.base" and m != "ibtui.tui.panes.base"]
    assert panes and not crossing, crossing
