"""Rollout workers: the envs of a run stepped by Ray actors, in other processes or on other machines.

:func:`make_remote_vec_env` returns a :class:`~rlsuite.core.vec_env.TorchVecEnv` whose ``num_envs`` envs are
split evenly over ``workers`` Ray actors (``num_envs / workers`` each). An agent trains on it as on the env
of :func:`~rlsuite.core.vec_env.make_vec_env`: every ``step`` sends each worker the actions of its envs, the
workers step them at the same time, and the learner gets the ``(num_envs, ...)`` batch back (one round trip
per step, plus one for the workers whose envs reset). This is the **synchronous** mode.

Why a run on it is bit for bit the run on the local env, for a Gymnasium id (``CartPole-v1``, ``Hopper-v5``):

1. **Actions.** The workers hold no policy: the learner's policy acts on the concatenated ``(num_envs,
   obs_dim)`` observations in one call, so its sampling draws from the global torch RNG exactly as with the
   local env (PPO samples batch-wide; a worker sampling its rows with an RNG of its own could not reproduce
   those draws).
2. **Episode seeds.** The local env is a :class:`~rlsuite.core.vec_env.GymVecAdapter` over a ``SyncVectorEnv``
   in autoreset mode ``DISABLED``; the adapter draws every episode's seed from one generator, in env order,
   and resets the finished envs itself. Here the same adapter wraps :class:`RayVectorEnv`, a NumPy vector env
   in mode ``DISABLED`` whose sub-envs live in the workers: the seeds are drawn in the learner, by the same
   code, and sent with the resets.
3. **Sub-envs, observations, infos.** A worker builds its sub-envs with ``gymnasium.make_vec(...,
   vectorization_mode="sync")`` (the local env's constructor) and steps each with its own action;
   :class:`RayVectorEnv` concatenates their observations with Gymnasium's ``concatenate`` into the same
   dtype, stores rewards as float64 and merges the infos with ``VectorEnv._add_info`` in env order, all as
   ``SyncVectorEnv`` does.
4. **Everything else** (``final_obs`` for bootstrapping truncations, episode returns, action masks, flattened
   structured observations, the observation normaliser's updates) happens in the learner, in unchanged code.
5. **Exact resume.** The adapter's state (its seed generator, each episode's seed and actions) is the same
   as the local one's, and its replay of the interrupted episodes runs in the workers
   (:meth:`RayVectorEnv.replay_episodes`): a checkpoint of a run with workers resumes with any number of
   workers, or none, and continues exactly.

rlsuite's batched torch envs (ids with a ``vector_entry_point``, e.g. ``rlsuite/Pendulum-v0``) draw their
random numbers batch-wide, which no split can reproduce. Each worker then runs the batched env with its
``num_envs / workers`` envs on its CPU (:class:`ShardedTorchVecEnv`), worker 0 reset with the run's seed and
worker ``k > 0`` with a seed derived from ``(seed, k)``: the run is determined by its seed and the number of
workers (with one worker it is the local run), and resumes exactly with the same number of workers.

Asynchronous mode (:func:`make_async_rollouts`, IMPALA-style): each worker (:class:`PolicyWorker`) has its own env
and a copy of the policy, and collects batches of ``num_steps x num_envs / workers`` steps with the weights it was
last sent; the learner trains on each batch as it arrives (:meth:`AsyncRollouts.next_batch`) and corrects for the
stale behaviour policy with V-trace (:func:`rlsuite.core.rollout.vtrace`; PPO's ``learn_async``). Not
bit-reproducible (which worker finishes first depends on timing), and no env state is checkpointed.

Ray starts in this process as ``rlsuite sweep`` starts it (:func:`rlsuite.core.ray_setup.init_ray`: a local
instance listening on loopback only), or joins a cluster (``address``),
or uses the instance this process already runs. Each worker holds one of Ray's CPUs. Objects travel between
the processes through Ray's own transport; nothing is written to disk.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array, iterate

from rlsuite.core.ray_setup import init_ray, require_ray, usable_cpus
from rlsuite.core.seeding import resolve_device
from rlsuite.core.vec_env import GymVecAdapter, TorchVecEnv, _is_torch_vec_entry_point, check_env_id

log = logging.getLogger("rlsuite")

READY_TIMEOUT_S = 300.0
"""How long the workers may take to start (import torch and rlsuite, build their envs) before the run gives up."""


def check_workers(num_envs: int, workers: int) -> int:
    """The envs per worker, ``num_envs // workers``.

    Raises:
        ValueError: ``workers < 1``, or ``num_envs`` not a multiple of ``workers`` (every worker steps as many
            envs, so each sends a batch of the same size); the message names the nearest settings that work.
    """
    if workers < 1:
        raise ValueError(f"--workers must be >= 1 to start rollout workers, got {workers} (0 steps the envs in this process).")
    if num_envs % workers:
        fits = [w for w in range(1, num_envs + 1) if num_envs % w == 0]
        up = -(-num_envs // workers) * workers
        raise ValueError(f"--num-envs {num_envs} cannot be split evenly over --workers {workers} (every worker steps as many "
                         f"envs); use --workers {' or '.join(map(str, fits[-3:] if len(fits) > 3 else fits))}, or --num-envs {up}.")
    return num_envs // workers


def check_resume_rollouts(env_id: str, meta: dict[str, Any], workers: int, async_rollouts: bool = False) -> None:
    """Refuse to resume a checkpoint whose env state this run's rollouts cannot take.

    A Gymnasium env's state is the same with any number of synchronous workers, or none (module docstring); a batched
    torch env's is one per worker; asynchronous rollouts keep none (their workers start new episodes, so they resume
    any checkpoint), and a checkpoint they wrote has no env state for synchronous ones.

    Args:
        env_id: the env the run trains on (an rlsuite batched id, or a Gymnasium id).
        meta: the checkpoint's caller metadata (``meta.json``'s ``meta``: ``run.workers`` and ``run.async_rollouts``
            say how it was written).
        workers: this run's ``--workers``.
        async_rollouts: this run's ``--async-rollouts``.

    Raises:
        CheckpointError: the two do not fit (the message gives the flags that resume it).
    """
    from rlsuite.core.checkpoint import CheckpointError

    run = meta.get("run") or {}
    saved = int(run.get("workers") or 0)
    if async_rollouts:
        return
    if run.get("async_rollouts"):
        raise CheckpointError(f"this run was written with asynchronous rollouts (--workers {saved} --async-rollouts), whose "
                              "checkpoints hold no env state to continue synchronously. Resume it with --async-rollouts (its "
                              "workers start new episodes), or start a new run.")
    if saved == workers or not _is_torch_vec_entry_point(check_env_id(env_id)):
        return
    what = f"{saved} rollout workers" if saved else "no rollout workers"
    raise CheckpointError(f"this run of {env_id} was written with {what}, and a batched torch env's state is one per worker "
                          f"(docs/scale.md, 'Distributed rollouts'); this run asks for --workers {workers}. Resume it with "
                          f"--workers {saved}.")


# ----------------------------------------------------------------------------- the actors (made remote at run time)


class GymShard:
    """What a worker runs for a Gymnasium id: ``num_envs`` sub-envs built as :func:`make_vec_env` builds them.

    Methods return plain Python and NumPy values (Ray carries them to the learner).
    """

    def __init__(self, env_id: str, num_envs: int, env_kwargs: dict[str, Any]) -> None:
        self.venv = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync",
                                 vector_kwargs={"autoreset_mode": AutoresetMode.DISABLED}, **env_kwargs)
        self.envs = self.venv.envs

    def describe(self) -> dict[str, Any]:
        return {"observation_space": self.venv.single_observation_space, "action_space": self.venv.single_action_space,
                "metadata": dict(self.venv.metadata), "spec": getattr(self.venv, "spec", None)}

    def reset(self, seeds: list[int | None], options: dict[str, Any] | None, rows: list[bool]) -> list[tuple[int, Any, dict]]:
        """Reset the sub-envs of ``rows``; returns ``(index, obs, info)`` of each, in order."""
        out = []
        for i, (env, seed, row) in enumerate(zip(self.envs, seeds, rows, strict=True)):
            if row:
                obs, info = env.reset(seed=seed, options=options)
                out.append((i, obs, info))
        return out

    def step(self, actions: list[Any]) -> tuple[list[Any], list[float], list[bool], list[bool], list[dict]]:
        """Step every sub-env with its action; ``(obs, rewards, terminated, truncated, infos)``, one entry per env."""
        results = [env.step(a) for env, a in zip(self.envs, actions, strict=True)]
        return tuple(list(x) for x in zip(*results, strict=True))  # type: ignore[return-value]

    def replay(self, seeds: list[int], actions: list[list[Any]]) -> None:
        """Reset sub-env ``i`` with ``seeds[i]`` and step it through ``actions[i]`` (exact resume)."""
        for env, seed, acts in zip(self.envs, seeds, actions, strict=True):
            env.reset(seed=seed)
            for a in acts:
                env.step(a)

    def close(self) -> None:
        self.venv.close()


class TorchShard:
    """What a worker runs for an rlsuite batched torch env: the batched env of its ``num_envs`` envs, on its CPU."""

    def __init__(self, env_id: str, num_envs: int, env_kwargs: dict[str, Any]) -> None:
        from rlsuite.core.vec_env import make_vec_env

        self.env = make_vec_env(env_id, num_envs, device="cpu", **env_kwargs)

    def describe(self) -> dict[str, Any]:
        return {"observation_space": self.env.single_observation_space, "action_space": self.env.single_action_space,
                "metadata": dict(self.env.metadata), "spec": getattr(self.env, "spec", None), "exact": self.env.exact_resume}

    def reset(self, seed: int | None, options: dict[str, Any] | None) -> tuple[torch.Tensor, dict]:
        return self.env.reset(seed=seed, options=options)

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.env.step(action)

    def state_dict(self) -> dict[str, Any]:
        return self.env.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env.load_state_dict(state)

    def close(self) -> None:
        self.env.close()


class PolicyWorker:
    """What a worker runs in asynchronous mode: its own env (any id, through :func:`make_vec_env`) and a copy of the
    policy, which it acts with for ``num_steps`` steps per :meth:`collect`, continuing its episodes from batch to batch.

    The policy is a module with ``dist(obs)`` (and ``dist(obs, action_mask, validate)`` for masked envs), such as
    PPO's ``ActorCritic``; worker ``k`` seeds its env and its sampling with its own seed.
    """

    def __init__(self, env_id: str, num_envs: int, env_kwargs: dict[str, Any], seed: int) -> None:
        from rlsuite.core.vec_env import make_vec_env

        torch.set_num_threads(1)
        torch.manual_seed(seed)
        self.env = make_vec_env(env_id, num_envs, device="cpu", seed=seed, **env_kwargs)
        self.seed = seed
        self.policy: torch.nn.Module | None = None
        self.version = -1
        self.obs: torch.Tensor | None = None
        self.mask: torch.Tensor | None = None
        space = self.env.single_action_space
        self.bounds = (torch.as_tensor(space.low, dtype=torch.float32), torch.as_tensor(space.high, dtype=torch.float32)) \
            if isinstance(space, gym.spaces.Box) else None

    def describe(self) -> dict[str, Any]:
        obs, info = self.env.reset(seed=self.seed)
        self.obs, mask = obs, info.get("action_mask")
        self.mask = None if mask is None else mask.to(torch.bool)
        return {"observation_space": self.env.single_observation_space, "action_space": self.env.single_action_space,
                "metadata": dict(self.env.metadata), "spec": getattr(self.env, "spec", None),
                "mask_width": None if mask is None else int(mask.shape[1])}

    def set_policy(self, policy: torch.nn.Module) -> None:
        self.policy = policy.cpu().eval()

    @torch.no_grad()
    def collect(self, weights: dict[str, torch.Tensor] | None, version: int, num_steps: int) -> dict[str, Any]:
        """``num_steps`` steps of every env with the policy of ``weights`` (``version``; None: keep the current ones).

        Returns CPU tensors ``obs`` and ``next_obs`` ``(T, n, *obs_shape)`` (``next_obs`` the true next observation:
        ``info["final_obs"]``), ``actions`` ``(T, n, *act_shape)``, ``logp`` (the behaviour policy's), ``rewards``,
        ``terminated``, ``truncated`` ``(T, n)``, ``action_masks`` ``(T, n, width)`` or None, the episode sums
        ``ep_return``, ``ep_length``, ``episodes``, and the ``version`` of the weights it acted with.
        """
        assert self.policy is not None and self.obs is not None, "set_policy and describe come first"
        if weights is not None:
            self.policy.load_state_dict(weights)
            self.version = version
        keys = ("obs", "next_obs", "actions", "logp", "rewards", "terminated", "truncated", "action_masks")
        out: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
        ep = torch.zeros(3, dtype=torch.float64)
        for _ in range(num_steps):
            dist = self.policy.dist(self.obs) if self.mask is None else self.policy.dist(self.obs, self.mask, False)
            action = dist.sample()
            to_env = action if self.bounds is None else torch.max(torch.min(action, self.bounds[1]), self.bounds[0])
            next_obs, reward, terminated, truncated, info = self.env.step(to_env)
            for k, v in zip(keys, (self.obs, info["final_obs"], action, dist.log_prob(action), reward, terminated, truncated,
                                   self.mask), strict=True):
                if v is not None:
                    out[k].append(v)
            done = info["_final_obs"]
            ep += torch.stack([torch.where(done, info["episode_return"], 0.0).sum().double(),
                               torch.where(done, info["episode_length"], 0).sum().double(), done.sum().double()])
            self.obs = next_obs
            if self.mask is not None:
                self.mask = info["action_mask"].to(torch.bool)
        batch: dict[str, Any] = {k: torch.stack(v) if v else None for k, v in out.items()}
        batch.update(ep_return=float(ep[0]), ep_length=float(ep[1]), episodes=int(ep[2]), version=self.version)
        return batch

    def close(self) -> None:
        self.env.close()


# ----------------------------------------------------------------------------- the learner's side


class _Workers:
    """The actors of one env and what their calls need: results in order, clear errors, one shutdown."""

    def __init__(self, ray: Any, actors: list[Any], counts: list[int], stop_ray: bool) -> None:
        self.ray, self.actors, self.counts = ray, actors, counts
        self.bounds = np.cumsum([0, *counts]).tolist()
        self.stop_ray = stop_ray
        self.closed = False

    def get(self, refs: list[Any]) -> list[Any]:
        try:
            return self.ray.get(refs)
        except self.ray.exceptions.RayTaskError as e:  # the env raised in a worker: raise it here, as its own type
            self._drain(refs)
            raise e.as_instanceof_cause() from None
        except self.ray.exceptions.RayActorError as e:
            self._drain(refs)
            raise RuntimeError(f"a rollout worker died ({type(e).__name__}: {e}); the run cannot go on without its envs. "
                               "Resume the run from its last checkpoint (rlsuite train ALGO --resume RUN).") from None

    def _drain(self, refs: list[Any]) -> None:
        """Fetch every result after one failed (Ray logs an error for each failed result nobody fetched)."""
        for ref in refs:
            try:
                self.ray.get(ref)
            except self.ray.exceptions.RayError:
                pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if not self.ray.is_initialized():
            return
        try:
            self.ray.get([a.close.remote() for a in self.actors], timeout=30)
        except Exception as e:  # a worker that died or hangs: it is killed below either way
            log.debug("closing the rollout workers' envs: %s", e)
        for a in self.actors:
            self.ray.kill(a)
        if self.stop_ray:
            self.ray.shutdown()


class RayVectorEnv(VectorEnv):
    """A NumPy vector env in autoreset mode ``DISABLED`` whose sub-envs live in Ray actors (:class:`GymShard`).

    It behaves as the ``SyncVectorEnv`` that :func:`~rlsuite.core.vec_env.make_vec_env` builds (same
    observations, float64 rewards, infos merged in env order), and :class:`~rlsuite.core.vec_env.GymVecAdapter`
    wraps it the same way. Built by :func:`make_remote_vec_env`.
    """

    def __init__(self, workers: _Workers, description: dict[str, Any]) -> None:
        self._workers = workers
        self.num_envs = sum(workers.counts)
        self.single_observation_space = description["observation_space"]
        self.single_action_space = description["action_space"]
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.metadata = {**description["metadata"], "autoreset_mode": AutoresetMode.DISABLED}
        self.spec = description["spec"]
        self.render_mode = None
        self._env_obs: list[Any] = [None] * self.num_envs
        self._observations = create_empty_array(self.single_observation_space, n=self.num_envs, fn=np.zeros)
        self._rewards = np.zeros((self.num_envs,), dtype=np.float64)
        self._terminations = np.zeros((self.num_envs,), dtype=np.bool_)
        self._truncations = np.zeros((self.num_envs,), dtype=np.bool_)

    def _shards(self) -> list[tuple[Any, int, int]]:
        b = self._workers.bounds
        return [(a, b[k], b[k + 1]) for k, a in enumerate(self._workers.actors)]

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """As ``SyncVectorEnv.reset``: ``seed`` None, an int (``seed + i`` for env ``i``) or one per env;
        ``options["reset_mask"]`` (bool ``(num_envs,)``) resets only those envs."""
        n = self.num_envs
        seeds = [None] * n if seed is None else [seed + i for i in range(n)] if isinstance(seed, int) else list(seed)
        if len(seeds) != n:
            raise ValueError(f"reset got {len(seeds)} seeds for {n} envs; give one per env, an int or None.")
        rows = np.ones(n, dtype=np.bool_)
        if options is not None and "reset_mask" in options:
            options = dict(options)
            rows = options.pop("reset_mask")
            if not isinstance(rows, np.ndarray) or rows.shape != (n,) or rows.dtype != np.bool_ or not rows.any():
                raise ValueError(f"options['reset_mask'] must be a NumPy bool array of shape ({n},) with a True entry, "
                                 f"got {rows!r}.")
        self._terminations[rows] = False
        self._truncations[rows] = False
        calls = [(lo, a.reset.remote(seeds[lo:hi], options, rows[lo:hi].tolist())) for a, lo, hi in self._shards() if rows[lo:hi].any()]
        infos: dict[str, Any] = {}
        for (lo, _), result in zip(calls, self._workers.get([ref for _, ref in calls]), strict=True):
            for i, obs, info in result:
                self._env_obs[lo + i] = obs
                infos = self._add_info(infos, info, lo + i)
        self._observations = concatenate(self.single_observation_space, self._env_obs, self._observations)
        return copy.deepcopy(self._observations), infos

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        acts = list(iterate(self.action_space, actions))
        shards = self._shards()
        results = self._workers.get([a.step.remote(acts[lo:hi]) for a, lo, hi in shards])
        infos: dict[str, Any] = {}
        for (_, lo, _), (obs, rewards, terminated, truncated, env_infos) in zip(shards, results, strict=True):
            for j, info in enumerate(env_infos):
                i = lo + j
                self._env_obs[i] = obs[j]
                self._rewards[i] = rewards[j]
                self._terminations[i] = terminated[j]
                self._truncations[i] = truncated[j]
                infos = self._add_info(infos, info, i)
        self._observations = concatenate(self.single_observation_space, self._env_obs, self._observations)
        return (copy.deepcopy(self._observations), np.copy(self._rewards), np.copy(self._terminations),
                np.copy(self._truncations), infos)

    def replay_episodes(self, seeds: Sequence[int], actions: Sequence[Sequence[Any]]) -> None:
        """Reset env ``i`` with ``seeds[i]`` and step it through ``actions[i]`` (what
        :meth:`GymVecAdapter.load_state_dict` does to continue interrupted episodes exactly)."""
        shards = self._shards()
        self._workers.get([a.replay.remote(list(seeds[lo:hi]), [list(x) for x in actions[lo:hi]]) for a, lo, hi in shards])

    def close_extras(self, **kwargs: Any) -> None:
        self._workers.close()


def _shard_seed(seed: int, k: int) -> int:
    """Worker ``k``'s reset seed of a batched env: the run's seed for worker 0, one derived from ``(seed, k)`` for the
    others (never the seed of another run's worker 0, as ``seed + k`` would be)."""
    if k == 0:
        return seed
    return int(np.random.SeedSequence([seed % 2**32, k]).generate_state(1)[0] >> 1)


def _merge(parts: list[Any], counts: list[int]) -> Any:
    """Concatenate the workers' per-env values: tensors (and NumPy arrays) of ``counts[k]`` rows along dim 0, dicts key
    by key; anything else (a per-batch value) is worker 0's."""
    first = parts[0]
    if isinstance(first, dict):
        keys = [k for k in first if all(isinstance(p, dict) and k in p for p in parts)]
        return {k: _merge([p[k] for p in parts], counts) for k in keys}
    if isinstance(first, torch.Tensor) and all(isinstance(p, torch.Tensor) and p.dim() > 0 and p.shape[0] == c
                                               for p, c in zip(parts, counts, strict=True)):
        return torch.cat(parts)
    if isinstance(first, np.ndarray) and all(isinstance(p, np.ndarray) and p.ndim > 0 and p.shape[0] == c
                                             for p, c in zip(parts, counts, strict=True)):
        return np.concatenate(parts)
    return first


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    return value


class ShardedTorchVecEnv(TorchVecEnv):
    """An rlsuite batched torch env split over Ray actors (:class:`TorchShard`), seen as one :class:`TorchVecEnv`.

    Worker ``k`` steps rows ``[k * n, (k + 1) * n)``; its batched env tracks its own episode returns, so the
    contract's ``info`` entries come from the workers, concatenated. Attributes of the env beyond the contract
    (e.g. a ``horizon``) live in the workers and are not forwarded. Built by :func:`make_remote_vec_env`.
    """

    def __init__(self, workers: _Workers, description: dict[str, Any], device: torch.device) -> None:
        self._workers = workers
        self.num_envs = sum(workers.counts)
        self.device = device
        self.single_observation_space = description["observation_space"]
        self.single_action_space = description["action_space"]
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.metadata = {**description["metadata"], "autoreset_mode": AutoresetMode.SAME_STEP}
        self.spec = description["spec"]
        self._exact = bool(description["exact"])

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise AttributeError(f"the env of rollout workers has no attribute {name!r}: the batched env lives in the workers, and only "
                             "the TorchVecEnv contract (reset, step, spaces, state_dict) reaches the learner. Train without --workers.")

    @property
    def exact_resume(self) -> bool:
        return self._exact

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[torch.Tensor, dict]:
        w = self._workers
        results = w.get([a.reset.remote(None if seed is None else _shard_seed(seed, k), options) for k, a in enumerate(w.actors)])
        obs = torch.cat([o for o, _ in results]).to(self.device)
        return obs, _to_device(_merge([i for _, i in results], w.counts), self.device)

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        w = self._workers
        chunks = torch.as_tensor(action).detach().cpu().split(w.counts)
        results = w.get([a.step.remote(c) for a, c in zip(w.actors, chunks, strict=True)])
        obs, reward, terminated, truncated = (torch.cat([r[j] for r in results]).to(self.device) for j in range(4))
        return obs, reward, terminated, truncated, _to_device(_merge([r[4] for r in results], w.counts), self.device)

    def state_dict(self) -> dict[str, Any]:
        w = self._workers
        states = w.get([a.state_dict.remote() for a in w.actors])
        return {"workers": len(w.actors), "shards": {str(k): s for k, s in enumerate(states)}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        w = self._workers
        saved = int(state.get("workers", 0)) if isinstance(state, dict) else 0
        if saved != len(w.actors) or "shards" not in state:
            what = f"{saved} rollout workers" if saved else "one process (no rollout workers)"
            raise ValueError(f"this env state was written by a run with {what}; this run has {len(w.actors)}. A batched torch env "
                             f"split over workers resumes only with the same split: resume with --workers {saved}.")
        w.get([a.load_state_dict.remote(state["shards"][str(k)]) for k, a in enumerate(w.actors)])

    def close(self, **kwargs: Any) -> None:
        self._workers.close()


def _free_cpus(ray: Any, needed: int, wait_s: float = 20.0) -> float:
    """Ray's free CPUs, waiting up to ``wait_s`` for ``needed`` of them (CPUs of workers just stopped come back within
    a fraction of a second)."""
    deadline = time.monotonic() + wait_s
    while True:
        free = ray.available_resources().get("CPU", 0.0)
        if free >= needed or time.monotonic() > deadline:
            return free
        time.sleep(0.1)


def _start_actors(cls: type, args: list[tuple], address: str | None, env_id: str,
                  env_kwargs: dict[str, Any]) -> tuple[_Workers, list[dict], str]:
    """Start one actor of ``cls`` per entry of ``args`` (one CPU each) and wait for their ``describe()``; returns the
    actors, their descriptions and where Ray runs (in words)."""
    workers = len(args)
    ray = require_ray("--workers steps the envs in rollout workers, which run")
    started, where = init_ray(ray, address, None if ray.is_initialized() or address else max(workers, usable_cpus()),
                              flag="--ray-address")
    actors: list[Any] = []
    handle = _Workers(ray, actors, [a[1] for a in args], stop_ray=started)
    try:
        free = _free_cpus(ray, workers)
        if free < workers:
            total = ray.cluster_resources().get("CPU", 0.0)
            raise ValueError(f"--workers {workers} needs {workers} free CPUs in Ray (one per worker); {where} has {free:g} of "
                             f"{total:g} free. Use fewer workers, or give Ray more CPUs (a cluster: --ray-address).")
        remote = ray.remote(num_cpus=1)(cls)
        actors += [remote.remote(*a) for a in args]
        try:
            descriptions = ray.get([a.describe.remote() for a in actors], timeout=READY_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise RuntimeError(f"the {workers} rollout workers did not start within {READY_TIMEOUT_S:.0f} s on {where}; "
                               "see Ray's logs (/tmp/ray/session_latest/logs).") from None
        except ray.exceptions.RayError as e:
            cause = e.as_instanceof_cause() if isinstance(e, ray.exceptions.RayTaskError) else e
            raise ValueError(f"the rollout workers could not build {env_id} with {env_kwargs}: {cause}") from None
    except BaseException:
        handle.close()
        raise
    return handle, descriptions, where


def make_remote_vec_env(
    env_id: str,
    num_envs: int,
    workers: int,
    device: torch.device | str = "cpu",
    seed: int | None = None,
    address: str | None = None,
    **env_kwargs: Any,
) -> TorchVecEnv:
    """Like :func:`~rlsuite.core.vec_env.make_vec_env`, with the envs stepped by ``workers`` Ray actors.

    Args:
        env_id: a Gymnasium id (bit-identical to the local env) or an rlsuite batched env id (module docstring).
        num_envs: envs in all; a multiple of ``workers`` (each steps ``num_envs // workers``).
        workers: Ray actors (each holds one of Ray's CPUs).
        device: device of the tensors the learner gets.
        seed: seeds the per-episode seeds, as in ``make_vec_env``.
        address: ``None``: Ray started in this process (``num_cpus`` = max(workers, this process's CPUs)), or the
            instance it already runs; ``auto`` or ``ray://HOST:PORT``: a running cluster.
        **env_kwargs: passed to the env constructor in every worker.

    Returns:
        the env; ``close()`` stops the workers (and Ray, when this call started it).

    Raises:
        ValueError: ``num_envs`` not a multiple of ``workers``; too few free CPUs in Ray for the workers; an
            unknown env id (:class:`~rlsuite.core.registry.UnknownNameError`).
        ImportError: Ray is not installed (the message names ``pip install 'rlsuite[distributed]'``).
        ClusterUnreachable: no Ray cluster at ``address``.
    """
    per_worker = check_workers(num_envs, workers)
    torch_env = _is_torch_vec_entry_point(check_env_id(env_id))
    handle, descriptions, where = _start_actors(TorchShard if torch_env else GymShard, [(env_id, per_worker, dict(env_kwargs))] * workers,
                                                address, env_id, env_kwargs)
    log.info("rollout workers: %d Ray actors x %d envs of %s on %s (synchronous: one round trip per step)", workers, per_worker,
             env_id, where)
    device = resolve_device(device)
    if torch_env:
        return ShardedTorchVecEnv(handle, descriptions[0], device)
    return GymVecAdapter(RayVectorEnv(handle, descriptions[0]), device=device, seed=seed)


class AsyncRollouts:
    """Asynchronous (IMPALA-style) rollouts: ``workers`` :class:`PolicyWorker` actors, each with ``envs_per_worker``
    envs and a copy of the policy, collecting batches of ``num_steps x envs_per_worker`` steps while the learner trains.

    The learner calls :meth:`start` once, then :meth:`next_batch` with its current weights for every batch: the
    workers that are idle (all at first, then the one whose batch the previous call returned) start a batch with
    those weights, and the first batch to finish is returned. A batch was collected with weights one or more
    updates old (its ``version``); the learner corrects for it (V-trace, :func:`rlsuite.core.rollout.vtrace`).
    Which worker finishes first depends on timing, so runs are not bit-reproducible, and the workers' envs are not
    checkpointed: :meth:`state_dict` holds only the layout, and a resumed run's workers start new episodes.
    Built by :func:`make_async_rollouts`.
    """

    def __init__(self, workers: _Workers, description: dict[str, Any]) -> None:
        self._workers = workers
        self.workers = len(workers.actors)
        self.envs_per_worker = workers.counts[0]
        self.num_envs = sum(workers.counts)
        self.single_observation_space = description["observation_space"]
        self.single_action_space = description["action_space"]
        self.mask_width: int | None = description["mask_width"]
        self.exact_resume = False
        self._idle: list[int] = []
        self._running: dict[Any, int] = {}
        self._weights: tuple[int, Any] | None = None
        self._num_steps = 0

    def start(self, policy: torch.nn.Module, num_steps: int) -> None:
        """Give every worker a copy of ``policy`` (its architecture; the weights come with each batch)."""
        self._workers.get([a.set_policy.remote(copy.deepcopy(policy).cpu()) for a in self._workers.actors])
        self._idle = list(range(self.workers))
        self._running = {}
        self._num_steps = num_steps

    def next_batch(self, weights: dict[str, torch.Tensor], version: int) -> dict[str, Any]:
        """Start the idle workers on ``weights`` (the learner's ``version``), return the first batch that finishes
        (:meth:`PolicyWorker.collect`'s dict, with ``worker``: its index)."""
        ray = self._workers.ray
        if self._idle:
            if self._weights is None or self._weights[0] != version:
                self._weights = (version, ray.put({k: v.detach().cpu() for k, v in weights.items()}))
            for k in self._idle:
                ref = self._workers.actors[k].collect.remote(self._weights[1], version, self._num_steps)
                self._running[ref] = k
            self._idle = []
        ready, _ = ray.wait(list(self._running), num_returns=1)
        k = self._running.pop(ready[0])
        self._idle.append(k)
        return {**self._workers.get(ready)[0], "worker": k}

    def state_dict(self) -> dict[str, Any]:
        return {"async": True, "workers": self.workers, "envs_per_worker": self.envs_per_worker}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        log.warning("asynchronous rollouts keep no env state in a checkpoint: the %d workers start new episodes (the weights, "
                    "optimiser and counters are restored)", self.workers)

    def close(self, **kwargs: Any) -> None:
        self._running = {}  # a batch still being collected ends with its worker
        self._workers.close()


def make_async_rollouts(
    env_id: str,
    num_envs: int,
    workers: int,
    seed: int = 0,
    address: str | None = None,
    **env_kwargs: Any,
) -> AsyncRollouts:
    """``workers`` :class:`PolicyWorker` actors with ``num_envs // workers`` envs each (any env id), started and reset.

    Worker ``k`` seeds its env and its action sampling with ``seed`` for ``k = 0`` and a seed derived from
    ``(seed, k)`` otherwise. Ray, CPUs and errors as for :func:`make_remote_vec_env`.
    """
    per_worker = check_workers(num_envs, workers)
    check_env_id(env_id)
    handle, descriptions, where = _start_actors(PolicyWorker, [(env_id, per_worker, dict(env_kwargs), _shard_seed(seed, k))
                                                               for k in range(workers)], address, env_id, env_kwargs)
    log.info("rollout workers: %d Ray actors x %d envs of %s on %s, each with a copy of the policy (asynchronous: V-trace "
             "corrects for weights that are updates old)", workers, per_worker, env_id, where)
    return AsyncRollouts(handle, descriptions[0])
