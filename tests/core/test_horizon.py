"""Fixed-horizon helpers shared by SubPO, OSPO and the linear episodic agents."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rlsuite.core.horizon import check_whole_episodes, env_horizon, log_horizon_note


def test_env_horizon_takes_a_positive_int_and_names_the_agent_otherwise():
    assert env_horizon(SimpleNamespace(horizon=30), "ospo", "x") == 30
    assert env_horizon(SimpleNamespace(horizon=np.int64(7)), "ospo", "x") == 7
    for bad in (None, 0, 2.5, True):
        with pytest.raises(ValueError, match=r"SubPO trains on whole episodes .* int attribute 'horizon' \(the grid envs have one\)"):
            env_horizon(SimpleNamespace(horizon=bad), "SubPO", "the grid envs")


def test_check_whole_episodes():
    ended = torch.zeros(4, 3, dtype=torch.bool)
    ended[-1] = True
    check_whole_episodes(ended, object(), "ospo")  # every episode ends at the last step only
    early = ended.clone()
    early[1, 2] = True
    with pytest.raises(ValueError, match="ospo needs all 3 parallel episodes .* horizon=4 steps, but object's episodes ended elsewhere; hint"):
        check_whole_episodes(early, object(), "ospo", "; hint")
    late = ended.clone()
    late[-1, 0] = False
    with pytest.raises(ValueError, match="ended elsewhere"):
        check_whole_episodes(late, object(), "ospo")


def test_log_horizon_note_by_hand():
    # 100 steps in batches of 30 from 0: 4 batches, 120 steps; from 90: one more batch, 120
    assert log_horizon_note(100, 0, 30, "1 episodes x 30 minutes") == (
        "--total-steps 100 is not a whole number of updates of 1 episodes x 30 minutes (30 env steps) from step 0: training 120 steps")
    assert log_horizon_note(100, 90, 30, "w").endswith("from step 90: training 120 steps")
    assert log_horizon_note(120, 0, 30, "w") is None and log_horizon_note(60, 90, 30, "w") is None
