"""Simulated robots on MuJoCo for sim-to-sim checks: Gymnasium models as robots, tasks, episodes.

:class:`MuJoCoRobot` (defined in :mod:`rlsuite.robots.mujoco_robot`, importable from here too) runs the
model of a Gymnasium MuJoCo env or of any ``mujoco.MjModel`` behind the
:class:`rlsuite.robots.interface.Robot` protocol. :func:`gym_sim_robot` builds one from a Gymnasium id
with the env's own frame skip, start distribution and limits, and :func:`gym_contract` the matching policy contract for a policy trained on
that env (observation terms ``qpos`` / ``qvel`` as the env lays them out, ``joint_torque`` actions
scaled by the motor gears), so a policy trained in the Gymnasium env can be run sim-to-sim through
contract + observation builder + safety chain + control loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlsuite.robots.contract import ActionSpec, ObsTerm, PolicyContract
from rlsuite.robots.mujoco_robot import MuJoCoRobot, SimTask
from rlsuite.robots.quadruped import QUADRUPED_TASK
from rlsuite.robots.types import JointSpec, RobotInfo

__all__ = ["INVERTED_PENDULUM_TASK", "SUPPORTED_GYM", "MuJoCoRobot", "SimTask", "gym_contract", "gym_sim_robot", "lockstep_loop", "run_episode",
           "sim_task", "sim_to_sim"]

SUPPORTED_GYM = ("InvertedPendulum-v5", "InvertedDoublePendulum-v5", "Reacher-v5")


def _gym_env(env_id: str):
    import gymnasium as gym

    if env_id not in SUPPORTED_GYM:
        raise ValueError(f"no simulated robot for {env_id!r}; supported: {', '.join(SUPPORTED_GYM)}.")
    return gym.make(env_id).unwrapped


def gym_sim_robot(env_id: str, latency_steps: int = 0, noise_std: float = 0.0, seed: int = 0) -> MuJoCoRobot:
    """A :class:`MuJoCoRobot` with the model, frame skip, limits and start distribution of ``env_id``."""
    import mujoco

    env = _gym_env(env_id)
    m = env.model
    joints, acts, specs = [], [], []
    for a in range(m.nu):
        j = int(m.actuator_trnid[a, 0])
        gear = float(m.actuator_gear[a, 0])
        lo, hi = (m.jnt_range[j] if m.jnt_limited[j] else (-np.pi, np.pi))
        tau_max = gear * float(np.max(np.abs(m.actuator_ctrlrange[a]))) if m.actuator_ctrllimited[a] else 1e3
        name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j)
        specs.append(JointSpec(name, float(np.clip(0.0, lo, hi)), float(lo), float(hi), 20.0, tau_max, kp=0.0, kd=0.1 * gear))
        joints.append(j)
        acts.append(a)
    info = RobotInfo(f"sim:{env_id}", tuple(specs), 1.0 / (m.opt.timestep * env.frame_skip))
    return MuJoCoRobot(m, joints, acts, info, env.frame_skip, env.init_qpos, env.init_qvel, getattr(env, "_reset_noise_scale", 0.01),
                       latency_steps, noise_std, seed)


def gym_contract(env_id: str) -> PolicyContract:
    """The contract of a policy trained on the Gymnasium env ``env_id`` (observation = ``[qpos, qvel]``)."""
    env = _gym_env(env_id)
    if env_id != "InvertedPendulum-v5":  # the others add terms (sin/cos, targets, constraint forces)
        raise ValueError(f"no observation layout recorded for {env_id!r} yet; supported: InvertedPendulum-v5.")
    m = env.model
    robot = gym_sim_robot(env_id)
    gears = [float(m.actuator_gear[a, 0]) for a in range(m.nu)]
    if len(set(gears)) != 1:
        raise ValueError("one action scale per contract: the motors' gears differ.")
    return PolicyContract(obs_terms=(ObsTerm("qpos", m.nq), ObsTerm("qvel", m.nv)), joint_names=tuple(robot.info.joint_names),
                          robot_joint_map=tuple(range(m.nu)), action=ActionSpec("joint_torque", gears[0], (0.0,) * m.nu,
                                                                                   clip=float(np.max(np.abs(m.actuator_ctrlrange)))),
                          policy_dt=m.opt.timestep * env.frame_skip, sim_dt=float(m.opt.timestep), decimation=int(env.frame_skip))


def _gym_make(env_id: str) -> Any:
    import gymnasium as gym

    return gym.make(env_id)


def _pendulum_alive(robot: MuJoCoRobot) -> bool:
    qp = robot.data.qpos
    return bool(np.isfinite(qp).all() and abs(qp[1]) <= 0.2)


def _gym_start(env: Any, info: dict) -> tuple[np.ndarray, np.ndarray, Any]:
    if "qpos" in info:
        return info["qpos"], info["qvel"], info.get("pushes")
    return env.unwrapped.data.qpos.copy(), env.unwrapped.data.qvel.copy(), None


INVERTED_PENDULUM_TASK = SimTask(
    name="InvertedPendulum-v5", env_id="InvertedPendulum-v5", make_env=lambda: _gym_make("InvertedPendulum-v5"), max_steps=1000,
    make_robot=lambda latency_steps=0, noise_std=0.0, seed=0: gym_sim_robot("InvertedPendulum-v5", latency_steps, noise_std, seed),
    make_contract=lambda: gym_contract("InvertedPendulum-v5"),
    reward=lambda robot, action, prev: 1.0 if _pendulum_alive(robot) else 0.0,  # Gymnasium v5: 1 per step not terminated
    alive=_pendulum_alive,
)


def sim_task(name: str) -> SimTask:
    """The sim-to-sim task called ``name``: ``InvertedPendulum-v5`` or ``quadruped``."""
    tasks = {t.name: t for t in (INVERTED_PENDULUM_TASK, QUADRUPED_TASK)}
    if name not in tasks:
        raise ValueError(f"no simulated robot task {name!r}; available: {', '.join(tasks)} (e.g. --robot sim:quadruped).")
    return tasks[name]


def lockstep_loop(robot: Any, policy, contract: PolicyContract, clock: Any) -> Any:
    """A :class:`rlsuite.robots.loop.ControlLoop` for lockstep simulation on ``clock`` (a
    :class:`rlsuite.robots.loop.SimulatedClock`), with ``robot`` connected and the state machine walked
    PASSIVE -> RAMP -> HOLD -> POLICY at once (a ramp of zero length: in simulation only, on hardware the
    ramp and hold take their time)."""
    from rlsuite.robots.loop import ControlLoop
    from rlsuite.robots.safety import Phase

    if not getattr(robot, "connected", False):
        robot.connect()
    loop = ControlLoop(robot, policy, contract, clock=clock, sleep_until=clock.sleep_until)
    loop.fsm.ramp_s = 0.0
    loop.fsm.to(Phase.RAMP, clock(), robot.read_state(0.1))
    loop.fsm.command(None, robot.read_state(0.1), clock())  # a ramp of zero length: now HOLD
    loop.fsm.to(Phase.POLICY)
    return loop


def run_episode(task: SimTask, robot: MuJoCoRobot, policy, contract: PolicyContract, qpos: np.ndarray | None = None,
                qvel: np.ndarray | None = None, disturbances: Any = None, max_steps: int = 1000, seed: int | None = None) -> dict[str, Any]:
    """One lockstep episode through contract + observation builder + state machine + safety chain +
    control loop on the simulated robot. The state machine is walked PASSIVE -> RAMP -> HOLD -> POLICY
    before the episode starts (in simulation only: on hardware the ramp and hold take their time).

    The return adds ``task.reward`` after every tick; the episode ends when ``task.alive`` fails, the
    safety chain latches, or after ``max_steps`` ticks. ``events`` are the events the chain stored (every
    e-stop, the first ``max_events`` others); ``safety_counts`` counts all of them, ``{filter: {kind: n}}``
    (the chain's pending summary line is logged at the end).
    """
    from rlsuite.robots.loop import SimulatedClock

    clock = SimulatedClock()
    robot.clock = clock
    loop = lockstep_loop(robot, policy, contract, clock)
    robot.reset(seed=seed, qpos=qpos, qvel=qvel)
    ret, ticks = 0.0, 0
    for tick in range(max_steps):
        if task.disturb is not None and disturbances is not None:
            task.disturb(robot, disturbances, tick)
        prev = loop.last_action.copy()
        loop.run(1)
        ticks += 1
        ret += task.reward(robot, loop.last_action, prev)
        if not task.alive(robot) or loop.safety.latched:
            break
    return {"return": ret, "ticks": ticks, "stats": loop.stats.summary(), "events": list(loop.safety.events),
            "safety_counts": loop.safety.summary(clock())}


def sim_to_sim(policy, task: SimTask | str = "InvertedPendulum-v5", episodes: int = 5, seed: int = 0, latency_steps: int = 0,
               noise_std: float = 0.0) -> tuple[list[float], list[float]]:
    """Returns of ``policy`` (``obs (obs_dim,) -> action``) in the task's Gymnasium env and, from the same
    start states and with the same disturbances, on the simulated robot through the full deploy path."""
    task = sim_task(task) if isinstance(task, str) else task
    env = task.make_env()
    robot = task.make_robot(latency_steps, noise_std, seed)
    contract = task.make_contract()
    start = task.start or _gym_start
    gym_returns, sim_returns = [], []
    for ep in range(episodes):
        obs, info = env.reset(seed=seed + ep)
        qpos, qvel, disturbances = start(env, info)
        total, done, steps = 0.0, False, 0
        while not done:
            obs, r, term, trunc, _ = env.step(np.asarray(policy(obs.astype(np.float32)), dtype=np.float32))
            total += float(r)
            steps += 1
            done = term or trunc
        gym_returns.append(total)
        out = run_episode(task, robot, policy, contract, qpos, qvel, disturbances, max_steps=task.max_steps)
        sim_returns.append(out["return"])
    return gym_returns, sim_returns
