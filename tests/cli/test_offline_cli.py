"""`rlsuite train uni-o4 | iql | bc --dataset ...` at tiny budgets, in-process."""

import re

import pytest

from rlsuite.cli import main
from rlsuite.offline.train import read_evaluations
from tests.cli.helpers import run_cli as _run
from tests.offline.helpers import write_mixed_dataset


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-data")
    write_mixed_dataset(root, steps=2000)
    return root




def test_train_uni_o4_offline_then_online(capsys, tmp_path, data_root):
    run = tmp_path / "o4"
    code, out, _ = _run(capsys, "train", "uni-o4", "--dataset", "rlsuite/invertedpendulum/medium-v0", "--data-dir", str(data_root),
                        "--offline-steps", "100", "--improve-steps", "20", "--ope-every", "10", "--ope-horizon", "5",
                        "--online-steps", "256", "--eval-every", "100", "--eval-episodes", "1", "--run-dir", str(run),
                        "--hidden-sizes", "16", "16", "--critic-hidden", "16", "16", "--dynamics-hidden", "16",
                        "--dynamics-max-epochs", "2", "--online-num-steps", "128", "--online-minibatches", "2")
    assert code == 0, out
    assert "AM-Q of the BC members" in out and "improvement step 20" in out and "dynamics epoch 1" in out
    assert re.search(r"^online: return \d+\.\d, normalized score", out, re.M)  # the real return beside the score
    rows = read_evaluations(run)
    assert [r["phase"] for r in rows] == ["offline", "offline", "online", "online", "online"]
    assert [r["step"] for r in rows] == [100, 120, 220, 320, 376]
    assert {"offline", "online"} <= {p.name for p in (run / "checkpoints").iterdir()}
    assert (run / "curve.png").exists()


def test_train_iql_and_bc(capsys, tmp_path, data_root):
    code, out, _ = _run(capsys, "train", "iql", "--dataset", "rlsuite/invertedpendulum/medium-v0", "--data-dir", str(data_root),
                        "--offline-steps", "50", "--online-steps", "50", "--eval-every", "50", "--eval-episodes", "1",
                        "--run-dir", str(tmp_path / "iql"), "--hidden-sizes", "16", "16")
    assert code == 0 and "online_score=" in out
    code, out, _ = _run(capsys, "train", "bc", "--dataset", "rlsuite/invertedpendulum/medium-v0", "--data-dir", str(data_root),
                        "--offline-steps", "50", "--eval-every", "50", "--eval-episodes", "1", "--run-dir", str(tmp_path / "bc"))
    assert code == 0 and "offline_score=" in out and "online_score" not in out


def test_bad_overrides_and_algorithms_are_explained(capsys, tmp_path, data_root):
    with pytest.raises(SystemExit):  # tyro: unknown flag, with a suggestion
        main(["train", "uni-o4", "--dataset", "rlsuite/invertedpendulum/medium-v0", "--data-dir", str(data_root), "--alhpa", "0.2"])
    assert "--alpha" in capsys.readouterr().err
    code, _, err = _run(capsys, "train", "bc", "--data-dir", str(data_root))
    assert code == 2 and "needs --dataset" in err
    with pytest.raises(SystemExit):  # refused by the option's check, shown by the parser
        main(["train", "iql", "--dataset", "rlsuite/invertedpendulum/medium-v0", "--offline-steps", "-5"])
    assert "--offline-steps must be >= 0, got -5" in capsys.readouterr().err
    code, _, err = _run(capsys, "train", "bc", "--dataset", "rlsuite/invertedpendulum/medium-v0", "--data-dir", str(data_root),
                        "--online-steps", "10")
    assert code != 0 and "BC has no online phase" in err


O4_TINY = ("--dataset", "rlsuite/invertedpendulum/medium-v0", "--offline-steps", "100", "--improve-steps", "20", "--ope-every", "10",
           "--ope-horizon", "5", "--online-steps", "256", "--eval-every", "100", "--eval-episodes", "1", "--hidden-sizes", "16", "16",
           "--critic-hidden", "16", "16", "--dynamics-hidden", "16", "--dynamics-max-epochs", "2",
           "--online-num-steps", "128", "--online-minibatches", "2")


