"""The batched torch pendulum with per-env parameters (CPU; one CUDA test marked gpu)."""

import numpy as np
import pytest
import torch

import rlsuite  # noqa: F401
from rlsuite.core.vec_env import make_vec_env
from rlsuite.envs.robust import PerturbedEnv, PerturbedPendulumVecEnv
from tests.core.test_vec_env import run_conformance

PARAMS = {"pole_mass": [0.5, 1.0, 2.0, 1.3], "pole_length": [1.5, 0.5, 1.0, 0.8], "gravity": [10.0, 5.0, 15.0, 9.81],
          "max_torque": [2.0, 1.0, 0.5, 2.0]}


def test_per_env_parameters_match_gymnasium_pendulums_with_the_same_constants():
    starts = np.array([[0.3, 0.1], [-2.0, 0.5], [3.0, -1.0], [1.0, 0.0]])
    vec = PerturbedPendulumVecEnv(num_envs=4, perturbation=PARAMS, dtype=torch.float64)
    vec.reset(seed=0, options={"state": torch.as_tensor(starts)})
    singles = []
    for i in range(4):
        e = PerturbedEnv("Pendulum-v1", perturbation={k: v[i] for k, v in PARAMS.items()})
        e.reset(seed=i)
        e.env.unwrapped.state = starts[i].copy()
        singles.append(e)
    rng = np.random.default_rng(0)
    for _ in range(60):
        a = rng.uniform(-2, 2, (4, 1))
        obs, rew, *_ = vec.step(torch.as_tensor(a))
        for i, e in enumerate(singles):
            o, r, *_ = e.step(a[i].astype(np.float32))
            np.testing.assert_allclose(obs[i].numpy(), o, atol=1e-4)
            assert rew[i].item() == pytest.approx(r, abs=1e-4)


def test_explicit_reset_values_last_one_episode_and_domain_randomisation_redraws_at_autoreset():
    env = PerturbedPendulumVecEnv(num_envs=3, max_episode_steps=5)
    _, info = env.reset(seed=0, options={"perturbation": {"pole_mass": torch.tensor([0.5, 1.5, 2.0])}})
    assert torch.equal(info["perturbation"]["pole_mass"], torch.tensor([0.5, 1.5, 2.0]))
    for _ in range(5):
        env.step(torch.zeros(3, 1))
    assert torch.equal(env.mass, torch.ones(3))  # back to nominal at the autoreset

    dr = PerturbedPendulumVecEnv(num_envs=64, max_episode_steps=5, domain_rand="pendulum-mass-length")
    _, info = dr.reset(seed=1)
    first = info["perturbation"]["pole_mass"].clone()
    assert ((first >= 0.5) & (first <= 2.0)).all() and first.unique().numel() == 64
    assert torch.equal(dr.length, info["perturbation"]["pole_length"])
    for _ in range(4):
        dr.step(torch.zeros(64, 1))
    assert torch.equal(dr.mass, first)  # kept within the episode
    dr.step(torch.zeros(64, 1))
    assert not torch.equal(dr.mass, first) and ((dr.mass >= 0.5) & (dr.mass <= 2.0)).all()
    _, again = dr.reset(seed=1)
    assert torch.equal(again["perturbation"]["pole_mass"], first)  # seeded


def test_delay_noise_and_exact_resume():
    kw = {"domain_rand": "action-obs-noise", "action_delay": 2, "max_episode_steps": 30}
    a, b = PerturbedPendulumVecEnv(num_envs=5, **kw), PerturbedPendulumVecEnv(num_envs=5, **kw)
    oa, _ = a.reset(seed=2)
    ob, _ = b.reset(seed=2)
    assert torch.equal(oa, ob)
    acts = torch.linspace(-2, 2, 5)[:, None]
    for _ in range(20):
        a.step(acts)
    c = PerturbedPendulumVecEnv(num_envs=5, **kw)
    c.load_state_dict(a.state_dict())
    for _ in range(25):  # crosses the autoreset (new draws, emptied delay buffer)
        x, y = a.step(acts), c.step(acts)
        assert torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) and torch.equal(x[4]["final_obs"], y[4]["final_obs"])

    # delay 2: zero torque for two steps, then the action of two steps before
    delayed = PerturbedPendulumVecEnv(num_envs=1, action_delay=2, dtype=torch.float64)
    plain = PerturbedPendulumVecEnv(num_envs=1, dtype=torch.float64)
    seq = [torch.tensor([[v]]) for v in (2.0, -1.0, 0.5, 1.0)]
    delayed.reset(seed=0)
    plain.reset(seed=0)
    for x, y in zip(seq, [torch.zeros(1, 1), torch.zeros(1, 1), *seq[:2]], strict=True):
        assert torch.equal(delayed.step(x)[0], plain.step(y)[0])


def test_conformance_and_reaching_it_through_make_vec_env():
    env = make_vec_env("rlsuite/Perturbed-v0", 6, env="rlsuite/Pendulum-v0", domain_rand="pendulum-mass-length-gravity",
                       obs_noise=0.01)
    assert isinstance(env, PerturbedPendulumVecEnv)
    run_conformance(env, steps=420)
    with pytest.raises(ValueError, match="one per env"):
        PerturbedPendulumVecEnv(num_envs=3, perturbation={"pole_mass": [1.0, 2.0]})
    with pytest.raises(ValueError, match="Did you mean 'pole_mass'"):
        PerturbedPendulumVecEnv(num_envs=2).reset(options={"perturbation": {"pole_mas": 1.0}})
    with pytest.raises(ValueError, match="must be > 0"):
        PerturbedPendulumVecEnv(num_envs=2, perturbation={"pole_length": torch.tensor([1.0, 0.0])})


@pytest.mark.gpu
def test_per_env_parameters_on_cuda_match_cpu():
    out = {}
    for device in ("cpu", "cuda"):
        env = PerturbedPendulumVecEnv(num_envs=4, device=device, perturbation=PARAMS, dtype=torch.float64)
        obs, _ = env.reset(seed=0, options={"state": torch.tensor([[0.3, 0.1], [-2.0, 0.5], [3.0, -1.0], [1.0, 0.0]])})
        assert env.mass.device.type == device
        for _ in range(50):
            obs, *_ = env.step(torch.full((4, 1), 0.7, device=device))
        out[device] = obs.cpu()
    torch.testing.assert_close(out["cpu"], out["cuda"], atol=1e-5, rtol=0)
    big = make_vec_env("rlsuite/Perturbed-v0", 4096, device="cuda", env="rlsuite/Pendulum-v0", domain_rand="pendulum-mass-length")
    obs, info = big.reset(seed=0)
    assert obs.device.type == "cuda" and info["perturbation"]["pole_mass"].device.type == "cuda"
    for _ in range(210):
        obs, *_ = big.step(torch.zeros(4096, 1, device="cuda"))
    assert torch.isfinite(obs).all()
