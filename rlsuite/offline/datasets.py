"""D4RL-style datasets made locally and stored in the Minari format.

Nothing is downloaded: the suite collects the data itself with behaviour policies it trains (SAC),
and writes Minari datasets that any Minari reader opens (``minari.load_dataset(id)`` with
``MINARI_DATASETS_PATH`` set to :func:`data_dir`). Ids look like ``rlsuite/hopper/medium-v0``.

Levels, as D4RL defined them:

* ``random``: a uniformly random policy.
* ``medium``: a SAC policy stopped when its evaluation return first reaches about a third of the
  expert's (``MEDIUM_FRACTION`` of the reference expert return).
* ``expert``: the fully trained SAC policy.
* ``medium-replay``: every transition the SAC agent saw while training up to the medium policy.
* ``medium-expert``: the medium and expert datasets together (half each).

For the PointMaze envs (``rlsuite/PointMaze-{UMaze,Medium,Large}-v0``, D4RL's maze2d) the behaviour is
scripted instead, as D4RL made maze2d: ``waypoint`` is :class:`rlsuite.envs.maze.WaypointController`
(a shortest path by breadth-first search over the maze's cells, a PD law to the next cell) with
Gaussian action noise of standard deviation ``WAYPOINT_NOISE["waypoint"]`` (0.1), ``waypoint-noisy``
the same with 0.5 (D4RL's ``--noisy``). ``random`` is made for the mazes too; the SAC levels are not
(a SAC agent learns little from a reward paid only at the goal within the behaviour budget, so those
levels would not mean what their names say). Metadata records the controller, its gains and noise and
the success rate of the collected episodes.

Behaviour policies are trained once per env and seed and cached under ``data_dir()/behaviour`` (a
SAC checkpoint, safetensors + JSON, and the replay episodes); a dataset's metadata records the
checkpoint path, its SHA-256 and the training steps (provenance).

Normalised scores follow D4RL: ``100 * (R - R_random) / (R_expert - R_random)``. For the envs D4RL had
(hopper, halfcheetah, walker2d, ant) the constants are D4RL's (``d4rl/infos.py``; our envs are
Gymnasium's ``-v5``, so the numbers compare only roughly); for the others they are measured: the mean
return of the random policy and of our own expert, recorded in the dataset metadata; for the mazes
they are 0 and 1 (``MAZE_REF``): the return of an episode is its success, so the normalised score is
100 x the success rate.

Writes are atomic (:func:`rlsuite.core.atomic.atomic_dir`): a dataset is built in a temporary directory
next to its final place, fsynced and renamed into it, and an existing dataset is never replaced unless
asked.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rlsuite.core.atomic import atomic_dir, atomic_write_bytes
from rlsuite.core.checkpoint import sha256_tree

LEVELS = ("random", "medium", "expert", "medium-replay", "medium-expert", "waypoint", "waypoint-noisy")
#: Levels made with the cached SAC behaviour agent (not for the mazes).
SAC_LEVELS = ("medium", "expert", "medium-replay", "medium-expert")
#: The scripted maze levels and the standard deviation of their Gaussian action noise (0.5: D4RL's ``--noisy``).
WAYPOINT_NOISE = {"waypoint": 0.1, "waypoint-noisy": 0.5}
MEDIUM_FRACTION = 1.0 / 3.0
#: D4RL's reference returns (random, expert), from d4rl/infos.py (gym-mujoco v0/v1/v2).
D4RL_REF = {"hopper": (-20.272305, 3234.3), "halfcheetah": (-280.178953, 12135.0), "walker2d": (1.629008, 4592.3),
            "ant": (-325.6, 3879.7)}
#: The maze envs (levels ``random`` and ``WAYPOINT_NOISE``'s) and their short names.
MAZE_ENV_NAMES = {"rlsuite/PointMaze-UMaze-v0": "pointmaze-umaze", "rlsuite/PointMaze-Medium-v0": "pointmaze-medium",
                  "rlsuite/PointMaze-Large-v0": "pointmaze-large"}
#: Gymnasium ids and the short names used in dataset ids.
ENV_NAMES = {"Hopper-v5": "hopper", "HalfCheetah-v5": "halfcheetah", "Walker2d-v5": "walker2d", "Ant-v5": "ant",
             "InvertedPendulum-v5": "invertedpendulum", "InvertedDoublePendulum-v5": "inverteddoublependulum",
             "Pendulum-v1": "pendulum", "rlsuite/Pendulum-v0": "rlsuite-pendulum", **MAZE_ENV_NAMES}
#: Reference returns (min, max) of the mazes: the return of an episode is its success (0 or 1).
MAZE_REF = (0.0, 1.0)
MAZE_REF_REASON = ("0 and 1: the sparse reward pays 1 on reaching the goal, which ends the episode, so an episode's return "
                   "is its success and the normalised score is 100 x the success rate")


class DatasetError(ValueError):
    """A dataset that is missing, malformed or does not match what it is used with."""


def data_dir() -> Path:
    """Where datasets live: ``$RLSUITE_DATA_DIR``, else ``$XDG_DATA_HOME/rlsuite``, else
    ``~/.local/share/rlsuite``."""
    if os.environ.get("RLSUITE_DATA_DIR"):
        return Path(os.environ["RLSUITE_DATA_DIR"]).expanduser()
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "rlsuite"


@contextlib.contextmanager
def _minari_root(root: Path) -> Iterator[None]:
    """Point Minari at ``root`` for the duration (Minari reads ``MINARI_DATASETS_PATH`` at each call)."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(Path(root).expanduser().resolve())  # Minari mishandles relative paths
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def env_name(env_id: str) -> str:
    if env_id not in ENV_NAMES:
        raise DatasetError(f"no dataset recipe for env {env_id!r}; supported: {', '.join(ENV_NAMES)}.")
    return ENV_NAMES[env_id]


