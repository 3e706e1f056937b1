"""Provenance of the benchmark figures: for each CSV under docs/benchmarks/, the commits, machines,
devices, dates and package versions of the rows behind its tables, and the block of docs/benchmarks.md
that says so.

Usage:
    python scripts/bench/provenance.py              # print each CSV's provenance
    python scripts/bench/provenance.py --write      # rewrite the provenance blocks of docs/benchmarks.md
    python scripts/bench/provenance.py --check      # exit 1 when a block is missing, stale, or a table has none

A generated block sits between ``<!-- provenance:NAME.csv -->`` and ``<!-- /provenance -->``, just above
the ``<!-- BEGIN ... -->`` marker of the tables it describes; its text comes from the CSV (``--write``,
and ``benchlib.write_results`` after every run), never from typing. A table that no script writes has a
``<!-- provenance:by-hand -->`` block above it instead, saying how it was measured ("by hand").

Versions: rows written since the ``versions`` column exists carry the installed versions of the packages
that matter (``importlib.metadata``, see benchlib.py). Older rows have only what their script recorded in
its own columns (``torch``, ``transformers``, ``trl``, ``ort`` for onnxruntime); the block says which.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import MD_PATH, ROOT, parse_versions  # noqa: E402

CSV_DIR = ROOT / "docs" / "benchmarks"
# the markers of the generated tables of each CSV (the block name passed to benchlib.write_results)
BLOCKS = {"ppo_sac_vs_sb3.csv": "ppo_sac_vs_sb3", "offline_to_online.csv": "offline-to-online"}
# CSVs that keep every run (appended); their tables show, per part, the newest run's rows only
HISTORY_CSVS = frozenset({"ppo_sac_vs_sb3.csv"})
# older rows: version columns written by the scripts themselves (column -> package). stl.py's ``rtamt``
# column is left out: it holds a fallback typed into the script ("0.4"; rtamt has no __version__)
LEGACY_VERSION_COLUMNS = {"torch": "torch", "transformers": "transformers", "trl": "trl", "ort": "onnxruntime"}
# columns shown beside the commit, when a CSV has them
CONTEXT_COLUMNS = ("machine", "device", "torch_threads", "date")
# columns whose values name a group of rows that has no ``part`` (cop.csv's first run)
LABEL_COLUMNS = {"cop.csv": ("size",)}
BY_HAND = "by-hand"
END = "<!-- /provenance -->"
_OPEN = re.compile(r"<!-- provenance:(\S+) -->")


def block_name(csv_name: str) -> str:
    return BLOCKS.get(csv_name, csv_name.removesuffix(".csv"))


def load(csv_path: Path) -> list[dict[str, str]]:
    """The CSV's rows as text; a missing cell (a short row) reads as ""."""
    with open(csv_path, newline="") as f:
        return [{k: v or "" for k, v in r.items() if k is not None} for r in csv.DictReader(f)]


