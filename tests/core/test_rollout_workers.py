"""Rollout workers (rlsuite.core.rollout_workers) on one local Ray instance with 2 CPUs shared by the module.

Synchronous mode: PPO on CartPole-v1 with 2 workers x 2 envs ends with the same tensors (weights and optimiser
state) as PPO on the local 4-env vector env; a local run's checkpoint resumes on workers and ends equal to the
unbroken local run. A batched torch env (rlsuite/Pendulum-v0) split over workers: one worker is the local env, and
its state resumes exactly with the same split (another is refused). Asynchronous mode: PPO trains on the batches of
workers that act with their own copies of the policy (V-trace corrected), and resumes. Refusals come before anything
is written.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re
import shutil
import sys
import time

import pytest
import torch

from rlsuite.agents import AGENTS
from rlsuite.agents.ppo import PPO, PPOConfig
from rlsuite.agents.train import check_rollout_workers
from rlsuite.core.checkpoint import CheckpointError, flatten_state, load_checkpoint
from rlsuite.core.rollout_workers import check_resume_rollouts, check_workers, make_remote_vec_env
from rlsuite.core.run import RunConfig
from rlsuite.core.seeding import seed_everything
from rlsuite.core.vec_env import make_vec_env
from tests.cli.helpers import run_cli

TINY = ["--env", "CartPole-v1", "--num-envs", "4", "--num-steps", "32", "--num-minibatches", "2", "--update-epochs", "2",
        "--eval-episodes", "0", "--no-progress", "--no-tensorboard", "--checkpoint-every", "128", "--keep-checkpoints", "0"]


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray for the module (its start costs seconds), started as the suite starts it; the workers' env uses
    the running instance."""
    import ray

    from rlsuite.core.ray_setup import init_ray

    init_ray(ray, None, 2)
    yield ray
    ray.shutdown()


def _flat(text: str) -> str:
    """Command output without the line wrapping (and box borders) of rich and tyro."""
    return re.sub(r"[│\s]+", " ", text)


def _tensors(state) -> dict[str, torch.Tensor]:
    return flatten_state(state)[0]


def _assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"tensors that differ: {differ}"


# ----------------------------------------------------------------------------- refusals (no Ray started)


def test_refusals_come_before_anything_is_written(capsys, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"--num-envs 6 cannot be split evenly over --workers 4.*--workers 2 or 3 or 6, or --num-envs 8"):
        check_workers(6, 4)
    assert check_workers(6, 3) == 2
    ppo = AGENTS.get("ppo")
    with pytest.raises(ValueError, match="with torchrun"):
        check_rollout_workers(ppo, PPOConfig(num_envs=4), RunConfig(workers=2), world_size=2)

    code, _, err = run_cli(capsys, "train", "ppo", *TINY, "--num-envs", "5", "--workers", "2", "--run-dir", tmp_path / "r")
    assert code == 2 and "--num-envs 5 cannot be split evenly over --workers 2" in _flat(err)
    code, _, err = run_cli(capsys, "train", "sac", "--env", "Pendulum-v1", "--workers", "1", "--run-dir", tmp_path / "r")
    assert code == 2 and "sac uses more of its env" in _flat(err) and "rollout workers: fast-td3, ppo" in _flat(err)
    code, _, err = run_cli(capsys, "train", "ppo", *TINY, "--ray-address", "auto", "--run-dir", tmp_path / "r")
    assert code == 2 and "--ray-address auto places rollout workers; add --workers N" in _flat(err)
    code, _, err = run_cli(capsys, "train", "ppo", *TINY, "--async-rollouts", "--run-dir", tmp_path / "r")
    assert code == 2 and "--async-rollouts runs the envs on asynchronous rollout workers; add --workers N" in _flat(err)
    no_async = dataclasses.replace(ppo, name="sync-only", agent_cls=type("SyncOnly", (), {"remote_envs": True}))
    with pytest.raises(ValueError, match="sync-only has no asynchronous learner.*agents that have one: ppo"):
        check_rollout_workers(no_async, PPOConfig(num_envs=4), RunConfig(workers=2, async_rollouts=True))
    code, _, err = run_cli(capsys, "train", "ppo", *TINY, "--workers", "2", "--async-rollouts", "--normalize-reward",
                           "--run-dir", tmp_path / "r")
    assert code == 2 and "--async-rollouts with --normalize-reward" in _flat(err) and "--no-normalize-reward" in _flat(err)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as without the package
    code, _, err = run_cli(capsys, "train", "ppo", *TINY, "--workers", "2", "--run-dir", tmp_path / "r")
    assert code == 2 and "pip install 'rlsuite[distributed]'" in _flat(err)
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------- synchronous mode on Ray


