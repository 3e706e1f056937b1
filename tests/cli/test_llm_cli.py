"""``rlsuite llm sft | train | eval`` through the CLI at tiny budgets: the run layout, refusing to overwrite,
--overwrite, --resume (a finished run, a larger budget, other settings) and the usage text."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from rlsuite.cli import main  # noqa: E402
from rlsuite.core.logger import read_metrics  # noqa: E402
from tests.cli.helpers import run_cli  # noqa: E402

# 4 steps of 8 examples, evaluated on 8 held-out examples every 2 steps, a checkpoint every 2 steps
SFT = ["llm", "sft", "--total-steps", "4", "--batch-size", "8", "--eval-examples", "8", "--eval-every", "2",
       "--checkpoint-every", "2", "--no-progress"]
TRAIN = ["llm", "train", "--total-steps", "2", "--prompts-per-step", "2", "--group-size", "2", "--eval-examples", "8",
         "--no-progress"]


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()  # drop what a fixture printed before
    return run_cli(capsys, *argv)


def _snapshot(d: Path) -> dict[str, tuple[int, bytes] | None]:
    """Every path under ``d`` with its modification time and bytes (None for a directory)."""
    return {str(p.relative_to(d)): (p.stat().st_mtime_ns, p.read_bytes()) if p.is_file() else None for p in sorted(d.rglob("*"))}


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / run.name))


def _latest(run: Path) -> dict:
    return json.loads((run / "checkpoints" / "latest.json").read_text())


def _train_rows(run: Path, column: str = "train/loss") -> list[tuple[int, str]]:
    return [(int(r["step"]), r[column]) for r in read_metrics(run / "metrics.csv") if r.get(column)]


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory) -> Path:
    """A finished 4-step sft run (tests copy it before changing anything)."""
    run = tmp_path_factory.mktemp("llm") / "sft"
    assert main([*SFT, "--run-dir", str(run)]) == 0
    return run


def test_sft_writes_the_run_layout(sft_run):
    from rlsuite.llm.trainer import load_model

    config = json.loads((sft_run / "config.json").read_text())
    assert config["command"] == "llm sft" and config["args"]["total_steps"] == 4 and config["trainer"]["batch_size"] == 8
    header = (sft_run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[0] == "step" and {"train/loss", "eval/exact_match", "time/sps", "time/eval_seconds"} <= set(header)
    assert [s for s, _ in _train_rows(sft_run)] == [1, 2, 3, 4]
    assert [s for s, _ in _train_rows(sft_run, "eval/exact_match")] == [0, 2, 4]
    assert any(p.name.startswith("events.out.tfevents") for p in (sft_run / "tb").iterdir())
    assert (sft_run / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _latest(sft_run) == {"checkpoint": "final", "step": 4}
    assert (sft_run / "checkpoints" / "step_000000002" / "tensors.safetensors").is_file()
    model, meta = load_model(sft_run / "model")
    assert meta["step"] == 4 and meta["task"] == "addition" and model.config.vocab_size > 0


def test_sft_into_an_existing_run_is_refused_and_changes_nothing(sft_run, tmp_path, capsys):
    run = _copy(sft_run, tmp_path)
    before = _snapshot(run)
    code, out, err = _run(capsys, *SFT, "--run-dir", str(run))
    assert code == 2 and "--overwrite" in err and f"--resume {run}" in err and out == ""
    # with --overwrite, settings that cannot train are refused before the old run is deleted
    code, _, err = _run(capsys, *TRAIN, "--init", str(tmp_path / "missing"), "--run-dir", str(run), "--overwrite")
    assert code == 2 and "missing' does not exist" in err
    code, _, err = _run(capsys, *TRAIN, "--init", str(run), "--micro-batch-size", "3", "--run-dir", str(run), "--overwrite")
    assert code == 2 and "micro_batch_size=3 must divide" in err
    assert _snapshot(run) == before


def test_overwrite_replaces_the_run(sft_run, tmp_path, capsys):
    run = _copy(sft_run, tmp_path)
    (run / "stray.txt").write_text("from an older run")
    code, out, _ = _run(capsys, *SFT, "--total-steps", "3", "--run-dir", str(run), "--overwrite")
    assert code == 0 and re.fullmatch(r"steps=3 loss=\d+\.\d{4} exact_match_before=0\.\d{4} exact_match=\d\.\d{4}",
                                      out.strip().splitlines()[-1])
    assert not (run / "stray.txt").exists() and _latest(run)["step"] == 3
    assert json.loads((run / "config.json").read_text())["args"]["total_steps"] == 3
    assert [s for s, _ in _train_rows(run)] == [1, 2, 3]


def test_resume_of_a_finished_run_does_nothing(sft_run, tmp_path, capsys):
    run = _copy(sft_run, tmp_path)
    before = _snapshot(run)
    code, out, _ = _run(capsys, "llm", "sft", "--resume", str(run))
    assert code == 0 and "nothing to do" in out and "--total-steps 4" in out
    code, _, err = _run(capsys, "llm", "sft", "--resume", str(run), "--total-steps", "2")  # a budget below its step
    assert code == 2 and "already at step 4, past --total-steps 2" in err
    code, _, err = _run(capsys, "llm", "sft", "--resume", str(run), "--total-steps", "6", "--task", "sorting")
    assert code == 2 and "--task was 'addition' there, 'sorting' here" in err
    code, _, err = _run(capsys, "llm", "train", "--resume", str(run), "--total-steps", "6")
    assert code == 2 and f"rlsuite llm sft --resume {run}" in err
    assert _snapshot(run) == before


def test_resume_to_a_larger_budget_continues_as_an_uninterrupted_run(sft_run, tmp_path, capsys):
    """4 steps, then --resume to 6: the same losses, evaluations and weights as 6 steps in one go (exact resume)."""
    from safetensors.torch import load_file

    run = _copy(sft_run, tmp_path)
    code, out, _ = _run(capsys, "llm", "sft", "--resume", str(run), "--total-steps", "6")
    assert code == 0 and out.strip().splitlines()[-1].startswith("steps=6 loss=")
    straight = tmp_path / "straight"
    assert main([*SFT, "--total-steps", "6", "--run-dir", str(straight)]) == 0
    for column in ("train/loss", "eval/exact_match"):
        assert _train_rows(run, column) == _train_rows(straight, column), column  # each step once, equal values
    assert [s for s, _ in _train_rows(run)] == [1, 2, 3, 4, 5, 6]
    assert _latest(run) == {"checkpoint": "final", "step": 6}
    assert json.loads((run / "config.json").read_text())["args"]["total_steps"] == 6
    a, b = load_file(run / "model" / "tensors.safetensors"), load_file(straight / "model" / "tensors.safetensors")
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)


def test_train_from_the_sft_run_then_eval_and_resume(sft_run, tmp_path, capsys):
    rl = tmp_path / "grpo"
    code, out, _ = _run(capsys, *TRAIN, "--init", str(sft_run), "--run-dir", str(rl))
    assert code == 0 and re.fullmatch(r"steps=2 reward=\d\.\d{4} exact_match_before=\d\.\d{4} exact_match=\d\.\d{4}",
                                      out.strip().splitlines()[-1])
    config = json.loads((rl / "config.json").read_text())
    assert config["command"] == "llm train" and config["method"] == "grpo" and config["args"]["init"] == str(sft_run)
    header = (rl / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[0] == "step" and {"train/reward", "train/loss", "train/kl", "eval/exact_match"} <= set(header)
    assert (rl / "curve.png").is_file() and (rl / "tb").is_dir() and _latest(rl) == {"checkpoint": "final", "step": 2}
    # the run's own last evaluation is what `llm eval` reports for it (same seed, same held-out examples)
    final = _train_rows(rl, "eval/exact_match")[-1]
    code, out, _ = _run(capsys, "llm", "eval", str(rl), "--eval-examples", "8")
    assert code == 0 and out.strip().splitlines()[-1] == f"exact_match={float(final[1]):.4f}"
    code, out, _ = _run(capsys, "llm", "train", "--resume", str(rl), "--total-steps", "3")
    assert code == 0 and _latest(rl)["step"] == 3 and [s for s, _ in _train_rows(rl, "train/reward")] == [1, 2, 3]
    # --init also takes the model directory inside the sft run; a preference method writes the same layout
    dpo = tmp_path / "dpo"
    code, _, _ = _run(capsys, *TRAIN, "--method", "dpo", "--init", str(sft_run / "model"), "--run-dir", str(dpo))
    assert code == 0 and _latest(dpo)["step"] == 2 and "train/pairs" in (dpo / "metrics.csv").read_text()


def test_default_run_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, _ = _run(capsys, "llm", "sft", "--total-steps", "1", "--batch-size", "4", "--eval-examples", "4", "--seed", "3")
    runs = list((tmp_path / "runs").iterdir())
    assert code == 0 and len(runs) == 1 and re.fullmatch(r"llm-addition__sft__3__\d{8}-\d{6}", runs[0].name)
    assert f"run directory: {Path('runs') / runs[0].name}" in out


def test_llm_usage(capsys):
    code, out, _ = _run(capsys, "llm", "--help")
    assert code == 0 and all(re.search(rf"^  {sub}\s", out, re.M) for sub in ("list", "sft", "train", "eval"))
    code, out2, _ = _run(capsys, "llm")
    assert code == 2 and out2 == out
    code, _, err = _run(capsys, "llm", "sftt")
    assert code == 2 and "Did you mean 'sft'" in err
    code, _, err = _run(capsys, "llm", "train", "--total-steps", "3")
    assert code == 2 and "needs --init" in err


def test_rl_eval_and_export_point_a_language_model_run_to_llm_eval(sft_run, capsys):
    for argv in (["eval", str(sft_run)], ["export", str(sft_run), "--format", "onnx", "--out", str(sft_run / "x.onnx")]):
        code, _, err = _run(capsys, *argv)
        assert code == 2 and "rlsuite llm eval" in err, err