def shown_rows(csv_name: str, rows: list[dict[str, str]]) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(rows behind the tables, rows kept in the CSV but not shown). For an append-only CSV a part shows
    the rows of the last commit that measured it (what ppo_sac_vs_sb3.py's ``previous_rows`` renders)."""
    if csv_name not in HISTORY_CSVS:
        return rows, []
    last = {r.get("part", ""): r["commit"] for r in rows}
    shown = [r for r in rows if r["commit"] == last[r.get("part", "")]]
    return shown, [r for r in rows if r["commit"] != last[r.get("part", "")]]


def _counted(values: list[str], quote: bool = False) -> str:
    c = Counter(values)
    fmt = (lambda v: f"`{v}`") if quote else (lambda v: v)
    if len(c) == 1:
        return fmt(next(iter(c)))
    return ", ".join(f"{fmt(v)} ({n})" for v, n in sorted(c.items()))


def versions_text(row: dict[str, str]) -> str:
    """``python 3.12.3, torch 2.13.0+cpu, ...`` from the ``versions`` column, or what an older row recorded."""
    if row.get("versions"):
        return ", ".join(f"{k} {v}" for k, v in parse_versions(row["versions"]).items())
    legacy = [f"{pkg} {row[col]}" for col, pkg in LEGACY_VERSION_COLUMNS.items() if row.get(col)]
    if legacy:
        return ", ".join(legacy) + " (only these recorded)"
    return "not recorded"


def _context(rows: list[dict[str, str]]) -> str:
    parts = [f"commit {_counted([r['commit'] for r in rows], quote=True)}"]
    for col in CONTEXT_COLUMNS:
        vals = [r.get(col, "") for r in rows]
        if any(vals):
            name = col.replace("_", " ")
            parts.append(f"{name} {_counted([v or 'not recorded' for v in vals])}")
    parts.append(f"versions: {_counted([versions_text(r) for r in rows])}")
    return "; ".join(parts)


def _label(csv_name: str, part: str, rows: list[dict[str, str]]) -> str:
    if part:
        return part
    for col in LABEL_COLUMNS.get(csv_name, ()):
        vals = sorted({r.get(col, "") for r in rows if r.get(col)}, key=lambda v: (len(v), v))
        if vals:
            return f"{col} {', '.join(vals)}"
    return "rows without a part"


def render(csv_path: Path) -> str:
    """The text of the provenance block of ``csv_path`` (without its markers)."""
    csv_path = Path(csv_path)
    name = csv_path.name
    rows = load(csv_path)
    shown, hidden = shown_rows(name, rows)
    groups: dict[str, list[dict[str, str]]] = {}
    for r in shown:
        groups.setdefault(r.get("part", ""), []).append(r)
    # parts with the same provenance share a line
    lines: dict[str, list[tuple[str, int]]] = {}
    for part, rs in groups.items():
        lines.setdefault(_context(rs), []).append((_label(name, part, rs), len(rs)))
    rel = csv_path.relative_to(ROOT) if csv_path.is_relative_to(ROOT) else csv_path
    out = [f"Provenance of these tables ({len(shown)} rows of `{rel}`; "
           f"generated from the CSV by `python scripts/bench/provenance.py --write`):"]
    for context, labels in lines.items():
        who = ", ".join(label for label, _ in labels)
        n = sum(k for _, k in labels)
        out.append(f"- {who} ({n} rows): {context}.")
    if hidden:
        out.append(f"- earlier runs kept in the CSV, not shown ({len(hidden)} rows): "
                   f"commit {_counted([r['commit'] for r in hidden], quote=True)}.")
    return "\n".join(out)


def blocks(text: str) -> list[tuple[str, int, int]]:
    """(name, start, end) of every provenance block in ``text``; ``end`` is just past its closing marker."""
    out = []
    for m in _OPEN.finditer(text):
        end = text.find(END, m.end())
        if end < 0:
            raise ValueError(f"the provenance block {m.group(0)} has no closing {END}; add one after its text")
        out.append((m.group(1), m.start(), end + len(END)))
    return out


def update_block(text: str, csv_path: Path, block: str | None = None) -> str:
    """``text`` (docs/benchmarks.md) with the provenance block of ``csv_path`` regenerated; a missing
    block is inserted just above ``<!-- BEGIN {block} -->`` (``block`` defaults to the CSV's block name)."""
    name = Path(csv_path).name
    new = f"<!-- provenance:{name} -->\n{render(Path(csv_path))}\n{END}"
    for bname, start, end in blocks(text):
        if bname == name:
            return text[:start] + new + text[end:]
    begin = f"<!-- BEGIN {block or block_name(name)} -->"
    if begin not in text:
        raise ValueError(f"no provenance block for {name} and no {begin!r} to put one above; "
                         f"known blocks: {[b for b, _, _ in blocks(text)]}")
    i = text.index(begin)
    return text[:i] + new + "\n\n" + text[i:]


def tables(text: str) -> list[int]:
    """Offsets of the first line of every Markdown table (a ``|`` line followed by a ``|---`` line)."""
    out, offset, prev = [], 0, None
    for line in text.splitlines(keepends=True):
        if prev is not None and prev[1].startswith("|") and re.fullmatch(r"\|[-:| ]+\|\s*", line):
            out.append(prev[0])
        prev = (offset, line)
        offset += len(line)
    return out


def check(text: str, csv_dir: Path = CSV_DIR) -> list[str]:
    """What is wrong with the provenance of ``text`` (docs/benchmarks.md): every table needs a block above
    it in its section, every CSV a block equal to what its rows say, a hand block the words "by hand",
    and every row a commit."""
    problems = []
    found = blocks(text)
    for csv_path in sorted(Path(csv_dir).glob("*.csv")):
        for i, r in enumerate(load(csv_path), start=2):
            if not r.get("commit", "").strip():
                problems.append(f"{csv_path.name} line {i}: empty commit")
        mine = [(s, e) for b, s, e in found if b == csv_path.name]
        if not mine:
            problems.append(f"{csv_path.name}: no <!-- provenance:{csv_path.name} --> block; "
                            "run python scripts/bench/provenance.py --write")
        elif text[mine[0][0]:mine[0][1]] != f"<!-- provenance:{csv_path.name} -->\n{render(csv_path)}\n{END}":
            problems.append(f"{csv_path.name}: its provenance block differs from the CSV; "
                            "run python scripts/bench/provenance.py --write")
    for bname, s, e in found:
        if bname == BY_HAND:
            if "by hand" not in text[s:e]:
                problems.append(f"a {BY_HAND} block at offset {s} does not say 'by hand' and how it was measured")
        elif not (Path(csv_dir) / bname).exists():
            problems.append(f"provenance block names {bname}, which is not under {csv_dir}")
    generated = [(m.group(1), m.start(), text.find(f"<!-- END {m.group(1)} -->", m.end()))
                 for m in re.finditer(r"<!-- BEGIN (\S+) -->", text)]
    headings = [m.start() for m in re.finditer(r"^## ", text, flags=re.M)]
    for t in tables(text):
        where = f"table at line {text.count(chr(10), 0, t) + 1} ({text[t:text.index(chr(10), t)][:50]}...)"
        section = max([h for h in headings if h < t], default=0)
        inside = [(g, s) for g, s, e in generated if s < t < e]
        if inside:  # written by a script: the nearest block above its BEGIN marker, in its section, names its CSV
            near = [b for b, s, _ in found if section <= s < inside[0][1]]
            if not near or near[-1] == BY_HAND:
                problems.append(f"{where} is generated between the {inside[0][0]} markers, but no provenance block "
                                "of its CSV is above them; run python scripts/bench/provenance.py --write")
            continue
        # typed into the page: the nearest block above it, in its section and after any generated tables, says how
        ends = [e for _, _, e in generated if section <= e < t]
        near = [b for b, s, _ in found if max([section, *ends]) <= s < t]
        if not near or near[-1] != BY_HAND:
            problems.append(f"{where} is not written by a script: put a <!-- provenance:{BY_HAND} --> block above it "
                            "saying how it was measured, or move it into a script")
    return problems


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--write", action="store_true", help="rewrite the provenance blocks of docs/benchmarks.md")
    g.add_argument("--check", action="store_true", help="exit 1 when docs/benchmarks.md's provenance is missing or stale")
    a = p.parse_args()
    csvs = sorted(CSV_DIR.glob("*.csv"))
    if a.write:
        text = MD_PATH.read_text()
        for c in csvs:
            text = update_block(text, c)
        tmp = MD_PATH.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(MD_PATH)
        print(f"wrote the provenance of {len(csvs)} CSVs into {MD_PATH.relative_to(ROOT)}")
    elif a.check:
        problems = check(MD_PATH.read_text())
        print("\n".join(problems) or "provenance of docs/benchmarks.md: complete and current")
        sys.exit(1 if problems else 0)
    else:
        for c in csvs:
            print(f"== {c.relative_to(ROOT)}\n{render(c)}\n")


if __name__ == "__main__":
    main()
