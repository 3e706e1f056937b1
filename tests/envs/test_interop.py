"""Our single envs pass Stable-Baselines3's env checker (interop target)."""

import gymnasium as gym
import pytest

import rlsuite  # noqa: F401
from rlsuite.envs import ENV_IDS

sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_env_checker(env_id):
    sb3_checker.check_env(gym.make(env_id), warn=False)
