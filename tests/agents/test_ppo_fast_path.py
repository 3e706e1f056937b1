"""PPO's fused rollout step (``ActorCritic.act_value``) and the other per-step savings give the numbers of the plain
composition ``dist -> sample -> log_prob`` and ``value`` bit for bit, with the same random draws."""

import copy
import math

import gymnasium as gym
import pytest
import torch
from torch import nn

import rlsuite.envs  # noqa: F401  (registers rlsuite/Pendulum-v0 and rlsuite/MaskedBandit-v0)
from rlsuite.agents.ppo import PPO, ActorCritic, PPOConfig
from rlsuite.core.distributions import Categorical, MaskedCategorical, sample_categorical
from rlsuite.core.normalizer import RunningNorm
from rlsuite.core.vec_env import make_vec_env

OBS_DIM = 5
SPACES = {
    "box": gym.spaces.Box(-1.0, 1.0, (3,)),
    "discrete": gym.spaces.Discrete(4),
    "multidiscrete": gym.spaces.MultiDiscrete([3, 4]),
}


def composed(policy: ActorCritic, obs: torch.Tensor, mask: torch.Tensor | None):
    """The rollout step as PPO composed it before ``act_value``."""
    with torch.no_grad():
        dist = policy.dist(obs) if mask is None else policy.dist(obs, mask, False)
        action = dist.sample()
        return action, dist.log_prob(action), policy.value(obs)


def random_mask(batch: int, width: int, nvec: list[int]) -> torch.Tensor:
    """``(batch, width)`` bool with at least one allowed value per component."""
    g = torch.Generator().manual_seed(5)
    mask = torch.rand(batch, width, generator=g) < 0.5
    start = 0
    for n in nvec:
        mask[torch.arange(batch), start + torch.randint(n, (batch,), generator=g)] = True
        start += n
    return mask


def make_policy(space: gym.Space, normalize_obs: bool, **cfg) -> ActorCritic:
    torch.manual_seed(0)
    policy = ActorCritic(OBS_DIM, space, PPOConfig(normalize_obs=normalize_obs, init_log_std=-0.3, **cfg))
    if normalize_obs:  # statistics away from (0, 1), so that normalising matters
        policy.obs_norm.update(torch.randn(100, OBS_DIM) * 3.0 + 1.0)
    return policy


