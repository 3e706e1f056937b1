"""The batched MuJoCo backend (rlsuite.envs.mujoco_batched) against Gymnasium's envs, bit for bit."""

import gymnasium as gym
import mujoco
import numpy as np
import pytest
import torch

import rlsuite  # noqa: F401  (registers envs)
from rlsuite.core.checkpoint import load_checkpoint, save_checkpoint
from rlsuite.core.vec_env import GymVecAdapter, make_vec_env
from rlsuite.envs.mujoco_batched import ENV_IDS, MujocoBatchedVecEnv
from tests.core.test_vec_env import run_conformance


def _hopper_actions(obs: torch.Tensor, rng: np.random.Generator, steady: np.ndarray) -> torch.Tensor:
    """Random actions for most envs (they fall: terminations); a noisy PD hold on the joints for the ``steady``
    rows (they stand for the whole 1000 steps: truncations). Obs layout: qpos[1:] (5) then qvel (6)."""
    o = obs.double().numpy()
    pd = np.clip(-5 * o[:, 2:5] - 0.5 * o[:, 8:11] + rng.uniform(-0.3, 0.3, (len(o), 3)), -1, 1)
    rand = rng.uniform(-1, 1, (len(o), 3))
    return torch.as_tensor(np.where(steady[:, None], pd, rand).astype(np.float32))


def _assert_same_step(ref: tuple, got: tuple, t: int) -> None:
    for name, x, y in zip(("obs", "reward", "terminated", "truncated"), ref[:4], got[:4], strict=True):
        assert x.dtype == y.dtype and torch.equal(x, y), f"step {t}: {name} differs by {(x.double() - y.double()).abs().max()}"
    for k in ("final_obs", "_final_obs", "episode_return", "episode_length"):
        assert torch.equal(ref[4][k], got[4][k]), f"step {t}: info[{k!r}] differs"


def test_hopper_whole_episodes_identical_to_the_gymnasium_adapter():
    """Same seed and actions: terminations (falls), 1000-step truncations and the autoresets after both agree exactly."""
    n = 4
    gym_env = make_vec_env("Hopper-v5", n, seed=7, mujoco_backend="gymnasium")
    ours = make_vec_env("Hopper-v5", n, seed=7, mujoco_backend="batched")
    assert isinstance(gym_env, GymVecAdapter) and isinstance(ours, MujocoBatchedVecEnv)
    assert ours.single_observation_space == gym_env.single_observation_space
    assert ours.single_action_space == gym_env.single_action_space
    obs_g, _ = gym_env.reset()
    obs_b, info_b = ours.reset()
    assert torch.equal(obs_g, obs_b)
    assert set(info_b) == {"x_position", "z_distance_from_origin"}
    rng = np.random.default_rng(0)
    steady = np.array([False, False, True, True])
    term = trunc = 0
    for t in range(1010):
        act = _hopper_actions(obs_b, rng, steady)
        ref, got = gym_env.step(act), ours.step(act)
        _assert_same_step(ref, got, t)
        obs_b = got[0]
        term += int(got[2].sum())
        trunc += int(got[3].sum())
        if got[3].any():
            assert t == 999 and bool(got[3][2]) and bool(got[3][3])  # the registered TimeLimit of 1000 steps
    assert term >= 10 and trunc == 2


def test_hopper_float64_physics_and_reward_terms_match_gymnasium_single_envs():
    """Started from Gymnasium envs' own reset states: qpos/qvel, reward terms and flags equal in float64, up to the fall."""
    n = 3
    refs = [gym.make("Hopper-v5") for _ in range(n)]
    starts = [r.reset(seed=10 + i)[0] for i, r in enumerate(refs)]
    ours = MujocoBatchedVecEnv("Hopper-v5", n)
    qpos = np.stack([r.unwrapped.data.qpos.copy() for r in refs])
    qvel = np.stack([r.unwrapped.data.qvel.copy() for r in refs])
    obs, _ = ours.reset(options={"qpos": qpos, "qvel": torch.as_tensor(qvel)})
    np.testing.assert_array_equal(obs.numpy(), np.stack(starts).astype(np.float32))
    rng = np.random.default_rng(1)
    alive = np.ones(n, dtype=bool)
    while alive.any():
        act = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
        _, rew, term, trunc, info = ours.step(torch.as_tensor(act))
        for i in np.flatnonzero(alive):
            o, r, te, tr, ri = refs[i].step(act[i])
            data = refs[i].unwrapped.data
            if not te:  # our env has reset it already; before that its state is Gymnasium's bit for bit
                np.testing.assert_array_equal(ours.qpos[i], data.qpos)
                np.testing.assert_array_equal(ours.qvel[i], data.qvel)
            np.testing.assert_array_equal(info["final_obs"][i].numpy(), o.astype(np.float32))
            for k in ("reward_forward", "reward_ctrl", "reward_survive", "x_position", "x_velocity", "z_distance_from_origin"):
                assert info[k][i].item() == ri[k], (k, info[k][i].item(), ri[k])
            assert rew[i].item() == np.float32(r) and bool(term[i]) == te and bool(trunc[i]) == tr
            alive[i] = not te
        terms = info["reward_forward"] + info["reward_ctrl"] + info["reward_survive"]
        torch.testing.assert_close(terms.float(), rew)


