"""STL environments: conformance, dynamics, rewards, Gymnasium views, exact resume."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import rlsuite.envs  # noqa: F401  (registers the ids)
from rlsuite.envs.stl.envs import STLVecEnv, make_task
from tests.core.test_vec_env import run_conformance

DYNAMICS = ["Linear", "Unicycle", "Quadrotor", "Panda", "Ant"]


@pytest.mark.parametrize("dynamics", DYNAMICS)
def test_conformance_and_episode_end(dynamics):
    env = STLVecEnv(dynamics, num_envs=6, family="mixed", task_seed=3, horizon=20)
    run_conformance(env, steps=50)
    env.reset(seed=0)
    for k in range(19):
        _, r, term, trunc, info = env.step(torch.zeros(6, env.dyn.action_dim))
        assert not trunc.any()
        assert term.all() == (k == 18)
    assert torch.equal(info["success"], info["robustness"] > 0) and torch.equal(r, info["robustness"])


@pytest.mark.parametrize("dynamics", DYNAMICS)
def test_gymnasium_ids_single_and_vector(dynamics):
    env_id = f"rlsuite/STL-{dynamics}-v0"
    single = gym.make(env_id, family="reach", task_seed=0)
    check_env(single.unwrapped, skip_render_check=True)
    vec = gym.make_vec(env_id, num_envs=4, vectorization_mode="vector_entry_point", family="reach", task_seed=0)
    obs, _ = vec.reset(seed=0)
    assert obs.shape == (4, *single.observation_space.shape)


def test_linear_dynamics_and_signals_are_exact():
    env = STLVecEnv("Linear", num_envs=2, spec="F[0,5](d0 <= 0.5)", objects=[(1.0, 0.0, 0.5)], horizon=8)
    env.reset(options={"state": torch.tensor([[0.0, 0.0], [4.9, 0.0]])})
    env.step(torch.tensor([[1.0, 0.0], [1.0, 2.0]]))  # the second action is clipped to (1, 1), position to the arena
    torch.testing.assert_close(env.state, torch.tensor([[0.5, 0.0], [5.0, 0.5]]))
    torch.testing.assert_close(env.trace[:, 1], torch.tensor([[0.5, 0.0, 0.5], [5.0, 0.5, (16 + 0.25) ** 0.5]]))


def test_unicycle_heading_and_speed_limits():
    env = STLVecEnv("Unicycle", num_envs=1, spec="x > 0", horizon=8)
    env.reset(options={"state": torch.tensor([[0.0, 0.0, 0.0, 1.9]])})
    env.step(torch.tensor([[1.0, 1.0]]))
    x, y, th, v = env.state[0].tolist()
    assert x == pytest.approx(0.95) and y == 0.0 and th == pytest.approx(0.5) and v == pytest.approx(2.0)


def test_quadrotor_speed_is_bounded():
    env = STLVecEnv("Quadrotor", num_envs=3, spec="z > 1", horizon=30)
    env.reset(seed=0)
    for _ in range(10):
        env.step(torch.ones(3, 3))
        assert (torch.linalg.vector_norm(env.state[:, 3:], dim=1) <= 2.0 + 1e-5).all()


def test_panda_forward_kinematics_matches_published_poses_and_limits_hold():
    from rlsuite.envs.stl.envs import PANDA_Q_HIGH, PANDA_Q_LOW, PANDA_READY, panda_flange_position

    q = torch.tensor([[0.0] * 7, list(PANDA_READY)], dtype=torch.float64)
    # zero pose: the flange 0.088 m forward and 0.926 m up; ready pose: (0.3069, 0, 0.5903), i.e. the
    # hand's tool point (0.1034 m below the flange) at the familiar (0.307, 0, 0.487)
    torch.testing.assert_close(panda_flange_position(q), torch.tensor([[0.088, 0.0, 0.926], [0.30689, 0.0, 0.59028]], dtype=torch.float64),
                               atol=1e-4, rtol=0)
    env = STLVecEnv("Panda", num_envs=2, spec="z < 0.6", horizon=40)
    env.reset(seed=0)
    for _ in range(30):
        env.step(torch.ones(2, 7))
    assert (env.state <= torch.tensor(PANDA_Q_HIGH) + 1e-6).all() and (env.state >= torch.tensor(PANDA_Q_LOW) - 1e-6).all()
    assert env.trace.shape[2] == 3  # x, y (task units) and z (metres)


def test_ant_signals_are_the_mujoco_torso_position():
    env = STLVecEnv("Ant", num_envs=2, spec="F(x > 1)", horizon=10)
    env.reset(seed=0)
    for _ in range(5):
        env.step(torch.rand(2, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    for i in range(2):
        qpos = env.dyn.venv.envs[i].unwrapped.data.qpos[:2]
        np.testing.assert_allclose(env.trace[i, 5, :2].numpy(), qpos / 0.5, atol=1e-5)


def test_dense_rewards_telescope_to_the_final_robustness():
    dense = STLVecEnv("Unicycle", num_envs=5, family="chain", task_seed=2, horizon=24, reward_mode="dense")
    dense.reset(seed=1)
    start_hold = dense._rho_hold.clone()
    g = torch.Generator().manual_seed(0)
    total = torch.zeros(5)
    for _ in range(23):
        _, r, term, _, info = dense.step(torch.rand(5, 2, generator=g) * 2 - 1)
        total += r
    assert term.all()
    torch.testing.assert_close(total, info["robustness"] - start_hold, atol=1e-4, rtol=0)


def test_terminal_and_dense_envs_see_the_same_trajectory():
    envs = [STLVecEnv("Linear", num_envs=3, family="until", task_seed=5, horizon=16, reward_mode=m) for m in ("terminal", "dense")]
    for e in envs:
        e.reset(seed=7)
    actions = torch.rand(15, 3, 2, generator=torch.Generator().manual_seed(1)) * 2 - 1
    outs = [[e.step(a) for a in actions][-1][4]["robustness"] for e in envs]
    torch.testing.assert_close(outs[0], outs[1])


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="allowed: Linear, Unicycle, Quadrotor"):
        STLVecEnv("Car")
    with pytest.raises(ValueError, match="signals are"):
        STLVecEnv("Linear", spec="F(d0 <= 1)")  # no objects given
    with pytest.raises(ValueError, match="allowed: terminal, dense"):
        STLVecEnv("Linear", reward_mode="sparse")


def test_exact_resume_mid_episode():
    a = STLVecEnv("Unicycle", num_envs=4, family="andor", task_seed=1, horizon=20, reward_mode="dense")
    a.reset(seed=3)
    acts = torch.rand(30, 4, 2, generator=torch.Generator().manual_seed(2)) * 2 - 1
    for u in acts[:7]:
        a.step(u)
    saved = a.state_dict()
    ref = [a.step(u) for u in acts[7:]]
    b = STLVecEnv("Unicycle", num_envs=4, family="andor", task_seed=1, horizon=20, reward_mode="dense")
    b.load_state_dict(saved)
    for (o1, r1, *_), u in zip(ref, acts[7:], strict=True):
        o2, r2, *_ = b.step(u)
        assert torch.equal(o1, o2) and torch.equal(r1, r2)


def test_custom_task_from_text():
    t = make_task(spec="F[0,10](x > 1) & G(y < 3)", horizon=32)
    assert t.centers.shape == (0, 2) and t.family == "custom"


@pytest.mark.gpu
def test_runs_on_cuda():
    env = STLVecEnv("Unicycle", num_envs=4096, device="cuda", family="mixed", task_seed=0, reward_mode="dense")
    obs, _ = env.reset(seed=0)
    for _ in range(63):
        obs, r, term, _, info = env.step(torch.rand(4096, 2, device="cuda") * 2 - 1)
    assert obs.device.type == "cuda" and term.all() and np.isfinite(info["robustness"].cpu().numpy()).all()
