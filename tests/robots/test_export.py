"""Exporters: ONNX and TorchScript artifacts reproduce the torch policy (normaliser and scaling inside)."""

import gymnasium as gym
import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from rlsuite.agents.ppo import PPO, PPOConfig  # noqa: E402
from rlsuite.agents.sac import SAC, SACConfig  # noqa: E402
from rlsuite.robots.export import ParityError, export_policy, load_runner, sb3_deploy_module, verify_parity  # noqa: E402

OBS = gym.spaces.Box(-np.inf, np.inf, (5,), np.float32)
BOX = gym.spaces.Box(np.array([-2.0, -0.5], np.float32), np.array([2.0, 1.0], np.float32))


def agents():
    torch.manual_seed(0)
    ppo = PPO(PPOConfig(normalize_obs=True), OBS, BOX)
    ppo.policy.obs_norm.update(torch.randn(100, 5) * 4 + 2)  # non-trivial statistics must travel inside the artifact
    ppo.policy.head.log_std.data.fill_(-1.0)
    with torch.no_grad():
        ppo.policy.head.mean.weight.mul_(50)  # large means: the clip to the bounds matters
    return {"ppo-box": ppo, "sac": SAC(SACConfig(normalize_obs=True), OBS, BOX), "ppo-discrete": PPO(PPOConfig(), OBS, gym.spaces.Discrete(3))}


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("name", ["ppo-box", "sac", "ppo-discrete"])
def test_exported_policy_matches_the_agent(tmp_path, fmt, name):
    agent = agents()[name]
    path, diff = export_policy(agent.deploy_module(), tmp_path / f"p.{'onnx' if fmt == 'onnx' else 'pt'}", fmt, 5, {"algo": name})
    assert diff <= 1e-5 and not list(tmp_path.glob("*.tmp"))
    obs = np.random.default_rng(1).standard_normal((64, 5)).astype(np.float32) * 3
    ours = agent.act(torch.as_tensor(obs), deterministic=True).numpy()
    np.testing.assert_allclose(load_runner(path)(obs), ours, atol=1e-5)
    if name != "ppo-discrete":
        assert (ours >= BOX.low - 1e-6).all() and (ours <= BOX.high + 1e-6).all()


def test_parity_failure_is_reported_and_nothing_is_left(tmp_path):
    a, b = agents()["sac"], SAC(SACConfig(), OBS, BOX)
    path, _ = export_policy(a.deploy_module(), tmp_path / "a.onnx", "onnx", 5)
    with pytest.raises(ParityError, match="differs from the torch policy by up to"):
        verify_parity(b.deploy_module(), path, 5)
    with pytest.raises(ValueError, match="allowed: onnx, torchscript"):
        export_policy(a.deploy_module(), tmp_path / "a.bin", "tflite", 5)


@pytest.mark.parametrize("algo", ["PPO", "SAC"])
def test_stable_baselines3_models_export_with_their_predict_semantics(tmp_path, algo):
    import stable_baselines3 as sb3
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    venv = VecNormalize(DummyVecEnv([lambda: gym.make("Pendulum-v1")]), norm_reward=False)
    model = getattr(sb3, algo)("MlpPolicy", venv, seed=0, device="cpu")
    venv.obs_rms.mean[:] = [0.3, -0.2, 1.0]
    venv.obs_rms.var[:] = [0.5, 2.0, 9.0]
    module = sb3_deploy_module(model, venv)
    path, diff = export_policy(module, tmp_path / "sb3.onnx", "onnx", 3)
    raw = np.random.default_rng(0).uniform(-8, 8, (32, 3)).astype(np.float32)
    expected, _ = model.predict(venv.normalize_obs(raw), deterministic=True)
    np.testing.assert_allclose(load_runner(path)(raw), expected, atol=1e-5)
