"""The 12-joint quadruped: model, balance env, one observation path for training and deploy, sim-to-sim."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import rlsuite.envs  # noqa: F401  (registers rlsuite/Quadruped-Balance-v0)
from rlsuite.robots.interface import check_robot_conformance
from rlsuite.robots.quadruped import (
    DEFAULT_Q,
    JOINT_NAMES,
    QUADRUPED_TASK,
    STAND_HEIGHT,
    QuadrupedBalanceEnv,
    quadruped_contract,
    quadruped_sim_robot,
)
from rlsuite.robots.sim import run_episode, sim_to_sim
from rlsuite.robots.types import Mode, RobotCommand


def mlp_policy(seed: int, gain: float = 1.0):
    """A fixed random MLP ``(42,) -> (12,)`` in [-1, 1]: deterministic and far from the default pose."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(42, 64), torch.nn.Tanh(), torch.nn.Linear(64, 12), torch.nn.Tanh())
    with torch.no_grad():
        net[2].weight.mul_(gain)

    def policy(obs):
        with torch.no_grad():
            return net(torch.as_tensor(obs, dtype=torch.float32)).numpy()

    return policy


def test_model_has_twelve_position_controlled_joints_and_passes_conformance():
    robot = quadruped_sim_robot()
    assert robot.info.joint_names == list(JOINT_NAMES) and len(JOINT_NAMES) == 12
    assert robot.model.nu == 12 and robot.model.nq == 7 + 12  # free base + 12 hinges
    check_robot_conformance(robot)


def test_default_pose_stands_and_the_imu_reads_the_base():
    robot = quadruped_sim_robot()
    robot.connect()
    info = robot.info
    hold = RobotCommand(Mode.POSITION, info.array("q_default"), np.zeros(12, np.float32), info.array("kp"), info.array("kd"),
                        np.zeros(12, np.float32))
    for _ in range(100):  # 2 s of PD toward the default pose
        robot.send_command(hold)
    state = robot.read_state(0.1)
    assert 0.2 < robot.data.qpos[2] < STAND_HEIGHT + 0.02
    np.testing.assert_allclose(state.quat_wxyz, robot.data.qpos[3:7], atol=1e-6)
    np.testing.assert_allclose(state.gyro, robot.data.qvel[3:6], atol=1e-6)
    assert abs(state.quat_wxyz[0]) > 0.99  # still level


def test_env_passes_the_gymnasium_checker_and_lays_out_the_contract():
    env = gym.make("rlsuite/Quadruped-Balance-v0")
    check_env(env.unwrapped, skip_render_check=True)
    c = quadruped_contract()
    assert env.observation_space.shape == (c.obs_dim,) == (42,)
    assert [t.name for t in c.obs_terms] == ["projected_gravity", "gyro", "q", "dq", "last_action"]
    assert c.action.default_q == tuple(DEFAULT_Q[j.split("_")[1]] for j in JOINT_NAMES)
    assert c.policy_dt == pytest.approx(0.02) and c.decimation == 4


def test_pushes_are_drawn_at_reset_and_change_the_trunk_velocity():
    env = QuadrupedBalanceEnv(push_vel=0.8)
    _, info = env.reset(seed=3)
    pushes = info["pushes"]
    assert [t for t, _, _ in pushes] == [100, 200, 300, 400]
    assert all(0.4 - 1e-9 <= math.hypot(vx, vy) <= 0.8 + 1e-9 for _, vx, vy in pushes)
    for _ in range(100):
        env.step(np.zeros(12, np.float32))
    v_before = env.robot.data.qvel[:2].copy()
    env.step(np.zeros(12, np.float32))  # tick 100: the first push
    assert np.linalg.norm(env.robot.data.qvel[:2] - v_before) > 0.2
    _, info2 = env.reset(seed=3)
    assert info2["pushes"] == pushes  # seeded
    assert QuadrupedBalanceEnv(push_vel=0.0).reset(seed=3)[1]["pushes"] == []


def test_train_and_deploy_paths_build_identical_observations():
    """The env's observations and those the control loop feeds the policy on the simulated robot agree
    bit for bit, tick by tick (same start state, same pushes, same policy)."""
    base = mlp_policy(1)
    seen: dict[str, list[np.ndarray]] = {"train": [], "deploy": []}

    def recording(path):
        def policy(obs):
            seen[path].append(np.array(obs, copy=True))
            return base(obs)
        return policy

    env = QuadrupedBalanceEnv()
    obs, info = env.reset(seed=5)
    pol = recording("train")
    for _ in range(60):
        obs, _, term, _, _ = env.step(pol(obs))
        if term:
            break
    robot = quadruped_sim_robot()
    run_episode(QUADRUPED_TASK, robot, recording("deploy"), quadruped_contract(), info["qpos"], info["qvel"], info["pushes"],
                max_steps=len(seen["train"]))
    assert len(seen["deploy"]) == len(seen["train"]) > 10
    for t, (a, b) in enumerate(zip(seen["train"], seen["deploy"], strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"tick {t}")


@pytest.mark.parametrize("seed", [0, 1])
def test_sim_to_sim_returns_match_with_pushes(seed):
    """A fixed policy through contract + observation builder + state machine + safety chain + loop on
    the simulated robot earns the training env's return on the same starts and pushes."""
    gym_r, sim_r = sim_to_sim(mlp_policy(seed, gain=0.5), "quadruped", episodes=2, seed=seed)
    assert len(gym_r) == 2
    for g, s in zip(gym_r, sim_r, strict=True):
        assert abs(s - g) <= 0.03 * abs(g) + 1e-6, (gym_r, sim_r)


def test_sensor_latency_changes_the_run():
    policy = mlp_policy(2, gain=0.5)
    env = QuadrupedBalanceEnv()
    _, info = env.reset(seed=0)
    args = (info["qpos"], info["qvel"], info["pushes"])
    clean = run_episode(QUADRUPED_TASK, quadruped_sim_robot(), policy, quadruped_contract(), *args, max_steps=100)
    late = run_episode(QUADRUPED_TASK, quadruped_sim_robot(latency_steps=2), policy, quadruped_contract(), *args, max_steps=100)
    assert clean["ticks"] == late["ticks"] == 100 and clean["return"] != late["return"]


def _returns(policy, seeds):
    env = QuadrupedBalanceEnv()
    out = []
    for s in seeds:
        obs, _ = env.reset(seed=s)
        total, done = 0.0, False
        while not done:
            obs, r, term, trunc, _ = env.step(policy(obs))
            total += r
            done = term or trunc
        out.append(total)
    return np.array(out)


def test_ppo_learns_to_balance_better_than_holding_the_default_pose(monkeypatch, tmp_path):
    """PPO (the env's preset) for 100k steps beats the PD controller that holds the default pose, which
    sags under the robot's weight and rocks after each push."""
    from rlsuite.agents.train import load_agent
    from tests.agents.helpers import train_run

    train_run(monkeypatch, "ppo", tmp_path / "run", env="rlsuite/Quadruped-Balance-v0", total_steps=100_000, seed=0)
    agent, _ = load_agent(tmp_path / "run", device="cpu")
    seeds = range(1000, 1010)
    trained = _returns(lambda o: agent.act(torch.as_tensor(o)[None], deterministic=True)[0].numpy(), seeds)
    hold = _returns(lambda o: np.zeros(12, np.float32), seeds)
    assert np.median(trained) > np.median(hold) + 20, (trained, hold)
