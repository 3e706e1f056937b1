"""A small InvertedPendulum dataset whose behaviour is a two-mode mixture: at every step the
stabilising controller ``u = K o`` or its opposite ``-K o``, with equal odds. The behaviour falls after
~50 steps; behaviour cloning averages the modes to ``u ~ 0`` and falls too; an agent that weighs the
actions by their value can recover the stabilising mode. Written with the production writer."""

import gymnasium as gym
import numpy as np

from rlsuite.offline import datasets as D

K = np.array([1.0, 10.0, 1.0, 1.0])
DS_ID = "rlsuite/invertedpendulum/medium-v0"


def mixed_controller_episodes(steps: int, seed: int, p_good: float = 0.5) -> list[dict]:
    env = gym.make("InvertedPendulum-v5")
    rng = np.random.default_rng(seed)
    episodes, n = [], 0
    while n < steps:
        o, _ = env.reset(seed=seed + len(episodes))
        obs, acts, rews, terms, truncs = [o], [], [], [], []
        while True:
            sign = 1.0 if rng.random() < p_good else -1.0
            a = np.clip([sign * K @ o], -3, 3).astype(np.float32)
            o, r, te, tr, _ = env.step(a)
            obs.append(o)
            acts.append(a)
            rews.append(r)
            terms.append(te)
            truncs.append(tr)
            if te or tr:
                break
        episodes.append({"observations": np.asarray(obs, np.float32), "actions": np.asarray(acts), "rewards": np.asarray(rews, np.float32),
                         "terminations": np.asarray(terms), "truncations": np.asarray(truncs), "seed": np.asarray(seed + len(episodes))})
        n += len(acts)
    return episodes


def write_mixed_dataset(root, steps: int = 20_000, seed: int = 0) -> str:
    """Writes the dataset under ``root`` (reference returns 0 / 1000, the env's range) and returns its id."""
    eps = mixed_controller_episodes(steps, seed)
    D.write_dataset(DS_ID, "InvertedPendulum-v5", eps, 0.0, 1000.0, {"env": "InvertedPendulum-v5", "level": "medium",
                                                                      "behaviour": "K o or -K o at random"}, root=root)
    return DS_ID


# ---- a one-step task whose data has two action modes, only one of them good ------------------------------

BANDIT_ID = "rlsuite-test/TwoModeBandit-v0"
BANDIT_DS_ID = "rlsuite/twomodebandit/mixed-v0"
BANDIT_MODE = 0.7


class TwoModeBandit(gym.Env):
    """One decision per episode. Observation: a context ``c`` uniform in ``[-1, 1]^2``; action ``a`` in
    ``[-1, 1]``; reward ``exp(-((a - a*) / 0.2)^2)`` with ``a* = 0.7 sign(c_0)``, then the episode terminates.
    The data's behaviour plays ``+0.7`` or ``-0.7`` at random whatever the context (half its actions pay ~1,
    half ~0): a Gaussian fitted to it sits near ``a = 0`` (reward exp(-12) ~ 0), a model of the two modes
    that samples one at random earns ~0.5, and picking the right mode per context earns ~1."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self._c = np.zeros(2, np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._c = self.np_random.uniform(-1.0, 1.0, 2).astype(np.float32)
        return self._c.copy(), {}

    def step(self, action):
        best = BANDIT_MODE * (1.0 if self._c[0] >= 0 else -1.0)
        reward = float(np.exp(-(((float(np.asarray(action).reshape(-1)[0]) - best) / 0.2) ** 2)))
        return self._c.copy(), reward, True, False, {}


def register_two_mode_bandit() -> None:
    if BANDIT_ID not in gym.registry:
        gym.register(BANDIT_ID, entry_point="tests.offline.helpers:TwoModeBandit")


def write_two_mode_dataset(root, episodes: int = 2000, seed: int = 0) -> str:
    """The bandit's dataset (one transition per episode) under ``root``, reference returns 0 / 1; returns its id."""
    register_two_mode_bandit()
    env, rng = TwoModeBandit(), np.random.default_rng(seed)
    eps = []
    for i in range(episodes):
        o, _ = env.reset(seed=seed + i)
        a = np.array([BANDIT_MODE if rng.random() < 0.5 else -BANDIT_MODE], np.float32)
        o2, r, te, tr, _ = env.step(a)
        eps.append({"observations": np.stack([o, o2]).astype(np.float32), "actions": a[None], "rewards": np.array([r], np.float32),
                    "terminations": np.array([te]), "truncations": np.array([tr]), "seed": np.asarray(seed + i)})
    D.write_dataset(BANDIT_DS_ID, BANDIT_ID, eps, 0.0, 1.0, {"env": BANDIT_ID, "level": "mixed", "behaviour": "+0.7 or -0.7 at random"},
                    root=root)
    return BANDIT_DS_ID
