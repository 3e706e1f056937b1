"""What the benchmark scripts share: machine, commit and package-version identification, and writing
results (a CSV and a block between markers in docs/benchmarks.md, both atomically). Not part of the package.

Every row that ``write_results`` writes carries ``commit``, ``machine`` (from the script's meta) and
``versions``: the installed versions of the packages that matter for that benchmark, read with
``importlib.metadata`` when the row is written (``"python=3.12.3;rlsuite=0.1.0;torch=2.13.0;..."``).
Rows read back from an earlier run keep the versions they had (empty for rows written before the column
existed), so that rewriting a CSV never stamps today's versions on yesterday's figures.
``scripts/bench/provenance.py`` turns these columns into the provenance lines of docs/benchmarks.md.
"""

from __future__ import annotations

import csv
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from rlsuite.core.atomic import atomic_path, atomic_write_text

ROOT = Path(__file__).resolve().parents[2]
MD_PATH = ROOT / "docs" / "benchmarks.md"
# columns that stay text even when they look like numbers (a commit such as "1e50c3a" reads as a float)
TEXT_KEYS = frozenset({"commit", "machine", "run_dir", "versions"})
# packages recorded in the ``versions`` column of every row, then those of each benchmark's anchor
# (keyed by the CSV's file name without ``.csv``); distribution names as pip knows them
BASE_PACKAGES = ("rlsuite", "torch", "numpy", "gymnasium", "mujoco")
ANCHOR_PACKAGES: dict[str, tuple[str, ...]] = {
    "ppo_sac_vs_sb3": ("stable-baselines3",),
    "llm": ("transformers", "trl"),
    "stl": ("rtamt",),
    "deploy": ("onnx", "onnxruntime", "pyzmq", "msgpack"),
    "cop": ("elkai", "pyvrp", "ortools"),
    "offline_to_online": ("minari", "h5py"),
    "expo": ("minari", "h5py", "gymnasium-robotics"),
    "scale": ("ray",),
    "time_to_solve": ("stable-baselines3",),
    "dispatch": ("scipy", "networkx", "pettingzoo"),
}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def machine(device: str = "cpu") -> str:
    """The CPU, or the GPU's name for ``device="cuda"``."""
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name(0)
    return cpu_name()


def git_commit() -> str:
    """The short commit id of HEAD, with ``-dirty`` when tracked files under rlsuite/, scripts/ or
    pyproject.toml differ from it (the figures then come from code no commit holds); ``"unknown"``
    outside a git checkout (the ``versions`` column still names rlsuite's version)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
        if head.returncode != 0 or not head.stdout.strip():
            return "unknown"
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "rlsuite", "scripts", "pyproject.toml"],
                                 capture_output=True, text=True, cwd=ROOT).stdout.strip()
    except OSError:  # no git executable
        return "unknown"
    return head.stdout.strip() + ("-dirty" if changed else "")


def package_versions(packages: tuple[str, ...] | list[str] = BASE_PACKAGES) -> str:
    """``"python=3.12.3;rlsuite=0.1.0;torch=2.13.0+cpu;..."``: Python's version, then each of
    ``packages`` as installed (``importlib.metadata``); one that is not installed reads ``name=absent``."""
    out = [f"python={platform.python_version()}"]
    for name in dict.fromkeys(packages):
        try:
            out.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(f"{name}=absent")
    return ";".join(out)


def parse_versions(text: str) -> dict[str, str]:
    """The inverse of ``package_versions``: ``{"python": "3.12.3", "torch": "2.13.0+cpu", ...}`` (``{}`` for "")."""
    out = {}
    for item in (text or "").split(";"):
        if item.strip():
            name, sep, version = item.partition("=")
            if not sep:
                raise ValueError(f"versions entry {item!r} in {text!r} is not name=version; the column is written by "
                                 "benchlib.package_versions as 'name=version;name=version'")
            out[name.strip()] = version.strip()
    return out


def versions_for(csv_path: Path) -> str:
    """The ``versions`` text for a new row of ``csv_path``: the base packages and that benchmark's anchors."""
    return package_versions(BASE_PACKAGES + ANCHOR_PACKAGES.get(Path(csv_path).stem, ()))


def read_rows(csv_path: Path, keep_parts: set[str] | None = None) -> list[dict]:
    """Rows of a previous run whose ``part`` is in ``keep_parts`` (all when None), numbers parsed, empty
    cells left out, except ``versions``, which is always there ("" for rows written before it was
    recorded) so that ``write_results`` does not give an old row the versions installed now."""
    if not csv_path.exists():
        return []
    with open(csv_path, newline="") as f:
        rows = [{k: v if k in TEXT_KEYS else _num(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)
                if keep_parts is None or r.get("part") in keep_parts]
    for r in rows:
        r.setdefault("versions", "")
    return rows


def write_results(csv_path: Path, rows: list[dict], meta: dict, block: str, rendered: str, title: str,
                  md_path: Path | None = None) -> None:
    """``rows`` (each with ``meta``) to ``csv_path`` and ``rendered`` between the ``block`` markers of
    ``md_path`` (docs/benchmarks.md by default; a new section called ``title`` when the markers are not
    there yet), then the provenance block of ``csv_path`` in that file (see provenance.py).

    A row without a ``versions`` key (one made by this run) gets the versions installed now; a row read
    back with ``read_rows`` keeps its own."""
    md_path = MD_PATH if md_path is None else md_path
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    versions = versions_for(csv_path)
    full = [{"versions": versions, **meta, **r} for r in rows]
    keys = sorted({k for r in full for k in r})
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in full:
            w.writerow(r)
    begin, end = f"<!-- BEGIN {block} -->", f"<!-- END {block} -->"
    text = md_path.read_text()
    section = f"{begin}\n{rendered}\n{end}"
    if begin in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + f"\n\n## {title}\n\n" + section + "\n"
    if str(Path(__file__).parent) not in sys.path:  # provenance.py sits beside this file
        sys.path.insert(0, str(Path(__file__).parent))
    from provenance import update_block

    text = update_block(text, csv_path, block)
    atomic_write_text(md_path, text)


def _num(v: str):
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def report_tables(rows: list[dict], method: str, task: str, score: str, normalize: tuple[float, float] | None = None,
                  reps: int = 2000, seed: int = 0, baseline: str | None = None) -> dict[str, str]:
    """``rlsuite report``'s Markdown tables (``aggregates``, ``per_task``, ``improvement``) for a benchmark's
    per-seed rows: one run per row, grouped by the values of ``method`` and ``task``, scored by ``score``
    (``normalize=(min, max)`` maps min to 0 and max to 1 for every task). The same statistics as the report of run
    directories (:func:`rlsuite.report.aggregate_tables`): IQM, median and mean with stratified bootstrap intervals,
    probability of improvement (over ``baseline`` only, when given)."""
    from rlsuite.report import RunScore, aggregate_tables, build_methods

    lo, hi = normalize if normalize is not None else (0.0, 1.0)
    scores = [RunScore(Path(str(r.get("run_dir", ""))), str(r[method]), str(r[task]), float(r.get("step", 0) or 0),
                       float(r[score]), (float(r[score]) - lo) / (hi - lo)) for r in rows]
    return aggregate_tables(build_methods(scores), normalize is not None, reps, seed, baseline)[1]
