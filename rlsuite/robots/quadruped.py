"""A 12-joint quadruped with position-controlled joints, and a balance task trained in the suite.

The robot is rlsuite's own MJCF (below, :data:`QUADRUPED_XML`): a 6 kg trunk with an IMU site (gyro and
orientation sensors) and four legs of three hinge joints each (hip abduction about x, thigh and calf
about y; 0.2 m thigh and calf), sized like a small research quadruped. Every joint has a torque motor
(|tau| <= 25 N m); the joints are position-controlled by a PD law computed **at physics rate** (200 Hz)
toward targets set by the policy at 50 Hz, ``tau = kp (q_des - q) - kd dq`` with kp = 20, kd = 0.5, as
legged robots are usually trained (e.g. legged_gym's A1 settings).

The training env and the deploy path are one code path: :class:`QuadrupedBalanceEnv` steps a
:class:`rlsuite.robots.sim.MuJoCoRobot`, turns actions into joint targets with the policy contract
(``q_des = default_q + 0.25 a``) and builds observations with the contract's
:class:`rlsuite.robots.contract.ObservationBuilder` from robot states, exactly as
:class:`rlsuite.robots.loop.ControlLoop` does on a robot. Observation (42 numbers): projected gravity
(3), gyro (3, x 0.25), joint positions relative to the default pose (12), joint velocities (12, x 0.05),
last action (12), in that order (policy joint order FR, FL, RR, RL x hip, thigh, calf).

The task, ``rlsuite/Quadruped-Balance-v0``: start from a perturbed pose (joints +-0.3 rad off the
default, trunk tilted up to 0.25 rad, dropped from up to 5 cm above the standing height), stand up and
stay standing for 10 s while the trunk is pushed (a horizontal velocity change of up to
``push_vel`` m/s every ``push_interval_s`` s, as legged_gym's push_robots). Reward per 50 Hz step, at
most 1: ``0.4 upright + 0.4 height + 0.2 still - 0.02 |a - a_prev|^2``, with ``upright``
``exp(-|g_xy|^2 / 0.02)`` of the projected gravity's horizontal part (1 when level, 0.1 at 0.3 rad),
``height`` a Gaussian of the trunk height around 0.30 m (width 5 cm) and ``still`` a Gaussian of the
horizontal trunk velocity and yaw rate; a fall costs ``FALL_PENALTY`` (50) once. The episode ends when
the trunk tilts more than 0.8 rad or drops below 0.15 m. The pushes are drawn at reset and returned in ``info["pushes"]`` so a sim-to-sim
run can replay them.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from rlsuite.robots.contract import ActionSpec, ObservationBuilder, ObsTerm, PolicyContract
from rlsuite.robots.loop import default_terms
from rlsuite.robots.mujoco_robot import MuJoCoRobot, SimTask
from rlsuite.robots.types import JointSpec, Mode, RobotCommand, RobotInfo, RobotState, projected_gravity

LEGS = ("FR", "FL", "RR", "RL")
PARTS = ("hip", "thigh", "calf")
JOINT_NAMES = tuple(f"{leg}_{part}_joint" for leg in LEGS for part in PARTS)
DEFAULT_Q = {"hip": 0.0, "thigh": 0.8, "calf": -1.5}
LIMITS = {"hip": (-0.8, 0.8), "thigh": (-1.0, 2.5), "calf": (-2.6, -0.6)}
KP, KD, TAU_MAX, DQ_MAX = 20.0, 0.5, 25.0, 20.0
SIM_DT, DECIMATION = 0.005, 4
ACTION_SCALE = 0.25
STAND_HEIGHT, FALL_HEIGHT, MAX_TILT = 0.30, 0.15, 0.8
FALL_PENALTY = 50.0


def _leg(leg: str) -> str:
    x = 0.18 if leg[0] == "F" else -0.18
    side = -1.0 if leg[1] == "R" else 1.0
    lo_h, hi_h = LIMITS["hip"]
    lo_t, hi_t = LIMITS["thigh"]
    lo_c, hi_c = LIMITS["calf"]
    return f"""
      <body name="{leg}_hip" pos="{x} {0.05 * side} 0">
        <joint name="{leg}_hip_joint" axis="1 0 0" range="{lo_h} {hi_h}"/>
        <geom type="cylinder" fromto="-0.03 {0.04 * side} 0 0.03 {0.04 * side} 0" size="0.035" mass="0.7"/>
        <body name="{leg}_thigh" pos="0 {0.08 * side} 0">
          <joint name="{leg}_thigh_joint" axis="0 1 0" range="{lo_t} {hi_t}"/>
          <geom type="capsule" fromto="0 0 0 0 0 -0.2" size="0.02" mass="0.9"/>
          <body name="{leg}_calf" pos="0 0 -0.2">
            <joint name="{leg}_calf_joint" axis="0 1 0" range="{lo_c} {hi_c}"/>
            <geom type="capsule" fromto="0 0 0 0 0 -0.2" size="0.014" mass="0.2"/>
            <geom name="{leg}_foot" type="sphere" pos="0 0 -0.2" size="0.022" mass="0.05" friction="1.0 0.02 0.01"/>
          </body>
        </body>
      </body>"""


#: The quadruped's MJCF (write it to a file to look at it in MuJoCo's viewer).
QUADRUPED_XML = f"""<mujoco model="rlsuite_quadruped">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{SIM_DT}" integrator="implicitfast"/>
  <default>
    <joint damping="0.05" armature="0.01"/>
    <geom contype="2" conaffinity="1" friction="0.8 0.02 0.01" rgba="0.55 0.58 0.62 1"/>
    <motor ctrlrange="-{TAU_MAX} {TAU_MAX}" gear="1"/>
  </default>
  <worldbody>
    <light pos="0 0 3" dir="0 0 -1"/>
    <geom name="floor" type="plane" size="0 0 0.05" contype="1" conaffinity="1" rgba="0.8 0.8 0.8 1"/>
    <body name="trunk" pos="0 0 {STAND_HEIGHT + 0.02}">
      <freejoint name="root"/>
      <geom name="trunk" type="box" size="0.2 0.07 0.05" mass="6.0"/>
      <site name="imu" pos="0 0 0"/>{"".join(_leg(leg) for leg in LEGS)}
    </body>
  </worldbody>
  <actuator>{"".join(f'''
    <motor name="{j.replace("_joint", "")}" joint="{j}"/>''' for j in JOINT_NAMES)}
  </actuator>
  <sensor>
    <framequat name="imu_quat" objtype="site" objname="imu"/>
    <gyro name="imu_gyro" site="imu"/>
  </sensor>
