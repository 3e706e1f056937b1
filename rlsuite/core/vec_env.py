"""The batched-env protocol of the suite and the adapter from Gymnasium vector envs.

Every environment an agent sees is a :class:`TorchVecEnv`: a ``gymnasium.vector.VectorEnv`` whose
arrays are torch tensors on ``env.device``:

* ``reset(seed=None) -> (obs, info)`` with ``obs`` of shape ``(num_envs, *obs_shape)``;
* ``step(action) -> (obs, reward, terminated, truncated, info)``; ``action`` ``(num_envs, *act_shape)``,
  ``reward`` float32 ``(num_envs,)``, ``terminated`` and ``truncated`` bool ``(num_envs,)``, kept apart;
* autoreset is ``SAME_STEP`` (declared in ``metadata["autoreset_mode"]``): an env whose episode ended
  is reset inside ``step`` and the returned ``obs`` row is the first observation of the next episode;
* ``info["final_obs"]`` ``(num_envs, *obs_shape)`` holds the observation *before* that reset where an
  episode ended (rows where it did not equal ``obs``), ``info["_final_obs"]`` the bool mask of those rows;
* ``info["episode_return"]`` / ``info["episode_length"]`` ``(num_envs,)`` give the finished episode's
  undiscounted return and length where ``info["_final_obs"]`` is set;
* ``state_dict()`` / ``load_state_dict()`` capture everything needed to continue exactly (exact resume).

Action masks. An env whose allowed actions change with the state (a combinatorial construction, a
dispatch problem, a board game) reports them as ``info["action_mask"]``: a bool tensor on ``env.device``,
True = allowed, of shape ``(num_envs, n)`` for a ``Discrete(n)`` action space and ``(num_envs,
sum(nvec))`` for ``MultiDiscrete(nvec)`` (one block of ``nvec[i]`` entries per component, in order).
It is present after ``reset`` and after *every* ``step`` (never only on some steps), every row allows at
least one action (per component for MultiDiscrete), and it describes the *returned* observation, i.e.
the first observation of the next episode where an episode ended (the same-step autoreset). Agents sample
from :class:`rlsuite.core.distributions.MaskedCategorical` with it, so a forbidden action has probability
0; an env may still define what a forbidden action does (the single-env views of rlsuite accept any action
so that Gymnasium's and SB3's env checkers, which sample without masks, pass).

Gymnasium envs (classic control, MuJoCo, anything registered) come in through :class:`GymVecAdapter`.
It passes a single env's ``info["action_mask"]`` (a NumPy bool array ``(n,)``) through, stacked into the
``(num_envs, n)`` tensor above (taken from the reset's info for the envs it resets). Observation spaces
other than ``Box`` (``Dict``, nested ``Dict``, ``Tuple``, ``Discrete``, ``MultiDiscrete``,
``MultiBinary``) are flattened with :func:`rlsuite.core.spaces.flatten_obs` into one float32 vector
(``Dict`` keys in sorted order, discrete parts one-hot; the layout is in :mod:`rlsuite.core.spaces`):
the adapter's ``single_observation_space`` is then :func:`rlsuite.core.spaces.flatten_space` of the
env's, and ``original_observation_space`` keeps the structured one.
"""

from __future__ import annotations

import logging
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv

from rlsuite.core.registry import UnknownNameError, unknown_name_message
from rlsuite.core.seeding import resolve_device
from rlsuite.core.spaces import flatten_obs, flatten_space

logger = logging.getLogger(__name__)

VECTORIZATION_MODES = ("auto", "sync", "async")
MUJOCO_BACKENDS = ("auto", "gymnasium", "batched")
#: the batched MuJoCo env behind ``make_vec_env(..., mujoco_backend="batched")`` (rlsuite.envs, loaded by name)
BATCHED_MUJOCO_ENTRY_POINT = "rlsuite.envs.mujoco_batched:MujocoBatchedVecEnv"
BATCHED_MUJOCO_SUPPORTS = "rlsuite.envs.mujoco_batched:supports"


