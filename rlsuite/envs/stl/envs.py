"""STL task environments, batched in torch (GPU-capable), with single-env Gymnasium views.

## Description
An agent moves for ``horizon - 1`` steps; the visited states make a trace of ``horizon`` samples (the
start included) of the signals ``x``, ``y`` (the planar point the predicates read), the robot's extra
signals (``z`` for the quadrotor) and ``d0 .. d{n-1}``, the distances from that point to the task's
object centres. The task is a Signal Temporal Logic formula over those signals
(:mod:`rlsuite.envs.stl.tasks` generates them, or pass ``spec="..."``). Success means hard robustness > 0.

| env id | robot | state | action (clipped to [-1, 1]) | dt |
|---|---|---|---|---|
| ``rlsuite/STL-Linear-v0`` | 2-D single integrator | ``(x, y)`` | velocity ``(vx, vy)`` | 0.5 |
| ``rlsuite/STL-Unicycle-v0`` | unicycle | ``(x, y, theta, v)``, ``v in [-0.01, 2]`` | ``(omega, accel)`` | 0.5 |
| ``rlsuite/STL-Quadrotor-v0`` | 3-D double integrator (a quadrotor's translational dynamics with an ideal attitude loop; gravity compensated) | ``(x, y, z, vx, vy, vz)``, speed <= 2 | acceleration ``(ax, ay, az) * 2`` | 0.25 |
| ``rlsuite/STL-Panda-v0`` | Franka Panda, 7 joints, kinematic (forward kinematics from the published DH parameters) | joint angles | joint velocities ``* qdot_max`` | 0.1 |

For the arm the planar point is the flange's horizontal position in task units (see
:class:`PandaDynamics`). ``rlsuite/STL-Ant-v0`` is the MuJoCo Ant (:class:`AntDynamics`: torso x, y;
8 joint torques; dt 0.05).

## Observation
``[robot features, t / (horizon - 1), (c_i - p) for each object i, r_i for each object i]``: the robot's
features (unicycle: ``x, y, cos theta, sin theta, v``; the others their state), the elapsed-time fraction
(the task is non-Markovian in the state alone) and the object layout relative to the point ``p``.

## Rewards (``reward_mode``)
- ``tgpo`` (vector envs only): TGPO's stage-wise reward on the temporally grounded task, with the
  augmented observation; see :mod:`rlsuite.envs.stl.grounding`.
- ``terminal``: 0, then the hard robustness of the whole trace on the last step.
- ``dense``: robustness shaping ``rho_hold(t) - rho_hold(t - 1)``, where ``rho_hold(t)`` is the hard
  robustness of the trace so far with the last sample held to the horizon. It telescopes to
  ``rho(trace) - rho_hold(0)``, so it is potential-based in the trace-prefix state and keeps the optimum.

## Episode end
After ``horizon - 1`` steps, as ``terminated`` (time is part of the observation and nothing follows the
task's horizon). ``info`` then carries ``robustness`` and ``success`` ``(N,)`` and the last state
``final_state``. Autoreset: same step.

## Arguments
``num_envs``, ``device``, ``family`` (reach, andor, chain, until, mixed) and ``task_seed`` for a
generated task, or ``spec`` (formula text) with optional ``objects`` ``[(cx, cy, r), ...]``; ``horizon``
(default 64); ``reward_mode``; ``dtype``.

## Version History
* v0: initial version.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlsuite.core.seeding import resolve_device
from rlsuite.core.vec_env import TorchVecEnv
from rlsuite.envs.stl.caching import tensor_version as _version
from rlsuite.envs.stl.robustness import robustness
from rlsuite.envs.stl.spec import parse, signals, to_text
from rlsuite.envs.stl.tasks import ARENA, STLTask, sample_task


class Dynamics:
    """A robot model, batched: ``start``, ``step``, the planar ``point`` predicates read, ``features``."""

    name = ""
    state_dim = 0
    action_dim = 0
    dt = 0.5
    extra_signals: tuple[str, ...] = ()

    def start(self, n: int, gen: torch.Generator, device, dtype) -> torch.Tensor:
        raise NotImplementedError

    def step(self, s: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def point(self, s: torch.Tensor) -> torch.Tensor:
        return s[:, :2]

    def extras(self, s: torch.Tensor) -> torch.Tensor:
        return s[:, :0]

    def features(self, s: torch.Tensor) -> torch.Tensor:
        return s


def _uniform(n: int, k: int, lo: float, hi: float, gen, device, dtype) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand((n, k), generator=gen, device=device, dtype=dtype)


class LinearDynamics(Dynamics):
    """``p <- clip(p + u dt, arena)``."""

    name, state_dim, action_dim, dt = "Linear", 2, 2, 0.5

    def start(self, n, gen, device, dtype):
        return _uniform(n, 2, -ARENA + 1, ARENA - 1, gen, device, dtype)

    def step(self, s, u):
        return (s + u * self.dt).clamp(-ARENA, ARENA)


class UnicycleDynamics(Dynamics):
    """``x += v cos(theta) dt``, ``y += v sin(theta) dt``, ``theta += omega dt`` (wrapped),
    ``v = clip(v + a dt, -0.01, 2)``; start ``theta ~ U[-pi, pi)``, ``v ~ U[0, 1]``."""

    name, state_dim, action_dim, dt = "Unicycle", 4, 2, 0.5
    v_max = 2.0

    def start(self, n, gen, device, dtype):
        p = _uniform(n, 2, -ARENA + 1, ARENA - 1, gen, device, dtype)
        th = _uniform(n, 1, -math.pi, math.pi, gen, device, dtype)
        v = _uniform(n, 1, 0.0, 1.0, gen, device, dtype)
        return torch.cat([p, th, v], 1)

    def step(self, s, u):
        x, y, th, v = s.unbind(1)
        x = (x + v * torch.cos(th) * self.dt).clamp(-ARENA, ARENA)
        y = (y + v * torch.sin(th) * self.dt).clamp(-ARENA, ARENA)
        th = torch.remainder(th + u[:, 0] * self.dt + math.pi, 2 * math.pi) - math.pi
        v = (v + u[:, 1] * self.dt).clamp(-0.01, self.v_max)
        return torch.stack([x, y, th, v], 1)

    def features(self, s):
        return torch.stack([s[:, 0], s[:, 1], torch.cos(s[:, 2]), torch.sin(s[:, 2]), s[:, 3]], 1)


class QuadrotorDynamics(Dynamics):
    """3-D double integrator: ``v = clip_norm(v + 2 u dt, 2)``, ``p += v dt`` (x, y in the arena, z in
    [0, 4]); start at rest, z ~ U[0.5, 1.5]. The planar predicates read (x, y); ``z`` is an extra signal."""

    name, state_dim, action_dim, dt = "Quadrotor", 6, 3, 0.25
    extra_signals = ("z",)
    a_max, v_max = 2.0, 2.0

    def start(self, n, gen, device, dtype):
        p = _uniform(n, 2, -ARENA + 1, ARENA - 1, gen, device, dtype)
        z = _uniform(n, 1, 0.5, 1.5, gen, device, dtype)
        return torch.cat([p, z, torch.zeros((n, 3), device=device, dtype=dtype)], 1)

    def step(self, s, u):
        p, v = s[:, :3], s[:, 3:]
        v = v + self.a_max * u * self.dt
        speed = torch.linalg.vector_norm(v, dim=1, keepdim=True)
        v = v * torch.clamp(self.v_max / speed.clamp_min(1e-9), max=1.0)
        p = p + v * self.dt
        lo = torch.tensor([-ARENA, -ARENA, 0.0], device=s.device, dtype=s.dtype)
        hi = torch.tensor([ARENA, ARENA, 4.0], device=s.device, dtype=s.dtype)
        return torch.cat([torch.maximum(torch.minimum(p, hi), lo), v], 1)

    def extras(self, s):
        return s[:, 2:3]


#: Franka Emika Panda kinematics, Craig's (modified) DH convention as Franka publishes it: per joint
#: (a, d, alpha) with the transform RotX(alpha) TransX(a) RotZ(q) TransZ(d); the last row is the flange.
PANDA_DH = ((0.0, 0.333, 0.0), (0.0, 0.0, -math.pi / 2), (0.0, 0.316, math.pi / 2), (0.0825, 0.0, math.pi / 2),
            (-0.0825, 0.384, -math.pi / 2), (0.0, 0.0, math.pi / 2), (0.088, 0.0, math.pi / 2), (0.0, 0.107, 0.0))
PANDA_Q_LOW = (-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973)
PANDA_Q_HIGH = (2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973)
PANDA_READY = (0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4)


def panda_flange_position(q: torch.Tensor) -> torch.Tensor:
    """Flange position ``(B, 3)`` in metres (robot base frame) of joint angles ``q`` ``(B, 7)``, batched."""
    b = q.shape[0]
    t = torch.eye(4, dtype=q.dtype, device=q.device).expand(b, 4, 4)
    zeros = torch.zeros(b, dtype=q.dtype, device=q.device)
    for i, (a, d, alpha) in enumerate(PANDA_DH):
        th = q[:, i] if i < 7 else zeros
        ca, sa = math.cos(alpha), math.sin(alpha)
        ct, st = torch.cos(th), torch.sin(th)
        row0 = torch.stack([ct, -st, zeros, zeros + a], -1)
        row1 = torch.stack([st * ca, ct * ca, zeros - sa, zeros - sa * d], -1)
        row2 = torch.stack([st * sa, ct * sa, zeros + ca, zeros + ca * d], -1)
        row3 = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=q.dtype, device=q.device).expand(b, 4)
        t = t @ torch.stack([row0, row1, row2, row3], 1)
    return t[:, :3, 3]


class PandaDynamics(Dynamics):
    """7-DoF Franka Panda in joint space: ``q <- clip(q + qdot_max * u * dt, limits)`` (joint-velocity
    commands, ``qdot_max`` = 2.175 rad/s for joints 1-4 and 2.61 for 5-7; dt = 0.1). Forward kinematics
    from Franka's published DH parameters (:func:`panda_flange_position`). The predicates read the flange's
    horizontal position mapped into task units, ``(p_xy - (0.5, 0)) / 0.06`` (the task arena [-5, 5]^2 is
    the 0.6 m square in front of the robot), and its height ``z`` in metres. Start: the "ready" pose plus
    uniform noise of 0.1 rad."""

    name, state_dim, action_dim, dt = "Panda", 7, 7, 0.1
    extra_signals = ("z",)
    centre, scale = (0.5, 0.0), 0.06

    def __init__(self) -> None:
        self._cache: tuple[torch.Tensor, int, torch.Tensor] | None = None

    def _flange(self, s: torch.Tensor) -> torch.Tensor:
        """Forward kinematics, computed once per state tensor (signals, features and point all need it)."""
        if self._cache is None or self._cache[0] is not s or self._cache[1] != _version(s):
            self._cache = (s, _version(s), panda_flange_position(s))
        return self._cache[2]

    def start(self, n, gen, device, dtype):
        ready = torch.tensor(PANDA_READY, device=device, dtype=dtype)
        return self._clip(ready + _uniform(n, 7, -0.1, 0.1, gen, device, dtype))

    def _clip(self, q):
        lo = torch.tensor(PANDA_Q_LOW, device=q.device, dtype=q.dtype)
        hi = torch.tensor(PANDA_Q_HIGH, device=q.device, dtype=q.dtype)
        return torch.maximum(torch.minimum(q, hi), lo)

    def step(self, s, u):
        vmax = torch.tensor([2.175] * 4 + [2.61] * 3, device=s.device, dtype=s.dtype)
        return self._clip(s + vmax * u * self.dt)

    def point(self, s):
        p = self._flange(s)
        c = torch.tensor(self.centre, device=s.device, dtype=s.dtype)
        return (p[:, :2] - c) / self.scale

    def extras(self, s):
        return self._flange(s)[:, 2:3]

    def features(self, s):
        return torch.cat([torch.cos(s), torch.sin(s), self.point(s), self.extras(s)], 1)


class AntDynamics(Dynamics):
    """The MuJoCo Ant of Gymnasium's ``Ant-v5`` (one simulator per env, stepped on the CPU through a
    synchronous vector env; no early termination, since an STL episode has a fixed horizon). The state
    is Ant-v5's observation with the torso position kept (29 numbers, contact forces left out); the
    predicates read the torso's ``(x, y) / 0.5`` (task units: the arena [-5, 5]^2 is a 5 m square).
    dt = 0.05 s, so give it a longer ``horizon`` (e.g. 200) than the kinematic robots. The simulators'
    internal state is not part of ``state_dict``: a resumed Ant env restarts its episodes."""

    name, state_dim, action_dim, dt = "Ant", 29, 8, 0.05
    scale = 0.5

    def __init__(self) -> None:
        self.venv = None

    def start(self, n, gen, device, dtype):
        if self.venv is None or self.venv.num_envs != n:
            self.venv = gym.make_vec("Ant-v5", num_envs=n, vectorization_mode="sync", exclude_current_positions_from_observation=False,
                                     include_cfrc_ext_in_observation=False, terminate_when_unhealthy=False)
        obs, _ = self.venv.reset(seed=int(torch.randint(0, 2**31 - 1, (1,), generator=gen, device=gen.device)))
        return torch.as_tensor(obs, device=device, dtype=dtype)

    def step(self, s, u):
        obs, *_ = self.venv.step(u.detach().cpu().numpy().astype(np.float64))
        return torch.as_tensor(obs, device=s.device, dtype=s.dtype)

    def point(self, s):
        return s[:, :2] / self.scale


DYNAMICS = {"Linear": LinearDynamics, "Unicycle": UnicycleDynamics, "Quadrotor": QuadrotorDynamics, "Panda": PandaDynamics,
            "Ant": AntDynamics}


def make_task(family: str = "reach", task_seed: int = 0, spec: str | None = None, objects=None, horizon: int = 64) -> STLTask:
    """A generated task, or one built from ``spec`` text and ``objects`` ``[(cx, cy, r), ...]``."""
    if spec is None:
        return sample_task(family, task_seed, horizon)
    f = parse(spec)
    objs = torch.tensor(objects if objects else [], dtype=torch.float32).reshape(-1, 3)
    return STLTask("custom", to_text(f), f, objs[:, :2].clone(), objs[:, 2].clone(), (), horizon)


class STLVecEnv(TorchVecEnv):
    """``num_envs`` robots of one :class:`Dynamics` on one STL task, stepped together on ``device``."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        dynamics: str = "Linear",
        num_envs: int = 1,
        device: torch.device | str = "cpu",
        family: str = "reach",
        task_seed: int = 0,
        spec: str | None = None,
        objects: list[tuple[float, float, float]] | None = None,
        horizon: int = 64,
        reward_mode: str = "terminal",
        dtype: torch.dtype = torch.float32,
        task: STLTask | None = None,
    ) -> None:
        if dynamics not in DYNAMICS:
            raise ValueError(f"unknown dynamics {dynamics!r}; allowed: {', '.join(DYNAMICS)}.")
        if reward_mode not in ("terminal", "dense"):
            hint = " (tgpo: through gym.make_vec / make_vec_env / make_stl_vec_env)" if reward_mode == "tgpo" else ""
            raise ValueError(f"unknown reward_mode {reward_mode!r}; allowed: terminal, dense{hint}.")
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}.")
        self.dyn = DYNAMICS[dynamics]()
        self.task = task if task is not None else make_task(family, task_seed, spec, objects, horizon)
        self.horizon = self.task.horizon
        if self.horizon < 2:
            raise ValueError(f"horizon must be >= 2, got {self.horizon}.")
        n_obj = self.task.centers.shape[0]
        self.signal_names = ["x", "y", *self.dyn.extra_signals] + [f"d{i}" for i in range(n_obj)]
        unknown = sorted(signals(self.task.formula) - set(self.signal_names))
        if unknown:
            raise ValueError(f"the formula reads {unknown}; this env's signals are {self.signal_names} "
                             f"(d<i> needs objects=[(cx, cy, r), ...]).")
        self.num_envs, self.device, self.dtype, self.reward_mode = num_envs, resolve_device(device), dtype, reward_mode
        self.centers = self.task.centers.to(self.device, dtype)
        self.radii = self.task.radii.to(self.device, dtype)
        obs_dim = self.dyn.features(torch.zeros(1, self.dyn.state_dim)).shape[1] + 1 + 3 * n_obj
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, (self.dyn.action_dim,), np.float32)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self._gen = torch.Generator(device=self.device)
        self._gen.manual_seed(int(np.random.SeedSequence().generate_state(1)[0]))
        self.state = torch.zeros((num_envs, self.dyn.state_dim), device=self.device, dtype=dtype)
        self.trace = torch.zeros((num_envs, self.horizon, len(self.signal_names)), device=self.device, dtype=dtype)
        self.t = 0
        self._rho_hold = torch.zeros(num_envs, device=self.device, dtype=dtype)
        self._init_episode_stats()

    # signals and observations
    def signals_of(self, s: torch.Tensor) -> torch.Tensor:
        """Signals ``(N, S)`` of states ``(N, state_dim)``."""
        p = self.dyn.point(s)
        d = torch.linalg.vector_norm(p.unsqueeze(1) - self.centers.unsqueeze(0), dim=-1)
        return torch.cat([p, self.dyn.extras(s), d], 1)

    def _obs(self) -> torch.Tensor:
        p = self.dyn.point(self.state)
        rel = (self.centers.unsqueeze(0) - p.unsqueeze(1)).flatten(1)
        tfrac = torch.full((self.num_envs, 1), self.t / (self.horizon - 1), device=self.device, dtype=self.dtype)
        return torch.cat([self.dyn.features(self.state), tfrac, rel, self.radii.expand(self.num_envs, -1)], 1).to(torch.float32)

    def trace_robustness(self, trace: torch.Tensor | None = None) -> torch.Tensor:
        """Hard robustness at t = 0 of ``trace`` ``(N, horizon, S)`` (default: the current one)."""
        return robustness(self.task.formula, self.trace if trace is None else trace, self.signal_names)[:, 0]

    def _held_robustness(self) -> torch.Tensor:
        held = self.trace.clone()
        held[:, self.t + 1 :] = self.trace[:, self.t : self.t + 1]
        return self.trace_robustness(held)

    def _begin(self, start: torch.Tensor) -> None:
        self.state = start
        self.t = 0
        self.trace.zero_()
        self.trace[:, 0] = self.signals_of(start)
        if self.reward_mode == "dense":
            self._rho_hold = self._held_robustness()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[torch.Tensor, dict]:
        """Reset every robot; ``options={"state": (N, state_dim)}`` sets the start states."""
        if seed is not None:
            self._gen.manual_seed(int(seed))
        if options and "state" in options:
            start = torch.as_tensor(options["state"], device=self.device, dtype=self.dtype).reshape(self.num_envs, -1).clone()
        else:
            start = self.dyn.start(self.num_envs, self._gen, self.device, self.dtype)
        self._begin(start)
        self._init_episode_stats()
        return self._obs(), {}

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        u = torch.as_tensor(action, device=self.device).reshape(self.num_envs, self.dyn.action_dim).to(self.dtype).clamp(-1, 1)
        self.state = self.dyn.step(self.state, u)
        self.t += 1
        self.trace[:, self.t] = self.signals_of(self.state)
        done = self.t == self.horizon - 1
        info: dict[str, Any] = {}
        if self.reward_mode == "dense":
            new = self._held_robustness()
            reward = new - self._rho_hold
            self._rho_hold = new
        else:
            reward = torch.zeros(self.num_envs, device=self.device, dtype=self.dtype)
        terminated = torch.full((self.num_envs,), done, dtype=torch.bool, device=self.device)
        if done:
            rho = self.trace_robustness()
            if self.reward_mode == "terminal":
                reward = rho
            info["robustness"] = rho.to(torch.float32)
            info["success"] = rho > 0
            info["final_state"] = self.state.clone()
        reward = reward.to(torch.float32)
        info["final_obs"] = self._obs()
        info["_final_obs"] = terminated
        self._track_episodes(reward, terminated, info)
        if done:
            self._begin(self.dyn.start(self.num_envs, self._gen, self.device, self.dtype))
        return self._obs(), reward, terminated, torch.zeros_like(terminated), info

    def state_dict(self) -> dict[str, Any]:
        return {"state": self.state.clone(), "trace": self.trace.clone(), "t": torch.tensor(self.t),
                "rho_hold": self._rho_hold.clone(), "generator": self._gen.get_state(), **self._episode_stats_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = state["state"].to(self.device, self.dtype).clone()
        self.trace = state["trace"].to(self.device, self.dtype).clone()
        self.t = int(state["t"])
        self._rho_hold = state["rho_hold"].to(self.device, self.dtype).clone()
        self._gen.set_state(state["generator"].cpu().to(torch.uint8))
        self._load_episode_stats_state(state)


def make_stl_vec_env(dynamics: str, num_envs: int = 1, device: torch.device | str = "cpu", reward_mode: str = "terminal",
                     stage_weights: Any = None, **kwargs: Any) -> TorchVecEnv:
    """An :class:`STLVecEnv`, or with ``reward_mode="tgpo"`` the same env seen through TGPO's temporal
    grounding (:class:`rlsuite.envs.stl.grounding.GroundedSTLVecEnv`, stage-wise reward)."""
    if reward_mode == "tgpo":
        from rlsuite.envs.stl.grounding import GroundedSTLVecEnv

        base = STLVecEnv(dynamics, num_envs=num_envs, device=device, reward_mode="terminal", **kwargs)
        return GroundedSTLVecEnv(base, stage_weights)
    return STLVecEnv(dynamics, num_envs=num_envs, device=device, reward_mode=reward_mode, **kwargs)


def _vec_factory(dynamics: str):
    def make(num_envs: int = 1, device: torch.device | str = "cpu", **kwargs) -> TorchVecEnv:
        return make_stl_vec_env(dynamics, num_envs=num_envs, device=device, **kwargs)

    make.__name__ = f"STL{dynamics}VecEnv"
    make.builds_torch_vec_env = True  # make_vec_env builds it directly on the device
    return make


STLLinearVecEnv = _vec_factory("Linear")
STLUnicycleVecEnv = _vec_factory("Unicycle")
STLQuadrotorVecEnv = _vec_factory("Quadrotor")
STLPandaVecEnv = _vec_factory("Panda")
STLAntVecEnv = _vec_factory("Ant")


class STLEnv(gym.Env):
    """Single-env Gymnasium view of :class:`STLVecEnv` (CPU, NumPy out); same keyword arguments."""

    metadata = {"render_modes": []}

    def __init__(self, dynamics: str = "Linear", **kwargs: Any) -> None:
        self._vec = STLVecEnv(dynamics, num_envs=1, device="cpu", dtype=torch.float64, **kwargs)
        self.task = self._vec.task
        self.observation_space = self._vec.single_observation_space
        self.action_space = self._vec.single_action_space

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        vec_options = {"state": np.asarray(options["state"]).reshape(1, -1)} if options and "state" in options else None
        obs, _ = self._vec.reset(seed=int(self.np_random.integers(0, 2**63 - 1)), options=vec_options)
        return obs[0].numpy(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self._vec.step(torch.as_tensor(np.asarray(action, dtype=np.float64)).reshape(1, -1))
        out: dict[str, Any] = {}
        if "robustness" in info:
            out = {"robustness": float(info["robustness"][0]), "success": bool(info["success"][0])}
            obs = info["final_obs"]  # the single env is not auto-reset
        return obs[0].numpy(), float(reward[0]), bool(terminated[0]), bool(truncated[0]), out


def _single_factory(dynamics: str):
    def make(**kwargs: Any) -> STLEnv:
        return STLEnv(dynamics, **kwargs)

    make.__name__ = f"STL{dynamics}Env"
    make.__doc__ = f"``rlsuite/STL-{dynamics}-v0`` single env (an :class:`STLEnv`)."
    return make


STLLinearEnv = _single_factory("Linear")
STLUnicycleEnv = _single_factory("Unicycle")
STLQuadrotorEnv = _single_factory("Quadrotor")
STLPandaEnv = _single_factory("Panda")
STLAntEnv = _single_factory("Ant")
