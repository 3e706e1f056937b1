"""Our SAC update against Stable-Baselines3's: from the same weights, on the same minibatches, with the same Gaussian
noise, both give the same critics, actor and temperature (up to SB3's approximate tanh correction,
``log(1 - tanh(u)^2 + 1e-6)`` where ours is exact, and float rounding). So a difference in samples-to-solve between
the two is not in the update rule (docs/sac.md)."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import rlsuite.core.distributions as rd
from rlsuite.agents.sac import SAC, SACConfig

sb3 = pytest.importorskip("stable_baselines3")

BATCH = 256


def _transitions(n: int = 2000) -> dict[str, torch.Tensor]:
    """``n`` Pendulum-v1 transitions under uniformly random actions in ``[-1, 1]`` (the env receives twice that)."""
    env, rng = gym.make("Pendulum-v1"), np.random.default_rng(0)
    cols: dict[str, list] = {"obs": [], "actions": [], "rewards": [], "next_obs": [], "terminated": []}
    o, _ = env.reset(seed=0)
    for _ in range(n):
        a = rng.uniform(-1, 1, 1).astype(np.float32)
        no, r, term, trunc, _ = env.step(2 * a)
        for k, v in zip(cols, (o, a, r, no, term), strict=True):
            cols[k].append(v)
        o = env.reset()[0] if term or trunc else no
    return {k: torch.as_tensor(np.array(v), dtype=torch.bool if k == "terminated" else torch.float32) for k, v in cols.items()}


def _copy_sb3_weights(ours: SAC, model) -> None:
    """SB3's actor (latent_pi, mu, log_std) and twin critics (and targets) into ours (MLP body, one head for mean and
    log-std, a two-member ensemble whose layer weights are ``(members, in, out)``)."""
    with torch.no_grad():
        body = ours.actor.body[0].net
        for i in (0, 2):
            body[i].weight.copy_(model.actor.latent_pi[i].weight)
            body[i].bias.copy_(model.actor.latent_pi[i].bias)
        ours.actor.head.out.weight.copy_(torch.cat([model.actor.mu.weight, model.actor.log_std.weight]))
        ours.actor.head.out.bias.copy_(torch.cat([model.actor.mu.bias, model.actor.log_std.bias]))
        for dst, src in ((ours.critic, model.critic), (ours.critic_target, model.critic_target)):
            layers = [m for m in dst.q.net if hasattr(m, "weight")]
            for layer, i in zip(layers, (0, 2, 4), strict=True):
                for member, q in enumerate((src.qf0, src.qf1)):
                    layer.weight[member].copy_(q[i].weight.T)
                    layer.bias[member, 0].copy_(q[i].bias)


def _differences(ours: SAC, model, obs: torch.Tensor, act: torch.Tensor) -> dict[str, float]:
    with torch.no_grad():
        q_ours, q_sb3 = ours.critic(obs, act), torch.cat(model.critic(obs, act), 1).T
        mean_sb3, log_std_sb3, _ = model.actor.get_action_dist_params(obs)
        mean_ours, log_std_ours = ours.actor.head.out(ours.actor.body(obs)).chunk(2, -1)
        return {"q": float((q_ours - q_sb3).abs().max()), "mean": float((mean_ours - mean_sb3).abs().max()),
                "alpha": abs(float(ours.log_alpha.exp()) - float(model.log_ent_coef.exp()))}


def test_sac_update_equals_sb3s_from_the_same_weights_batches_and_noise(monkeypatch):
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.type_aliases import ReplayBufferSamples

    torch.manual_seed(0)
    data = _transitions()
    env = gym.make("Pendulum-v1")
    model = sb3.SAC("MlpPolicy", "Pendulum-v1", device="cpu", seed=0, verbose=0)
    model.set_logger(configure(None, []))
    ours = SAC(SACConfig(), env.observation_space, env.action_space, "cpu")
    _copy_sb3_weights(ours, model)
    probe = (data["obs"][:512], data["actions"][:512])
    start = _differences(ours, model, *probe)  # the same functions; only the order of float sums differs (batched members)
    assert start["q"] < 1e-6 and start["mean"] < 1e-6 and start["alpha"] == 0.0, start

    # the same Gaussian noise for both: SB3 draws through torch's Normal, ours through DiagGaussian.rsample
    queue: list[torch.Tensor] = []
    monkeypatch.setattr(torch.distributions.normal, "_standard_normal", lambda shape, dtype=None, device=None: queue.pop(0).reshape(shape))
    monkeypatch.setattr(rd.DiagGaussian, "rsample", lambda self: self.mean + self.std * queue.pop(0).reshape(self.mean.shape))
    index = {"now": torch.zeros(BATCH, dtype=torch.int64)}

    def sample(batch_size, env=None):
        i = index["now"]
        return ReplayBufferSamples(data["obs"][i], data["actions"][i], data["next_obs"][i], data["terminated"][i, None].float(),
                                   data["rewards"][i, None])

    monkeypatch.setattr(model.replay_buffer, "sample", sample)
    seen = {}
    for k in range(1, 21):
        index["now"] = torch.randint(0, len(data["rewards"]), (BATCH,))
        noise_obs, noise_next = torch.randn(BATCH, 1), torch.randn(BATCH, 1)
        queue[:] = [noise_obs, noise_next]  # SB3: the actor's sample on obs first, then the target's on next_obs
        model.train(gradient_steps=1, batch_size=BATCH)
        assert not queue
        queue[:] = [noise_next, noise_obs]  # ours: the target first
        ours.update({k2: v[index["now"]] for k2, v in data.items()})
        assert not queue
        if k in (1, 20):
            seen[k] = _differences(ours, model, *probe)
    # one update: equal up to float rounding and SB3's 1e-6 in the tanh correction; 20 updates: still close
    assert seen[1]["q"] < 1e-5 and seen[1]["mean"] < 1e-5 and seen[1]["alpha"] < 1e-6, seen
    assert seen[20]["q"] < 1e-3 and seen[20]["mean"] < 1e-3 and seen[20]["alpha"] < 1e-5, seen
