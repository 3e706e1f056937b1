"""The MuJoCo simulated robot: protocol conformance and sim-to-sim parity with the Gymnasium env."""

import numpy as np
import pytest
import torch

from rlsuite.robots.interface import check_robot_conformance
from rlsuite.robots.sim import (
    INVERTED_PENDULUM_TASK,
    gym_contract,
    gym_sim_robot,
    run_episode,
    sim_task,
    sim_to_sim,
)

STABILISER = np.array([0.5, 8.0, 0.8, 1.2], np.float32)  # hand-tuned linear feedback that balances the pendulum


def test_simulated_robot_passes_the_conformance_suite():
    check_robot_conformance(gym_sim_robot("InvertedPendulum-v5"))


def test_contract_matches_the_gymnasium_env():
    c = gym_contract("InvertedPendulum-v5")
    assert c.obs_dim == 4 and c.action.type == "joint_torque" and c.action.scale == 100.0
    assert c.policy_dt == pytest.approx(0.04) and c.decimation == 2


@pytest.mark.parametrize("kind", ["stabiliser", "random", "exported"])
def test_sim_to_sim_returns_match_the_gymnasium_env(kind, tmp_path):
    if kind == "stabiliser":
        policy = lambda o: np.clip([STABILISER @ o], -3, 3)  # noqa: E731
    elif kind == "random":
        w = np.random.default_rng(3).normal(0, 1, (1, 4)).astype(np.float32)
        policy = lambda o: np.clip(w @ o, -3, 3)  # noqa: E731
    else:
        pytest.importorskip("onnxruntime")
        from rlsuite.robots.export import export_policy, load_runner

        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
        with torch.no_grad():
            net[2].weight.mul_(5)
        path, _ = export_policy(net, tmp_path / "p.onnx", "onnx", 4)
        run = load_runner(path)
        policy = lambda o: run(o[None])[0]  # noqa: E731
    gym_r, sim_r = sim_to_sim(policy, episodes=3, seed=0)
    assert gym_r == sim_r, (gym_r, sim_r)  # same start states, same physics, same actions: identical returns
    if kind == "stabiliser":
        assert min(gym_r) == 1000.0


def test_latency_and_noise_are_injected():
    robot = gym_sim_robot("InvertedPendulum-v5", latency_steps=2, noise_std=0.0)
    policy = lambda o: np.clip([STABILISER @ o], -3, 3)  # noqa: E731
    task, contract = INVERTED_PENDULUM_TASK, gym_contract("InvertedPendulum-v5")
    clean = run_episode(task, gym_sim_robot("InvertedPendulum-v5"), policy, contract, seed=1, max_steps=300)
    late = run_episode(task, robot, policy, contract, seed=1, max_steps=300)
    assert clean["return"] == 300 and late["return"] < clean["return"]  # two ticks of delay destabilise this controller


def test_unknown_sim_task_names_the_available_ones():
    with pytest.raises(ValueError, match="available: InvertedPendulum-v5, quadruped"):
        sim_task("cheetah")