</mujoco>
"""


def quadruped_info() -> RobotInfo:
    joints = []
    for name in JOINT_NAMES:
        part = name.split("_")[1]
        lo, hi = LIMITS[part]
        joints.append(JointSpec(name, DEFAULT_Q[part], lo, hi, DQ_MAX, TAU_MAX, KP, KD))
    return RobotInfo("sim:quadruped", tuple(joints), 1.0 / (SIM_DT * DECIMATION))


def quadruped_sim_robot(latency_steps: int = 0, noise_std: float = 0.0, seed: int = 0) -> MuJoCoRobot:
    """The quadruped as a :class:`MuJoCoRobot` (robot joint order = :data:`JOINT_NAMES`)."""
    import mujoco

    model = mujoco.MjModel.from_xml_string(QUADRUPED_XML)
    info = quadruped_info()
    joints = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in JOINT_NAMES]
    acts = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, n.replace("_joint", "")) for n in JOINT_NAMES]
    qpos0, qvel0 = standing_state(model)
    return MuJoCoRobot(model, joints, acts, info, DECIMATION, qpos0, qvel0, reset_noise=0.0, latency_steps=latency_steps,
                       noise_std=noise_std, seed=seed)


def quadruped_contract() -> PolicyContract:
    """The contract of a policy trained on ``rlsuite/Quadruped-Balance-v0`` (see the module docstring)."""
    n = len(JOINT_NAMES)
    return PolicyContract(
        obs_terms=(ObsTerm("projected_gravity", 3), ObsTerm("gyro", 3, scale=0.25), ObsTerm("q", n), ObsTerm("dq", n, scale=0.05),
                   ObsTerm("last_action", n)),
        joint_names=JOINT_NAMES, robot_joint_map=tuple(range(n)),
        action=ActionSpec("joint_position_offset", ACTION_SCALE, tuple(DEFAULT_Q[j.split("_")[1]] for j in JOINT_NAMES), clip=1.0),
        policy_dt=SIM_DT * DECIMATION, sim_dt=SIM_DT, decimation=DECIMATION)


def standing_state(model: Any) -> tuple[np.ndarray, np.ndarray]:
    """``qpos`` / ``qvel`` of the robot in its default pose, trunk level, feet just above the floor."""
    qpos = np.zeros(model.nq)
    qpos[:7] = [0.0, 0.0, STAND_HEIGHT + 0.02, 1.0, 0.0, 0.0, 0.0]
    qpos[7:] = [DEFAULT_Q[j.split("_")[1]] for j in JOINT_NAMES]
    return qpos, np.zeros(model.nv)


def _quat_from_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    cr, sr, cp, sp, cy, sy = (math.cos(roll / 2), math.sin(roll / 2), math.cos(pitch / 2), math.sin(pitch / 2),
                              math.cos(yaw / 2), math.sin(yaw / 2))
    return np.array([cr * cp * cy + sr * sp * sy, sr * cp * cy - cr * sp * sy, cr * sp * cy + sr * cp * sy,
                     cr * cp * sy - sr * sp * cy])


def balance_reward(robot: MuJoCoRobot, action: np.ndarray, prev_action: np.ndarray) -> float:
    """The task reward of one 50 Hz step from the simulator's state (see the module docstring)."""
    d = robot.data
    g = projected_gravity(d.qpos[3:7])
    upright = math.exp(-float(g[0] ** 2 + g[1] ** 2) / 0.02)  # 1 when level, 0.6 at 0.1 rad, 0.1 at 0.3 rad
    height = math.exp(-(((float(d.qpos[2]) - STAND_HEIGHT) / 0.05) ** 2))
    still = math.exp(-(float(d.qvel[0]) ** 2 + float(d.qvel[1]) ** 2 + float(d.qvel[5]) ** 2) / 0.25)
    rate = float(np.sum((np.asarray(action, np.float64) - prev_action) ** 2))
    fall = FALL_PENALTY if not balance_alive(robot) else 0.0
    return 0.4 * upright + 0.4 * height + 0.2 * still - 0.02 * rate - fall


