"""evaluate_episodes: returns plus the figures an env reports per finished episode."""

import numpy as np
import torch

import rlsuite  # noqa: F401
from rlsuite.core.evaluate import evaluate_episodes, evaluate_policy


def test_episode_figures_come_with_the_returns():
    # The coverage grid reports info["episode_F"], F of the visited set; its reward is the marginal gain,
    # so F(tau) = F({s_0}) + return, and F({s_0}) = 4 (the start cell's 2 x 2 disc) whatever the policy does.
    gen = torch.Generator().manual_seed(0)

    def act(obs: torch.Tensor) -> torch.Tensor:
        return torch.randint(0, 5, (obs.shape[0],), generator=gen)

    returns, figures = evaluate_episodes(act, "rlsuite/Coverage-Grid-v0", episodes=3, seed=0)
    assert set(figures) == {"F"}  # episode_return / episode_length are not repeated
    assert returns.shape == figures["F"].shape == (3,)
    np.testing.assert_allclose(figures["F"] - returns, 4.0)
    assert returns.max() > 0  # the random walk covered new cells
    gen.manual_seed(0)
    np.testing.assert_array_equal(evaluate_policy(act, "rlsuite/Coverage-Grid-v0", episodes=3, seed=0), returns)
