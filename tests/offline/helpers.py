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