def test_ant_episodes_identical_to_the_gymnasium_adapter_with_a_short_time_limit():
    n = 2
    kw = {"max_episode_steps": 60}
    gym_env = make_vec_env("Ant-v5", n, seed=3, mujoco_backend="gymnasium", **kw)
    ours = make_vec_env("Ant-v5", n, seed=3, mujoco_backend="batched", **kw)
    assert ours.single_observation_space == gym_env.single_observation_space
    assert torch.equal(gym_env.reset()[0], ours.reset()[0])
    rng = np.random.default_rng(0)
    term = trunc = 0
    for t in range(150):
        act = torch.as_tensor(rng.uniform(-1, 1, (n, 8)).astype(np.float32))
        ref, got = gym_env.step(act), ours.step(act)
        _assert_same_step(ref, got, t)
        term += int(got[2].sum())
        trunc += int(got[3].sum())
        info = got[4]
        parts = info["reward_forward"] + info["reward_ctrl"] + info["reward_contact"] + info["reward_survive"]
        torch.testing.assert_close(parts.float(), got[1])
    assert term >= 1 and trunc >= 1


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_resume_is_bit_exact(env_id, tmp_path):
    """state_dict mid-episode (through checkpoint files), k steps, load into a fresh env, the same k steps: identical
    (autoresets included)."""
    n, nu = 3, {"Hopper-v5": 3, "Ant-v5": 8}[env_id]
    env = MujocoBatchedVecEnv(env_id, n, seed=5)
    env.reset()
    rng = np.random.default_rng(2)
    for _ in range(25):
        env.step(torch.as_tensor(rng.uniform(-1, 1, (n, nu)).astype(np.float32)))
    state = env.state_dict()
    acts = [torch.as_tensor(rng.uniform(-1, 1, (n, nu)).astype(np.float32)) for _ in range(60)]
    first = [env.step(a) for a in acts]
    assert any(bool(r[4]["_final_obs"].any()) for r in first), "no episode ended: the test would not cover resets"
    save_checkpoint(tmp_path / "ckpt", {"env": state})
    fresh = MujocoBatchedVecEnv(env_id, n, seed=999)
    fresh.load_state_dict(load_checkpoint(tmp_path / "ckpt")[0]["env"])
    for t, (a, ref) in enumerate(zip(acts, first, strict=True)):
        _assert_same_step(ref, fresh.step(a), t)
    assert torch.equal(fresh.state_dict()["physics"], env.state_dict()["physics"])
    # The solver's warm start is part of the saved state and it matters: restored cold, the physics drifts.
    cold = {**state, "physics": state["physics"].clone()}
    warm_at = mujoco_state_offset(fresh.model, "mjSTATE_WARMSTART")
    assert cold["physics"][:, warm_at : warm_at + fresh.model.nv].abs().sum() > 0
    cold["physics"][:, warm_at : warm_at + fresh.model.nv] = 0
    fresh.load_state_dict(cold)
    env.load_state_dict(state)
    for a in acts[:5]:
        fresh.step(a)
        env.step(a)
    assert not (np.array_equal(fresh.qpos, env.qpos) and np.array_equal(fresh.qvel, env.qvel))  # ~1e-15 apart


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_a_gymnasium_backend_checkpoint_continues_exactly_in_the_batched_env(env_id, tmp_path):
    """A run saved with the adapter (the default before the batched backend) resumes on the batched env: the state's
    episode seeds and actions since each reset are replayed, and the continuation equals the adapter's own."""
    n, nu = 3, {"Hopper-v5": 3, "Ant-v5": 8}[env_id]
    kw = {"max_episode_steps": 40} if env_id == "Ant-v5" else {}
    adapter = make_vec_env(env_id, n, seed=11, mujoco_backend="gymnasium", **kw)
    adapter.reset(seed=11)
    rng = np.random.default_rng(4)
    for _ in range(30):
        adapter.step(torch.as_tensor(rng.uniform(-1, 1, (n, nu)).astype(np.float32)))
    save_checkpoint(tmp_path / "ckpt", {"env": adapter.state_dict()})
    acts = [torch.as_tensor(rng.uniform(-1, 1, (n, nu)).astype(np.float32)) for _ in range(50)]
    first = [adapter.step(a) for a in acts]
    assert any(bool(r[4]["_final_obs"].any()) for r in first), "no episode ended: the test would not cover resets"
    batched = make_vec_env(env_id, n, seed=0, mujoco_backend="batched", **kw)
    batched.load_state_dict(load_checkpoint(tmp_path / "ckpt")[0]["env"])
    for t, (a, ref) in enumerate(zip(acts, first, strict=True)):
        _assert_same_step(ref, batched.step(a), t)
    with pytest.raises(ValueError, match="num_envs=2"):
        make_vec_env(env_id, 2, mujoco_backend="batched", **kw).load_state_dict(adapter.state_dict())


