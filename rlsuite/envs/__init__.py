"""rlsuite environments, registered with Gymnasium on import.

``gymnasium.make("rlsuite/Pendulum-v0")`` gives the single env;
``gymnasium.make_vec("rlsuite/Pendulum-v0", num_envs=4096, vectorization_mode="vector_entry_point",
device="cuda")`` gives the batched torch env.
"""

from __future__ import annotations

import gymnasium as gym

#: rlsuite's own environment ids (shown by ``rlsuite list``).
ENV_IDS: list[str] = []


def _register(env_id: str, entry_point: str, vector_entry_point: str | None = None, **kwargs) -> None:
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point=entry_point, vector_entry_point=vector_entry_point, **kwargs)
    if env_id not in ENV_IDS:
        ENV_IDS.append(env_id)


_register(
    "rlsuite/Pendulum-v0",
    entry_point="rlsuite.envs.pendulum:PendulumEnv",
    vector_entry_point="rlsuite.envs.pendulum:PendulumVecEnv",
    max_episode_steps=200,
)

for _name in ("Linear", "Unicycle", "Quadrotor", "Panda", "Ant"):
    _register(
        f"rlsuite/STL-{_name}-v0",
        entry_point=f"rlsuite.envs.stl.envs:STL{_name}Env",
        vector_entry_point=f"rlsuite.envs.stl.envs:STL{_name}VecEnv",
    )

# A masked contextual bandit whose unmasked optimum is forbidden (tests masked policies).
_register(
    "rlsuite/MaskedBandit-v0",
    entry_point="rlsuite.envs.toy:MaskedBanditEnv",
    vector_entry_point="rlsuite.envs.toy:MaskedBanditVecEnv",
)

# Combinatorial problems (constructive, masked): one random instance per episode; size=... sets N.
for _name in ("TSP", "ATSP", "CVRP", "OP", "KP"):
    _register(f"rlsuite/{_name}-v0", entry_point="rlsuite.envs.cop.env:COPGymEnv", kwargs={"problem": _name.lower()})

# The quadruped lives in rlsuite.robots because it is built from the deploy pieces (simulated robot,
# policy contract, observation builder): training and deployment share one code path.
_register(
    "rlsuite/Quadruped-Balance-v0",
    entry_point="rlsuite.robots.quadruped:QuadrupedBalanceEnv",
    max_episode_steps=500,
)

# Submodular rewards on grids (SubPO): the reward is the marginal gain of the visited cell.
for _name, _task in (
    ("Coverage-Grid", "coverage"),
    ("Coverage-Bimodal", "coverage-bimodal"),
    ("IPP-GP", "gp-ipp"),
    ("Biodiversity", "biodiversity"),
    ("ItemCollection", "items"),
    ("TwoRooms", "two-rooms"),
    ("Entropy-Grid", "entropy"),
):
    _register(
        f"rlsuite/{_name}-v0",
        entry_point="rlsuite.envs.submodular.grid:SubmodularGridEnv",
        vector_entry_point="rlsuite.envs.submodular.grid:SubmodularGridVecEnv",
        kwargs={"task": _task},
    )

# The MuJoCo Ant covering a 40 m arena (newly covered cells / 10 per step); imports MuJoCo only when made.
_register("rlsuite/AntCoverage-v0", entry_point="rlsuite.envs.submodular.ant:AntCoverageEnv", max_episode_steps=400)

# Any env above or Gymnasium's with its physics and noise set per episode (robust RL; rlsuite.envs.robust):
# gymnasium.make("rlsuite/Perturbed-v0", env="Hopper-v5", perturbation={"torso_mass": 5.0}); env= defaults to Pendulum-v1.
_register(
    "rlsuite/Perturbed-v0",
    entry_point="rlsuite.envs.robust.wrapper:PerturbedEnv",
    vector_entry_point="rlsuite.envs.robust.wrapper:make_perturbed_vec",
)

# Linear-feature robust-RL envs (DR-RPO, LSVI-UCB, DR-LSVI-UCB): a perturbation set per episode (q; p) for --robust.
_register("rlsuite/LinearMDP-v0", entry_point="rlsuite.envs.robust.linear_mdp:LinearMDPEnv", vector_entry_point="rlsuite.envs.robust.linear_mdp:LinearMDPVecEnv")
_register("rlsuite/PutOption-v0", entry_point="rlsuite.envs.robust.put_option:PutOptionEnv", vector_entry_point="rlsuite.envs.robust.put_option:PutOptionVecEnv")

# The Van Henten lettuce greenhouse (robust model-based RL): one 40-day season per episode, 15-minute steps.
_register("rlsuite/Greenhouse-Lettuce-v0", entry_point="rlsuite.envs.greenhouse.env:GreenhouseEnv", vector_entry_point="rlsuite.envs.greenhouse.env:GreenhouseVecEnv")

# Ride-sharing dispatch (OSPO/GRPO): 1,000 vehicles over Manhattan's 69 taxi zones, one-minute steps, 30-minute episodes;
# city="grid3x3", num_vehicles=... and the other keywords of rlsuite.envs.dispatch.env.DispatchVecEnv make smaller ones.
_register("rlsuite/Dispatch-Manhattan-v0", entry_point="rlsuite.envs.dispatch.views:DispatchEnv", vector_entry_point="rlsuite.envs.dispatch.env:DispatchVecEnv")

# D4RL's maze2d on Gymnasium-Robotics' PointMaze-v3: a fixed goal cell, a random start cell, sparse reward 1 on reaching
# the goal, which ends the episode (so the return is the success); gymnasium-robotics is imported only when made.
for _name, _steps in (("UMaze", 300), ("Medium", 600), ("Large", 800)):
    _register(f"rlsuite/PointMaze-{_name}-v0", entry_point="rlsuite.envs.maze:PointMazeEnv", kwargs={"maze": _name},
              max_episode_steps=_steps)
