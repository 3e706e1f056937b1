"""What the benchmark scripts share: machine and commit identification, and writing results (a CSV
and a block between markers in docs/benchmarks.md, both atomically). Not part of the package."""

from __future__ import annotations

import csv
import os
import platform
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MD_PATH = ROOT / "docs" / "benchmarks.md"
# columns that stay text even when they look like numbers (a commit such as "1e50c3a" reads as a float)
TEXT_KEYS = frozenset({"commit", "machine", "run_dir"})


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
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()


def read_rows(csv_path: Path, keep_parts: set[str] | None = None) -> list[dict]:
    """Rows of a previous run whose ``part`` is in ``keep_parts`` (all when None), numbers parsed."""
    if not csv_path.exists():
        return []
    with open(csv_path, newline="") as f:
        return [{k: v if k in TEXT_KEYS else _num(v) for k, v in r.items() if v != ""} for r in csv.DictReader(f)
                if keep_parts is None or r.get("part") in keep_parts]


def write_results(csv_path: Path, rows: list[dict], meta: dict, block: str, rendered: str, title: str) -> None:
    """``rows`` (each with ``meta``) to ``csv_path`` and ``rendered`` between the ``block`` markers of
    docs/benchmarks.md (a new section called ``title`` when the markers are not there yet)."""
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    keys = sorted({k for r in rows for k in r} | set(meta))
    tmp = csv_path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({**meta, **r})
    os.replace(tmp, csv_path)
    begin, end = f"<!-- BEGIN {block} -->", f"<!-- END {block} -->"
    text = MD_PATH.read_text()
    section = f"{begin}\n{rendered}\n{end}"
    if begin in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + f"\n\n## {title}\n\n" + section + "\n"
    tmp_md = MD_PATH.with_suffix(".tmp")
    tmp_md.write_text(text)
    os.replace(tmp_md, MD_PATH)


def _num(v: str):
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v
