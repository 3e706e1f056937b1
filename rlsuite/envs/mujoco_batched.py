"""Gymnasium's MuJoCo ``Hopper-v5`` and ``Ant-v5``, ``num_envs`` copies stepped in one loop over ``MjData``.

:class:`MujocoBatchedVecEnv` is a :class:`~rlsuite.core.vec_env.TorchVecEnv` that gives the same numbers as
``make_vec_env("Hopper-v5", N)`` (Gymnasium's envs in a ``SyncVectorEnv`` behind
:class:`~rlsuite.core.vec_env.GymVecAdapter`) without Gymnasium's per-env Python: one ``MjModel``, ``N``
``MjData``, a loop that sets ``ctrl`` and calls ``mujoco.mj_step(model, data, nstep=frame_skip)`` per env, and
the env's rules (observation, reward terms, health rule, time limit, reset noise) written once, batched in
NumPy over the envs. Build it with ``make_vec_env("Hopper-v5", N, mujoco_backend="batched")``.

The physics stays in NumPy on the CPU (MuJoCo's C library); every returned array is a torch tensor on
``device`` (observations and rewards float32, flags bool, as the adapter returns them), copied there once
per step. ``num_threads > 1`` steps contiguous blocks of envs on that many Python threads (``mj_step``
releases the GIL); each ``MjData`` is stepped by one thread, so the numbers do not depend on the thread count.

## Exactness

The same MuJoCo calls on the same model in the same order as Gymnasium's ``MujocoEnv``: ``reset`` is
``mj_resetData``, ``qpos = init_qpos + noise``, ``qvel = init_qvel + noise``, ``mj_forward``; a step is
``ctrl = action`` then ``mj_step(nstep=frame_skip)`` (plus ``mj_rnePostConstraint`` for Ant, whose
observation and contact cost read ``cfrc_ext``; Hopper reads nothing it computes and skips it). The solver's
warm start (``qacc_warmstart``) lives in each ``MjData`` across steps, as in Gymnasium. Reward terms are
the same NumPy expressions in the same dtypes (the control cost is computed in the action's dtype, float32
for float32 actions, as Gymnasium does). Episode seeds are drawn as the adapter draws them (one generator
seeded by ``seed``; ``integers(0, 2**31 - 1)`` per env whose episode starts, in env order) and the reset
noise comes from ``gymnasium.utils.seeding.np_random(episode_seed)``, so for the same ``seed`` and actions
this env and ``make_vec_env(env_id, N, seed=seed)`` return identical tensors (tested on whole episodes with
terminations, time-limit truncations and autoresets: 0 difference). ``info`` holds the step's reward
terms and positions in float64 (``reward_forward``, ``reward_ctrl``, ``reward_survive`` and for Ant
``reward_contact``, which sum to the reward; ``x_position``, ``x_velocity``, ...), from the step *before* a
reset, like Gymnasium's ``info``.

Not exact: ``mujoco.rollout`` (C++ threads) is not used. It takes a warm start in (``initial_warmstart``)
but returns no warm start out, so a closed loop of one call per env step restarts the solver cold each
step and drifts from Gymnasium (docs/envs.md gives the measured difference).

## Protocol

``reset(seed=None, options=None)``: all envs start an episode; ``options={"qpos": (N, nq), "qvel": (N, nv)}``
sets the start state of every env instead of the noise (arrays or tensors; e.g. copied from Gymnasium
envs). ``step(action)``: ``action`` ``(N, nu)`` float32 or float64 (not clipped, like Gymnasium); autoreset
``SAME_STEP``, ``info["final_obs"]``, ``info["episode_return"|"episode_length"]`` as in the protocol.
``state_dict()`` holds each env's full integration state (``mjSTATE_INTEGRATION``: time, ``qpos``,
``qvel``, ``act``, warm start, ``ctrl``, applied forces), the steps taken, the seed generator's state and the
episode statistics; :meth:`MujocoBatchedVecEnv.load_state_dict` continues bit-exactly. No rendering.

## Arguments

``env_id`` (one of :data:`ENV_IDS`), ``num_envs``, ``device``, ``seed``, ``max_episode_steps`` (default
the registered 1000), ``num_threads`` (1), and the Gymnasium env's own tunables with their defaults: for
Hopper-v5 the fields of :class:`HopperRules`, for Ant-v5 those of :class:`AntRules`. Other Gymnasium
arguments (``xml_file``, ``frame_skip``, ``render_mode``, ...) are refused.
"""

