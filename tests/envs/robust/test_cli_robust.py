"""``rlsuite eval RUN --robust`` and ``rlsuite train ... --domain-rand SET`` at tiny budgets (in-process)."""

import csv
import json
import re

import numpy as np
import pytest
import torch

from rlsuite.cli import main
from rlsuite.core.logger import read_metrics
from rlsuite.core.vec_env import make_vec_env
from tests.cli.helpers import run_cli

# CartPole: an untrained policy's episodes last tens of steps, so a 3 x 3 grid evaluates in well under a second
TINY_PPO = ("--total-steps", "64", "--no-progress", "--eval-episodes", "1", "--num-steps", "8", "--num-minibatches", "2",
            "--no-tensorboard")


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("robust") / "run"
    assert main(["train", "ppo", "--env", "CartPole-v1", "--run-dir", str(d), *TINY_PPO]) == 0
    return d


def test_eval_robust_writes_metrics_heat_map_and_summary_rows(capsys, ppo_run):
    code, out, _ = run_cli(capsys, "eval", ppo_run, "--robust", "--set", "cartpole-length-mass", "--grid", "3", "--episodes", "2")
    assert code == 0, out
    assert "over cartpole-length-mass (pole_length in [0.2, 3] x pole_mass in [0.02, 1]), 3 x 3 = 9 points, 2 episodes each" in out
    last = out.strip().splitlines()[-1]
    m = re.fullmatch(r"nominal_return=(\S+) mean_return=(\S+) worst_return=(\S+) cvar10_return=(\S+) auc_return=(\S+)", last)
    assert m, last
    nominal, mean, worst, cvar10, auc = (float(x) for x in m.groups())
    assert worst <= mean and cvar10 == worst  # 10 % of 9 points lies within the worst one

    points = list(csv.DictReader(open(ppo_run / "robust" / "cartpole-length-mass.csv")))
    assert len(points) == 10 and points[0]["point"] == "nominal" and points[0]["pole_length"] == "1.0"
    assert min(float(p["mean_return"]) for p in points[1:]) == pytest.approx(worst, abs=1e-4)
    assert float(points[0]["mean_return"]) == pytest.approx(nominal, abs=1e-4)
    assert (ppo_run / "robust" / "cartpole-length-mass.png").read_bytes()[:4] == b"\x89PNG"
    rows = list(csv.DictReader(open(ppo_run / "robust.csv")))
    assert rows[-1]["set"] == "cartpole-length-mass" and rows[-1]["mode"] == "grid" and rows[-1]["points"] == "9"
    assert float(rows[-1]["auc"]) == pytest.approx(auc, abs=1e-4)
    step = json.loads((ppo_run / "checkpoints" / "latest.json").read_text())["step"]
    row = [r for r in read_metrics(ppo_run / "metrics.csv") if r.get("eval/robust/cartpole-length-mass/worst")][-1]
    assert int(row["step"]) == step and float(row["eval/robust/cartpole-length-mass/worst"]) == pytest.approx(worst, abs=1e-4)

    # random points of an inline set: one more summary row, no area (nothing to integrate)
    code, out, _ = run_cli(capsys, "eval", ppo_run, "--robust", "--set", "gravity=5:15", "--samples", "3", "--episodes", "1")
    assert code == 0 and "3 random = 3 points" in out and "auc_return=nan" in out
    assert [r["set"] for r in csv.DictReader(open(ppo_run / "robust.csv"))][-2:] == ["cartpole-length-mass", "gravity=5:15"]
    assert (ppo_run / "robust" / "gravity_5_15.png").is_file()


def test_eval_robust_refusals(capsys, ppo_run):
    code, _, err = run_cli(capsys, "eval", ppo_run, "--grid", "3")
    assert code == 2 and "--grid go with --robust" in err
    code, _, err = run_cli(capsys, "eval", ppo_run, "--robust", "--grid", "3", "--samples", "2")
    assert code == 2 and "not both" in err
    code, _, err = run_cli(capsys, "eval", ppo_run, "--robust", "--set", "cartpole-lenght", "--grid", "2", "--episodes", "1")
    assert code == 2 and "Did you mean 'cartpole-length'" in err and "Sets for CartPole-v1: cartpole-length-mass" in err
    code, _, err = run_cli(capsys, "eval", ppo_run, "--robust", "--set", "hopper-friction", "--grid", "2", "--episodes", "1")
    assert code == 2 and "friction_scale, which CartPole-v1 does not have" in err
    code, _, err = run_cli(capsys, "eval", ppo_run, "--robust", "--grid", "1")
    assert code == 2 and "--grid must be >= 2, got 1" in err


def test_train_with_domain_randomisation(capsys, tmp_path):
    d = tmp_path / "dr"
    code, out, _ = run_cli(capsys, "train", "ppo", "--env", "CartPole-v1", "--domain-rand", "cartpole-length", "--run-dir", d, *TINY_PPO)
    assert code == 0, out
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["run"]["env"] == "CartPole-v1" and cfg["run"]["domain_rand"] == "cartpole-length" and cfg["env_kwargs"] == {}
    code, _, err = run_cli(capsys, "train", "ppo", "--env", "CartPole-v1", "--domain-rand", "cartpole-lenght", "--run-dir",
                           tmp_path / "bad", *TINY_PPO)
    assert code == 2 and "Did you mean 'cartpole-length'" in err and not (tmp_path / "bad").exists()


def test_the_training_env_draws_each_episode_and_resumes_exactly():
    # what --domain-rand builds: the env under rlsuite/Perturbed-v0, every episode drawn from the set
    kw = {"env": "CartPole-v1", "domain_rand": "cartpole-length-mass"}
    a = make_vec_env("rlsuite/Perturbed-v0", 4, seed=0, **kw)
    _, info = a.reset(seed=0)
    lengths = info["perturbation"]["pole_length"]
    assert len(np.unique(lengths)) == 4 and ((lengths >= 0.2) & (lengths <= 3.0)).all()
    acts = torch.tensor([0, 1, 1, 0])
    for _ in range(30):  # CartPole episodes end, the adapter resets them: new draws
        a.step(acts)
    b = make_vec_env("rlsuite/Perturbed-v0", 4, seed=0, **kw)
    b.load_state_dict(a.state_dict())
    for _ in range(40):
        x, y = a.step(acts), b.step(acts)
        assert torch.equal(x[0], y[0]) and torch.equal(x[1], y[1])