def levels_for(env_id: str) -> tuple[str, ...]:
    """The levels that can be made for ``env_id``: ``random`` and the waypoint levels for the mazes,
    ``random`` and the SAC levels for the others."""
    env_name(env_id)  # a clear error for an env without a recipe
    return ("random", *WAYPOINT_NOISE) if env_id in MAZE_ENV_NAMES else ("random", *SAC_LEVELS)


def dataset_id(env_id: str, level: str) -> str:
    """``rlsuite/<env name>/<level>-v0``; refuses a level that is not made for ``env_id`` (:func:`levels_for`)."""
    if level not in LEVELS:
        raise DatasetError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}.")
    if level not in levels_for(env_id):
        if level in WAYPOINT_NOISE:
            raise DatasetError(f"level {level!r} drives a scripted waypoint controller through a maze; the envs that have it "
                               f"are {', '.join(MAZE_ENV_NAMES)}. For {env_id} choose one of {', '.join(levels_for(env_id))}.")
        raise DatasetError(f"level {level!r} is not made for the maze {env_id}: its SAC behaviour agent would learn little from "
                           f"a reward paid only at the goal, so the level would not mean what its name says. For the mazes "
                           f"choose one of {', '.join(levels_for(env_id))}.")
    return f"rlsuite/{env_name(env_id)}/{level}-v0"


def normalized_score(returns: np.ndarray | float, ref_min: float, ref_max: float) -> np.ndarray | float:
    """D4RL's normalised score, x100: ``100 (R - ref_min) / (ref_max - ref_min)``."""
    if not ref_max > ref_min:
        raise DatasetError(f"reference returns must satisfy max > min, got min {ref_min}, max {ref_max}.")
    return 100.0 * (np.asarray(returns, dtype=np.float64) - ref_min) / (ref_max - ref_min)


# --- episodes
Episode = dict[str, np.ndarray]  # observations (T+1, obs), actions (T, act), rewards, terminations, truncations (T,)


