"""Every kind of run through `rlsuite train`, at tiny budgets: the same run directory (config.json,
metrics.csv with train/ and eval/ columns, TensorBoard events, curve.png, checkpoints/latest.json), and
the same answers when a finished run is met again: `--resume` of it exits 0 and changes no byte, a
resume below the run's budget exits 2, a new run into it without --overwrite exits 2 and changes no byte.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest

from tests.cli.helpers import run_cli
from tests.offline.helpers import write_mixed_dataset

DS = "rlsuite/invertedpendulum/medium-v0"
TINY_OFFLINE = ["--dataset", DS, "--eval-every", "20", "--eval-episodes", "1", "--hidden-sizes", "16", "16", "--device", "cpu"]

# algo -> (flags of a run of a few seconds, flags of a resume below what it has done)
CASES: dict[str, tuple[list[str], list[str]]] = {
    "ppo": (["--env", "CartPole-v1", "--total-steps", "300", "--num-envs", "2", "--num-steps", "64", "--eval-episodes", "1",
             "--device", "cpu", "--no-progress"], ["--total-steps", "200"]),
    "tgpo": (["--env", "rlsuite/STL-Linear-v0", "--total-steps", "300", "--num-envs", "8", "--num-steps", "31", "--horizon", "32",
              "--num-allocations", "4", "--eval-episodes", "1", "--device", "cpu", "--no-progress"], ["--total-steps", "200"]),
    "bc": ([*TINY_OFFLINE, "--offline-steps", "40"], ["--offline-steps", "20"]),
    "iql": ([*TINY_OFFLINE, "--offline-steps", "40", "--online-steps", "40", "--batch-size", "32"], ["--online-steps", "20"]),
    "bq-nco": (["--problem", "tsp", "--size", "8", "--instances", "16", "--solver", "nn", "--total-steps", "20", "--checkpoint-every",
                "10", "--batch-size", "4", "--dim", "16", "--layers", "1", "--heads", "2", "--ff", "32", "--eval-instances", "4",
                "--device", "cpu"], ["--total-steps", "10"]),
}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("run-outputs-data")
    write_mixed_dataset(root, steps=1500)
    return root


def _run(capsys, *argv):
    code, out, err = run_cli(capsys, *argv)
    return code, out, " ".join(err.split())  # log lines may be wrapped on stderr


def _tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` with the hash of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("algo", sorted(CASES))
def test_every_run_has_the_same_files_and_a_finished_run_is_left_alone(algo, tmp_path, capsys, data_root):
    flags, below = CASES[algo]
    if "--dataset" in flags:
        flags = [*flags, "--data-dir", data_root]
    run = tmp_path / "run"
    code, out, err = _run(capsys, "train", algo, *flags, "--run-dir", run)
    assert code == 0, out + err

    assert (run / "config.json").is_file() and (run / "curve.png").stat().st_size > 0
    assert (run / "checkpoints" / "latest.json").is_file()
    assert list((run / "tb").glob("events.out.tfevents.*")), "no TensorBoard events"
    with open(run / "metrics.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header[0] == "step"
    assert any(k.startswith("train/") for k in header) and any(k.startswith("eval/") for k in header), header
    assert all(k.startswith(("rollout/", "train/", "eval/", "time/")) for k in header[1:]), header
    if algo in ("ppo", "tgpo"):  # whole rollouts of num_envs * num_steps: the rounding is said at the start
        batch = 128 if algo == "ppo" else 248
        reached = -(-300 // batch) * batch
        assert f"--total-steps 300 is not a multiple of the rollout (num_envs*num_steps = {batch}): training {reached} steps" in err
        assert f"steps={reached}" in out

    before = _tree(run)
    code, out, err = _run(capsys, "train", algo, "--resume", run)
    assert code == 0, out + err
    assert "already finished" in out and "nothing to do" in out
    assert _tree(run) == before  # not re-evaluated, nothing appended

    code, out, err = _run(capsys, "train", algo, "--resume", run, *below)
    assert code == 2 and err.startswith("error: "), out + err
    assert _tree(run) == before

    code, out, err = _run(capsys, "train", algo, *flags, "--run-dir", run)
    assert code == 2 and "--overwrite" in err and "--resume" in err, out + err
    assert _tree(run) == before


def test_long_phases_report_progress_with_their_losses(tmp_path, capsys, data_root, monkeypatch):
    """Every loss row of the offline phase may become a progress line; at most PROGRESS_SECONDS pass between two
    (0 here: every one is shown)."""
    import rlsuite.offline.train as offline_train

    monkeypatch.setattr(offline_train, "PROGRESS_SECONDS", 0.0)
    code, out, err = _run(capsys, "train", "iql", *CASES["iql"][0], "--data-dir", data_root, "--run-dir", tmp_path / "run")
    assert code == 0, out + err
    for step in (20, 40):
        assert f"offline update {step}/40: value_loss " in out
    assert "online env step 20/40" in out
    rows = [r for r in csv.DictReader(open(tmp_path / "run" / "metrics.csv")) if r["train/q_loss"]]
    assert [(r["step"], r["train/phase"]) for r in rows] == [("20", "0.0"), ("40", "0.0"), ("60", "1.0"), ("80", "1.0")]
