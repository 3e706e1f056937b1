"""Training logger: metrics.csv, TensorBoard events and a rich progress bar.

Keys live in four namespaces: ``rollout/`` (episode return and length), ``train/`` (losses and
diagnostics), ``eval/`` (evaluation returns) and ``time/`` (SPS, wall-clock). A key outside them is a
programming error and raises.

What a crash does to ``metrics.csv``: a new row is appended (one ``write`` of a whole line, not
fsynced: appending is cheap and keeps the file's inode); every rewrite (a new column widens the header,
a resume truncates to the checkpoint's step) goes through :func:`rlsuite.core.atomic.atomic_path`, so it
leaves the old file or the new one. A crash can therefore lose only the last rows and tear only the
last line. :func:`read_metrics` ignores a torn last line (one without its final newline) and
:class:`CSVWriter` removes it, atomically, when it opens an existing file.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from rlsuite.core.atomic import atomic_path

NAMESPACES = ("rollout/", "train/", "eval/", "time/")
log = logging.getLogger("rlsuite")


def _float(v: Any) -> float:
    if isinstance(v, torch.Tensor):
        return float(v.detach().float().mean().item())
    return float(v)


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]], bool]:
    """``(header, rows, torn)`` of a CSV file; a last line without its newline is dropped (``torn``)."""
    if not path.is_file():
        return [], [], False
    with open(path, newline="", encoding="utf-8") as f:
        text = f.read()
    torn = bool(text) and not text.endswith("\n")
    if torn:
        text = text[: text.rfind("\n") + 1]
    lines = list(csv.reader(io.StringIO(text, newline="")))
    if not lines:
        return [], [], torn
    header = lines[0]
    return header, [dict(zip(header, r, strict=False)) for r in lines[1:]], torn


def read_metrics(path: str | Path) -> list[dict[str, str]]:
    """Rows of a ``metrics.csv`` as dicts (column -> text; empty when a row lacks the metric).

    A torn last line (a crash during its append) is left out.
    """
    return _read_csv(Path(path))[1]


class CSVWriter:
    """Wide CSV (one column per key, ``step`` first); the header grows when a new key appears.

    See the module docstring for what a crash can do to the file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.keys: list[str] = []
        header, rows, torn = _read_csv(path)
        self.keys = [k for k in header if k != "step"]
        if torn:
            log.warning("%s: its last line was cut off by an interrupted write; dropping it.", path)
            self._rewrite(rows)

    def _rewrite(self, rows: list[dict[str, str]]) -> None:
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["step", *self.keys])
            for r in rows:
                w.writerow([r.get("step", "")] + [r.get(k, "") for k in self.keys])

    def write(self, step: int, row: dict[str, float]) -> None:
        values = {"step": str(step), **{k: _fmt(v) for k, v in row.items()}}
        new = [k for k in row if k not in self.keys]
        if new or not self.path.is_file():  # a new or wider header: write the whole file (atomically), this row last
            rows = self.read()
            self.keys += sorted(new)
            self._rewrite([*rows, values])
            return
        line = io.StringIO(newline="")
        csv.writer(line).writerow([values["step"]] + [values.get(k, "") for k in self.keys])
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            f.write(line.getvalue())  # one write of the whole line

    def read(self) -> list[dict[str, str]]:
        return _read_csv(self.path)[1]

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after ``step`` (used on resume, so the file matches the checkpoint)."""
        if not self.path.is_file():
            return
        rows = [r for r in self.read() if r.get("step") not in (None, "") and int(float(r["step"])) <= step]
        self._rewrite(rows)


def _fmt(v: float | None) -> str:
    if v is None:
        return ""
    return repr(v) if not math.isnan(v) else "nan"


class Logger:
    """Write metrics to CSV + TensorBoard and drive a progress bar.

    Args:
        run_dir: where ``metrics.csv`` and ``tb/`` go; ``None`` logs to nothing but the progress bar.
        total_steps: length of the progress bar (env steps).
        start_step: where the bar starts (a resumed run).
        resume: drop the rows and events logged after ``start_step`` even when it is 0 (a run resumed from its start).
        tensorboard: write TensorBoard event files.
        progress: show the rich progress bar (steps, SPS, recent return); without a terminal, log lines
            every few seconds instead.
        console: the rich console to draw on.
        headline: ``(metric, label)`` the bar shows the latest value of (episode return by default; a
            language-model run shows its reward).
        lines: without a progress bar, log a line every few seconds (off when the caller logs its own).
    """

    def __init__(
        self,
        run_dir: str | Path | None,
        total_steps: int,
        start_step: int = 0,
        tensorboard: bool = True,
        progress: bool = True,
        console: Console | None = None,
        headline: tuple[str, str] = ("rollout/ep_return", "return"),
        lines: bool = True,
        resume: bool = False,
    ) -> None:
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.csv: CSVWriter | None = None
        self.tb = None
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.csv = CSVWriter(self.run_dir / "metrics.csv")
            if start_step > 0 or resume:
                self.csv.truncate_after(start_step)
            if tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                # events after the checkpoint's step are dropped (those at it were logged before it was written)
                self.tb = SummaryWriter(log_dir=str(self.run_dir / "tb"), purge_step=start_step + 1 if start_step or resume else None)
        self.total_steps = total_steps
        self._t0 = time.perf_counter()
        self._step0 = start_step
        self.headline = headline
        self.recent_return = float("nan")
        self.lines = lines
        self.line_every = 5.0  # seconds between log lines when there is no progress bar
        self._last_line = -float("inf")
        self._progress: Progress | None = None
        console = console or Console(stderr=True)
        if progress and console.is_terminal:  # without a terminal, periodic log lines replace the bar
            self._progress = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[sps]:>7} SPS"),
                TextColumn(f"{headline[1]} {{task.fields[ret]}}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=False,
            )
            self._task = self._progress.add_task("train", total=total_steps, completed=start_step, sps="-", ret="-")
            self._progress.start()

    def sps(self, step: int) -> float:
        """Env steps per second since this logger started."""
        dt = time.perf_counter() - self._t0
        return (step - self._step0) / dt if dt > 0 else 0.0

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Record ``metrics`` (floats or tensors) at env step ``step``."""
        row: dict[str, float] = {}
        for k, v in metrics.items():
            if not k.startswith(NAMESPACES):
                raise ValueError(f"metric key {k!r} must start with one of {NAMESPACES}.")
            row[k] = _float(v)
        key = self.headline[0]
        if key in row and not math.isnan(row[key]):
            self.recent_return = row[key]
        if self.csv is not None:
            self.csv.write(step, row)
        if self.tb is not None:
            for k, v in row.items():
                self.tb.add_scalar(k, v, step)
        self.update(step)
        if self.lines and self._progress is None and time.perf_counter() - self._last_line >= self.line_every:
            self._last_line = time.perf_counter()
            shown = ("rollout/", "eval/", "time/sps", "train/loss", "train/reward", self.headline[0])
            parts = [f"step {step}/{self.total_steps}"] + [f"{k}={v:.4g}" for k, v in row.items() if k.startswith(shown)]
            log.info(" | ".join(parts))

    def update(self, step: int) -> None:
        """Advance the progress bar to ``step``."""
        if self._progress is not None:
            ret = "-" if math.isnan(self.recent_return) else f"{self.recent_return:.1f}"
            self._progress.update(self._task, completed=min(step, self.total_steps), sps=f"{self.sps(step):.0f}", ret=ret)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self.tb is not None:
            self.tb.flush()
            self.tb.close()
            self.tb = None