def rollout(env_id: str, policy: Callable[[np.ndarray], np.ndarray], steps: int, seed: int,
            log: Callable[[str], None] | None = None, log_every: float = 10.0) -> list[Episode]:
    """Whole episodes of ``policy`` in ``env_id`` until at least ``steps`` transitions (the last
    episode is completed, so datasets hold whole episodes only). ``log`` receives a progress line
    (transitions, episodes, mean return so far) at most every ``log_every`` seconds, and a last one."""
    import time

    import gymnasium as gym

    import rlsuite.envs  # noqa: F401  (registers rlsuite's ids)

    env = gym.make(env_id)
    episodes: list[Episode] = []
    total, ep = 0, 0
    t0 = t_log = time.perf_counter()

    def progress() -> str:
        mean = np.mean([e["rewards"].sum() for e in episodes])
        return (f"collected {total}/{steps} transitions, {ep} episodes, mean return {mean:.1f}, "
                f"{time.perf_counter() - t0:.0f} s")
    while total < steps:
        obs, _ = env.reset(seed=seed + ep)
        obs_l, act_l, rew_l, term_l, trunc_l = [obs], [], [], [], []
        done = False
        while not done:
            a = np.asarray(policy(obs), dtype=np.float32).reshape(env.action_space.shape)
            obs, r, term, trunc, _ = env.step(a)
            obs_l.append(obs)
            act_l.append(a)
            rew_l.append(r)
            term_l.append(term)
            trunc_l.append(trunc)
            done = term or trunc
        episodes.append({"observations": np.asarray(obs_l, np.float32), "actions": np.asarray(act_l, np.float32),
                         "rewards": np.asarray(rew_l, np.float64), "terminations": np.asarray(term_l, bool),
                         "truncations": np.asarray(trunc_l, bool), "seed": np.asarray(seed + ep)})
        total += len(act_l)
        ep += 1
        if log is not None and (total >= steps or time.perf_counter() - t_log >= log_every):
            log(progress())
            t_log = time.perf_counter()
    env.close()
    return episodes


