"""Every registered agent through the same path: tiny train -> eval -> export (with parity, where the
policy is a network over observations) -> kill mid-run and resume, bit for bit.

The kill is real: the run raises right after it has written a checkpoint and pointed ``latest.json``
at it (the moment a crash loses least), and ``rlsuite train <algo> --resume RUN`` continues from there.
The resumed run's final checkpoint must equal an unbroken run's, tensor for tensor.
"""

from __future__ import annotations

import pytest
import torch

import rlsuite.core.checkpoint as ckpt_mod
import rlsuite.core.run as run_mod
import rlsuite.envs.cop.train as cop_train_mod
from rlsuite.agents import AGENTS
from rlsuite.cli import main
from rlsuite.cli.train import train_from_argv
from rlsuite.core.checkpoint import load_checkpoint
from rlsuite.core.run import resolve_checkpoint
from rlsuite.runs import load_run
from tests.offline.helpers import write_mixed_dataset

DS = "rlsuite/invertedpendulum/medium-v0"
DISPATCH_TINY = '{"city": "grid3x3", "num_vehicles": 10, "num_candidates": 3, "orders_per_minute": 2.0, "horizon": 10}'
OFFLINE = ["--offline-steps", "40", "--eval-every", "20", "--eval-episodes", "1", "--device", "cpu"]

# per algorithm: the flags of a run that takes seconds and writes at least two checkpoints
RECIPES: dict[str, list[str]] = {
    "ppo": ["--env", "CartPole-v1", "--total-steps", "512", "--num-envs", "2", "--num-steps", "64", "--checkpoint-every", "128",
            "--eval-episodes", "1", "--device", "cpu", "--no-progress", "--no-tensorboard"],
    "sac": ["--env", "Pendulum-v1", "--total-steps", "300", "--learning-starts", "100", "--batch-size", "16",
            "--hidden-sizes", "16", "16", "--checkpoint-every", "100", "--eval-episodes", "1", "--device", "cpu", "--no-progress",
            "--no-tensorboard"],
    "fast-td3": ["--env", "rlsuite/Pendulum-v0", "--total-steps", "256", "--num-envs", "8", "--buffer-size", "12", "--batch-size", "32",
                 "--learning-starts", "2", "--actor-hidden-sizes", "16", "16", "--critic-hidden-sizes", "16", "16", "--num-atoms", "11",
                 "--checkpoint-every", "64", "--eval-episodes", "1", "--device", "cpu", "--no-progress", "--no-tensorboard"],
    "tgpo": ["--env", "rlsuite/STL-Linear-v0", "--total-steps", "1008", "--num-envs", "8", "--num-steps", "63",
             "--num-allocations", "4", "--checkpoint-every", "504", "--eval-episodes", "2", "--device", "cpu", "--no-progress",
             "--no-tensorboard", "--sampler", "mh"],
    "subpo": ["--env", "rlsuite/Coverage-Grid-v0", "--total-steps", "1280", "--num-envs", "4", "--checkpoint-every", "640",
              "--eval-episodes", "1", "--device", "cpu", "--no-progress", "--no-tensorboard", "--natural"],
    "modpo": ["--env", "rlsuite/Coverage-Grid-v0", "--total-steps", "1280", "--num-envs", "4", "--checkpoint-every", "640",
              "--eval-episodes", "1", "--device", "cpu", "--no-progress", "--no-tensorboard", "--observation", "history"],
    "robust-mbrl": ["--env", "rlsuite/Greenhouse-Lettuce-v0", "--env-kwargs", '{"season_days": 1}', "--total-steps", "300",
                    "--learning-starts", "100", "--batch-size", "16", "--hidden-sizes", "16", "16", "--model-hidden", "16",
                    "--model-every", "100", "--model-max-epochs", "2", "--rollout-every", "50", "--rollout-batch", "20",
                    "--rollout-length", "2", "--ensemble-size", "3", "--elites", "2", "--checkpoint-every", "100", "--log-every", "100",
                    "--eval-episodes", "1", "--device", "cpu", "--no-progress", "--no-tensorboard"],
    **{algo: ["--env", "rlsuite/LinearMDP-v0", "--total-steps", "96", "--num-envs", "4", "--checkpoint-every", "48",
              "--eval-episodes", "1", "--device", "cpu", "--no-progress", "--no-tensorboard"]
       for algo in ("dr-rpo", "lsvi-ucb", "dr-lsvi-ucb")},
    **{algo: ["--env", "rlsuite/Dispatch-Manhattan-v0", "--env-kwargs", DISPATCH_TINY, "--total-steps", "80", "--num-envs", "2",
              "--num-minibatches", "2", "--minibatch-size", "16", "--snapshot-every", "2", "--hidden-sizes", "16", "16",
              "--learning-rate", "1e-3", "--checkpoint-every", "40", "--eval-episodes", "1", "--device", "cpu", "--no-progress",
              "--no-tensorboard"]
       for algo in ("ospo", "grpo-dispatch", "ppo-dispatch")},
    **{algo: ["--env", "rlsuite/Dispatch-Manhattan-v0", "--env-kwargs", DISPATCH_TINY, "--total-steps", "80", "--num-envs", "2",
              "--checkpoint-every", "40", "--eval-episodes", "1", "--device", "cpu", "--no-progress", "--no-tensorboard"]
       for algo in ("greedy-dispatch", "random-dispatch")},
    "bc": ["--dataset", DS, *OFFLINE, "--hidden-sizes", "16", "16"],
    "iql": ["--dataset", DS, *OFFLINE, "--online-steps", "40", "--hidden-sizes", "16", "16", "--batch-size", "32"],
    "uni-o4": ["--dataset", DS, *OFFLINE, "--online-steps", "128", "--improve-steps", "20", "--ope-every", "10",
               "--ope-horizon", "5", "--hidden-sizes", "16", "16", "--critic-hidden", "16", "16", "--dynamics-hidden", "16",
               "--dynamics-max-epochs", "2", "--online-num-steps", "64", "--online-minibatches", "2"],
    "rlpd": ["--dataset", DS, "--offline-steps", "0", "--online-steps", "40", "--eval-every", "20", "--eval-episodes", "1",
             "--device", "cpu", "--start-training", "10", "--hidden-sizes", "16", "16", "--batch-size", "16", "--num-qs", "3",
             "--utd", "2"],
    "expo": ["--dataset", DS, *OFFLINE, "--online-steps", "40", "--start-training", "10", "--hidden-sizes", "16", "16",
             "--batch-size", "16", "--num-qs", "3", "--utd", "2", "--denoiser-width", "16", "--denoiser-blocks", "1",
             "--time-dim", "8", "--diffusion-steps", "3", "--num-base-samples", "3", "--num-edit-samples", "2"],
    "bq-nco": ["--problem", "tsp", "--size", "8", "--instances", "16", "--solver", "nn", "--total-steps", "6",
               "--checkpoint-every", "3", "--batch-size", "4", "--dim", "16", "--layers", "1", "--heads", "2", "--ff", "32",
               "--eval-instances", "4", "--device", "cpu"],
}


