"""Combinatorial optimisation problems: generators and objectives (:mod:`.problems`), batched
constructive envs with BQ views and their Gymnasium view ``rlsuite/TSP-v0`` ... (:mod:`.env`),
TSPLIB / CVRPLIB files (:mod:`.io`), reference solvers and heuristics (:mod:`.solvers`)."""

from rlsuite.envs.cop.env import COPEnv, COPGymEnv
from rlsuite.envs.cop.problems import PROBLEMS, cost, generate, validate

__all__ = ["COPEnv", "COPGymEnv", "PROBLEMS", "cost", "generate", "validate"]