def random_policy(env_id: str, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    import gymnasium as gym

    import rlsuite.envs  # noqa: F401

    space = gym.make(env_id).action_space
    rng = np.random.default_rng(seed)
    return lambda obs: rng.uniform(space.low, space.high).astype(np.float32)


# --- writing and reading
def write_dataset(ds_id: str, env_id: str, episodes: list[Episode], ref_min: float, ref_max: float, metadata: dict[str, Any],
                  overwrite: bool = False, root: Path | None = None) -> Path:
    """Write ``episodes`` as the Minari dataset ``ds_id`` under ``root`` (default :func:`data_dir`),
    atomically; refuses to replace an existing dataset unless ``overwrite``."""
    import json

    import minari
    from minari.data_collector import EpisodeBuffer

    root = Path(root or data_dir())
    final = root / ds_id
    if final.exists() and not overwrite:
        raise FileExistsError(f"dataset {ds_id} already exists at {final}; pass --overwrite to replace it.")
    if not episodes:
        raise DatasetError("no episodes to write.")
    _check_spaces(env_id, episodes)
    root.mkdir(parents=True, exist_ok=True)
    tmp_root = Path(tempfile.mkdtemp(prefix=".writing-", dir=root))
    try:
        buffers = [EpisodeBuffer(id=i, seed=int(e["seed"]), observations=e["observations"], actions=e["actions"],
                                 rewards=list(map(float, e["rewards"])), terminations=list(map(bool, e["terminations"])),
                                 truncations=list(map(bool, e["truncations"])), infos={}) for i, e in enumerate(episodes)]
        import warnings

        with _minari_root(tmp_root), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Minari's reminders about author e-mail and permalinks
            minari.create_dataset_from_buffers(
                ds_id, buffers, env=env_id, algorithm_name=str(metadata.get("algorithm", "rlsuite")), author="rlsuite",
                ref_min_score=float(ref_min), ref_max_score=float(ref_max), description=json.dumps(metadata, sort_keys=True),
                data_format="hdf5")
        built = tmp_root / ds_id
        _copy_namespace_metadata(tmp_root, root, ds_id)
        with atomic_dir(final) as dst:  # replaces an existing dataset in one step (see rlsuite.core.atomic)
            for child in built.iterdir():
                os.replace(child, dst / child.name)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    return final


def _check_spaces(env_id: str, episodes: list[Episode]) -> None:
    import gymnasium as gym

    import rlsuite.envs  # noqa: F401

    env = gym.make(env_id)
    for i, e in enumerate(episodes):
        o, a = e["observations"], e["actions"]
        if o.shape[1:] != env.observation_space.shape or a.shape[1:] != env.action_space.shape or len(o) != len(a) + 1:
            raise DatasetError(f"episode {i}: observations {o.shape} and actions {a.shape} do not match {env_id} (observation "
                               f"{env.observation_space.shape}, action {env.action_space.shape}, one more observation than actions).")


def _copy_namespace_metadata(src_root: Path, dst_root: Path, ds_id: str) -> None:
    parts = ds_id.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        src = src_root.joinpath(*parts[:i], "namespace_metadata.json")
        dst = dst_root.joinpath(*parts[:i], "namespace_metadata.json")
        if src.exists() and not dst.exists():
            atomic_write_bytes(dst, src.read_bytes())


def load_dataset(ds_id: str, root: Path | None = None):
    """The Minari dataset ``ds_id`` (clear errors for a missing or damaged one)."""
    import minari

    root = Path(root or data_dir())
    if not (root / ds_id / "data").exists():
        have = ", ".join(list_datasets(root)) or "none"
        raise DatasetError(f"no dataset {ds_id!r} under {root} (have: {have}); create it with "
                           f"`rlsuite data collect --env <id> --level <level>`.")
    try:
        with _minari_root(root):
            ds = minari.load_dataset(ds_id)
            next(ds.iterate_episodes())  # read one episode: a truncated file fails here, not later
            return ds
    except (OSError, KeyError, ValueError, StopIteration) as e:
        raise DatasetError(f"dataset {ds_id} under {root} cannot be read ({type(e).__name__}: {e}); it is truncated or "
                           "corrupted: collect it again with --overwrite.") from None


def list_datasets(root: Path | None = None) -> list[str]:
    root = Path(root or data_dir())
    out = []
    if not (root / "rlsuite").exists():
        return out
    for meta in sorted((root / "rlsuite").glob("*/*/data/metadata.json")):
        out.append(str(meta.parent.parent.relative_to(root)))
    return out


def dataset_arrays(ds) -> dict[str, np.ndarray]:
    """Flat transition arrays ``observations, actions, rewards, next_observations, terminals, timeouts``
    (``(N, ...)``) from a Minari dataset; ``timeouts`` marks time-limit truncations (bootstrap them)."""
    obs, act, rew, nxt, term, trunc = [], [], [], [], [], []
    for ep in ds.iterate_episodes():
        o = np.asarray(ep.observations, np.float32)
        obs.append(o[:-1])
        nxt.append(o[1:])
        act.append(np.asarray(ep.actions, np.float32))
        rew.append(np.asarray(ep.rewards, np.float32))
        term.append(np.asarray(ep.terminations, bool))
        trunc.append(np.asarray(ep.truncations, bool))
    return {"observations": np.concatenate(obs), "actions": np.concatenate(act), "rewards": np.concatenate(rew),
            "next_observations": np.concatenate(nxt), "terminals": np.concatenate(term), "timeouts": np.concatenate(trunc)}


# --- behaviour policies (SAC), cached
class _RecordingEnv:
    """Wraps a batched env (one env) and keeps every transition as whole episodes (for medium-replay)."""

    def __init__(self, env) -> None:
        self.env = env
        self.episodes: list[Episode] = []
        self._cur: dict[str, list] = {}
        self.steps_at_episode_end: list[int] = []
        self.steps = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def reset(self, *args, **kwargs):
        obs, info = self.env.reset(*args, **kwargs)
        self._cur = {"observations": [obs[0].cpu().numpy()], "actions": [], "rewards": [], "terminations": [], "truncations": []}
        return obs, info

    def step(self, action):
        obs, r, term, trunc, info = self.env.step(action)
        self.steps += 1
        c = self._cur
        c["actions"].append(action[0].cpu().numpy())
        c["rewards"].append(float(r[0]))
        c["terminations"].append(bool(term[0]))
        c["truncations"].append(bool(trunc[0]))
        done = bool(term[0] or trunc[0])
        c["observations"].append((info["final_obs"] if done else obs)[0].cpu().numpy())
        if done:
            self.episodes.append({"observations": np.asarray(c["observations"], np.float32), "actions": np.asarray(c["actions"], np.float32),
                                  "rewards": np.asarray(c["rewards"]), "terminations": np.asarray(c["terminations"]),
                                  "truncations": np.asarray(c["truncations"]), "seed": np.asarray(len(self.episodes))})
            self.steps_at_episode_end.append(self.steps)
            self._cur = {"observations": [obs[0].cpu().numpy()], "actions": [], "rewards": [], "terminations": [], "truncations": []}
        return obs, r, term, trunc, info


def mean_return(env_id: str, policy: Callable[[np.ndarray], np.ndarray], episodes: int, seed: int) -> float:
    """Mean undiscounted return of ``policy`` over ``episodes`` episodes (seeds ``seed, seed + 1, ...``)."""
    return float(np.mean([rollout(env_id, policy, 1, seed + ep)[0]["rewards"].sum() for ep in range(episodes)]))


def _actor_policy(agent, deterministic: bool):
    import torch

    return lambda obs: agent.act(torch.as_tensor(obs, dtype=torch.float32)[None], deterministic=deterministic)[0].cpu().numpy()


def train_behaviour(env_id: str, seed: int = 0, steps: int = 300_000, eval_every: int | None = None, eval_episodes: int = 5,
                    root: Path | None = None, log: Callable[[str], None] | None = None, ref_episodes: int = 10,
                    sac: dict[str, Any] | None = None) -> Path:
    """Train (or reuse) the SAC behaviour agent of ``env_id`` for ``steps`` env steps and keep:

    * the **expert**: the snapshot with the best evaluation return (the latest among ties), its
      reference return measured again on ``ref_episodes`` fresh episodes (the maximum of noisy
      evaluations is biased upwards; the fresh measurement is not);
    * the **medium** policy: the snapshot whose return *with sampled actions* (as the datasets are
      collected) is closest to ``random + MEDIUM_FRACTION * (expert - random)`` (D4RL: training
      stopped early at about a third of the expert). Early SAC policies act much worse with sampled
      actions than with their mean, so judging them by the mean would give a medium dataset far below
      a third. Actor snapshots are kept every ``eval_every / 4`` steps; the evaluated ones are scored
      with sampled actions in order up to the first at or above the target, then the snapshots between
      it and the previous one, so a fast learner does not jump over the medium level;
    * the replay episodes up to the medium snapshot (medium-replay).

    ``sac``: overrides of SAC's config on top of its per-env preset (recorded in ``behaviour.json``;
    the cache key does not include them, so use another ``root`` when changing them). Evaluations
    (deterministic actions, ``eval_episodes`` episodes) every ``eval_every`` steps (default: 20 over the
    run) are logged through ``log`` with the elapsed and remaining time. Returns the cache
    directory, keyed by env, seed and steps."""
    import json
    import time

    import torch
    from safetensors.torch import save_file

    from rlsuite.agents import AGENTS
    from rlsuite.agents.sac import SAC
    from rlsuite.core.vec_env import make_vec_env

    root = Path(root or data_dir())
    cache = root / "behaviour" / env_name(env_id) / f"sac-seed{seed}-steps{steps}"
    log = log or (lambda msg: None)
    if (cache / "behaviour.json").exists():
        log(f"behaviour SAC {env_id}: reusing {cache}")
        return cache
    if steps < 1 or ref_episodes < 1 or eval_episodes < 1:
        raise DatasetError(f"behaviour steps, eval_episodes and ref_episodes must be >= 1, got {steps}, {eval_episodes}, "
                           f"{ref_episodes}.")
    eval_every = eval_every or max(1000, steps // 20)
    snap_every = max(1, eval_every // 4)  # four snapshots per evaluation
    spec = AGENTS.get("sac")
    cfg = spec.config_cls(**{**spec.presets.get(env_id, {}), **(sac or {}), "num_envs": 1})
    torch.manual_seed(seed)
    env = _RecordingEnv(make_vec_env(env_id, num_envs=1, seed=seed))
    agent = SAC(cfg, env.single_observation_space, env.single_action_space, "cpu")
    t0 = time.perf_counter()
    random_return = mean_return(env_id, random_policy(env_id, seed), ref_episodes, seed + 10_000)
    log(f"behaviour SAC {env_id} seed {seed}: {steps} steps, evaluation every {eval_every}; random policy return "
        f"{random_return:.1f} ({ref_episodes} episodes)")
    actors: dict[int, dict[str, torch.Tensor]] = {}
    evals: dict[int, float] = {}

    sampled: dict[int, float] = {}  # returns with sampled actions, computed for the medium choice only

    def evaluate(step: int, deterministic: bool = True) -> float:
        actor_now = {k: v.clone() for k, v in agent.actor.state_dict().items()}
        agent.actor.load_state_dict(actors[step])
        ret = mean_return(env_id, _actor_policy(agent, deterministic), eval_episodes, seed + 20_000)
        (evals if deterministic else sampled)[step] = ret
        agent.actor.load_state_dict(actor_now)
        return ret

    for i, target in enumerate(range(snap_every, steps + snap_every, snap_every)):
        agent.learn(env, min(target, steps), seed=seed)
        step = agent.global_step
        actors[step] = {k: v.detach().clone() for k, v in agent.actor.state_dict().items()}
        if i % 4 == 3 or step >= steps:  # every eval_every steps, and at the end
            ret = evaluate(step)
            elapsed = time.perf_counter() - t0
            log(f"behaviour SAC {env_id}: step {step}/{steps}, evaluation return {ret:.1f} (best {max(evals.values()):.1f}), "
                f"{elapsed:.0f} s, ~{elapsed / step * (steps - step):.0f} s left")
    expert_step = max(evals, key=lambda s: (evals[s], s))
    expert_eval_return = evals[expert_step]
    agent.actor.load_state_dict(actors[expert_step])
    expert_return = mean_return(env_id, _actor_policy(agent, True), ref_episodes, seed + 30_000)
    log(f"expert: the snapshot at step {expert_step} (evaluation return {expert_eval_return:.1f}); reference return "
        f"{expert_return:.1f} over {ref_episodes} fresh episodes")
    threshold = random_return + MEDIUM_FRACTION * (expert_return - random_return)
    lo = 0
    for s in sorted(evals):  # the evaluated snapshots in order, up to the first at or above the target
        if s > expert_step or evaluate(s, deterministic=False) >= threshold:
            for fine in sorted(actors):  # then the snapshots in between
                if lo < fine < min(s, expert_step) and evaluate(fine, deterministic=False) >= threshold:
                    break
            break
        lo = s
    medium_step = min(sampled, key=lambda s: (abs(sampled[s] - threshold), s))
    medium_return = sampled[medium_step]
    log(f"medium: the snapshot at step {medium_step} (return {medium_return:.1f} with sampled actions; target {threshold:.1f} = "
        f"random + {MEDIUM_FRACTION:.2f} x (expert - random))")
    snapshots = [(s, evals[s], actors[s]) for s in sorted(evals)]
    expert_actor, medium_actor = actors[expert_step], actors[medium_step]
    replay = [e for e, end in zip(env.episodes, env.steps_at_episode_end, strict=True) if end <= medium_step]
    provenance = {"expert_eval_return": expert_eval_return, "reference_episodes": ref_episodes, "medium_target": threshold,
                  "medium_return_actions": "sampled", "medium_evaluations": [[s, sampled[s]] for s in sorted(sampled)],
                  "eval_episodes": eval_episodes, "train_seconds": time.perf_counter() - t0}
    with atomic_dir(cache) as tmp:
        save_file({k: v.contiguous() for k, v in expert_actor.items()}, str(tmp / "expert_actor.safetensors"))
        save_file({k: v.contiguous() for k, v in medium_actor.items()}, str(tmp / "medium_actor.safetensors"))
        _save_episodes(tmp / "medium_replay.safetensors", replay)
        meta = {"env": env_id, "seed": seed, "steps": steps, "algorithm": "rlsuite SAC", "config": {k: v for k, v in vars(cfg).items()},
                "random_return": random_return, "expert_return": expert_return, "expert_step": expert_step,
                "medium_return": medium_return, "medium_step": medium_step, "medium_fraction": MEDIUM_FRACTION,
                "evaluations": [[s, r] for s, r, _ in snapshots], "replay_episodes": len(replay), **provenance}
        (tmp / "behaviour.json").write_text(json.dumps(meta, indent=2, default=str))
    return cache


def _save_episodes(path: Path, episodes: list[Episode]) -> None:
    import torch
    from safetensors.torch import save_file

    if not episodes:
        save_file({"lengths": torch.zeros(0, dtype=torch.long)}, str(path))
        return
    cat = lambda k: torch.as_tensor(np.concatenate([e[k] for e in episodes]))  # noqa: E731
    save_file({"observations": cat("observations"), "actions": cat("actions"), "rewards": cat("rewards"),
               "terminations": cat("terminations").to(torch.uint8), "truncations": cat("truncations").to(torch.uint8),
               "lengths": torch.tensor([len(e["actions"]) for e in episodes])}, str(path))


def _load_episodes(path: Path) -> list[Episode]:
    from safetensors.numpy import load_file

    t = load_file(str(path))
    out, o, a = [], 0, 0
    for i, n in enumerate(t["lengths"].tolist()):
        out.append({"observations": t["observations"][o : o + n + 1], "actions": t["actions"][a : a + n],
                    "rewards": t["rewards"][a : a + n], "terminations": t["terminations"][a : a + n].astype(bool),
                    "truncations": t["truncations"][a : a + n].astype(bool), "seed": np.asarray(i)})
        o += n + 1
        a += n
    return out


def load_behaviour_actor(cache: Path, which: str):
    """The cached SAC agent with the ``expert`` or ``medium`` actor loaded."""
    import json

    import gymnasium as gym
    from safetensors.torch import load_file

    import rlsuite.envs  # noqa: F401
    from rlsuite.agents import AGENTS
    from rlsuite.agents.sac import SAC

    meta = json.loads((cache / "behaviour.json").read_text())
    spec = AGENTS.get("sac")
    saved = {k: tuple(v) if isinstance(v, list) else v for k, v in meta.get("config", {}).items()}  # the trained settings
    cfg = spec.config_cls(**{**spec.presets.get(meta["env"], {}), **saved, "num_envs": 1})
    env = gym.make(meta["env"])
    agent = SAC(cfg, env.observation_space, env.action_space, "cpu")
    agent.actor.load_state_dict(load_file(str(cache / f"{which}_actor.safetensors")))
    return agent, meta


def _waypoint_controller(env_id: str, noise: float, seed: int):
    """The maze's :class:`rlsuite.envs.maze.WaypointController` with D4RL's gains and ``noise``."""
    import gymnasium as gym

    from rlsuite.envs.maze import WaypointController

    env = gym.make(env_id)
    try:
        return WaypointController.for_env(env, noise=noise, seed=seed)
    finally:
        env.close()


def collect(env_id: str, level: str, steps: int, seed: int = 0, behaviour_steps: int = 300_000, overwrite: bool = False,
            root: Path | None = None, log: Callable[[str], None] | None = None) -> tuple[str, Path]:
    """Make the dataset ``rlsuite/<env>/<level>-v0`` (see the module docstring); returns its id and path."""
    root = Path(root or data_dir())
    ds_id = dataset_id(env_id, level)
    if (root / ds_id).exists() and not overwrite:
        raise FileExistsError(f"dataset {ds_id} already exists at {root / ds_id}; pass --overwrite to replace it.")
    if steps < 1:
        raise DatasetError(f"--steps must be positive, got {steps}.")
    name = env_name(env_id)
    maze = env_id in MAZE_ENV_NAMES
    meta: dict[str, Any] = {"env": env_id, "level": level, "steps_requested": steps, "seed": seed}
    cache = None
    if not maze and (level != "random" or name not in D4RL_REF):
        cache = train_behaviour(env_id, seed, behaviour_steps, root=root, log=log)
        _, bmeta = load_behaviour_actor(cache, "expert")
        meta["behaviour"] = {"cache": str(cache), "sha256": sha256_tree(cache), **{k: bmeta[k] for k in (
            "algorithm", "steps", "expert_return", "expert_step", "medium_return", "medium_step", "random_return")},
            **{k: bmeta[k] for k in ("expert_eval_return", "reference_episodes", "medium_target") if k in bmeta}}
    if maze:
        ref_min, ref_max = MAZE_REF
        meta["reference"] = MAZE_REF_REASON
    elif name in D4RL_REF:
        ref_min, ref_max = D4RL_REF[name]
        meta["reference"] = "D4RL d4rl/infos.py constants (D4RL used -v2 envs; ours are Gymnasium -v5)"
    else:
        ref_min, ref_max = meta["behaviour"]["random_return"], meta["behaviour"]["expert_return"]
        n_ref = meta["behaviour"].get("reference_episodes")
        meta["reference"] = ("measured: mean returns of the uniform random policy and of our SAC expert" if n_ref is None else
                             f"measured: mean returns over {n_ref} episodes of the uniform random policy and of our SAC "
                             "expert (fresh episodes, not those that selected it)")
    log = log or (lambda msg: None)
    log(f"collecting {ds_id}: " + ("the behaviour agent's transitions up to the medium snapshot" if level == "medium-replay"
                                   else f"{steps} transitions with the {level} policy"))
    if level == "random":
        episodes = rollout(env_id, random_policy(env_id, seed), steps, seed, log=log)
    elif level in WAYPOINT_NOISE:
        controller = _waypoint_controller(env_id, WAYPOINT_NOISE[level], seed)
        meta["controller"] = {"name": "rlsuite.envs.maze.WaypointController", "kp": controller.kp, "kd": controller.kd,
                              "noise": controller.noise, "noise_seed": seed,
                              "law": "clip(kp (target - position) - kd velocity + noise N(0, I), -1, 1); target: the centre "
                                     "of the next cell of a BFS shortest path to the goal cell, the goal in the goal cell"}
        episodes = rollout(env_id, controller, steps, seed, log=log)
    elif level in ("medium", "expert"):
        agent, _ = load_behaviour_actor(cache, level)
        episodes = rollout(env_id, _actor_policy(agent, False), steps, seed, log=log)
    elif level == "medium-replay":
        episodes = _load_episodes(cache / "medium_replay.safetensors")
        if not episodes:
            raise DatasetError(f"the behaviour agent reached the medium level before finishing an episode; nothing to replay "
                               f"(train longer with --behaviour-steps, now {behaviour_steps}).")
    else:
        med, _ = load_behaviour_actor(cache, "medium")
        exp, _ = load_behaviour_actor(cache, "expert")
        episodes = rollout(env_id, _actor_policy(med, False), steps // 2, seed, log=log) + \
            rollout(env_id, _actor_policy(exp, False), steps - steps // 2, seed + 1_000_000, log=log)
    meta["episodes"] = len(episodes)
    meta["transitions"] = int(sum(len(e["actions"]) for e in episodes))
    meta["mean_return"] = float(np.mean([e["rewards"].sum() for e in episodes]))
    if maze:
        meta["success_rate"] = float(np.mean([bool(e["terminations"].any()) for e in episodes]))
        log(f"{ds_id}: success rate {meta['success_rate']:.3f} over {meta['episodes']} episodes")
    log(f"{ds_id}: {meta['episodes']} episodes, {meta['transitions']} transitions, mean return {meta['mean_return']:.1f} "
        f"(normalized score {float(normalized_score(meta['mean_return'], ref_min, ref_max)):.1f}); reference returns: "
        f"random {ref_min:.1f}, expert {ref_max:.1f} ({meta['reference']})")
    path = write_dataset(ds_id, env_id, episodes, ref_min, ref_max, meta, overwrite, root)
    return ds_id, path
