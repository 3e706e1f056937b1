"""Imports follow the architecture (checked on the source with ast, nothing is imported).

- Package edges: a subpackage imports only the subpackages it is allowed to (``ALLOWED``).
- File edges: no import cycle between the modules of rlsuite. Every import counts, at module level or
  inside a function, absolute or relative; ``from pkg import name`` is an edge to ``pkg.name`` when
  that is a submodule, else to ``pkg`` (its ``__init__``). An import of ``a.b.c`` is an edge to
  ``a.b.c`` only: Python also runs the parents' ``__init__`` files, but a package that imports its own
  submodules is the usual layout, not a cycle. Imports under ``if TYPE_CHECKING:`` never run and do
  not count.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

import rlsuite

ROOT = Path(rlsuite.__file__).parent
# subpackage -> subpackages of rlsuite it may import
ALLOWED = {
    "core": {"core"},
    "envs": {"core", "envs"},
    "agents": {"core", "agents"},
    "offline": {"core", "offline", "agents", "envs"},
    "robots": {"core", "robots"},
    "llm": {"core", "llm"},
}


def imported_rlsuite_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("rlsuite")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rlsuite") and node.level == 0:
            out.add(node.module)
    return out


def test_no_forbidden_import_edges():
    bad = []
    for sub, allowed in ALLOWED.items():
        for f in (ROOT / sub).rglob("*.py"):
            for mod in imported_rlsuite_modules(f):
                parts = mod.split(".")
                target = parts[1] if len(parts) > 1 else "rlsuite"
                if target not in allowed:
                    bad.append(f"{f.relative_to(ROOT)} imports {mod} ({sub} -> {target} is not allowed)")
    assert not bad, "\n".join(bad)


def test_checker_sees_a_forbidden_edge(tmp_path):
    f = tmp_path / "x.py"
    f.write_text("from rlsuite.agents.ppo import PPO\nimport rlsuite.core.nets\n")
    assert imported_rlsuite_modules(f) == {"rlsuite.agents.ppo", "rlsuite.core.nets"}


# ----------------------------------------------------------------------------- file-level cycles


def module_files(root: Path, package: str) -> dict[str, Path]:
    """``module name -> file`` for every ``.py`` file under the package directory ``root``.

    A package directory wins over a module file of the same name (``x/__init__.py`` over ``x.py``), as
    in Python's own import system.
    """
    mods: dict[str, Path] = {}
    for f in sorted(root.rglob("*.py")):
        rel = f.relative_to(root).with_suffix("")
        parts = [package, *rel.parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        elif (f.with_suffix("") / "__init__.py").is_file():
            continue  # shadowed by the package of the same name
        mods[".".join(parts)] = f
    return mods


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run (anywhere in the file, but not under ``if TYPE_CHECKING:``)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def module_imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules among ``modules`` that the module ``name`` (file ``path``) imports."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in _runtime_imports(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
            continue
        if node.level:
            base = name.split(".")
            if not is_package:
                base = base[:-1]
            base = base[: len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        submodules = {f"{target}.{a.name}" for a in node.names} & modules.keys()
        out |= submodules
        if len(submodules) < len(node.names):  # some name is read from the package's __init__ (or ``*``)
            out.add(target)
    return {m for m in out if m in modules and m != name}  # third-party modules are not ours


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """File-level import graph of the package at ``root``: ``module -> modules it imports``."""
    modules = module_files(root, package)
    return {name: module_imports(name, path, modules) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle ``[a, b, ..., a]`` per strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0

    def connect(v: str) -> None:  # recursion depth is bounded by the number of modules
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            connect(v)

    cycles = []
    for comp in components:  # a shortest cycle through the component's first module (breadth-first)
        members, start = set(comp), comp[0]
        parent: dict[str, str] = {}
        frontier, found = [start], None
        while frontier and found is None:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v] & members):
                    if w == start:
                        found = v
                        break
                    if w not in parent:
                        parent[w] = v
                        nxt.append(w)
                if found is not None:
                    break
            frontier = nxt
        path = [start]
        v = found
        while v != start:
            path.append(v)
            v = parent[v]
        cycles.append([start, *reversed(path[1:]), start])
    return cycles


def test_no_import_cycle_between_files():
    cycles = find_cycles(import_graph(ROOT, "rlsuite"))
    assert not cycles, "import cycles between files:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_cycle_checker_finds_cycles_in_a_synthetic_package(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from pkg.sub import helpers\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("import pkg.b\n")
    (pkg / "b.py").write_text("def f():\n    from .sub import helpers  # function-level, relative, submodule by name\n")
    (pkg / "sub" / "helpers.py").write_text("from ..a import x\n")
    (pkg / "typed.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n")
    (pkg / "c.py").write_text("from pkg import typed\n")
    graph = import_graph(pkg, "pkg")
    assert graph["pkg.b"] == {"pkg.sub.helpers"}
    assert graph["pkg.sub.helpers"] == {"pkg.a"}
    assert graph["pkg.typed"] == set()
    assert graph["pkg.c"] == {"pkg.typed"}
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.helpers", "pkg.a"]]
    (pkg / "sub" / "helpers.py").write_text("X = 1\n")
    assert find_cycles(import_graph(pkg, "pkg")) == []


def test_a_package_shadows_a_module_of_the_same_name(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "cli").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "cli.py").write_text("from pkg import core\n")
    (pkg / "cli" / "__init__.py").write_text("from pkg.cli import train\n")
    (pkg / "cli" / "train.py").write_text("")
    (pkg / "core.py").write_text("import pkg.cli\n")
    graph = import_graph(pkg, "pkg")
    assert graph["pkg.cli"] == {"pkg.cli.train"} and graph["pkg.core"] == {"pkg.cli"}
    assert find_cycles(graph) == []