def _ppo(env, steps: int) -> PPO:
    seed_everything(0)
    agent = PPO(PPOConfig(num_envs=4, num_steps=32, num_minibatches=2, update_epochs=2), env.single_observation_space,
                env.single_action_space)
    return agent.learn(env, steps, seed=0)


def test_ppo_on_workers_ends_bit_identical_to_the_local_env(ray_local):
    local_env = make_vec_env("CartPole-v1", 4, seed=0)
    local = _ppo(local_env, 3 * 128)
    env = make_remote_vec_env("CartPole-v1", 4, workers=2, seed=0)
    try:
        assert env.exact_resume
        remote = _ppo(env, 3 * 128)
        _assert_identical(_tensors(local.state_dict()), _tensors(remote.state_dict()))
        _assert_identical(_tensors(local.training_state(local_env)), _tensors(remote.training_state(env)))
        assert local.training_state(local_env)["env"]["seed_rng"] == remote.training_state(env)["env"]["seed_rng"]
        with pytest.raises(AssertionError, match="invalid"):  # an env's own error, raised in a worker, comes back as itself
            env.step(torch.full((4,), 7))
        ray_local.kill(env.env._workers.actors[1])
        with pytest.raises(RuntimeError, match="(?s)a rollout worker died.*--resume"):
            for _ in range(100):  # the kill takes effect within moments
                env.step(torch.zeros(4, dtype=torch.int64))
                time.sleep(0.05)
    finally:
        env.close()


def test_a_local_checkpoint_resumes_on_workers_exactly(ray_local, capsys, tmp_path):
    local = tmp_path / "local"
    code, _, err = run_cli(capsys, "train", "ppo", *TINY, "--total-steps", "256", "--run-dir", local)
    assert code == 0, err
    resumed = tmp_path / "resumed"
    shutil.copytree(local, resumed)
    code, out, err = run_cli(capsys, "train", "ppo", "--resume", resumed / "checkpoints" / "step_000000128", "--workers", "2")
    assert code == 0, err
    assert "steps=256" in out
    a, _ = load_checkpoint(local / "checkpoints" / "final")
    b, meta = load_checkpoint(resumed / "checkpoints" / "final")
    assert meta["run"]["workers"] == 2
    _assert_identical(_tensors(a), _tensors(b))


def _trajectory(env, actions: list[torch.Tensor]) -> list[torch.Tensor]:
    out = []
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        out += [obs, reward, terminated, truncated, info["final_obs"], info["episode_return"], info["reward_torque"]]
    return out


def test_a_batched_env_split_over_workers(ray_local):
    g = torch.Generator().manual_seed(0)
    actions = [torch.rand(4, 1, generator=g) * 4 - 2 for _ in range(7)]
    local = make_vec_env("rlsuite/Pendulum-v0", 2)
    one = make_remote_vec_env("rlsuite/Pendulum-v0", 2, workers=1)
    try:  # one worker: the local env
        assert torch.equal(local.reset(seed=3)[0], one.reset(seed=3)[0])
        for x, y in zip(_trajectory(local, [a[:2] for a in actions]), _trajectory(one, [a[:2] for a in actions]), strict=True):
            assert torch.equal(x, y)
    finally:
        one.close()
    env = make_remote_vec_env("rlsuite/Pendulum-v0", 4, workers=2)
    try:
        obs, _ = env.reset(seed=3)
        assert obs.shape == (4, 3) and not torch.equal(obs[:2], obs[2:])  # worker 1 has a seed of its own
        _trajectory(env, actions[:3])
        state = env.state_dict()
        after = _trajectory(env, actions[3:])
        env.load_state_dict(state)
        for x, y in zip(after, _trajectory(env, actions[3:]), strict=True):
            assert torch.equal(x, y)
        with pytest.raises(ValueError, match="written by a run with 3 rollout workers; this run has 2.*--workers 3"):
            env.load_state_dict({**state, "workers": 3})
        with pytest.raises(AttributeError, match="lives in the workers"):
            _ = env.horizon
    finally:
        env.close()
    check_resume_rollouts("CartPole-v1", {"run": {"workers": 2}}, 0)  # a Gymnasium env resumes with any number of workers
    with pytest.raises(CheckpointError, match="written with 2 rollout workers.*Resume it with --workers 2"):
        check_resume_rollouts("rlsuite/Pendulum-v0", {"run": {"workers": 2}}, 0)