from __future__ import annotations

import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np
import torch
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode

from rlsuite.core.seeding import resolve_device
from rlsuite.core.vec_env import TorchVecEnv

_QSPEC = int(mujoco.mjtState.mjSTATE_QPOS | mujoco.mjtState.mjSTATE_QVEL)
_FULL_SPEC = int(mujoco.mjtState.mjSTATE_INTEGRATION)


@dataclass(frozen=True)
class HopperRules:
    """Gymnasium ``Hopper-v5``'s observation, reward, health rule and reset noise, batched over envs (NumPy).

    The fields are ``HopperEnv``'s keyword arguments with its defaults.
    """

    forward_reward_weight: float = 1.0
    """weight of the forward reward (torso x velocity, m/s)."""
    ctrl_cost_weight: float = 1e-3
    """weight of the control cost ``sum(action^2)``."""
    healthy_reward: float = 1.0
    """reward per step while healthy."""
    terminate_when_unhealthy: bool = True
    """end the episode (terminated) when unhealthy."""
    healthy_state_range: tuple[float, float] = (-100.0, 100.0)
    """open interval every entry of ``(qpos[2:], qvel)`` must lie in."""
    healthy_z_range: tuple[float, float] = (0.7, float("inf"))
    """open interval of the torso height ``qpos[1]`` (m)."""
    healthy_angle_range: tuple[float, float] = (-0.2, 0.2)
    """open interval of the torso angle ``qpos[2]`` (rad)."""
    reset_noise_scale: float = 5e-3
    """``qpos`` and ``qvel`` start at their initial values plus ``U(-scale, scale)``."""
    exclude_current_positions_from_observation: bool = True
    """leave the torso x position ``qpos[0]`` out of the observation."""

    gym_entry_point: ClassVar[str] = "gymnasium.envs.mujoco.hopper_v5:HopperEnv"
    post_constraint: ClassVar[bool] = False  # Hopper reads nothing mj_rnePostConstraint computes
    reward_terms: ClassVar[tuple[str, ...]] = ("reward_forward", "reward_ctrl", "reward_survive")

    def positions(self, env: MujocoBatchedVecEnv) -> np.ndarray:
        """``(N, 1)``: the torso x position (m) whose change over a step gives the forward velocity."""
        return env.qpos[:, 0:1]

    def observe(self, env: MujocoBatchedVecEnv) -> np.ndarray:
        """``(N, 11)`` float64: ``qpos[1:]`` and ``clip(qvel, -10, 10)`` (``qpos`` whole if positions are kept)."""
        pos = env.qpos[:, 1:] if self.exclude_current_positions_from_observation else env.qpos
        return np.concatenate([pos, np.clip(env.qvel, -10, 10)], axis=1)

    def healthy(self, env: MujocoBatchedVecEnv) -> np.ndarray:
        """``(N,)`` bool: state, height and angle inside their open intervals (NaN is unhealthy)."""
        z, angle = env.qpos[:, 1], env.qpos[:, 2]
        state = np.concatenate([env.qpos[:, 2:], env.qvel], axis=1)
        lo, hi = self.healthy_state_range
        ok_state = np.all(np.logical_and(lo < state, state < hi), axis=1)
        ok_z = (self.healthy_z_range[0] < z) & (z < self.healthy_z_range[1])
        ok_angle = (self.healthy_angle_range[0] < angle) & (angle < self.healthy_angle_range[1])
        return ok_state & ok_z & ok_angle

    def rewards(self, env: MujocoBatchedVecEnv, velocity: np.ndarray, action: np.ndarray,
                healthy: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Reward ``(N,)`` float64 and its terms (Gymnasium's ``_get_rew``, same operations and dtypes)."""
        forward = self.forward_reward_weight * velocity[:, 0]
        survive = healthy * self.healthy_reward
        ctrl_cost = self.ctrl_cost_weight * np.sum(np.square(action), axis=1)  # in the action's dtype, as Gymnasium
        reward = (forward + survive) - ctrl_cost
        return reward, {"reward_forward": forward, "reward_ctrl": -ctrl_cost, "reward_survive": survive}

    def info(self, env: MujocoBatchedVecEnv, velocity: np.ndarray | None) -> dict[str, np.ndarray]:
        """Positions (and after a step the x velocity), as Gymnasium's step and reset infos."""
        out = {"x_position": env.qpos[:, 0].copy(), "z_distance_from_origin": env.qpos[:, 1] - env.init_qpos[1]}
        if velocity is not None:
            out["x_velocity"] = velocity[:, 0]
        return out

    def start_state(self, rng: np.random.Generator, init_qpos: np.ndarray, init_qvel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One env's start ``(qpos, qvel)``: initial values plus ``U(-scale, scale)`` (``qpos``'s draw first)."""
        s = self.reset_noise_scale
        qpos = init_qpos + rng.uniform(low=-s, high=s, size=init_qpos.size)
        qvel = init_qvel + rng.uniform(low=-s, high=s, size=init_qvel.size)
        return qpos, qvel


@dataclass(frozen=True)
class AntRules:
    """Gymnasium ``Ant-v5``'s observation, reward, health rule and reset noise, batched over envs (NumPy).

    The fields are ``AntEnv``'s keyword arguments with its defaults.
    """

    forward_reward_weight: float = 1.0
    """weight of the forward reward (x velocity of the main body, m/s)."""
    ctrl_cost_weight: float = 0.5
    """weight of the control cost ``sum(action^2)``."""
    contact_cost_weight: float = 5e-4
    """weight of the contact cost ``sum(clip(cfrc_ext)^2)``."""
    healthy_reward: float = 1.0
    """reward per step while healthy."""
    main_body: int | str = 1
    """body (id or name) whose x-y position gives the velocity."""
    terminate_when_unhealthy: bool = True
    """end the episode (terminated) when unhealthy."""
    healthy_z_range: tuple[float, float] = (0.2, 1.0)
    """closed interval of the torso height ``qpos[2]`` (m)."""
    contact_force_range: tuple[float, float] = (-1.0, 1.0)
    """``cfrc_ext`` is clipped to this range (observation and contact cost)."""
    reset_noise_scale: float = 0.1
    """start: ``qpos + U(-scale, scale)``, ``qvel + scale * N(0, 1)``."""
    exclude_current_positions_from_observation: bool = True
    """leave the torso x-y position ``qpos[:2]`` out of the observation."""
    include_cfrc_ext_in_observation: bool = True
    """append the clipped contact forces of every body but the world to the observation."""

    gym_entry_point: ClassVar[str] = "gymnasium.envs.mujoco.ant_v5:AntEnv"
    post_constraint: ClassVar[bool] = True  # cfrc_ext is read by the observation and the contact cost
    reward_terms: ClassVar[tuple[str, ...]] = ("reward_forward", "reward_ctrl", "reward_contact", "reward_survive")

    def positions(self, env: MujocoBatchedVecEnv) -> np.ndarray:
        """``(N, 2)``: ``xpos[main_body, :2]`` as ``MjData`` holds it after the step (Gymnasium reads it so)."""
        return env.body_xy

    def _contact_forces(self, env: MujocoBatchedVecEnv) -> np.ndarray:
        return np.clip(env.cfrc_ext, *self.contact_force_range)

    def observe(self, env: MujocoBatchedVecEnv) -> np.ndarray:
        """``(N, 105)`` float64: ``qpos[2:]``, ``qvel`` and the clipped ``cfrc_ext[1:]`` flattened."""
        parts = [env.qpos[:, 2:] if self.exclude_current_positions_from_observation else env.qpos, env.qvel]
        if self.include_cfrc_ext_in_observation:
            parts.append(self._contact_forces(env)[:, 1:].reshape(env.num_envs, -1))
        return np.concatenate(parts, axis=1)

    def healthy(self, env: MujocoBatchedVecEnv) -> np.ndarray:
        """``(N,)`` bool: every state entry finite and the torso height in the closed interval."""
        z = env.qpos[:, 2]
        finite = np.isfinite(env.qpos).all(axis=1) & np.isfinite(env.qvel).all(axis=1)
        return finite & (self.healthy_z_range[0] <= z) & (z <= self.healthy_z_range[1])

    def rewards(self, env: MujocoBatchedVecEnv, velocity: np.ndarray, action: np.ndarray,
                healthy: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Reward ``(N,)`` float64 and its terms (Gymnasium's ``_get_rew``, same operations and dtypes)."""
        forward = velocity[:, 0] * self.forward_reward_weight
        survive = healthy * self.healthy_reward
        ctrl_cost = self.ctrl_cost_weight * np.sum(np.square(action), axis=1)
        contact_cost = self.contact_cost_weight * np.sum(np.square(self._contact_forces(env)).reshape(env.num_envs, -1), axis=1)
        reward = (forward + survive) - (ctrl_cost + contact_cost)
        return reward, {"reward_forward": forward, "reward_ctrl": -ctrl_cost, "reward_contact": -contact_cost,
                        "reward_survive": survive}

    def info(self, env: MujocoBatchedVecEnv, velocity: np.ndarray | None) -> dict[str, np.ndarray]:
        """Positions (and after a step the x-y velocity), as Gymnasium's step and reset infos."""
        x, y = env.qpos[:, 0].copy(), env.qpos[:, 1].copy()
        out = {"x_position": x, "y_position": y, "distance_from_origin": np.sqrt(x * x + y * y)}
        if velocity is not None:
            out["x_velocity"], out["y_velocity"] = velocity[:, 0], velocity[:, 1]
        return out

    def start_state(self, rng: np.random.Generator, init_qpos: np.ndarray, init_qvel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One env's start ``(qpos, qvel)``: ``qpos + U(-scale, scale)``, then ``qvel + scale * N(0, 1)``."""
        s = self.reset_noise_scale
        qpos = init_qpos + rng.uniform(low=-s, high=s, size=init_qpos.size)
        qvel = init_qvel + s * rng.standard_normal(init_qvel.size)
        return qpos, qvel


logger = logging.getLogger(__name__)

#: env id -> its rules (the ids ``make_vec_env(..., mujoco_backend="batched")`` accepts).
RULES: dict[str, type[HopperRules] | type[AntRules]] = {"Hopper-v5": HopperRules, "Ant-v5": AntRules}
ENV_IDS: tuple[str, ...] = tuple(RULES)


def supports(env_id: str, env_kwargs: dict[str, Any]) -> bool:
    """Whether :class:`MujocoBatchedVecEnv` builds ``env_id`` with these keyword arguments (what
    ``make_vec_env(..., mujoco_backend="auto")`` asks before choosing it over the adapter)."""
    if env_id not in RULES:
        return False
    allowed = {f.name for f in dataclasses.fields(RULES[env_id])} | {"max_episode_steps", "num_threads"}
    return set(env_kwargs) <= allowed


def _make_rules(env_id: str, env_kwargs: dict[str, Any]) -> HopperRules | AntRules:
    if env_id not in RULES:
        raise ValueError(f"the batched MuJoCo backend has no env {env_id!r}; it supports {', '.join(ENV_IDS)}. "
                         "Use mujoco_backend='gymnasium' for any other env.")
    cls = RULES[env_id]
    allowed = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(env_kwargs) - set(allowed))
    if unknown:
        raise ValueError(
            f"the batched {env_id} takes no argument {', '.join(map(repr, unknown))}; it takes num_envs, device, seed, "
            f"max_episode_steps, num_threads and {', '.join(allowed)}. Use mujoco_backend='gymnasium' for the others "
            "(rendering, another xml_file or frame_skip)."
        )
    return cls(**env_kwargs)


class MujocoBatchedVecEnv(TorchVecEnv):
    """``num_envs`` copies of Gymnasium's ``Hopper-v5`` or ``Ant-v5`` in one loop over ``MjData`` (see the module docstring).

    Args:
        env_id: ``"Hopper-v5"`` or ``"Ant-v5"``.
        num_envs: number of copies (>= 1).
        device: device of every returned tensor (the physics runs on the CPU).
        seed: seeds the per-episode seeds (also settable through ``reset(seed=...)``), as the adapter does.
        max_episode_steps: time limit (truncation) in env steps; ``None``: the registered one (1000).
        num_threads: Python threads that step blocks of envs (>= 1; more than ``num_envs`` are not used).
        **env_kwargs: the Gymnasium env's tunables (fields of :class:`HopperRules` / :class:`AntRules`).

    Attributes:
        qpos, qvel: ``(N, nq)``, ``(N, nv)`` float64 views of every env's joint state (read-only by convention).
        model: the ``MjModel``; ``datas``: the ``N`` ``MjData``.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}
    ENV_IDS: ClassVar[tuple[str, ...]] = ENV_IDS

    def __init__(
        self,
        env_id: str = "Hopper-v5",
        num_envs: int = 1,
        device: torch.device | str = "cpu",
        seed: int | None = None,
        max_episode_steps: int | None = None,
        num_threads: int = 1,
        **env_kwargs: Any,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int | np.integer) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}.")
        if isinstance(num_threads, bool) or not isinstance(num_threads, int | np.integer) or num_threads < 1:
            raise ValueError(f"num_threads must be an int >= 1, got {num_threads!r}.")
        self.rules = _make_rules(env_id, env_kwargs)
        spec = gym.spec(env_id)
        if max_episode_steps is None:
            max_episode_steps = spec.max_episode_steps
        if isinstance(max_episode_steps, bool) or not isinstance(max_episode_steps, int | np.integer) or max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be an int >= 1 or None (the registered {spec.max_episode_steps}), "
                             f"got {max_episode_steps!r}.")
        self.env_id = env_id
        self.spec = spec
        self.num_envs = int(num_envs)
        self.device = resolve_device(device)
        self.max_episode_steps = int(max_episode_steps)
        # Gymnasium's own env with the same arguments gives the model, start state and spaces, so they are its own.
        ref = gym.envs.registration.load_env_creator(self.rules.gym_entry_point)(**dataclasses.asdict(self.rules))
        self.model: mujoco.MjModel = ref.model
        self.frame_skip = int(ref.frame_skip)
        self.dt = ref.dt
        self.init_qpos = ref.init_qpos.copy()
        self.init_qvel = ref.init_qvel.copy()
        self.single_observation_space = ref.observation_space
        self.single_action_space = ref.action_space
        ref.close()
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        m = self.model
        self.datas = [mujoco.MjData(m) for _ in range(self.num_envs)]
        self._q = np.zeros((self.num_envs, m.nq + m.nv))
        self.qpos, self.qvel = self._q[:, : m.nq], self._q[:, m.nq :]
        main_body = getattr(self.rules, "main_body", None)
        self._body = None if main_body is None else (m.body(main_body).id if isinstance(main_body, str) else int(main_body))
        self.body_xy = np.zeros((self.num_envs, 2))
        self.cfrc_ext = np.zeros((self.num_envs, m.nbody, 6))
        self._seed_rng = np.random.default_rng(seed)
        self._episode_seed = np.zeros(self.num_envs, dtype=np.int64)
        self._elapsed = np.zeros(self.num_envs, dtype=np.int64)
        self._needs_reset = True
        threads = min(int(num_threads), self.num_envs)
        bounds = np.linspace(0, self.num_envs, threads + 1).astype(int)
        self._blocks = list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="mujoco-batched") if threads > 1 else None
        self._init_episode_stats()

    # ------------------------------------------------------------------ physics

    def _gather(self, i: int, d: mujoco.MjData) -> None:
        mujoco.mj_getState(self.model, d, self._q[i], _QSPEC)
        if self._body is not None:
            self.body_xy[i] = d.xpos[self._body, :2]
        if self.rules.post_constraint:
            self.cfrc_ext[i] = d.cfrc_ext

    def _advance_block(self, lo: int, hi: int, action: np.ndarray) -> None:
        m, skip, post = self.model, self.frame_skip, self.rules.post_constraint
        for i in range(lo, hi):
            d = self.datas[i]
            d.ctrl[:] = action[i]
            mujoco.mj_step(m, d, nstep=skip)
            if post:
                mujoco.mj_rnePostConstraint(m, d)
            self._gather(i, d)

    def _advance(self, action: np.ndarray) -> None:
        if self._pool is None:
            self._advance_block(0, self.num_envs, action)
            return
        for f in [self._pool.submit(self._advance_block, lo, hi, action) for lo, hi in self._blocks]:
            f.result()

    def _reset_rows(self, rows: np.ndarray, qpos: np.ndarray | None = None, qvel: np.ndarray | None = None) -> None:
        """Start episodes in ``rows``: Gymnasium's ``reset`` (noise from each row's episode seed, or the given state)."""
        m = self.model
        for i in rows:
            d = self.datas[i]
            mujoco.mj_resetData(m, d)
            if qpos is None:
                rng, _ = seeding.np_random(int(self._episode_seed[i]))
                qp, qv = self.rules.start_state(rng, self.init_qpos, self.init_qvel)
            else:
                qp, qv = qpos[i], qvel[i]
            d.qpos[:] = qp
            d.qvel[:] = qv
            mujoco.mj_forward(m, d)
            self._gather(i, d)
        self._elapsed[rows] = 0

    def _draw_seeds(self, rows: np.ndarray) -> None:
        for i in rows:  # ascending env index, one draw each: the adapter's order
            self._episode_seed[i] = int(self._seed_rng.integers(0, 2**31 - 1))

    # ------------------------------------------------------------------ conversions and checks

    def _tensor(self, x: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x)).to(device=self.device, dtype=dtype)

    def _info(self, arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """float64 tensors on the device, copied there in one transfer."""
        packed = self._tensor(np.stack(list(arrays.values()), axis=1), torch.float64)
        return {k: packed[:, j] for j, k in enumerate(arrays)}

    def _action(self, action: Any) -> np.ndarray:
        act = action.detach().cpu().numpy() if isinstance(action, torch.Tensor) else np.asarray(action)
        nu = self.model.nu
        if act.shape != (self.num_envs, nu):
            raise ValueError(f"action has shape {tuple(act.shape)}; {self.env_id} with num_envs={self.num_envs} takes "
                             f"({self.num_envs}, {nu}). Pass one row of {nu} controls per env.")
        if act.dtype not in (np.float32, np.float64):
            raise ValueError(f"action has dtype {act.dtype}; allowed: float32, float64 (the control cost is computed in "
                             "the action's dtype, as Gymnasium does). Cast it with .float().")
        if not np.isfinite(act).all():
            bad = np.flatnonzero(~np.isfinite(act).all(axis=1)).tolist()
            raise ValueError(f"action has NaN or infinite entries in envs {bad}; MuJoCo controls must be finite.")
        return act

    @staticmethod
    def _start_arrays(options: dict[str, Any], n: int, nq: int, nv: int) -> tuple[np.ndarray, np.ndarray]:
        unknown = sorted(set(options) - {"qpos", "qvel"})
        if unknown or not {"qpos", "qvel"} <= set(options):
            raise ValueError(f"reset options {sorted(options)}: allowed are 'qpos' ({n}, {nq}) and 'qvel' ({n}, {nv}), "
                             "both together (start states), or no options (noisy starts).")
        out = []
        for key, width in (("qpos", nq), ("qvel", nv)):
            v = options[key]
            v = v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
            if v.shape != (n, width):
                raise ValueError(f"reset option {key!r} has shape {tuple(v.shape)}, expected ({n}, {width}).")
            out.append(v.astype(np.float64))
        return out[0], out[1]

    # ------------------------------------------------------------------ protocol

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[torch.Tensor, dict]:
        """Start an episode in every env; ``options={"qpos": (N, nq), "qvel": (N, nv)}`` sets the start states.

        Returns:
            ``obs`` ``(N, obs_dim)`` float32 and ``info`` with Gymnasium's reset info (float64 ``(N,)`` tensors).
        """
        qpos = qvel = None
        if options:
            qpos, qvel = self._start_arrays(options, self.num_envs, self.model.nq, self.model.nv)
        if seed is not None:
            self._seed_rng = np.random.default_rng(seed)
        rows = np.arange(self.num_envs)
        self._draw_seeds(rows)
        self._reset_rows(rows, qpos, qvel)
        self._init_episode_stats()
        self._needs_reset = False
        return self._tensor(self.rules.observe(self), torch.float32), self._info(self.rules.info(self, None))

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        """One env step of every env (see the protocol in :mod:`rlsuite.core.vec_env`).

        Args:
            action: ``(N, nu)`` float32 or float64 controls (a tensor on any device, or an array).

        Returns:
            ``obs`` ``(N, obs_dim)`` float32 (first observation of the next episode where one ended), ``reward``
            ``(N,)`` float32, ``terminated`` and ``truncated`` ``(N,)`` bool, ``info`` (``final_obs``, reward
            terms, positions, episode statistics).
        """
        if self._needs_reset:
            raise RuntimeError("call reset() (or load_state_dict()) before step().")
        act = self._action(action)
        rules = self.rules
        before = rules.positions(self).copy()
        self._advance(act)
        velocity = (rules.positions(self) - before) / self.dt
        healthy = rules.healthy(self)
        reward, terms = rules.rewards(self, velocity, act, healthy)
        terminated = ~healthy if rules.terminate_when_unhealthy else np.zeros(self.num_envs, dtype=bool)
        self._elapsed += 1
        truncated = self._elapsed >= self.max_episode_steps
        done = terminated | truncated
        info_np = {**rules.info(self, velocity), **terms}
        final_obs = rules.observe(self)
        obs = final_obs
        if done.any():
            rows = np.flatnonzero(done)
            self._draw_seeds(rows)
            self._reset_rows(rows)
            obs = final_obs.copy()
            obs[rows] = rules.observe(self)[rows]
        info: dict[str, Any] = self._info(info_np)
        info["final_obs"] = self._tensor(final_obs, torch.float32)
        info["_final_obs"] = self._tensor(done, torch.bool)
        reward_t = self._tensor(reward, torch.float32)
        self._track_episodes(reward_t, info["_final_obs"], info)
        return (self._tensor(obs, torch.float32), reward_t, self._tensor(terminated, torch.bool),
                self._tensor(truncated, torch.bool), info)

    def state_dict(self) -> dict[str, Any]:
        """Every env's ``mjSTATE_INTEGRATION`` state, steps taken, seeds, seed generator and episode statistics."""
        physics = np.empty((self.num_envs, mujoco.mj_stateSize(self.model, _FULL_SPEC)))
        for i, d in enumerate(self.datas):
            mujoco.mj_getState(self.model, d, physics[i], _FULL_SPEC)
        return {
            "env_id": self.env_id,
            "num_envs": self.num_envs,
            "physics": torch.from_numpy(physics),
            "body_xy": torch.from_numpy(self.body_xy.copy()),
            "elapsed": torch.from_numpy(self._elapsed.copy()),
            "seed_rng": self._seed_rng.bit_generator.state,
            "episode_seed": [int(s) for s in self._episode_seed],
            "needs_reset": self._needs_reset,
            **self._episode_stats_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly from :meth:`state_dict` (same env id and ``num_envs``), or from the state of the
        Gymnasium backend's adapter (:class:`~rlsuite.core.vec_env.GymVecAdapter`, e.g. a checkpoint written before
        the batched backend became the default): its episode seeds and the actions since each reset are replayed."""
        if "history_actions" in state:
            self._load_adapter_state(state)
            return
        if state.get("env_id") != self.env_id or state.get("num_envs") != self.num_envs:
            raise ValueError(f"state is of {state.get('env_id')!r} with num_envs={state.get('num_envs')}, this env is "
                             f"{self.env_id!r} with num_envs={self.num_envs}; build the env the state came from.")
        physics = state["physics"].detach().cpu().numpy().astype(np.float64)
        size = mujoco.mj_stateSize(self.model, _FULL_SPEC)
        if physics.shape != (self.num_envs, size):
            raise ValueError(f"state['physics'] has shape {tuple(physics.shape)}, expected ({self.num_envs}, {size}) "
                             "(mjSTATE_INTEGRATION of this model); the state comes from another model or MuJoCo version.")
        for i, d in enumerate(self.datas):
            mujoco.mj_resetData(self.model, d)
            mujoco.mj_setState(self.model, d, np.ascontiguousarray(physics[i]), _FULL_SPEC)
            mujoco.mj_getState(self.model, d, self._q[i], _QSPEC)  # mj_step recomputes the rest
        self.body_xy[:] = state["body_xy"].cpu().numpy()
        self._elapsed = state["elapsed"].cpu().numpy().astype(np.int64).copy()
        self._seed_rng = np.random.default_rng()
        self._seed_rng.bit_generator.state = state["seed_rng"]
        self._episode_seed = np.asarray(state["episode_seed"], dtype=np.int64)
        self._needs_reset = bool(state["needs_reset"])
        self._load_episode_stats_state(state)

    def _load_adapter_state(self, state: dict[str, Any]) -> None:
        """Replay a :class:`~rlsuite.core.vec_env.GymVecAdapter` state: each env restarts its episode from its seed
        and steps the recorded actions (the same MuJoCo calls as a step, so the same physics and warm start)."""
        seeds = np.asarray(state["episode_seed"], dtype=np.int64)
        lengths = [int(n) for n in state["history_lengths"]]
        if seeds.shape != (self.num_envs,) or len(lengths) != self.num_envs:
            raise ValueError(f"the adapter state holds {seeds.size} envs, this env has num_envs={self.num_envs}; build the "
                             "env with the checkpoint's num_envs.")
        self._seed_rng = np.random.default_rng()
        self._seed_rng.bit_generator.state = state["seed_rng"]
        self._episode_seed = seeds.copy()
        rows = np.arange(self.num_envs)
        if not state.get("exact", False):
            logger.warning("the checkpoint's env could not continue its episodes exactly; episodes restart from fresh seeds.")
            self._draw_seeds(rows)
            self._reset_rows(rows)
        else:
            self._reset_rows(rows)
            actions = state["history_actions"].detach().cpu().numpy()
            starts = np.concatenate([[0], np.cumsum(lengths)]).astype(int)
            m, post = self.model, self.rules.post_constraint
            for i in rows:
                d = self.datas[i]
                for a in actions[starts[i]:starts[i + 1]]:
                    d.ctrl[:] = a
                    mujoco.mj_step(m, d, nstep=self.frame_skip)
                    if post:
                        mujoco.mj_rnePostConstraint(m, d)
                self._gather(i, d)
                self._elapsed[i] = lengths[i]
        self._needs_reset = False
        self._load_episode_stats_state(state)

    def close(self, **kwargs: Any) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

