"""``rlsuite sweep SPEC.yaml``: the trials of a spec (settings x seeds) as Ray tasks, locally or on a cluster,
then a results table and the aggregate report. The work lives in :mod:`rlsuite.sweep`."""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
from pathlib import Path
from typing import Any

from rlsuite.cli.args import at_least, parse

log = logging.getLogger("rlsuite")


@dataclasses.dataclass(frozen=True)
class SweepArgs:
    """Run a sweep: every trial of SPEC (envs or datasets x grid and random settings x seeds) is an ordinary run
    directory under --out, trained as a Ray task; a trial whose worker dies is resumed from its last checkpoint, and the
    same command run again skips finished trials and resumes the others. Ends with a results table and the aggregate
    report."""

    spec: str
    """YAML spec: algo, env and total_steps (an agent that learns from a dataset: dataset, offline_steps, online_steps), seeds, grid, random, args (docs/scale.md, "Sweeps")"""
    address: str | None = None
    """Ray cluster to run on: auto (the cluster this machine belongs to, e.g. after ray start --head) or ray://HOST:PORT (None: Ray started in this process)"""
    max_concurrent: int | None = None
    """at most this many trials at once (None: as many as Ray's CPUs allow; locally Ray gets max_concurrent * cpus_per_trial CPUs, or all of this machine's)"""
    out: str | None = None
    """sweep directory (None: runs/<spec file name without .yaml>); with a cluster, a path every node sees"""
    overwrite: bool = False
    """empty --out first and start the sweep afresh (otherwise a sweep already there is continued)"""
    report: bool = True
    """write the aggregate report (rlsuite report) into OUT/report at the end and print its table"""
    dry_run: bool = False
    """list the trials and what each would do (new, resume, finished), then stop: nothing is written or started"""

    def __post_init__(self) -> None:
        at_least(self, 1, "max_concurrent")


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, list | tuple):
        return " ".join(_value(x) for x in v)
    return str(v)


def _score(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4g}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows])


def _settings_columns(trials: list[dict[str, Any]]) -> list[str]:
    keys: list[str] = []
    for t in trials:
        keys += [k for k in t["settings"] if k not in keys]
    return keys


def results_table(doc: dict[str, Any]) -> str:
    """The Markdown table of a sweep's trials: (env or dataset, when there are several,) settings, seed, status,
    steps, score, seconds."""
    trials = doc["trials"]
    keys = _settings_columns(trials)
    task = "dataset" if any("dataset" in t for t in trials) else "env"
    tasks = len({t[task] for t in trials}) > 1
    header = ["trial", *([task] if tasks else []), *keys, "seed", "status", "step", doc["metric"], "seconds"]
    rows = []
    for i, t in enumerate(trials):
        attempts = f" ({t['attempts']} attempts)" if t.get("attempts", 0) > 1 else ""
        rows.append([str(i), *([t[task]] if tasks else []), *(_value(t["settings"].get(k, "")) for k in keys), str(t["seed"]),
                     t["status"] + attempts, str(t.get("step", "")), _score(t.get("score")),
                     "-" if t.get("seconds") is None else f"{t['seconds']:.1f}"])
    return _table(header, rows)


def _plan_table(plan: list[Any]) -> str:
    rows = [[str(i), p.trial.name, {"new": "new", "resume": f"resume from step {p.step}", "finished": f"finished (step {p.step})"}[p.state]]
            for i, p in enumerate(plan)]
    return _table(["trial", "run directory", "state"], rows)


class _Display:
    """A rich progress bar over the trials on a terminal (log lines carry the events either way)."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.progress: Any = None
        self.task: Any = None
        self.running = 0

    def __call__(self, kind: str, p: Any, info: dict[str, Any]) -> None:
        name = p.trial.name if p is not None else ""
        if kind == "plan":
            plan = info["plan"]
            done = sum(x.state == "finished" for x in plan)
            if self.console.is_terminal:
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    TextColumn,
                    TimeElapsedColumn,
                )

                self.progress = Progress(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(),
                                         TextColumn("{task.fields[running]} running"), TimeElapsedColumn(), console=self.console)
                self.task = self.progress.add_task("sweep", total=len(plan), completed=done, running=0)
                self.progress.start()
            return
        if kind == "start":
            self.running += 1
            what = f" (attempt {info['attempt']})" if info["attempt"] > 1 else ""
            log.info("started %s%s", name, what)
        elif kind == "done":
            self.running -= 1
            r = info["result"]
            resumed = f", resumed from step {r['start_step']}" if r["start_step"] else ""
            log.info("finished %s: step %d, score %s (%.1f s%s)", name, r["steps"], _score(info["score"]), r["seconds"], resumed)
        elif kind in ("retry", "failed"):
            self.running -= 1
        if self.progress is not None:
            self.progress.update(self.task, advance=1 if kind in ("done", "failed") else 0, running=self.running)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def cmd_sweep(argv: list[str]) -> int:
    """``rlsuite sweep SPEC.yaml [--address auto|ray://HOST:PORT] [--max-concurrent N] [--out DIR] [--overwrite]
    [--no-report] [--dry-run]``."""
    a = parse(SweepArgs, argv, "rlsuite sweep", positional=("spec",))
    from rlsuite import sweep as sw

    try:
        sw.require_ray()
    except ImportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    spec = sw.load_spec(a.spec)
    out = Path(a.out) if a.out else Path("runs") / Path(a.spec).stem
    if a.dry_run:
        sw.check_out_dir(out, a.overwrite)
        trials = sw.expand_trials(spec, out)
        plan = [sw.TrialState(t, "new", 0) for t in trials] if a.overwrite else sw.plan_trials(trials, spec.algo)
        print(_plan_table(plan))
        print(f"\n{len(plan)} trials of {spec.algo} into {out}; nothing was started (--dry-run)")
        return 0
    display = _Display()
    try:
        doc = sw.run_sweep(spec, out, address=a.address, max_concurrent=a.max_concurrent, overwrite=a.overwrite,
                           spec_file=a.spec, on_event=display)
    finally:
        display.close()
    print(results_table(doc))
    scored = [t for t in doc["trials"] if t.get("score") is not None and not math.isnan(t["score"])]
    if scored:
        best = max(scored, key=lambda t: t["score"])
        print(f"\nbest: {best['name']} {doc['metric']}={best['score']:.6g}")
    failed = [t for t in doc["trials"] if t["status"] == "failed"]
    if a.report and scored:
        from rlsuite.report import make_report

        try:
            s = make_report([out], metric=spec.metric, out=out / "report", overwrite=True)
        except (ValueError, FileNotFoundError) as e:
            log.warning("no aggregate report: %s", e)
        else:
            print()
            print(s["tables"]["aggregates"])
            print(f"\nreport={s['files']['report']}")
    print(f"sweep={out / sw.SWEEP_FILE}")
    if failed:
        print(f"error: {len(failed)} of {len(doc['trials'])} trials failed: "
              + ", ".join(f"{t['name']} ({t['error']})" for t in failed) + f"; their logs are in {out / sw.LOG_DIR}",
              file=sys.stderr)
        return 1
    return 0
