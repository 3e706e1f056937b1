"""A simulated robot on MuJoCo that implements the :class:`rlsuite.robots.interface.Robot` protocol.

``MuJoCoRobot`` runs the model of a Gymnasium MuJoCo env (or any ``mujoco.MjModel``): each
``send_command`` advances the physics ``decimation`` steps (lockstep, deterministic), computing the
joint torque at physics rate from the command, ``kp (q_des - q) + kd (dq_des - dq) + tau_ff``, clipped to
the joint's ``tau_max`` and written to the joint's motor as ``ctrl = tau / gear``. Optional sensor
latency (states delivered ``latency_steps`` commands late) and Gaussian sensor noise test a policy's
robustness. The robot's joints are the actuated ones; the full ``qpos`` / ``qvel`` travel in
``state.extras`` (for observation terms such as a Gymnasium env's).

:func:`gym_sim_robot` builds one from a Gymnasium id with the env's own frame skip, start
distribution and limits, and :func:`gym_contract` the matching policy contract for a policy trained on
that env (observation terms ``qpos`` / ``qvel`` as the env lays them out, ``joint_torque`` actions
scaled by the motor gears), so a policy trained in the Gymnasium env can be run sim-to-sim through
contract + observation builder + safety chain + control loop.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from rlsuite.robots.contract import ActionSpec, ObsTerm, PolicyContract
from rlsuite.robots.interface import StaleState
from rlsuite.robots.types import JointSpec, Mode, RobotCommand, RobotInfo, RobotState

SUPPORTED_GYM = ("InvertedPendulum-v5", "InvertedDoublePendulum-v5", "Reacher-v5")


class MuJoCoRobot:
    """See the module docstring. ``joint_ids`` / ``actuator_ids`` pair each robot joint with its motor."""

    def __init__(self, model: Any, joint_ids: list[int], actuator_ids: list[int], info: RobotInfo, decimation: int,
                 init_qpos: np.ndarray, init_qvel: np.ndarray, reset_noise: float = 0.01, latency_steps: int = 0,
                 noise_std: float = 0.0, seed: int = 0, clock=time.monotonic_ns) -> None:
        import mujoco

        self.mujoco, self.model = mujoco, model
        self.data = mujoco.MjData(model)
        self.joint_ids, self.actuator_ids, self.info = joint_ids, actuator_ids, info
        self.qadr = [int(model.jnt_qposadr[j]) for j in joint_ids]
        self.vadr = [int(model.jnt_dofadr[j]) for j in joint_ids]
        free = [j for j in range(model.njnt) if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE]
        # a floating base: its orientation (wxyz) and body-frame angular velocity are the IMU's readings
        self.base = (int(model.jnt_qposadr[free[0]]), int(model.jnt_dofadr[free[0]])) if free else None
        self.gear = np.array([model.actuator_gear[a, 0] for a in actuator_ids], dtype=np.float64)
        self.decimation, self.latency_steps, self.noise_std = decimation, latency_steps, noise_std
        self.init_qpos, self.init_qvel, self.reset_noise = init_qpos.copy(), init_qvel.copy(), reset_noise
        self.rng = np.random.default_rng(seed)
        self.clock = clock
        self.seq = 0
        self.connected = False
        self.last_sent: RobotCommand | None = None
        self._queue: deque[RobotState] = deque()

    # simulation helpers
    def reset(self, seed: int | None = None, qpos: np.ndarray | None = None, qvel: np.ndarray | None = None) -> None:
        """Start an episode: the env's start distribution, or the given ``qpos`` / ``qvel``."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.mujoco.mj_resetData(self.model, self.data)
        n = self.reset_noise
        self.data.qpos[:] = qpos if qpos is not None else self.init_qpos + self.rng.uniform(-n, n, self.model.nq)
        self.data.qvel[:] = qvel if qvel is not None else self.init_qvel + self.rng.uniform(-n, n, self.model.nv)
        self.mujoco.mj_forward(self.model, self.data)
        self._queue.clear()

    def _measure(self) -> RobotState:
        self.seq += 1
        q = self.data.qpos[self.qadr].astype(np.float32)
        dq = self.data.qvel[self.vadr].astype(np.float32)
        qpos, qvel = self.data.qpos.astype(np.float32), self.data.qvel.astype(np.float32)
        if self.noise_std > 0:
            q = q + self.rng.normal(0, self.noise_std, q.shape).astype(np.float32)
            qpos = qpos + self.rng.normal(0, self.noise_std, qpos.shape).astype(np.float32)
        tau = (self.data.ctrl[self.actuator_ids] * self.gear).astype(np.float32)
        state = RobotState(self.clock(), self.seq, q, dq, tau, extras={"qpos": qpos, "qvel": qvel})
        if self.base is not None:
            qa, va = self.base
            state.quat_wxyz = self.data.qpos[qa + 3 : qa + 7].astype(np.float32)
            state.gyro = self.data.qvel[va + 3 : va + 6].astype(np.float32)
            if self.noise_std > 0:
                state.gyro = state.gyro + self.rng.normal(0, self.noise_std, 3).astype(np.float32)
        return state

    # Robot protocol
    def connect(self) -> None:
        self.connected = True
        self.reset()

    def close(self) -> None:
        self.damp()
        self.connected = False

    def read_state(self, timeout_s: float) -> RobotState:
        if not self.connected:
            raise StaleState("simulated robot is not connected; call connect() first.")
        self._queue.append(self._measure())
        while len(self._queue) > self.latency_steps + 1:
            self._queue.popleft()
        state = self._queue[0]
        return RobotState(self.clock(), state.seq, state.q, state.dq, state.tau, state.quat_wxyz, state.gyro, state.extras)

    def send_command(self, cmd: RobotCommand) -> RobotCommand:
        tau_max = self.info.array("tau_max").astype(np.float64)
        for _ in range(self.decimation):
            q, dq = self.data.qpos[self.qadr], self.data.qvel[self.vadr]
            if cmd.mode == Mode.PASSIVE:
                tau = np.zeros_like(q)
            elif cmd.mode == Mode.DAMPING:
                tau = -cmd.kd * dq
            elif cmd.mode == Mode.TORQUE:
                tau = cmd.tau_ff.astype(np.float64)
            else:
                tau = cmd.kp * (cmd.q_des - q) + cmd.kd * (cmd.dq_des - dq) + cmd.tau_ff
            self.data.ctrl[self.actuator_ids] = np.clip(tau, -tau_max, tau_max) / self.gear
            self.mujoco.mj_step(self.model, self.data)
        self.last_sent = cmd.copy()
        return self.last_sent

    def passive(self) -> None:
        self.last_sent = RobotCommand.passive(len(self.joint_ids))

    def damp(self) -> None:
        self.last_sent = RobotCommand.damping(self.data.qpos[self.qadr].astype(np.float32), self.info.array("kd"))

    @property
    def healthy(self) -> bool:
        return self.connected and bool(np.isfinite(self.data.qpos).all())


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