def balance_alive(robot: MuJoCoRobot) -> bool:
    """False once the trunk tilts more than ``MAX_TILT`` rad or drops below ``FALL_HEIGHT`` m (or the state is not finite)."""
    d = robot.data
    if not np.isfinite(d.qpos).all():
        return False
    g = projected_gravity(d.qpos[3:7])
    return bool(math.acos(float(np.clip(-g[2], -1.0, 1.0))) <= MAX_TILT and d.qpos[2] >= FALL_HEIGHT)


def apply_pushes(robot: MuJoCoRobot, pushes: list[tuple[int, float, float]], tick: int) -> None:
    """Add the horizontal velocity change of every push scheduled at ``tick`` to the trunk."""
    for t, vx, vy in pushes:
        if t == tick:
            robot.data.qvel[0] += vx
            robot.data.qvel[1] += vy


class QuadrupedBalanceEnv(gym.Env):
    """``rlsuite/Quadruped-Balance-v0``: see the module docstring. ``push_vel=0`` turns the pushes off."""

    metadata = {"render_modes": []}

    def __init__(self, push_vel: float = 0.5, push_interval_s: float = 2.0, episode_s: float = 10.0) -> None:
        self.robot = quadruped_sim_robot()
        self.robot.connect()
        self.contract = quadruped_contract()
        self.builder = ObservationBuilder(self.contract)
        self.terms = default_terms(self.contract)  # the deploy loop's own term function
        self.push_vel, self.push_every = push_vel, max(1, int(round(push_interval_s / self.contract.policy_dt)))
        self.max_ticks = int(round(episode_s / self.contract.policy_dt))
        n = self.contract.action_dim
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.contract.obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (n,), np.float32)
        self.q_default = self.robot.info.array("q_default")
        self.kp, self.kd = self.robot.info.array("kp"), self.robot.info.array("kd")
        self.pushes: list[tuple[int, float, float]] = []
        self.tick = 0
        self.last_action = np.zeros(n, np.float32)

    def _obs(self, state: RobotState) -> np.ndarray:
        return self.builder.push(self.terms(state, self.last_action))

    def start_state(self) -> tuple[np.ndarray, np.ndarray]:
        """A perturbed start: joints +-0.3 rad, trunk tilt up to 0.25 rad, any yaw, up to 5 cm higher."""
        qpos, qvel = standing_state(self.robot.model)
        rng = self.np_random
        qpos[2] += rng.uniform(0.0, 0.05)
        qpos[3:7] = _quat_from_rpy(rng.uniform(-0.25, 0.25), rng.uniform(-0.25, 0.25), rng.uniform(-math.pi, math.pi))
        qpos[7:] += rng.uniform(-0.3, 0.3, 12)
        qvel[:] = rng.uniform(-0.1, 0.1, qvel.shape)
        return qpos, qvel

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        qpos, qvel = self.start_state()
        self.pushes = []
        if self.push_vel > 0:
            for t in range(self.push_every, self.max_ticks, self.push_every):
                ang, mag = self.np_random.uniform(-math.pi, math.pi), self.np_random.uniform(0.5, 1.0) * self.push_vel
                self.pushes.append((t, mag * math.cos(ang), mag * math.sin(ang)))
        self.robot.reset(qpos=qpos, qvel=qvel)
        self.builder.reset()
        self.tick = 0
        self.last_action = np.zeros(self.contract.action_dim, np.float32)
        obs = self._obs(self.robot.read_state(0.1))
        return obs, {"qpos": qpos.copy(), "qvel": qvel.copy(), "pushes": list(self.pushes)}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        a = np.asarray(action, np.float32).reshape(-1)
        q_des = self.contract.action_to_targets(a, len(JOINT_NAMES), self.q_default)
        apply_pushes(self.robot, self.pushes, self.tick)
        z = np.zeros_like(q_des)
        self.robot.send_command(RobotCommand(Mode.POSITION, q_des, z, self.kp, self.kd, z))
        self.tick += 1
        a_clipped = self.contract.clip_action(a)
        reward = balance_reward(self.robot, a_clipped, self.last_action)
        self.last_action = a_clipped
        obs = self._obs(self.robot.read_state(0.1))
        terminated = not balance_alive(self.robot)
        return obs, reward, terminated, self.tick >= self.max_ticks, {}


#: The balance task for :func:`rlsuite.robots.sim.sim_to_sim` and ``rlsuite deploy --robot sim:quadruped``.
QUADRUPED_TASK = SimTask(
    name="quadruped", env_id="rlsuite/Quadruped-Balance-v0", make_env=QuadrupedBalanceEnv, max_steps=500, make_robot=quadruped_sim_robot, make_contract=quadruped_contract,
    reward=balance_reward, alive=balance_alive, disturb=apply_pushes,
)