def mujoco_state_offset(model, name: str) -> int:
    """Offset of one state component inside ``mjSTATE_INTEGRATION`` (components are stored in bit order)."""
    target = int(getattr(mujoco.mjtState, name))
    full = int(mujoco.mjtState.mjSTATE_INTEGRATION)
    offset, bit = 0, 1
    while bit < target:
        if full & bit:
            offset += mujoco.mj_stateSize(model, bit)
        bit <<= 1
    return offset


def test_conformance_threads_and_reward_terms():
    env = MujocoBatchedVecEnv("Hopper-v5", 5, seed=0)
    run_conformance(env, steps=120)
    threaded = MujocoBatchedVecEnv("Hopper-v5", 5, seed=0, num_threads=2)
    try:
        env.reset(seed=1)
        threaded.reset(seed=1)
        rng = np.random.default_rng(0)
        for t in range(80):
            a = torch.as_tensor(rng.uniform(-1, 1, (5, 3)))  # float64 actions are taken too
            _assert_same_step(env.step(a), threaded.step(a), t)
    finally:
        threaded.close()


def test_bad_inputs_fail_with_clear_messages():
    with pytest.raises(ValueError, match=r"mujoco_backend must be one of \('auto', 'gymnasium', 'batched'\) \('batched' supports Hopper-v5, Ant-v5\), got 'fast'"):
        make_vec_env("Hopper-v5", 2, mujoco_backend="fast")
    with pytest.raises(ValueError, match="supports Hopper-v5, Ant-v5, got 'Walker2d-v5'"):
        make_vec_env("Walker2d-v5", 2, mujoco_backend="batched")
    with pytest.raises(ValueError, match="takes no argument 'xml_file'.*ctrl_cost_weight"):
        make_vec_env("Hopper-v5", 2, mujoco_backend="batched", xml_file="x.xml")
    with pytest.raises(ValueError, match="takes no argument 'render_mode'"):
        make_vec_env("Hopper-v5", 2, mujoco_backend="batched", render_mode="rgb_array")
    with pytest.raises(ValueError, match="num_envs must be an int >= 1, got 0"):
        MujocoBatchedVecEnv("Hopper-v5", 0)
    with pytest.raises(ValueError, match="num_threads must be an int >= 1"):
        MujocoBatchedVecEnv("Hopper-v5", 2, num_threads=0)
    with pytest.raises(ValueError, match="max_episode_steps must be an int >= 1"):
        MujocoBatchedVecEnv("Hopper-v5", 2, max_episode_steps=0)
    env = MujocoBatchedVecEnv("Hopper-v5", 2)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(torch.zeros(2, 3))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action has shape \(2, 2\).*takes \(2, 3\)"):
        env.step(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="dtype int64; allowed: float32, float64"):
        env.step(torch.zeros(2, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"NaN or infinite entries in envs \[1\]"):
        env.step(torch.tensor([[0.0, 0.0, 0.0], [0.0, float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="allowed are 'qpos'"):
        env.reset(options={"qpos": np.zeros((2, 6))})
    with pytest.raises(ValueError, match=r"'qvel' has shape \(2, 5\), expected \(2, 6\)"):
        env.reset(options={"qpos": np.zeros((2, 6)), "qvel": np.zeros((2, 5))})
    with pytest.raises(ValueError, match="num_envs=3"):
        MujocoBatchedVecEnv("Hopper-v5", 3).load_state_dict(env.state_dict())


@pytest.mark.gpu
def test_cuda_tensors_equal_the_cpu_ones():
    cpu = MujocoBatchedVecEnv("Hopper-v5", 3, seed=0)
    gpu = MujocoBatchedVecEnv("Hopper-v5", 3, device="cuda", seed=0)
    assert torch.equal(cpu.reset()[0], gpu.reset()[0].cpu())
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = torch.as_tensor(rng.uniform(-1, 1, (3, 3)).astype(np.float32))
        ref, got = cpu.step(a), gpu.step(a.cuda())
        assert all(x.device.type == "cuda" for x in got[:4]) and got[4]["final_obs"].device.type == "cuda"
        assert all(torch.equal(x, y.cpu()) for x, y in zip(ref[:4], got[:4], strict=True))
