"""The subpackages import only along allowed edges (checked on the source with ast)."""

import ast
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