def test_every_registered_agent_has_a_recipe():
    assert set(RECIPES) == set(AGENTS.names())


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("protocol-data")
    write_mixed_dataset(root, steps=1500)
    return root


class Killed(Exception):
    pass


def _kill_after_first_checkpoint(monkeypatch):
    """Make the next run raise right after its first checkpoint is written and pointed at."""
    real = ckpt_mod.write_latest
    calls = []

    def write_then_die(checkpoint_dir, name, step):
        real(checkpoint_dir, name, step)
        calls.append(name)
        raise Killed(f"killed after writing {name}")

    for mod in (ckpt_mod, run_mod, cop_train_mod):
        monkeypatch.setattr(mod, "write_latest", write_then_die)
    return calls


def _flatten(obj, prefix=""):
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}/{k}"))
        return out
    if isinstance(obj, list | tuple):
        out = {}
        for i, v in enumerate(obj):
            out.update(_flatten(v, f"{prefix}/{i}"))
        return out
    return {prefix: obj}


def _assert_same_state(a, b):
    fa, fb = _flatten(a), _flatten(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        if isinstance(fa[k], torch.Tensor):
            assert torch.equal(fa[k], fb[k]), f"{k} differs after resume"
        else:
            assert fa[k] == fb[k], f"{k} differs after resume: {fa[k]!r} vs {fb[k]!r}"


def _main(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("algo", sorted(RECIPES))
def test_train_eval_export_kill_resume(algo, tmp_path, capsys, monkeypatch, data_root):
    spec = AGENTS.get(algo)
    flags = list(RECIPES[algo])
    if spec.learns_from == "dataset":
        flags += ["--data-dir", str(data_root)]
    whole, broken = tmp_path / "whole", tmp_path / "broken"

    _, summary = train_from_argv([algo, *map(str, flags), "--run-dir", str(whole)])

    # what was saved acts as the agent that was trained (the in-memory one, not a second load)
    loaded, meta, _ = load_run(whole, "cpu")
    if spec.learns_from == "instances":
        from rlsuite.envs.cop.env import COPEnv
        from rlsuite.envs.cop.problems import generate

        inst = generate(loaded.cfg.problem, 4, 8, seed=7)
        assert loaded.solve(COPEnv(loaded.cfg.problem, inst)) == summary["agent"].solve(COPEnv(loaded.cfg.problem, inst))
    else:
        obs = torch.randn(16, loaded.obs_dim, generator=torch.Generator().manual_seed(0))
        assert torch.equal(loaded.act(obs, deterministic=True), summary["agent"].act(obs, deterministic=True))

    # eval works on every run directory, whatever the algorithm
    code, out, err = _main(capsys, "eval", whole, "--episodes", "2", "--device", "cpu")
    assert code == 0, out + err
    last = out.strip().splitlines()[-1]
    key = "mean_cost=" if spec.learns_from == "instances" else "mean_return="
    assert last.startswith(key) and float(last.split("=")[1]) == float(last.split("=")[1])  # a number, not NaN

    # export where the policy is a network over observations; a clear refusal where it is not
    code, out, err = _main(capsys, "export", whole, "--format", "torchscript", "--out", tmp_path / "policy.pt")
    if spec.learns_from == "instances":
        assert code == 2 and "no export module" in err and "cop solve" in err
    elif hasattr(summary["agent"], "export_unavailable"):  # a policy that is not a network to deploy says why
        assert code == 2 and "no export module" in err and algo in err
    else:
        assert code == 0, out + err
        assert float(out.strip().splitlines()[-1].split("=")[1]) <= 1e-5

    # kill after the first checkpoint, resume, compare with the unbroken run
    calls = _kill_after_first_checkpoint(monkeypatch)
    with pytest.raises(Killed):
        main(["train", algo, *map(str, flags), "--run-dir", str(broken)])
    assert len(calls) == 1
    monkeypatch.undo()
    capsys.readouterr()
    code, out, err = _main(capsys, "train", algo, "--resume", broken)
    assert code == 0, out + err
    state_whole, meta_whole = load_checkpoint(resolve_checkpoint(whole))
    state_broken, meta_broken = load_checkpoint(resolve_checkpoint(broken))
    assert meta_whole["step"] == meta_broken["step"]
    _assert_same_state(state_whole["agent"], state_broken["agent"])


def test_eval_acts_under_the_envs_action_mask(tmp_path, capsys):
    """On a masked env, `rlsuite eval` passes info['action_mask'] to the policy: the score is that of
    the best allowed action, never of the forbidden optimum (masked bandit: action k pays k/4, 4 is forbidden)."""
    run = tmp_path / "bandit"
    code, out, err = _main(capsys, "train", "ppo", "--env", "rlsuite/MaskedBandit-v0", "--total-steps", "4096", "--num-envs", "8",
                           "--num-steps", "64", "--eval-episodes", "1", "--device", "cpu", "--no-progress", "--no-tensorboard",
                           "--run-dir", run)
    assert code == 0, out + err
    agent, _, _ = load_run(run)
    from rlsuite.core.evaluate import policy_of
    from rlsuite.core.vec_env import make_vec_env

    env = make_vec_env("rlsuite/MaskedBandit-v0", 64, seed=3)
    obs, info = env.reset(seed=3)
    picks = policy_of(agent)(obs, info["action_mask"])
    assert bool(info["action_mask"].gather(1, picks.long()[:, None]).all())  # every pick allowed
    with pytest.raises(ValueError, match="takes no action mask"):
        policy_of(type("NoMask", (), {"act": lambda self, o, deterministic=True: o})())(obs, info["action_mask"])