def test_async_ppo_trains_on_workers_with_stale_policies_and_resumes(ray_local, capsys, tmp_path):
    run = tmp_path / "async"
    code, out, err = run_cli(capsys, "train", "ppo", *TINY, "--num-steps", "16", "--total-steps", "256", "--workers", "2",
                             "--async-rollouts", "--run-dir", run)
    assert code == 0, err
    assert "steps=256" in out
    with open(run / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("rollout/policy_lag")]
    assert len(rows) == 8  # 256 steps in batches of 16 steps x 2 envs of one worker
    assert [int(float(r["step"])) for r in rows] == list(range(32, 257, 32))
    assert all(0 <= float(r["rollout/policy_lag"]) <= 2 for r in rows)  # at most the other worker's batch in between
    assert all(0.5 < float(r["train/rho_mean"]) < 2.0 and float(r["train/value_loss"]) > 0 for r in rows)
    code, out, err = run_cli(capsys, "train", "ppo", "--resume", run, "--total-steps", "320")
    assert code == 0, err
    assert "steps=320" in out and "keep no env state in a checkpoint" in _flat(err)
    code, _, err = run_cli(capsys, "train", "ppo", "--resume", run, "--total-steps", "384", "--no-async-rollouts")
    assert code == 2 and "no env state to continue synchronously" in _flat(err)


def test_a_local_ray_listens_on_loopback_only(ray_local):
    """Every TCP socket that the local Ray's processes (GCS, raylet, workers) listen on is a loopback address, and
    the variable that made it so does not outlive the start."""
    from rlsuite.core.ray_setup import LOCAL_ONLY_ENV, is_loopback, listening_addresses

    @ray_local.remote
    def ping() -> int:  # a worker process, so that workers' servers are counted too
        return os.getpid()

    assert ray_local.get(ping.remote()) != os.getpid()
    listening = listening_addresses()
    assert len(listening) >= 3, listening  # GCS, raylet, object manager at least
    exposed = [(a, port, pid) for a, port, pid in listening if not is_loopback(a)]
    assert not exposed, f"sockets on non-loopback addresses: {exposed}"
    assert ray_local.util.get_node_ip_address() == "127.0.0.1"
    assert LOCAL_ONLY_ENV not in os.environ


@pytest.mark.parametrize("address, expected", [("127.0.0.1", True), ("::1", True), ("::ffff:127.0.0.1", True),
                                               ("0.0.0.0", False), ("::", False), ("192.0.2.2", False)])
def test_is_loopback(address, expected):
    from rlsuite.core.ray_setup import is_loopback

    assert is_loopback(address) is expected



def test_a_local_ray_that_is_not_on_loopback_is_shut_down_with_an_error():
    """Where a Ray version ignores the single-machine mode and starts on the machine's address, init_ray stops it and
    says so (a fake ray module: nothing is started)."""
    import types

    from rlsuite.core.ray_setup import init_ray

    calls = []
    fake = types.SimpleNamespace(__version__="9.9", is_initialized=lambda: False, init=lambda **kw: calls.append("init"),
                                 shutdown=lambda: calls.append("shutdown"),
                                 util=types.SimpleNamespace(get_node_ip_address=lambda: "192.0.2.7"))
    with pytest.raises(RuntimeError, match=r"started on 192\.0\.2\.7, not on the loopback interface \(Ray 9\.9"):
        init_ray(fake, None, 2)
    assert calls == ["init", "shutdown"]