def assert_same_step(policy: ActorCritic, obs: torch.Tensor, mask: torch.Tensor | None, grad: bool = False) -> None:
    torch.manual_seed(123)
    want = composed(policy, obs, mask)
    rng_want = torch.get_rng_state()
    torch.manual_seed(123)
    with torch.set_grad_enabled(grad):
        got = policy.act_value(obs, mask, validate=False)
    assert torch.equal(torch.get_rng_state(), rng_want), "act_value drew a different number of random values"
    for name, w, g in zip(("action", "logp", "value"), want, got, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape and torch.equal(g, w), name
        assert not g.requires_grad


@pytest.mark.parametrize("space", list(SPACES))
@pytest.mark.parametrize("normalize_obs", [False, True])
@pytest.mark.parametrize("batch", [1, 7])
def test_act_value_equals_dist_sample_log_prob_value(space, normalize_obs, batch):
    policy = make_policy(SPACES[space], normalize_obs)
    obs = torch.randn(batch, OBS_DIM) * 2.0
    for _ in range(3):  # also with the plan and the normaliser's scale taken from their caches
        assert_same_step(policy, obs, None)
    assert_same_step(policy, obs, None, grad=True)  # called with gradients on: still none


@pytest.mark.parametrize("space", ["discrete", "multidiscrete"])
@pytest.mark.parametrize("normalize_obs", [False, True])
def test_act_value_with_action_masks_equals_the_composition(space, normalize_obs):
    policy = make_policy(SPACES[space], normalize_obs)
    nvec = [4] if space == "discrete" else [3, 4]
    mask = random_mask(64, sum(nvec), nvec)
    obs = torch.randn(64, OBS_DIM)
    assert_same_step(policy, obs, mask)
    action, _, _ = policy.act_value(obs, mask, validate=False)
    parts = mask.split(nvec, dim=1)
    for i, part in enumerate(parts):  # never a forbidden value
        assert part.gather(1, action.view(64, -1)[:, i : i + 1]).all()


def test_act_value_other_activation_depth_and_replaced_modules():
    policy = make_policy(SPACES["box"], True, hidden_sizes=(8, 16, 4), activation="elu")
    obs = torch.randn(3, OBS_DIM)
    assert_same_step(policy, obs, None)
    policy.obs_norm.update(torch.randn(50, OBS_DIM) - 4.0)  # new statistics: the normaliser's scale is recomputed
    assert_same_step(policy, obs, None)
    policy.critic = nn.Sequential(nn.Linear(OBS_DIM, 3), nn.ReLU(), nn.Linear(3, 1))  # a replaced module: a new plan
    assert_same_step(policy, obs, None)


def test_act_value_runs_forward_hooks_through_the_plain_path():
    policy = make_policy(SPACES["discrete"], True)
    obs = torch.randn(4, OBS_DIM)
    handle = policy.critic.net[-1].register_forward_hook(lambda module, args, out: out + 1.0)
    try:
        assert_same_step(policy, obs, None)  # the hook shifts the values in both
        _, _, value = policy.act_value(obs)
        assert torch.equal(value, policy.value(obs))
    finally:
        handle.remove()
    assert_same_step(policy, obs, None)


def test_copies_do_not_share_the_caches():
    policy = make_policy(SPACES["box"], True)
    obs = torch.randn(2, OBS_DIM)
    policy.act_value(obs)
    clone = copy.deepcopy(policy)
    clone.obs_norm.update(torch.randn(20, OBS_DIM) * 5.0)
    assert_same_step(clone, obs, None)
    assert_same_step(policy, obs, None)


def test_gaussian_act_value_refuses_a_mask():
    policy = make_policy(SPACES["box"], False)
    with pytest.raises(ValueError, match="Gaussian head"):
        policy.act_value(torch.zeros(2, OBS_DIM), torch.ones(2, 3, dtype=torch.bool))


@pytest.mark.parametrize("shape", [(1, 2), (5, 3), (4, 2, 6), (300, 17)])
def test_sample_categorical_draws_what_multinomial_draws(shape):
    logits = torch.randn(shape) * 2.0
    logits[..., 0] = torch.finfo(torch.float32).min  # a forbidden action: probability exactly 0
    probs = torch.log_softmax(logits, -1).exp()
    for seed in range(5):
        torch.manual_seed(seed)
        want = torch.multinomial(probs.reshape(-1, shape[-1]), 1).view(shape[:-1])
        rng_want = torch.get_rng_state()
        torch.manual_seed(seed)
        got = sample_categorical(probs)
        assert torch.equal(got, want) and torch.equal(torch.get_rng_state(), rng_want)
        assert (got != 0).all()
    mask = logits > torch.finfo(torch.float32).min
    torch.manual_seed(9)
    a = MaskedCategorical(logits, mask).sample()
    torch.manual_seed(9)
    assert torch.equal(a, Categorical(logits).sample())


def test_running_norm_forward_cached_follows_every_change_of_the_statistics():
    norm = RunningNorm((3,))
    x = torch.randn(6, 3) * 4.0

    def same() -> bool:
        return torch.equal(norm.forward_cached(x), norm(x))

    assert same()
    norm.update(torch.randn(40, 3) * 2.0 + 1.0)
    assert same()
    norm.load_state_dict({"mean": torch.zeros(3), "var": torch.full((3,), 9.0), "count": torch.tensor(2.0, dtype=torch.float64)})
    assert same()
    with torch.no_grad():
        norm.var.mul_(0.25)
    assert same()
    norm.eps = 0.5
    assert same()
    clone = copy.deepcopy(norm)
    clone.update(torch.randn(10, 3))
    assert torch.equal(clone.forward_cached(x), clone(x)) and same()


class _Composed(nn.Module):
    """An ActorCritic's modules behind ``dist`` and ``value`` only (no ``act_value``): PPO composes each step itself,
    as it does for a policy passed in by the caller."""

    def __init__(self, policy: ActorCritic) -> None:
        super().__init__()
        self.obs_norm, self.actor_body, self.head, self.critic = policy.obs_norm, policy.actor_body, policy.head, policy.critic

    dist = ActorCritic.dist
    value = ActorCritic.value


@pytest.mark.parametrize("env_id,algo", [
    ("CartPole-v1", dict(num_envs=2, normalize_obs=True)),
    ("rlsuite/Pendulum-v0", dict(num_envs=8, normalize_obs=True, normalize_reward=True)),
    ("rlsuite/Pendulum-v0", dict(num_envs=1)),
    ("rlsuite/MaskedBandit-v0", dict(num_envs=8, ent_coef=0.01)),
])
def test_learn_with_the_fused_step_equals_learn_with_the_composed_one(env_id, algo):
    cfg = PPOConfig(num_steps=32, num_minibatches=2, update_epochs=2, **algo)
    envs = [make_vec_env(env_id, num_envs=cfg.num_envs, seed=4) for _ in range(2)]
    torch.manual_seed(0)
    fused = PPO(cfg, envs[0].single_observation_space, envs[0].single_action_space)
    plain = PPO(cfg, envs[1].single_observation_space, envs[1].single_action_space, policy=_Composed(copy.deepcopy(fused.policy)))
    for agent, env in zip((fused, plain), envs, strict=True):
        torch.manual_seed(1)
        agent.learn(env, 3 * cfg.batch_size, seed=4)
    a, b = fused.policy.state_dict(), plain.policy.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(fused._obs, plain._obs)


class _Run:
    """What ``PPO.learn`` logs through (``run.logger.log``, ``run.step_done``)."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.logger = self

    def log(self, step: int, metrics: dict) -> None:
        self.rows.append(metrics)

    def step_done(self, agent, env) -> None:
        pass


class _Recording:
    """An env that keeps each step's ``done``, ``episode_return`` and ``episode_length``."""

    def __init__(self, env) -> None:
        self.env, self.steps = env, []

    def __getattr__(self, name):
        return getattr(self.env, name)

    def reset(self, **kwargs):
        return self.env.reset(**kwargs)

    def step(self, action):
        out = self.env.step(action)
        info = out[4]
        self.steps.append((info["_final_obs"].clone(), info["episode_return"].clone(), info["episode_length"].clone()))
        return out


def test_logged_episode_means_equal_a_running_float32_sum():
    """The per-step episode sums, now kept per step and added after the rollout, give the numbers of the running
    float32 sums PPO kept before (``ret += where(done, episode_return, 0).sum()`` every step)."""
    cfg = PPOConfig(num_envs=3, num_steps=64, num_minibatches=2, update_epochs=1)
    env = _Recording(make_vec_env("CartPole-v1", num_envs=3, seed=0))
    torch.manual_seed(0)
    agent = PPO(cfg, env.single_observation_space, env.single_action_space)
    run = _Run()
    agent.learn(env, 3 * cfg.batch_size, run=run, seed=0)
    for i, row in enumerate(run.rows):
        ret, length, count = torch.zeros(()), torch.zeros(()), torch.zeros(())
        for done, ep_ret, ep_len in env.steps[i * 64 : (i + 1) * 64]:
            ret += torch.where(done, ep_ret, 0.0).sum()
            length += torch.where(done, ep_len.float(), 0.0).sum()
            count += done.sum()
        n = count.item()
        assert n > 0 and row["rollout/episodes"] == n
        assert row["rollout/ep_return"] == (ret / n).item() and row["rollout/ep_length"] == (length / n).item()


def test_logged_episode_means_are_nan_without_a_finished_episode():
    cfg = PPOConfig(num_envs=2, num_steps=16, num_minibatches=2, update_epochs=1)
    env = make_vec_env("rlsuite/Pendulum-v0", num_envs=2, seed=0)  # 200-step episodes
    agent = PPO(cfg, env.single_observation_space, env.single_action_space)
    run = _Run()
    agent.learn(env, cfg.batch_size, run=run)
    assert run.rows[0]["rollout/episodes"] == 0.0
    assert math.isnan(run.rows[0]["rollout/ep_return"]) and math.isnan(run.rows[0]["rollout/ep_length"])


def test_a_diverged_discrete_policy_fails_after_the_rollout_with_a_clear_error():
    cfg = PPOConfig(num_envs=1, num_steps=8, num_minibatches=1, update_epochs=1)
    env = make_vec_env("CartPole-v1", num_envs=1, seed=0)
    agent = PPO(cfg, env.single_observation_space, env.single_action_space)
    with torch.no_grad():
        agent.policy.head.logits.bias.fill_(float("nan"))
    with pytest.raises(ValueError, match="not finite"):
        agent.learn(env, 8)


def test_sampling_outside_the_rollout_still_refuses_nan_probabilities():
    """Only PPO's rollout skips the per-draw check (it checks once per rollout): acting, SubPO and every other caller
    of Categorical.sample get an error on a diverged policy, as torch.multinomial gave."""
    bad = torch.tensor([[0.5, float("nan")], [0.5, 0.5]])
    with pytest.raises(ValueError, match="NaN or infinite"):
        sample_categorical(bad)
    with pytest.raises(ValueError, match="NaN or infinite"):
        Categorical(torch.tensor([[0.0, float("nan")]])).sample()
    assert sample_categorical(bad, check=False).shape == (2,)
    env = make_vec_env("CartPole-v1", num_envs=1, seed=0)
    agent = PPO(PPOConfig(num_envs=1, num_steps=8, num_minibatches=1, update_epochs=1), env.single_observation_space,
                env.single_action_space)
    with torch.no_grad():
        agent.policy.head.logits.bias.fill_(float("nan"))
    with pytest.raises(ValueError, match="NaN or infinite"):
        agent.act(env.reset(seed=0)[0])


def test_the_step_plan_follows_a_layer_replaced_inside_a_container():
    policy = make_policy(SPACES["box"], True)
    obs = torch.randn(5, OBS_DIM)
    policy.act_value(obs)  # builds the plan
    policy.critic.net[-1] = torch.nn.Linear(policy.critic.net[-1].in_features, 1)
    torch.manual_seed(0)
    _, _, value = policy.act_value(obs)
    assert torch.equal(value, policy.value(obs))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("space", list(SPACES))
def test_act_value_equals_the_composition_on_cuda(space):
    policy = make_policy(SPACES[space], True).cuda()
    obs = torch.randn(256, OBS_DIM, device="cuda")
    nvec = {"box": None, "discrete": [4], "multidiscrete": [3, 4]}[space]
    mask = None if nvec is None else random_mask(256, sum(nvec), nvec).cuda()
    torch.cuda.manual_seed(3)
    want = composed(policy, obs, mask)
    torch.cuda.manual_seed(3)
    got = policy.act_value(obs, mask, validate=False)
    for w, g in zip(want, got, strict=True):
        assert torch.equal(w, g)