def test_uni_o4_resume_after_an_online_crash_logs_what_an_unbroken_run_logs(capsys, tmp_path, data_root, monkeypatch):
    from rlsuite.agents.uni_o4 import UniO4

    code, out, _ = _run(capsys, "train", "uni-o4", *O4_TINY, "--data-dir", str(data_root), "--run-dir", str(tmp_path / "whole"))
    assert code == 0, out
    real = UniO4.learn_online

    def crash(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(UniO4, "learn_online", crash)
    code, out, _ = _run(capsys, "train", "uni-o4", *O4_TINY, "--data-dir", str(data_root), "--run-dir", str(tmp_path / "run"))
    assert code != 0 and not (tmp_path / "run" / "checkpoints" / "online").exists()
    monkeypatch.setattr(UniO4, "learn_online", real)
    code, out, _ = _run(capsys, "train", "uni-o4", "--resume", str(tmp_path / "run"))
    assert code == 0, out
    assert "resumed" in out and "AM-Q of the BC members" not in out  # nothing offline is redone

    def table(name):
        return [(r["phase"], r["step"], r["return"]) for r in read_evaluations(tmp_path / name)]

    assert [s for _, s, _ in table("run")] == [100, 120, 220, 320, 376]
    assert table("run") == table("whole")
    import torch

    from rlsuite.core.checkpoint import load_checkpoint

    a, _ = load_checkpoint(tmp_path / "whole" / "checkpoints" / "online")
    b, _ = load_checkpoint(tmp_path / "run" / "checkpoints" / "online")
    for k, v in a["agent"]["online_policy"].items():  # the fine-tuned actor and critic, bit for bit
        assert torch.equal(v, b["agent"]["online_policy"][k]), k


def test_collect_train_eval_export_deploy_chain_through_the_cli(capsys, tmp_path):
    """The chain a user runs, each step reading the files the previous one wrote: data collect -> train bc ->
    eval -> export -> deploy (sim-to-sim). Tiny budgets: this checks the plumbing, not the scores."""
    data, run, onnx = tmp_path / "data", tmp_path / "bc", tmp_path / "bc.onnx"
    code, out, err = _run(capsys, "data", "collect", "--env", "InvertedPendulum-v5", "--level", "medium", "--steps", "500",
                          "--behaviour-steps", "600", "--data-dir", str(data))
    assert code == 0, err
    assert out.strip().splitlines()[-1] == "dataset=rlsuite/invertedpendulum/medium-v0"
    code, out, err = _run(capsys, "train", "bc", "--dataset", "rlsuite/invertedpendulum/medium-v0", "--data-dir", str(data),
                          "--offline-steps", "20", "--eval-every", "20", "--eval-episodes", "1", "--hidden-sizes", "16", "16",
                          "--run-dir", str(run))
    assert code == 0 and out.strip().splitlines()[-1].startswith("offline_score="), err
    code, out, err = _run(capsys, "eval", str(run), "--episodes", "2")
    assert code == 0 and out.strip().splitlines()[-1].startswith("mean_return="), err
    code, out, err = _run(capsys, "export", str(run), "--format", "onnx", "--out", str(onnx))
    assert code == 0 and float(out.strip().splitlines()[-1].split("=")[1]) <= 1e-5, err
    code, out, err = _run(capsys, "deploy", "--robot", "sim:InvertedPendulum-v5", "--policy", str(onnx), "--episodes", "1",
                          "--compare-gym")
    assert code == 0 and out.strip().splitlines()[-1].startswith("sim_to_sim_gap="), err


def test_maze_collect_then_expo_train_eval_export_through_the_cli(capsys, tmp_path):
    """data collect (PointMaze waypoint controller) -> train expo (online with the data) -> eval -> export, each step
    reading the files the previous one wrote. Tiny budgets: the plumbing, not the scores."""
    data, run, script = tmp_path / "data", tmp_path / "expo", tmp_path / "expo.pt"
    code, out, err = _run(capsys, "data", "collect", "--env", "rlsuite/PointMaze-UMaze-v0", "--level", "waypoint", "--steps", "400",
                          "--data-dir", str(data))
    assert code == 0, err
    assert out.strip().splitlines()[-1] == "dataset=rlsuite/pointmaze-umaze/waypoint-v0"
    code, out, err = _run(capsys, "train", "expo", "--dataset", "rlsuite/pointmaze-umaze/waypoint-v0", "--data-dir", str(data),
                          "--online-steps", "40", "--eval-every", "20", "--eval-episodes", "1", "--start-training", "10",
                          "--hidden-sizes", "16", "16", "--batch-size", "16", "--num-qs", "3", "--denoiser-width", "16",
                          "--denoiser-blocks", "1", "--time-dim", "8", "--diffusion-steps", "3", "--eval-samples", "4",
                          "--run-dir", str(run))
    assert code == 0 and re.search(r"online_score=\d", out.strip().splitlines()[-1]), err
    code, out, err = _run(capsys, "eval", str(run), "--episodes", "2")
    assert code == 0 and out.strip().splitlines()[-1].startswith("mean_return="), err
    # TorchScript runs torch's kernels, so the argmax over candidates matches exactly; ONNX Runtime's float
    # rounding can flip a near-tie between candidates (docs/expo.md), so its parity check may refuse a file
    code, out, err = _run(capsys, "export", str(run), "--format", "torchscript", "--out", str(script))
    assert code == 0 and float(out.strip().splitlines()[-1].split("=")[1]) <= 1e-5, err