@dataclasses.dataclass(frozen=True)
class SimTask:
    """What a sim-to-sim check needs to know about a task besides the robot.

    ``make_robot(latency_steps, noise_std, seed)`` and ``make_contract()`` build the simulated robot and
    the policy's contract; ``reward(robot, action, prev_action)`` is the training env's reward for the
    step just taken and ``alive(robot)`` its termination test, both computed from the simulator's state
    exactly as the env computes them; ``disturb(robot, disturbances, tick)`` replays the env's external
    disturbances (e.g. pushes) before control tick ``tick``; ``start(env, info)`` reads the start state
    ``(qpos, qvel, disturbances)`` of a freshly reset env; ``make_env()`` builds the training env and
    ``max_steps`` is its episode length in control ticks.
    """

    name: str
    env_id: str
    make_env: Callable[[], Any]
    max_steps: int
    make_robot: Callable[..., MuJoCoRobot]
    make_contract: Callable[[], PolicyContract]
    reward: Callable[[MuJoCoRobot, np.ndarray, np.ndarray], float]
    alive: Callable[[MuJoCoRobot], bool]
    disturb: Callable[[MuJoCoRobot, Any, int], None] | None = None
    start: Callable[[Any, dict], tuple[np.ndarray, np.ndarray, Any]] | None = None


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
    from rlsuite.robots.quadruped import QUADRUPED_TASK

    tasks = {t.name: t for t in (INVERTED_PENDULUM_TASK, QUADRUPED_TASK)}
    if name not in tasks:
        raise ValueError(f"no simulated robot task {name!r}; available: {', '.join(tasks)} (e.g. --robot sim:quadruped).")
    return tasks[name]


def run_episode(task: SimTask, robot: MuJoCoRobot, policy, contract: PolicyContract, qpos: np.ndarray | None = None,
                qvel: np.ndarray | None = None, disturbances: Any = None, max_steps: int = 1000, seed: int | None = None) -> dict[str, Any]:
    """One lockstep episode through contract + observation builder + state machine + safety chain +
    control loop on the simulated robot. The state machine is walked PASSIVE -> RAMP -> HOLD -> POLICY
    before the episode starts (in simulation only: on hardware the ramp and hold take their time).

    The return adds ``task.reward`` after every tick; the episode ends when ``task.alive`` fails, the
    safety chain latches, or after ``max_steps`` ticks.
    """
    from rlsuite.robots.loop import ControlLoop, SimulatedClock
    from rlsuite.robots.safety import Phase

    clock = SimulatedClock()
    robot.clock = clock
    if not robot.connected:
        robot.connect()
    loop = ControlLoop(robot, policy, contract, clock=clock, sleep_until=clock.sleep_until)
    loop.fsm.ramp_s = 0.0
    loop.fsm.to(Phase.RAMP, clock(), robot.read_state(0.1))
    loop.fsm.command(None, robot.read_state(0.1), clock())  # ramp of zero length: now HOLD
    loop.fsm.to(Phase.POLICY)
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
    return {"return": ret, "ticks": ticks, "stats": loop.stats.summary(), "events": list(loop.safety.events)}


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
