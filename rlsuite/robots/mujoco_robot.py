"""A simulated robot on MuJoCo that implements the :class:`rlsuite.robots.interface.Robot` protocol.

``MuJoCoRobot`` runs the model of a Gymnasium MuJoCo env (or any ``mujoco.MjModel``): each
``send_command`` advances the physics ``decimation`` steps (lockstep, deterministic), computing the
joint torque at physics rate from the command, ``kp (q_des - q) + kd (dq_des - dq) + tau_ff``, clipped to
the joint's ``tau_max`` and written to the joint's motor as ``ctrl = tau / gear``. Optional sensor
latency (states delivered ``latency_steps`` commands late) and Gaussian sensor noise test a policy's
robustness. The robot's joints are the actuated ones; the full ``qpos`` / ``qvel`` travel in
``state.extras`` (for observation terms such as a Gymnasium env's).

:class:`SimTask` describes a sim-to-sim task. Both live here, apart from :mod:`rlsuite.robots.sim`
(Gymnasium robots, the task table, episodes), so that a robot module such as
:mod:`rlsuite.robots.quadruped` can build on them while ``sim`` lists its task without an import cycle.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from rlsuite.robots.contract import PolicyContract
from rlsuite.robots.interface import StaleState
from rlsuite.robots.types import Mode, RobotCommand, RobotInfo, RobotState


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
        self.last_sent = RobotCommand.damping_safe(self.data.qpos[self.qadr].astype(np.float32), self.info.array("kd"),
                                                   limits=(self.info.array("q_min"), self.info.array("q_max")))

    @property
    def healthy(self) -> bool:
        return self.connected and bool(np.isfinite(self.data.qpos).all())


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