class TorchVecEnv(VectorEnv):
    """Base class of batched torch environments (see the module docstring for the contract).

    Subclasses set ``num_envs``, ``device``, the single and batched spaces, call
    :meth:`_init_episode_stats`, and use :meth:`_track_episodes` in ``step``.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP}
    device: torch.device

    def _init_episode_stats(self) -> None:
        self._ep_return = torch.zeros(self.num_envs, device=self.device, dtype=torch.float64)
        self._ep_length = torch.zeros(self.num_envs, device=self.device, dtype=torch.int64)

    def _track_episodes(self, reward: torch.Tensor, done: torch.Tensor, info: dict[str, Any]) -> None:
        """Accumulate returns and lengths; write the finished ones into ``info`` and restart them."""
        self._ep_return += reward.to(torch.float64)
        self._ep_length += 1
        info["episode_return"] = self._ep_return.to(torch.float32)
        info["episode_length"] = self._ep_length.clone()
        self._ep_return = torch.where(done, torch.zeros_like(self._ep_return), self._ep_return)
        self._ep_length = torch.where(done, torch.zeros_like(self._ep_length), self._ep_length)

    def _episode_stats_state(self) -> dict[str, torch.Tensor]:
        return {"ep_return": self._ep_return.clone(), "ep_length": self._ep_length.clone()}

    def _load_episode_stats_state(self, state: dict[str, torch.Tensor]) -> None:
        self._ep_return = state["ep_return"].to(self.device, torch.float64).clone()
        self._ep_length = state["ep_length"].to(self.device, torch.int64).clone()

    @property
    def exact_resume(self) -> bool:
        """Whether :meth:`load_state_dict` continues the interrupted episodes exactly."""
        return True

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue from here (tensors and JSON-able values)."""
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        raise NotImplementedError


def _check_action_space(space: gym.Space) -> None:
    if isinstance(space, gym.spaces.Box | gym.spaces.Discrete | gym.spaces.MultiDiscrete):
        return
    raise ValueError(
        f"action space {space} is not supported; allowed: Box, Discrete and MultiDiscrete. "
        "Wrap the env so that its actions are one of those."
    )


