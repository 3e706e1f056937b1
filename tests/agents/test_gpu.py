"""CUDA paths: agents on batched torch envs that live on the GPU (skipped without a GPU)."""

import pytest
import torch

from rlsuite.agents.ppo import PPO, PPOConfig
from rlsuite.agents.sac import SAC, SACConfig
from rlsuite.core.vec_env import make_vec_env

pytestmark = pytest.mark.gpu


def test_ppo_on_cuda_batched_pendulum_learns():
    env = make_vec_env("rlsuite/Pendulum-v0", num_envs=1024, device="cuda", seed=0)
    cfg = PPOConfig(num_envs=1024, num_steps=32, num_minibatches=8, update_epochs=5, gamma=0.9, learning_rate=1e-3)
    torch.manual_seed(0)
    agent = PPO(cfg, env.single_observation_space, env.single_action_space, "cuda")
    agent.learn(env, 2_000_000, seed=0)
    assert next(agent.policy.parameters()).device.type == "cuda"
    obs, _ = env.reset(seed=1)
    total = torch.zeros(1024, device="cuda")
    for _ in range(200):
        obs, r, _, _, _ = env.step(agent.act(obs, deterministic=True))
        total += r
    assert total.mean().item() > -400


def test_sac_update_on_cuda():
    env = make_vec_env("rlsuite/Pendulum-v0", num_envs=16, device="cuda", seed=0)
    agent = SAC(SACConfig(num_envs=16, learning_starts=256, batch_size=128), env.single_observation_space, env.single_action_space, "cuda")
    agent.learn(env, 2048, seed=0)
    assert agent.buffer.obs.device.type == "cuda" and agent.updates > 0


def test_bq_nco_decodes_on_cuda_like_on_cpu():
    from rlsuite.agents.bq_nco import BQNCO, BQNCOConfig
    from rlsuite.envs.cop.env import COPEnv
    from rlsuite.envs.cop.problems import generate, validate

    for problem in ("tsp", "cvrp"):
        inst = generate(problem, 64, 30, seed=0)
        cpu = BQNCO(BQNCOConfig(problem=problem, dim=32, layers=2, heads=4, ff=64), "cpu", seed=0)
        gpu = BQNCO(cpu.cfg, "cuda", seed=0)
        gpu.policy.load_state_dict(cpu.policy.state_dict())
        sols = gpu.solve(COPEnv(problem, {k: v.cuda() for k, v in inst.items()}))
        validate(problem, inst, sols)
        same = sum(a == b for a, b in zip(sols, cpu.solve(COPEnv(problem, inst)), strict=True))
        assert same >= 60  # float differences may flip a near-tie on a few instances


def test_uni_o4_offline_and_online_on_cuda():
    import numpy as np

    from rlsuite.agents.uni_o4 import UniO4, UniO4Config
    from rlsuite.envs.termination import termination_fn
    from tests.offline.helpers import mixed_controller_episodes

    eps = mixed_controller_episodes(2000, seed=0)
    arrays = {"observations": np.concatenate([e["observations"][:-1] for e in eps]), "actions": np.concatenate([e["actions"] for e in eps]),
              "rewards": np.concatenate([e["rewards"] for e in eps]), "next_observations": np.concatenate([e["observations"][1:] for e in eps]),
              "terminals": np.concatenate([e["terminations"] for e in eps]), "timeouts": np.concatenate([e["truncations"] for e in eps])}
    cfg = UniO4Config(improve_steps=50, ope_every=25, ope_horizon=20, dynamics_max_epochs=3, online_num_steps=256, online_minibatches=2)
    agent = UniO4(cfg, 4, 1, "cuda", seed=0, termination=termination_fn("InvertedPendulum-v5"))
    agent.set_data(arrays, np.array([-3.0]), np.array([3.0]))
    agent.learn_offline(100)
    agent.improve(50)
    agent.learn_online("InvertedPendulum-v5", 512)
    assert next(agent.ppo.policy.parameters()).device.type == "cuda" and agent.ppo.global_step == 512
    assert agent.act(arrays["observations"][:3]).shape == (3, 1)


@pytest.mark.parametrize("algo", ["rlpd", "expo"])
def test_rlpd_and_expo_online_on_cuda_resume_exactly(algo):
    """Everything on the device (replay, generators, sampler); a state round trip continues bit for bit."""
    import copy

    import numpy as np

    from rlsuite.agents.expo import EXPO, EXPOConfig
    from rlsuite.agents.rlpd import RLPD, RLPDConfig
    from tests.offline.helpers import mixed_controller_episodes

    eps = mixed_controller_episodes(2000, seed=0)
    arrays = {"observations": np.concatenate([e["observations"][:-1] for e in eps]), "actions": np.concatenate([e["actions"] for e in eps]),
              "rewards": np.concatenate([e["rewards"] for e in eps]), "next_observations": np.concatenate([e["observations"][1:] for e in eps]),
              "terminals": np.concatenate([e["terminations"] for e in eps])}
    small = dict(start_training=20, batch_size=64, num_qs=3, hidden_sizes=(32, 32))

    def make():
        agent = (EXPO(EXPOConfig(**small, denoiser_width=32, denoiser_blocks=1, time_dim=8), 4, 1, "cuda", seed=0) if algo == "expo"
                 else RLPD(RLPDConfig(**small), 4, 1, "cuda", seed=0))
        agent.set_data(arrays, np.array([-3.0]), np.array([3.0]))
        return agent

    a = make()
    a.learn_online("InvertedPendulum-v5", 60, seed=0, total_steps=120)
    state = copy.deepcopy(a.state_dict())  # as a checkpoint would be: no tensor shared with the live agent
    b = make()
    b.load_state_dict(state)
    a.learn_online("InvertedPendulum-v5", 60, seed=60, total_steps=120)
    b.learn_online("InvertedPendulum-v5", 60, seed=60, total_steps=120)
    assert a.data.online.obs.device.type == "cuda" and a.updates == b.updates > 0
    for (k, x), (_, y) in zip(a.critic.state_dict().items(), b.critic.state_dict().items(), strict=True):
        assert torch.equal(x, y), k
    obs = torch.as_tensor(arrays["observations"][:5], device="cuda")
    assert torch.equal(a.act(obs), b.act(obs)) and a.act(obs).device.type == "cuda"
