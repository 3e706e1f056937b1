"""Provenance of the benchmark figures: docs/benchmarks.md names, above every table, where its rows came
from (generated from the CSVs by scripts/bench/provenance.py, or a "by hand" note), every CSV row has a
commit, and benchlib's writer records the installed package versions on new rows only."""

from __future__ import annotations

import csv
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts" / "bench"))
import benchlib  # noqa: E402
import provenance  # noqa: E402

CSVS = sorted((ROOT / "docs" / "benchmarks").glob("*.csv"))


def test_every_table_of_benchmarks_md_has_current_provenance() -> None:
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    assert provenance.check(text) == []
    # one generated block per CSV, and at least one hand-measured table is marked as such
    names = [name for name, _, _ in provenance.blocks(text)]
    assert sorted(n for n in names if n != provenance.BY_HAND) == [c.name for c in CSVS]
    assert provenance.BY_HAND in names


@pytest.mark.parametrize("csv_path", CSVS, ids=[c.name for c in CSVS])
def test_every_csv_row_has_a_commit_as_text(csv_path: Path) -> None:
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        assert "commit" in reader.fieldnames and "versions" in reader.fieldnames
        raw = list(reader)
    assert raw
    assert all((r["commit"] or "").strip() for r in raw)
    # read back by the scripts: a commit such as "2e58083" must stay text, not become the float 2e58083
    rows = benchlib.read_rows(csv_path)
    assert [r["commit"] for r in rows] == [r["commit"] for r in raw]
    assert all(isinstance(r["commit"], str) and isinstance(r["versions"], str) for r in rows)


def test_check_reports_a_table_without_provenance_and_a_stale_block(tmp_path: Path) -> None:
    csv_path = tmp_path / "demo.csv"
    csv_path.write_text("commit,machine,part,x,versions\nabc1234,box,a,1,python=3.12.0;torch=2.13.0\n")
    good = (f"# B\n\n## Demo\n\n<!-- provenance:demo.csv -->\n{provenance.render(csv_path)}\n<!-- /provenance -->\n\n"
            "<!-- BEGIN demo -->\n| x |\n|---|\n| 1 |\n<!-- END demo -->\n")
    assert provenance.check(good, tmp_path) == []
    assert "commit `abc1234`" in good and "torch 2.13.0" in good
    hand_table = "\nTyped here:\n\n| y |\n|---|\n| 2 |\n"
    problems = provenance.check(good + hand_table, tmp_path)
    assert len(problems) == 1 and "not written by a script" in problems[0]
    marked = good + "\n<!-- provenance:by-hand -->\nMeasured by hand with a stopwatch.\n<!-- /provenance -->\n" + hand_table
    assert provenance.check(marked, tmp_path) == []
    csv_path.write_text("commit,machine,part,x,versions\n,box,a,1,\n")  # the CSV changed: block stale, commit empty
    problems = provenance.check(good, tmp_path)
    assert any("differs from the CSV" in p for p in problems) and any("empty commit" in p for p in problems)


def test_write_results_records_versions_on_new_rows_only(tmp_path: Path) -> None:
    csv_path = tmp_path / "stl.csv"  # a known benchmark name: its anchor is rtamt
    md_path = tmp_path / "benchmarks.md"
    md_path.write_text("# Benchmarks\n")
    # a row of an older run, written before the versions column existed
    csv_path.write_text("commit,machine,part,x\n2e58083,old box,a,1\n")
    old = benchlib.read_rows(csv_path)
    assert old == [{"commit": "2e58083", "machine": "old box", "part": "a", "x": 1, "versions": ""}]
    meta = {"commit": "abc1234", "machine": "new box"}
    benchlib.write_results(csv_path, old + [{"part": "a", "x": 2}], meta, "demo", "| x |\n|---|\n| 1 |", "Demo", md_path=md_path)

    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["commit"], r["machine"], r["part"]) for r in rows] == [("2e58083", "old box", "a"), ("abc1234", "new box", "a")]
    assert rows[0]["versions"] == ""  # not stamped with today's versions
    versions = benchlib.parse_versions(rows[1]["versions"])
    assert versions["torch"] == metadata.version("torch")
    assert versions["gymnasium"] == metadata.version("gymnasium")
    assert versions["rlsuite"] == metadata.version("rlsuite")
    assert "rtamt" in versions and "python" in versions

    text = md_path.read_text()
    assert text.index("<!-- provenance:stl.csv -->") < text.index("<!-- BEGIN demo -->")
    assert f"torch {metadata.version('torch')}" in text and "commit `2e58083` (1), `abc1234` (1)" in text
    assert "versions: not recorded (1), python" in text
    assert provenance.check(text, tmp_path) == []
    # a second run keeps both rows' versions as they were
    benchlib.write_results(csv_path, benchlib.read_rows(csv_path), meta, "demo", "| x |\n|---|\n| 1 |", "Demo", md_path=md_path)
    with open(csv_path, newline="") as f:
        assert [r["versions"] for r in csv.DictReader(f)] == [r["versions"] for r in rows]


def test_package_versions_names_a_missing_package_and_parses_back() -> None:
    text = benchlib.package_versions(("torch", "no-such-package-for-rlsuite"))
    parsed = benchlib.parse_versions(text)
    assert parsed["torch"] == metadata.version("torch")
    assert parsed["no-such-package-for-rlsuite"] == "absent"
    assert benchlib.parse_versions("") == {}
    with pytest.raises(ValueError, match="name=version"):
        benchlib.parse_versions("torch")