def action_mask_width(space: gym.Space) -> int:
    """Width of ``info["action_mask"]`` for a single action space: ``n`` (Discrete), ``sum(nvec)`` (MultiDiscrete)."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return int(np.sum(space.nvec))
    raise ValueError(f"action masks need a Discrete or MultiDiscrete action space, got {space}.")


def _single_obs_as_batch(space: gym.Space, obs: Any) -> Any:
    """One structured observation as a batch of one (leading dimension 1 on every leaf)."""
    if isinstance(space, gym.spaces.Dict):
        return {k: _single_obs_as_batch(space[k], obs[k]) for k in space.keys()}
    if isinstance(space, gym.spaces.Tuple):
        return tuple(_single_obs_as_batch(s, o) for s, o in zip(space.spaces, obs, strict=True))
    return np.asarray(obs)[None]


class GymVecAdapter(TorchVecEnv):
    """Turn a Gymnasium vector env (sync or async) into a :class:`TorchVecEnv`.

    The wrapped env must use autoreset mode ``DISABLED`` (the adapter resets finished envs itself, with a
    seed per episode drawn from its own seeded generator) or ``SAME_STEP`` (passed through). ``NEXT_STEP``
    is refused because its extra reset step would enter the training data as a fake transition.

    Exact resume: with a ``SyncVectorEnv`` in ``DISABLED`` mode the adapter remembers each env's
    episode seed and the actions since its reset, and :meth:`load_state_dict` replays them, so any
    deterministic Gymnasium env continues mid-episode exactly. A wrapped env in ``DISABLED`` mode with a
    method ``replay_episodes(seeds, actions)`` (the rollout workers'
    :class:`~rlsuite.core.rollout_workers.RayVectorEnv`) is replayed through it instead. Other set-ups
    restart the episodes on load (a warning is logged).

    Action masks and structured observations: see the module docstring (``info["action_mask"]`` is
    passed through as a bool tensor; non-Box observations are flattened with :mod:`rlsuite.core.spaces`).

    Args:
        env: the Gymnasium vector env (Box, Discrete or MultiDiscrete actions; any observation space
            :mod:`rlsuite.core.spaces` flattens).
        device: device of the returned tensors.
        seed: seeds the per-episode seed generator (also settable through ``reset(seed=...)``).
    """

    def __init__(self, env: VectorEnv, device: torch.device | str = "cpu", seed: int | None = None) -> None:
        mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        mode = AutoresetMode(mode) if not isinstance(mode, AutoresetMode) else mode
        if mode == AutoresetMode.NEXT_STEP:
            raise ValueError(
                "GymVecAdapter got a vector env with autoreset_mode NEXT_STEP, whose reset step would enter the "
                "data as a fake transition. Create it with "
                "gymnasium.make_vec(..., vector_kwargs={'autoreset_mode': AutoresetMode.DISABLED}) "
                "or use rlsuite.core.vec_env.make_vec_env."
            )
        _check_action_space(env.single_action_space)
        self.env = env
        self.mode = mode
        self.num_envs = env.num_envs
        self.device = resolve_device(device)
        self.original_observation_space = env.single_observation_space
        self._structured = not isinstance(env.single_observation_space, gym.spaces.Box)
        if self._structured:
            self.single_observation_space = flatten_space(env.single_observation_space)  # refuses what it cannot flatten
            self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        else:
            self.single_observation_space = env.single_observation_space
            self.observation_space = env.observation_space
        self.single_action_space = env.single_action_space
        self.action_space = env.action_space
        self.metadata = {**env.metadata, "autoreset_mode": AutoresetMode.SAME_STEP}
        self.spec = getattr(env, "spec", None)
        self._discrete = isinstance(self.single_action_space, gym.spaces.Discrete)
        self._int_actions = isinstance(self.single_action_space, gym.spaces.Discrete | gym.spaces.MultiDiscrete)
        self._has_mask: bool | None = None  # decided by the first reset
        self._seed_rng = np.random.default_rng(seed)
        self._episode_seed = np.zeros(self.num_envs, dtype=np.int64)
        self._history: list[list[np.ndarray]] = [[] for _ in range(self.num_envs)]
        self._init_episode_stats()

    @property
    def exact_resume(self) -> bool:
        replays = isinstance(self.env, SyncVectorEnv) or callable(getattr(self.env, "replay_episodes", None))
        return replays and self.mode == AutoresetMode.DISABLED

    def _obs(self, obs: Any) -> torch.Tensor:
        """A fresh float32 tensor on the device (flattened for structured spaces; never a view of the env's buffers)."""
        if self._structured:
            return flatten_obs(self.original_observation_space, obs).to(self.device)
        return torch.tensor(np.asarray(obs), dtype=torch.float32, device=self.device)

    def _mask(self, info: dict[str, Any], rows: np.ndarray | None = None, into: np.ndarray | None = None) -> np.ndarray | None:
        """``info["action_mask"]`` stacked by the vector env as ``(N, n)`` bool (``rows``: the envs whose
        info it is; their rows overwrite ``into``)."""
        if not self._has_mask:
            return None
        rows = np.ones(self.num_envs, dtype=bool) if rows is None else rows
        present = np.asarray(info.get("_action_mask", np.zeros(self.num_envs, dtype=bool)), dtype=bool)
        if "action_mask" not in info or not present[rows].all():
            missing = np.flatnonzero(rows & ~present).tolist()
            raise ValueError(
                f"envs {missing} returned no info['action_mask'] although the env reported one at reset; an env "
                "with action masks must report them after reset and after every step."
            )
        width = action_mask_width(self.single_action_space)
        mask = np.asarray(info["action_mask"], dtype=bool).reshape(self.num_envs, -1)
        if mask.shape[1] != width:
            raise ValueError(
                f"info['action_mask'] has {mask.shape[1]} entries per env, the action space {self.single_action_space} "
                f"needs {width} (n for Discrete, sum(nvec) for MultiDiscrete)."
            )
        if into is None:
            return mask.copy()
        out = into.copy()
        out[rows] = mask[rows]
        return out

    def _mask_tensor(self, mask: np.ndarray | None, info: dict[str, Any]) -> None:
        if mask is not None:
            info["action_mask"] = torch.as_tensor(mask, device=self.device)

    def _draw_seeds(self, mask: np.ndarray) -> list[int | None]:
        seeds: list[int | None] = [None] * self.num_envs
        for i in np.flatnonzero(mask):
            s = int(self._seed_rng.integers(0, 2**31 - 1))
            self._episode_seed[i] = s
            self._history[i] = []
            seeds[i] = s
        return seeds

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[torch.Tensor, dict]:
        if seed is not None:
            self._seed_rng = np.random.default_rng(seed)
        seeds = self._draw_seeds(np.ones(self.num_envs, dtype=bool))
        obs, info = self.env.reset(seed=seeds, options=options)
        self._init_episode_stats()
        self._has_mask = "action_mask" in info
        out_info = {k: v for k, v in info.items() if k not in ("action_mask", "_action_mask")}
        self._mask_tensor(self._mask(info), out_info)
        return self._obs(obs), out_info

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        act = action.detach().cpu().numpy()
        if self._discrete:
            act = act.astype(np.int64).reshape(self.num_envs)
        elif self._int_actions:
            act = act.astype(np.int64).reshape(self.num_envs, *self.single_action_space.shape)
        obs, reward, terminated, truncated, env_info = self.env.step(act)
        if self.exact_resume:
            for i in range(self.num_envs):
                self._history[i].append(act[i])
        done = np.logical_or(terminated, truncated)
        mask = self._mask(env_info)
        final_obs = self._obs(obs)
        if self.mode == AutoresetMode.DISABLED:
            if done.any():
                seeds = self._draw_seeds(done)
                obs, reset_info = self.env.reset(seed=seeds, options={"reset_mask": done})
                mask = self._mask(reset_info, rows=done, into=mask)
        elif "final_obs" in env_info:  # SAME_STEP: gymnasium already reset; recover the final observations
            for i in np.flatnonzero(env_info.get("_final_obs", done)):
                final_obs[i] = self._obs(_single_obs_as_batch(self.original_observation_space, env_info["final_obs"][i]))[0]
        info: dict[str, Any] = {"final_obs": final_obs, "_final_obs": torch.as_tensor(done, device=self.device)}
        self._mask_tensor(mask, info)
        reward_t = torch.as_tensor(np.asarray(reward), dtype=torch.float32).to(self.device)
        done_t = info["_final_obs"]
        self._track_episodes(reward_t, done_t, info)
        return (
            self._obs(obs),
            reward_t,
            torch.as_tensor(np.asarray(terminated, dtype=bool), device=self.device),
            torch.as_tensor(np.asarray(truncated, dtype=bool), device=self.device),
            info,
        )

    def state_dict(self) -> dict[str, Any]:
        lengths = [len(h) for h in self._history]
        flat = [a for h in self._history for a in h]
        act_shape = self.single_action_space.shape
        actions = (
            torch.as_tensor(np.stack(flat)).reshape(len(flat), *act_shape)
            if flat
            else torch.zeros((0, *act_shape), dtype=torch.int64 if self._int_actions else torch.float32)
        )
        return {
            "seed_rng": self._seed_rng.bit_generator.state,
            "episode_seed": [int(s) for s in self._episode_seed],
            "history_lengths": lengths,
            "history_actions": actions,
            "exact": self.exact_resume,
            **self._episode_stats_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._seed_rng = np.random.default_rng()
        self._seed_rng.bit_generator.state = state["seed_rng"]
        self._episode_seed = np.asarray(state["episode_seed"], dtype=np.int64)
        if not (self.exact_resume and state.get("exact", False)):
            logger.warning(
                "this env set-up cannot continue interrupted episodes exactly (exact resume needs sync "
                "vectorization with DISABLED autoreset); episodes restart from fresh seeds."
            )
            self.reset()
            return
        # Reset every sub-env through the vector env so its bookkeeping is clean, then replay each
        # episode's seed and actions directly on the sub-env (in the rollout workers for a RayVectorEnv).
        seeds = [int(s) for s in self._episode_seed]
        self.env.reset(seed=seeds)
        actions = state["history_actions"].cpu().numpy()
        starts = np.cumsum([0, *state["history_lengths"]])
        episodes = [[a.item() if self._discrete else a for a in actions[lo:hi]] for lo, hi in zip(starts[:-1], starts[1:], strict=True)]
        if isinstance(self.env, SyncVectorEnv):
            for sub, seed, acts in zip(self.env.envs, seeds, episodes, strict=True):
                sub.reset(seed=seed)
                for a in acts:
                    sub.step(a)
        else:
            self.env.replay_episodes(seeds, episodes)
        self._history = [[np.asarray(a) for a in acts] for acts in episodes]
        self._load_episode_stats_state(state)

    def close(self, **kwargs: Any) -> None:
        self.env.close(**kwargs)


def check_env_id(env_id: str) -> gym.envs.registration.EnvSpec:
    """Return the Gymnasium spec of ``env_id`` or raise :class:`UnknownNameError` with suggestions."""
    try:
        return gym.spec(env_id)
    except gym.error.Error:
        raise UnknownNameError(
            unknown_name_message(
                "environment",
                env_id,
                gym.registry.keys(),
                hint="Any id registered with Gymnasium works; rlsuite's own ids start with 'rlsuite/'.",
            )
        ) from None


def _is_torch_vec_entry_point(spec: gym.envs.registration.EnvSpec) -> bool:
    """Whether ``spec``'s vector entry point builds a :class:`TorchVecEnv` (Gymnasium's own are NumPy):
    a TorchVecEnv subclass, or a factory function marked ``builds_torch_vec_env = True``."""
    ep = spec.vector_entry_point
    if ep is None:
        return False
    creator = gym.envs.registration.load_env_creator(ep) if isinstance(ep, str) else ep
    return (isinstance(creator, type) and issubclass(creator, TorchVecEnv)) or getattr(creator, "builds_torch_vec_env", False) is True


def check_env_kwargs(env_id: str, env_kwargs: dict[str, Any]) -> None:
    """Refuse keyword arguments the constructor of ``env_id`` (the one :func:`make_vec_env` calls) does not take.

    Where the constructor takes ``**kwargs`` (Gymnasium's MuJoCo envs), one env is built and closed to find out.

    Raises:
        ValueError: an unknown argument, with the arguments the env takes.
    """
    if not env_kwargs:
        return
    import inspect

    reserved = sorted({"num_envs", "device", "render_mode"} & set(env_kwargs))
    if reserved:
        raise ValueError(f"--env-kwargs sets {', '.join(reserved)}, which the run sets itself (--num-envs of the agent, --device; "
                         "rlsuite eval --video renders); leave them out.")
    spec = check_env_id(env_id)
    ep = spec.vector_entry_point if _is_torch_vec_entry_point(spec) else spec.entry_point
    creator = gym.envs.registration.load_env_creator(ep) if isinstance(ep, str) else ep
    try:
        params = inspect.signature(creator).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        try:
            if _is_torch_vec_entry_point(spec):
                make_vec_env(env_id, 1, device="cpu", **env_kwargs).close()
            else:
                gym.make(env_id, **env_kwargs).close()
        except TypeError as e:
            raise ValueError(f"{env_id} could not be built with {env_kwargs}: {e}") from None
        return
    known = [n for n, p in params.items() if n not in ("self", "num_envs", "device", "render_mode")
             and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    unknown = sorted(set(env_kwargs) - set(known))
    if unknown:
        raise ValueError(f"{env_id} takes no argument {', '.join(map(repr, unknown))}; its arguments: {', '.join(known) or 'none'}.")


def make_vec_env(
    env_id: str,
    num_envs: int = 1,
    device: torch.device | str = "cpu",
    seed: int | None = None,
    vectorization: str = "auto",
    mujoco_backend: str = "auto",
    **env_kwargs: Any,
) -> TorchVecEnv:
    """Create ``num_envs`` copies of ``env_id`` as a :class:`TorchVecEnv` on ``device``.

    Envs registered with a ``vector_entry_point`` (rlsuite's batched torch envs) are built directly on
    the device; any other Gymnasium id goes through :class:`GymVecAdapter` over a ``SyncVectorEnv``
    (``auto``/``sync``; the right choice for light envs on few cores) or ``AsyncVectorEnv`` (``async``).

    Args:
        env_id: a Gymnasium id, e.g. ``"CartPole-v1"`` or ``"rlsuite/Pendulum-v0"``.
        num_envs: number of parallel copies (>= 1).
        device: device of every tensor the env returns.
        seed: seeds the envs' per-episode seeds (pass it again to ``reset`` for the first episode).
        vectorization: ``auto``, ``sync`` or ``async`` (ignored for batched torch envs and ``mujoco_backend="batched"``).
        mujoco_backend: ``gymnasium`` (Gymnasium's envs behind the adapter) or ``batched``: for the ids in
            ``rlsuite.envs.mujoco_batched.ENV_IDS`` (Hopper-v5, Ant-v5), one loop over ``MjData`` with the env's rules
            batched in NumPy (:class:`rlsuite.envs.mujoco_batched.MujocoBatchedVecEnv`; same numbers for the same
            ``seed`` and actions, 1.2-1.6x the adapter's steps per second: scripts/bench/mujoco_stepping.py).
            ``auto`` (the default): ``batched`` where it builds the env (a supported id, its keyword arguments,
            ``vectorization`` not ``async``), else ``gymnasium`` (e.g. with ``render_mode`` for videos).
        **env_kwargs: passed to the env constructor.
    """
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}.")
    if vectorization not in VECTORIZATION_MODES:
        raise ValueError(f"vectorization must be one of {VECTORIZATION_MODES}, got {vectorization!r}.")
    if mujoco_backend not in MUJOCO_BACKENDS:
        ids = gym.envs.registration.load_env_creator(BATCHED_MUJOCO_ENTRY_POINT).ENV_IDS
        raise ValueError(f"mujoco_backend must be one of {MUJOCO_BACKENDS} ('batched' supports {', '.join(ids)}), "
                         f"got {mujoco_backend!r}.")
    spec = check_env_id(env_id)
    device = resolve_device(device)
    if mujoco_backend == "auto":
        mujoco_backend = "batched" if _batched_mujoco_builds(spec, vectorization, env_kwargs) else "gymnasium"
    if mujoco_backend == "batched":
        # Loaded by name, as Gymnasium's entry points are: core does not import rlsuite.envs.
        batched = gym.envs.registration.load_env_creator(BATCHED_MUJOCO_ENTRY_POINT)
        if env_id not in batched.ENV_IDS:
            raise ValueError(f"mujoco_backend='batched' supports {', '.join(batched.ENV_IDS)}, got {env_id!r}; "
                             "use mujoco_backend='gymnasium' or 'auto' (the default) for any other env.")
        return batched(env_id, num_envs=num_envs, device=device, seed=seed, **env_kwargs)
    if _is_torch_vec_entry_point(spec):
        env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", device=device, **env_kwargs)
        if not isinstance(env, TorchVecEnv):
            raise TypeError(f"{env_id} has a vector entry point that does not build a TorchVecEnv ({type(env).__name__}).")
        return env
    mode = "sync" if vectorization == "auto" else vectorization
    venv = gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode=mode,
        vector_kwargs={"autoreset_mode": AutoresetMode.DISABLED},
        **env_kwargs,
    )
    return GymVecAdapter(venv, device=device, seed=seed)


def _batched_mujoco_builds(spec: gym.envs.registration.EnvSpec, vectorization: str, env_kwargs: dict[str, Any]) -> bool:
    """Whether ``mujoco_backend="auto"`` picks the batched MuJoCo env (only Gymnasium's MuJoCo ids load its module)."""
    if vectorization == "async" or not str(spec.entry_point).startswith("gymnasium.envs.mujoco"):
        return False
    return bool(gym.envs.registration.load_env_creator(BATCHED_MUJOCO_SUPPORTS)(spec.id, env_kwargs))


def describe_space(space: gym.Space) -> dict[str, Any]:
    """A JSON description of a Box, Discrete or MultiDiscrete space (stored in checkpoints and compared on load)."""
    if isinstance(space, gym.spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": str(space.dtype),
            "low": np.asarray(space.low, dtype=np.float64).ravel().tolist(),
            "high": np.asarray(space.high, dtype=np.float64).ravel().tolist(),
        }
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": np.asarray(space.nvec).tolist(), "start": np.asarray(space.start).tolist()}
    raise ValueError(f"cannot describe space {space}; allowed: Box, Discrete, MultiDiscrete.")


def space_from_description(desc: dict[str, Any]) -> gym.Space:
    """Inverse of :func:`describe_space`."""
    if desc["type"] == "Box":
        shape = tuple(desc["shape"])
        low = np.asarray(desc["low"]).reshape(shape).astype(desc["dtype"])
        high = np.asarray(desc["high"]).reshape(shape).astype(desc["dtype"])
        return gym.spaces.Box(low=low, high=high, shape=shape, dtype=np.dtype(desc["dtype"]))
    if desc["type"] == "Discrete":
        return gym.spaces.Discrete(desc["n"], start=desc.get("start", 0))
    if desc["type"] == "MultiDiscrete":
        return gym.spaces.MultiDiscrete(np.asarray(desc["nvec"], dtype=np.int64), start=np.asarray(desc["start"], dtype=np.int64))
    raise ValueError(f"unknown space type {desc['type']!r} in a checkpoint; allowed: Box, Discrete, MultiDiscrete.")


def first_space_difference(expected: dict[str, Any], got: dict[str, Any], name: str) -> str | None:
    """Name the first field in which two space descriptions differ, or ``None``."""
    for key in ("type", "shape", "n", "nvec", "start", "dtype", "low", "high"):
        a, b = expected.get(key), got.get(key)
        if a != b:
            if isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and np.allclose(a, b, equal_nan=True):
                continue
            return f"{name} space {key}: the env has {a}, the checkpoint has {b}"
    return None
