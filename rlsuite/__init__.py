"""rlsuite: reinforcement learning for control and robotics.

Importing the package registers its environments with Gymnasium (``rlsuite/...`` ids).
"""

from rlsuite import envs as _envs  # noqa: F401  (registers environments)

__version__ = "0.1.0"
