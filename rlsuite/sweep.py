"""Sweeps: many runs of one algorithm over settings and seeds, as Ray tasks, locally or on a cluster.

``rlsuite sweep SPEC.yaml`` calls :func:`load_spec`, :func:`expand_trials`, :func:`plan_trials` and
:func:`run_sweep`. A spec (YAML) names an algorithm that learns from an env or from a dataset, its env(s) or
dataset(s), the budget, the seeds, a grid and/or a random space over the settings (the ``rlsuite train ALGO``
flags: the algorithm's config fields and the run options) and fixed settings::

    algo: ppo
    env: CartPole-v1                 # or a list of env ids
    total_steps: 50000
    seeds: 3                         # or a list: [0, 1, 2]
    grid:                            # every combination
      learning_rate: [1.0e-3, 3.0e-4]
      num_epochs: [4, 10]
    random:                          # `samples` draws (seeded), crossed with the grid
      samples: 4
      seed: 0
      clip_coef: {uniform: [0.1, 0.3]}
      ent_coef: {loguniform: [1.0e-4, 1.0e-2]}
      num_minibatches: {choice: [2, 4, 8]}
      update_epochs: {randint: [2, 6]}   # both ends included
    args:                            # fixed settings of every trial
      num_envs: 4
      eval_episodes: 10
    metric: eval/mean_return         # the results table's (and the report's) score
    cpus_per_trial: 1
    gpus_per_trial: 0
    max_retries: 3                   # a trial whose worker dies is resumed this many times

An agent that learns from a dataset (BC, IQL, Uni-O4, RLPD, EXPO) takes ``dataset:`` instead of ``env:`` (the
dataset names its env) and the budgets of ``rlsuite train ALGO --dataset ID`` instead of ``total_steps:``::

    algo: iql
    dataset: rlsuite/hopper/medium-v0  # or a list of dataset ids (rlsuite data list)
    offline_steps: 100000            # --offline-steps (default: the agent's, e.g. 0 for RLPD and EXPO)
    online_steps: 0                  # --online-steps (default 0)
    seeds: 3
    grid:
      expectile: [0.7, 0.9]
    args:
      eval_every: 10000
      data_dir: /shared/datasets     # default: this machine's data directory ($RLSUITE_DATA_DIR, ...)
    metric: eval/normalized_score    # the default for dataset agents

Agents that learn from instance sets (BQ-NCO) are refused: their score is a cost (``eval/greedy_cost``,
lower is better), which a sweep's best trial and its report would rank the wrong way up.

Everything is checked before anything is written or started (:class:`SpecError` names the key, what it got
and what is allowed; a dataset must exist in the data directory). Each trial is an ordinary run directory under
the sweep directory, named from its env or dataset, algorithm, varying settings and seed (:func:`trial_name`),
trained by the driver ``rlsuite train`` calls (:func:`rlsuite.agents.train.train` for an env,
:func:`rlsuite.offline.train.train_offline` for a dataset), so ``rlsuite eval`` / ``export`` /
``train --resume`` work on it.

:func:`run_sweep` runs the trials as Ray tasks (``cpus_per_trial`` CPUs each, at most ``max_concurrent`` at
once). A trial whose worker dies (killed, out of memory, its node lost) is submitted again and resumes from
its last checkpoint; one that raises fails (its traceback is in ``logs/<trial>.log``). Started again on the
same directory, a sweep skips its finished trials and resumes the others from their checkpoints; a larger
``total_steps`` resumes finished trials to the new budget (dataset agents: a larger ``online_steps`` takes a trial
whose offline phase is its last checkpoint on online, as ``rlsuite train ALGO --resume`` does). ``sweep.json``
(written atomically at every change) records the spec and each trial's state, attempts and score.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import math
import os
import re
import shlex
import shutil
import socket
import time
import traceback
import types
import typing
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlsuite.core.atomic import atomic_write_json
from rlsuite.core.ray_setup import ClusterUnreachable  # noqa: F401  (raised by run_sweep; importable from here as before)
from rlsuite.core.ray_setup import init_ray as _init_ray
from rlsuite.core.ray_setup import require_ray as _require_ray
from rlsuite.core.ray_setup import usable_cpus as _usable_cpus
from rlsuite.core.registry import UnknownNameError, suggest, unknown_name_message

log = logging.getLogger("rlsuite")

SWEEP_FILE = "sweep.json"
"""The sweep's record in its directory."""

LOG_DIR = "logs"
"""Per-trial log files (``logs/<trial>.log``), inside the sweep directory."""

REPORT_DIR = "report"
"""``rlsuite sweep``'s aggregate report, inside the sweep directory."""

LOCK_FILE = ".sweep.lock"
"""Held (pid and host) while an ``rlsuite sweep`` runs on the directory."""

FORMAT = "rlsuite-sweep"
FORMAT_VERSION = 1

TOP_KEYS = ("algo", "env", "dataset", "total_steps", "seeds", "grid", "random", "args", "metric", "cpus_per_trial",
            "gpus_per_trial", "max_retries", "offline_steps", "online_steps")
"""Keys a spec may have (``env`` and ``total_steps`` for an agent that learns from an env; ``dataset``,
``offline_steps`` and ``online_steps`` for one that learns from a dataset)."""

ENV_KEYS = ("env", "total_steps")
"""The task and budget keys of an agent that learns from an env."""

DATASET_KEYS = ("dataset", "offline_steps", "online_steps")
"""The task and budget keys of an agent that learns from a dataset (the budgets are its run options)."""

DATASET_METRIC = "eval/normalized_score"
"""The default metric of a dataset agent's sweep: what the offline driver logs at every evaluation."""

DISTRIBUTIONS = ("choice", "loguniform", "randint", "uniform")
"""Distributions of a ``random:`` space: ``uniform: [low, high]``, ``loguniform: [low, high]`` (low > 0),
``randint: [low, high]`` (integers, both ends included), ``choice: [value, ...]``."""

SWEEP_OWNED = {
    "env": "the spec's top-level `env:` (an id or a list of ids)",
    "seed": "the spec's top-level `seeds:` (a list or a count)",
    "total_steps": "the spec's top-level `total_steps:`",
    "run_dir": "the sweep (each trial's run directory is named after its settings)",
    "resume": "the sweep (it resumes unfinished trials itself)",
    "overwrite": "the sweep (rlsuite sweep --overwrite starts it afresh)",
    "progress": "the sweep (it shows its own progress)",
    "workers": "the sweep (each trial is one Ray task that steps its envs itself, on cpus_per_trial CPUs; rollout workers of "
               "its own would need CPUs the sweep does not count)",
    "ray_address": "the sweep's --address (its trials start no rollout workers)",
    "async_rollouts": "the sweep (its trials start no rollout workers)",
}
"""Run options a spec may not set as settings, and what sets them."""

DATASET_SWEEP_OWNED = {
    "dataset": "the spec's top-level `dataset:` (an id or a list of ids)",
    "offline_steps": "the spec's top-level `offline_steps:`",
    "online_steps": "the spec's top-level `online_steps:`",
    **{k: SWEEP_OWNED[k] for k in ("seed", "run_dir", "resume", "overwrite")},
}
"""What :data:`SWEEP_OWNED` is for an agent that learns from a dataset (its run options are
:class:`rlsuite.offline.train.OfflineRunConfig`)."""

RESTART_IGNORED = ("run_dir", "resume", "overwrite", "total_steps")
"""Run options that may differ between a trial's ``config.json`` and a restarted sweep's trial."""

DATASET_RESTART_IGNORED = ("run_dir", "resume", "overwrite", "online_steps", "data_dir")
""":data:`RESTART_IGNORED` of a dataset agent's trial: a changed online budget is left to the offline driver's
:func:`rlsuite.offline.train.check_resumable`, and the data directory is where the dataset is, not a setting
(``rlsuite train ALGO --resume`` does not compare it either)."""


class SpecError(ValueError):
    """A spec that cannot run: the message names the key, what it got and what is allowed."""


# ----------------------------------------------------------------------------- the spec


@dataclasses.dataclass(frozen=True)
class Distribution:
    """One dimension of a random space.

    Attributes:
        kind: one of :data:`DISTRIBUTIONS`.
        values: ``(low, high)`` for uniform / loguniform / randint, the choices for choice.
    """

    kind: str
    values: tuple[Any, ...]

    def sample(self, rng: np.random.Generator) -> Any:
        """One value drawn with ``rng``."""
        if self.kind == "uniform":
            return float(rng.uniform(self.values[0], self.values[1]))
        if self.kind == "loguniform":
            return float(math.exp(rng.uniform(math.log(self.values[0]), math.log(self.values[1]))))
        if self.kind == "randint":
            return int(rng.integers(self.values[0], self.values[1] + 1))
        return self.values[int(rng.integers(len(self.values)))]

    def describe(self) -> str:
        return f"{self.kind}{list(self.values)}"


@dataclasses.dataclass(frozen=True)
class RandomSpace:
    """``samples`` draws of every distribution, from ``numpy.random.default_rng(seed)`` in the spec's order.

    Attributes:
        samples: how many draws.
        seed: seed of the draws (the same spec gives the same trials).
        params: ``(setting, Distribution)`` pairs.
    """

    samples: int
    seed: int
    params: tuple[tuple[str, Distribution], ...]

    def draw(self) -> list[tuple[tuple[str, Any], ...]]:
        """The ``samples`` settings, each a tuple of ``(setting, value)``."""
        rng = np.random.default_rng(self.seed)
        return [tuple((key, dist.sample(rng)) for key, dist in self.params) for _ in range(self.samples)]


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A validated sweep spec (see the module docstring for the YAML form).

    Attributes:
        algo: the agent's registry name.
        envs: the env ids, each trained on (``()`` for an agent that learns from a dataset).
        total_steps: each trial's budget (``--total-steps``; 0 for an agent that learns from a dataset).
        seeds: the seeds, each trained with.
        grid: ``(setting, values)`` pairs: every combination is a trial.
        random: the random space (crossed with the grid), or ``None``.
        args: ``(setting, value)`` pairs set in every trial.
        metric: the ``metrics.csv`` column whose last value scores a trial.
        cpus_per_trial: Ray CPUs each trial holds (also its torch threads unless ``args`` sets ``torch_threads``).
        gpus_per_trial: Ray GPUs each trial holds (0: the trials run on the CPU unless ``args`` sets ``device``).
        max_retries: how often a trial whose worker died is resumed before it counts as failed.
        datasets: the dataset ids, each trained on, of an agent that learns from a dataset (``()`` for an env agent).
        offline_steps: a dataset agent's ``--offline-steps`` (the agent's default when the spec gives none).
        online_steps: a dataset agent's ``--online-steps``.
    """

    algo: str
    envs: tuple[str, ...]
    total_steps: int
    seeds: tuple[int, ...] = (0,)
    grid: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    random: RandomSpace | None = None
    args: tuple[tuple[str, Any], ...] = ()
    metric: str = "eval/mean_return"
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_retries: int = 3
    datasets: tuple[str, ...] = ()
    offline_steps: int = 0
    online_steps: int = 0

    @property
    def learns_from(self) -> str:
        """``dataset`` when the spec names datasets, else ``env``."""
        return "dataset" if self.datasets else "env"

    @property
    def tasks(self) -> tuple[str, ...]:
        """What the trials train on: the datasets, or the envs."""
        return self.datasets or self.envs

    def to_dict(self) -> dict[str, Any]:
        """The spec as the JSON of ``sweep.json`` (the YAML form, normalised)."""
        if self.datasets:
            out: dict[str, Any] = {"algo": self.algo, "dataset": list(self.datasets), "offline_steps": self.offline_steps,
                                   "online_steps": self.online_steps, "seeds": list(self.seeds)}
        else:
            out = {"algo": self.algo, "env": list(self.envs), "total_steps": self.total_steps, "seeds": list(self.seeds)}
        if self.grid:
            out["grid"] = {k: [_jsonable(v) for v in vs] for k, vs in self.grid}
        if self.random is not None:
            out["random"] = {"samples": self.random.samples, "seed": self.random.seed,
                             **{k: {d.kind: [_jsonable(v) for v in d.values]} for k, d in self.random.params}}
        if self.args:
            out["args"] = {k: _jsonable(v) for k, v in self.args}
        out.update(metric=self.metric, cpus_per_trial=self.cpus_per_trial, gpus_per_trial=self.gpus_per_trial,
                   max_retries=self.max_retries)
        return out


def _jsonable(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


@dataclasses.dataclass(frozen=True)
class Setting:
    """Where a setting lives: a run option (``path == ("run", name)``) or an algorithm config field (dotted path
    under the config, e.g. ``("ppo", "learning_rate")`` of TGPO's nested PPO config)."""

    name: str
    path: tuple[str, ...]
    type: Any
    run_option: bool

    @property
    def flag(self) -> str:
        return "--" + self.path[-1].replace("_", "-")


def _config_settings(cls: type, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out += _config_settings(tp, (*prefix, f.name))
        else:
            out.append(((*prefix, f.name), tp))
    return out


def _run_options(spec: Any) -> tuple[type, dict[str, str]]:
    """The run options class of the agent ``spec`` (what ``rlsuite train ALGO`` parses besides its config) and
    :data:`SWEEP_OWNED` or :data:`DATASET_SWEEP_OWNED`."""
    if spec.learns_from == "dataset":
        from rlsuite.offline.train import OfflineRunConfig

        return OfflineRunConfig, DATASET_SWEEP_OWNED
    from rlsuite.core.run import RunConfig

    return RunConfig, SWEEP_OWNED


def settings_of(spec: Any) -> dict[str, Setting]:
    """Every name a sweep may set for the agent ``spec``: its config fields (by name, and by dotted path for
    nested configs) and the run options the sweep does not set itself (see :data:`SWEEP_OWNED`; a dataset
    agent's: :data:`DATASET_SWEEP_OWNED`)."""
    run_cls, owned = _run_options(spec)
    out: dict[str, Setting] = {}
    hints = typing.get_type_hints(run_cls)
    for f in dataclasses.fields(run_cls):
        if f.name not in owned:
            out[f.name] = Setting(f.name, ("run", f.name), hints[f.name], True)
    flat: dict[str, list[tuple[tuple[str, ...], Any]]] = {}
    for path, tp in _config_settings(spec.config_cls):
        flat.setdefault(path[-1], []).append((path, tp))
        if len(path) > 1:
            dotted = ".".join(path)
            out[dotted] = Setting(dotted, path, tp, False)
    for name, paths in flat.items():
        if len(paths) == 1 and name not in out:  # a name nested twice (or shadowing a run option) needs its dotted path
            out[name] = Setting(name, paths[0][0], paths[0][1], False)
    return out


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce_value(tp: Any, value: Any, where: str) -> Any:
    """``value`` (as YAML reads it) as the field type ``tp`` expects, or :class:`SpecError` naming ``where``.

    Numbers written as strings (PyYAML reads ``1e-3`` as a string; ``1.0e-3`` is a float) are accepted for
    float fields; lists become tuples; an integral float is accepted for an int field.
    """
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None or (isinstance(value, str) and value == "None" and type(None) in args):
            if type(None) in args:
                return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce_value(a, value, where)
            except SpecError as e:
                errors.append(str(e))
        raise SpecError(errors[0] if len(errors) == 1 else f"{where}: {value!r} is not a {_type_name(tp)}.")
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise SpecError(f"{where}: {value!r} is not one of {', '.join(repr(c) for c in choices)}.")
        return value
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise SpecError(f"{where}: expected a list (a {_type_name(tp)}), got {value!r}.")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce_value(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise SpecError(f"{where}: expected {len(args)} values ({_type_name(tp)}), got {len(value)}: {value!r}.")
        return tuple(coerce_value(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))) if args \
            else tuple(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise SpecError(f"{where}: expected true or false, got {value!r}.")
        return value
    if tp is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise SpecError(f"{where}: expected an integer, got {value!r}.")
        return value
    if tp is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise SpecError(f"{where}: expected a number, got {value!r}.")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise SpecError(f"{where}: expected a string, got {value!r}.")
        return value
    return value


def _json_object(setting: Setting, value: Any) -> Any:
    """``env_kwargs`` written as a YAML mapping: the JSON text ``--env-kwargs`` takes."""
    return json.dumps(value) if setting.name == "env_kwargs" and isinstance(value, dict) else value


def _check_keys(data: dict[str, Any], allowed: Sequence[str], where: str, what: str) -> None:
    for key in data:
        if key not in allowed:
            guess = suggest(str(key), allowed)
            hint = f" Did you mean {guess[0]!r}?" if guess else ""
            raise SpecError(f"{where}: unknown {what} {key!r}.{hint} Allowed: {', '.join(allowed)}.")


def _setting(settings: dict[str, Setting], key: Any, where: str, algo: str,
             owned: dict[str, str] = SWEEP_OWNED) -> Setting:
    name = str(key).lstrip("-").replace("-", "_")
    if name in settings:
        return settings[name]
    if name in owned:
        raise SpecError(f"{where}: {key!r} is set by {owned[name]}, not as a setting.")
    nested = sorted(k for k in settings if k.endswith("." + name))
    if len(nested) > 1:
        raise SpecError(f"{where}: {key!r} names fields of several nested configs of {algo}; give one of {', '.join(nested)}.")
    raise SpecError(f"{where}: " + unknown_name_message(
        f"{algo} setting", name, settings,
        hint=f"Settings are the flags of rlsuite train {algo} (rlsuite train {algo} --help): its config fields and run options."))


def _positive_number(value: Any, where: str, integer: bool = False, allow_zero: bool = False) -> Any:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if integer:
        ok = ok and float(value).is_integer()
    if not ok:
        what = "an integer" if integer else "a number"
        raise SpecError(f"{where}: expected {what} {'>= 0' if allow_zero else '> 0'}, got {value!r}.")
    return int(value) if integer else float(value)


def _distribution(setting: Setting, raw: Any, where: str) -> Distribution:
    if not isinstance(raw, dict) or len(raw) != 1:
        raise SpecError(f"{where}: expected one distribution such as {{uniform: [0.1, 0.3]}}, got {raw!r}. "
                        f"Distributions: {', '.join(DISTRIBUTIONS)}.")
    (kind, values), = raw.items()
    if kind not in DISTRIBUTIONS:
        raise SpecError(f"{where}: " + unknown_name_message("distribution", str(kind), DISTRIBUTIONS))
    where = f"{where}.{kind}"
    if not isinstance(values, list) or not values:
        raise SpecError(f"{where}: expected a list ({'[low, high]' if kind != 'choice' else '[value, ...]'}), got {values!r}.")
    if kind == "choice":
        return Distribution(kind, tuple(coerce_value(setting.type, _json_object(setting, v), f"{where}[{i}]")
                                        for i, v in enumerate(values)))
    if len(values) != 2:
        raise SpecError(f"{where}: expected [low, high], got {values!r}.")
    base = typing.get_args(setting.type)[0] if typing.get_origin(setting.type) in (typing.Union, types.UnionType) else setting.type
    if kind == "randint":
        if base not in (int, float):
            raise SpecError(f"{where}: {setting.name} is a {_type_name(setting.type)}; randint draws integers (use choice).")
        low, high = (coerce_value(int, v, f"{where}[{i}]") for i, v in enumerate(values))
    else:
        if base is int:
            raise SpecError(f"{where}: {setting.name} is an integer; use randint: [low, high] or choice: [...].")
        if base is not float:
            raise SpecError(f"{where}: {setting.name} is a {_type_name(setting.type)}; {kind} draws numbers (use choice).")
        low, high = (coerce_value(float, v, f"{where}[{i}]") for i, v in enumerate(values))
        if kind == "loguniform" and low <= 0:
            raise SpecError(f"{where}: loguniform needs low > 0, got {low!r}.")
    if not low < high:
        raise SpecError(f"{where}: needs low < high, got [{low!r}, {high!r}].")
    return Distribution(kind, (low, high))


def spec_from_dict(data: Any, source: str = "spec") -> SweepSpec:
    """Validate a spec (as YAML reads it) into a :class:`SweepSpec`.

    Raises:
        SpecError: an unknown or ill-typed key, an unknown algorithm (with a "did you mean"), an algorithm that
            learns from instance sets, ``dataset:`` for an env agent or ``env:`` for a dataset agent, a setting
            the algorithm does not have, a bad distribution.
    """
    from rlsuite.agents import AGENTS

    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a mapping of keys ({', '.join(TOP_KEYS)}), got {type(data).__name__}.")
    _check_keys(data, TOP_KEYS, source, "key")
    if "algo" not in data:
        raise SpecError(f"{source}: `algo:` is required.")
    if not isinstance(data["algo"], str):
        raise SpecError(f"{source}: algo: expected an algorithm name, got {data['algo']!r}.")
    try:
        agent = AGENTS.get(data["algo"])
    except UnknownNameError as e:
        raise SpecError(f"{source}: algo: {e}") from None
    kinds = {k: ", ".join(n for n in AGENTS.names() if AGENTS.get(n).learns_from == k) for k in ("env", "dataset")}
    if agent.learns_from not in kinds:
        what = "instance sets" if agent.learns_from == "instances" else agent.learns_from
        raise SpecError(f"{source}: algo: {agent.name} learns from {what}; rlsuite sweep runs agents that learn "
                        f"from an env ({kinds['env']}) or from a dataset ({kinds['dataset']}). Its score is a cost "
                        "(eval/greedy_cost, lower is better), which a sweep's best trial and its report would rank the wrong "
                        f"way up: run its seeds with rlsuite train {agent.name} (--resume RUN continues one).")
    dataset = agent.learns_from == "dataset"
    mine, theirs = (DATASET_KEYS, ENV_KEYS) if dataset else (ENV_KEYS, DATASET_KEYS)
    for key in theirs:
        if key in data:
            what = ("a dataset (which names its env), so its trials take `dataset:` (a dataset id or a list of them) and the "
                    "budgets `offline_steps:` and `online_steps:` (its --offline-steps and --online-steps)" if dataset else
                    "an env, so its trials take `env:` (an env id or a list of them) and the budget `total_steps:`")
            raise SpecError(f"{source}: {key}: {agent.name} learns from {what}; received {key}: {data[key]!r}. `{key}:` is for "
                            f"agents that learn from {'an env' if dataset else 'a dataset'} "
                            f"({kinds['env' if dataset else 'dataset']}).")
    if dataset and "dataset" not in data:
        raise SpecError(f"{source}: `dataset:` is required for {agent.name}: a dataset id or a list of them, such as "
                        "rlsuite/hopper/medium-v0 (rlsuite data list lists this machine's; rlsuite data collect makes one, "
                        "docs/datasets.md).")
    if not dataset and "total_steps" not in data:
        raise SpecError(f"{source}: `total_steps:` is required.")
    task = data.get(mine[0], agent.default_env)
    tasks = [task] if isinstance(task, str) else task
    if not isinstance(tasks, list) or not tasks or not all(isinstance(e, str) and e for e in tasks):
        what = "a dataset id or a list of dataset ids" if dataset else "an env id or a list of env ids"
        raise SpecError(f"{source}: {mine[0]}: expected {what}, got {task!r}.")
    if len(set(tasks)) != len(tasks):
        raise SpecError(f"{source}: {mine[0]}: {tasks} names {'a dataset' if dataset else 'an env'} twice.")
    if dataset:
        from rlsuite.offline.train import default_offline_steps

        envs, total_steps = [], 0
        budgets = {"offline_steps": default_offline_steps(agent.name), "online_steps": 0}
        offline_steps, online_steps = (_positive_number(data.get(k, budgets[k]), f"{source}: {k}", integer=True, allow_zero=True)
                                       for k in budgets)
    else:
        envs, offline_steps, online_steps = tasks, 0, 0
        total_steps = _positive_number(data["total_steps"], f"{source}: total_steps", integer=True)
    seeds_raw = data.get("seeds", 1)
    if isinstance(seeds_raw, int) and not isinstance(seeds_raw, bool):
        seeds = tuple(range(_positive_number(seeds_raw, f"{source}: seeds", integer=True)))
    elif isinstance(seeds_raw, list) and seeds_raw:
        seeds = tuple(coerce_value(int, s, f"{source}: seeds[{i}]") for i, s in enumerate(seeds_raw))
        if len(set(seeds)) != len(seeds):
            raise SpecError(f"{source}: seeds: {list(seeds)} names a seed twice.")
    else:
        raise SpecError(f"{source}: seeds: expected a count (3 means 0, 1, 2) or a list of integers, got {seeds_raw!r}.")

    settings = settings_of(agent)
    owned = _run_options(agent)[1]
    seen: dict[str, str] = {}

    def claim(key: Any, where: str) -> Setting:
        s = _setting(settings, key, where, agent.name, owned)
        if s.name in seen:
            raise SpecError(f"{where}: {s.name} is already set in {seen[s.name]}; set it in one place.")
        seen[s.name] = where.rsplit(".", 1)[0].split(": ", 1)[-1]
        return s

    def mapping(key: str) -> dict[str, Any]:
        value = data.get(key) or {}
        if not isinstance(value, dict):
            raise SpecError(f"{source}: {key}: expected a mapping of settings, got {value!r}.")
        return value

    grid = []
    for key, values in mapping("grid").items():
        where = f"{source}: grid.{key}"
        s = claim(key, where)
        if not isinstance(values, list) or not values:
            raise SpecError(f"{where}: expected a non-empty list of values, got {values!r} (a single fixed value goes under args:).")
        coerced = tuple(coerce_value(s.type, _json_object(s, v), f"{where}[{i}]") for i, v in enumerate(values))
        if len(set(map(repr, coerced))) != len(coerced):
            raise SpecError(f"{where}: {values!r} lists a value twice.")
        grid.append((s.name, coerced))

    random = None
    if data.get("random") is not None:
        raw = mapping("random")
        where = f"{source}: random"
        if "samples" not in raw:
            raise SpecError(f"{where}: `samples:` (how many draws) is required.")
        samples = _positive_number(raw["samples"], f"{where}.samples", integer=True)
        seed = coerce_value(int, raw.get("seed", 0), f"{where}.seed")
        params = []
        for key, dist in raw.items():
            if key in ("samples", "seed"):
                continue
            s = claim(key, f"{where}.{key}")
            params.append((s.name, _distribution(s, dist, f"{where}.{key}")))
        if not params:
            raise SpecError(f"{where}: no setting to draw; add e.g. learning_rate: {{loguniform: [1.0e-4, 1.0e-2]}}.")
        random = RandomSpace(samples, seed, tuple(params))

    args = []
    for key, value in mapping("args").items():
        where = f"{source}: args.{key}"
        s = claim(key, where)
        args.append((s.name, coerce_value(s.type, _json_object(s, value), where)))

    metric = data.get("metric", DATASET_METRIC if dataset else "eval/mean_return")
    if not isinstance(metric, str) or not metric:
        raise SpecError(f"{source}: metric: expected a metrics.csv column such as {DATASET_METRIC if dataset else 'eval/mean_return'}, "
                        f"got {metric!r}.")
    cpus = _positive_number(data.get("cpus_per_trial", 1), f"{source}: cpus_per_trial")
    gpus = _positive_number(data.get("gpus_per_trial", 0), f"{source}: gpus_per_trial", allow_zero=True)
    retries = _positive_number(data.get("max_retries", 3), f"{source}: max_retries", integer=True, allow_zero=True)
    return SweepSpec(agent.name, tuple(envs), total_steps, seeds, tuple(grid), random, tuple(args), metric, cpus, gpus, retries,
                     datasets=tuple(tasks) if dataset else (), offline_steps=offline_steps, online_steps=online_steps)


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a YAML spec file (see the module docstring).

    Raises:
        FileNotFoundError: no such file.
        SpecError: not YAML, or not a valid spec (see :func:`spec_from_dict`).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep spec {str(path)!r} not found.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: not valid YAML: {e}") from None
    return spec_from_dict(data, str(path))


# ----------------------------------------------------------------------------- trials


@dataclasses.dataclass(frozen=True)
class Trial:
    """One run of a sweep.

    Attributes:
        name: its run directory's name inside the sweep directory (:func:`trial_name`).
        env: the env id (``""`` for a dataset agent's trial: its dataset names the env).
        seed: the seed.
        settings: the values of the grid and random settings, ``(name, value)`` (the sample's index as ``sample``).
        run: the run options (:class:`rlsuite.core.run.RunConfig`, or for a dataset agent
            :class:`rlsuite.offline.train.OfflineRunConfig`, as a dict; ``run_dir`` and ``data_dir`` absolute).
        config: the algorithm config as a dict (the env's preset, then the spec's settings).
        argv: the equivalent ``rlsuite train`` command line (after the algorithm's name).
        dataset: the dataset id of a dataset agent's trial (``""`` for an env agent's).
    """

    name: str
    env: str
    seed: int
    settings: tuple[tuple[str, Any], ...]
    run: dict[str, Any]
    config: dict[str, Any]
    argv: tuple[str, ...]
    dataset: str = ""

    @property
    def run_dir(self) -> Path:
        return Path(self.run["run_dir"])


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, tuple | list):
        return "x".join(_fmt(v) for v in value)
    return "none" if value is None else str(value)


def trial_name(env: str, algo: str, settings: Sequence[tuple[str, Any]], seed: int) -> str:
    """``<env>__<algo>[__<name>=<value>,...]__<seed>`` (a dataset agent's trial: ``<dataset>__...``, the dataset id
    as ``env``): ``/`` and other characters a path should not hold become ``_``; floats keep 6 significant digits; a
    name over 150 characters is cut and ends with a hash of the whole."""
    parts = [env, algo]
    if settings:
        parts.append(",".join(f"{k}={_fmt(v)}" if k != "sample" else f"sample{v}" for k, v in settings))
    parts.append(str(seed))
    name = re.sub(r"[^A-Za-z0-9._=,+-]", "_", "__".join(parts))
    if len(name) > 150:
        import hashlib

        name = f"{name[:130]}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"
    return name


def _flag_tokens(setting: Setting, value: Any) -> list[str]:
    if isinstance(value, bool):
        return [setting.flag if value else "--no-" + setting.flag[2:]]
    if isinstance(value, tuple):
        return [setting.flag, *(str(v) for v in value)]
    return [setting.flag, "None" if value is None else repr(value) if isinstance(value, float) else str(value)]


def _replace_path(cfg: Any, path: tuple[str, ...], value: Any) -> Any:
    if len(path) == 1:
        return dataclasses.replace(cfg, **{path[0]: value})
    return dataclasses.replace(cfg, **{path[0]: _replace_path(getattr(cfg, path[0]), path[1:], value)})


def _check_dataset(ds_id: str, root: str) -> None:
    """Refuse a dataset that is not in the data directory ``root`` (or cannot be read there), naming those that are
    and how datasets are made."""
    from rlsuite.offline.datasets import DatasetError, list_datasets, load_dataset

    try:
        load_dataset(ds_id, Path(root))
    except DatasetError as e:
        have = list_datasets(Path(root))
        guess = suggest(ds_id, have) if ds_id not in have else []
        hint = f" Did you mean {guess[0]!r}?" if guess else ""
        raise SpecError(f"dataset: {e}{hint} `rlsuite data list --data-dir {root}` lists the datasets there; a spec's args "
                        "may set data_dir; docs/datasets.md says how datasets are made.") from None


def expand_trials(spec: SweepSpec, out: str | Path) -> list[Trial]:
    """Every trial of ``spec`` (envs or datasets x grid x random samples x seeds, in that order), its configs built
    and checked as ``rlsuite train`` would (the configs' own checks, the env id and the env's keyword arguments, or
    the dataset in its data directory and the budgets the agent takes).

    A dataset agent's trials get ``--data-dir`` as an absolute path: the spec's ``data_dir`` setting, or the data
    directory of the machine that expands them (``$RLSUITE_DATA_DIR``, ...), so that every trial reads the
    dataset checked here.

    Raises:
        SpecError: a value the run or algorithm config refuses, an unknown env id or dataset, two trials with one name.
    """
    from rlsuite.agents import AGENTS
    from rlsuite.agents.registry import preset_config
    from rlsuite.agents.train import merged_env_kwargs
    from rlsuite.core.config import config_to_dict
    from rlsuite.core.run import RunConfig
    from rlsuite.core.vec_env import check_env_id, check_env_kwargs

    agent = AGENTS.get(spec.algo)
    settings = settings_of(agent)
    out = Path(out).absolute()
    dataset = spec.learns_from == "dataset"
    for env in spec.envs:
        try:
            check_env_id(env)
        except UnknownNameError as e:
            raise SpecError(f"env: {e}") from None
    grid_points = list(itertools.product(*[[(k, v) for v in vs] for k, vs in spec.grid])) or [()]
    samples: list[tuple[tuple[str, Any], ...]] = [()]
    if spec.random is not None:
        samples = [(("sample", i), *draw) for i, draw in enumerate(spec.random.draw())]
    device = "cpu" if spec.gpus_per_trial == 0 else "auto"
    if dataset:
        from rlsuite.offline.datasets import data_dir
        from rlsuite.offline.train import OfflineRunConfig, check_budgets

        base_run: dict[str, Any] = {"device": device, "data_dir": str(data_dir().absolute())}
        defaults = ("device", "data_dir")
    else:
        base_run = {"progress": False, "torch_threads": max(1, math.ceil(spec.cpus_per_trial)), "device": device}
        defaults = ("torch_threads", "device")
    trials: list[Trial] = []
    names: dict[str, tuple[Any, ...]] = {}
    checked: set[str] = set()  # env kwargs, or datasets in their directories
    for task, point, sample, seed in itertools.product(spec.tasks, grid_points, samples, spec.seeds):
        varying = (*point, *sample)
        values = [(k, str(Path(v or base_run[k]).expanduser().absolute()) if k == "data_dir" else v)
                  for k, v in (*spec.args, *point, *sample) if k != "sample"]
        name = trial_name(task, spec.algo, varying, seed)
        if name in names:
            raise SpecError(f"two trials would share the run directory {name!r} ({names[name]} and {varying}); their values "
                            "differ past the 6 significant digits a name keeps: make them differ more.")
        names[name] = varying
        if dataset:
            run_kwargs = {**base_run, "dataset": task, "seed": seed, "offline_steps": spec.offline_steps,
                          "online_steps": spec.online_steps, "run_dir": str(out / name)}
            algo_cfg = agent.config_cls()  # dataset agents have no per-env presets (as in rlsuite train)
            argv = ["--dataset", task, "--seed", str(seed), "--offline-steps", str(spec.offline_steps), "--online-steps",
                    str(spec.online_steps), "--run-dir", str(out / name)]
        else:
            run_kwargs = {**base_run, "env": task, "seed": seed, "total_steps": spec.total_steps, "run_dir": str(out / name)}
            algo_cfg = preset_config(agent, task)
            argv = ["--env", task, "--seed", str(seed), "--total-steps", str(spec.total_steps), "--run-dir", str(out / name),
                    "--no-progress"]
        given = {k for k, _ in values}
        argv += [t for k in defaults if k not in given for t in _flag_tokens(settings[k], base_run[k])]
        try:
            for key, value in values:
                s = settings[key]
                if s.run_option:
                    run_kwargs[key] = value
                else:
                    algo_cfg = _replace_path(algo_cfg, s.path, value)
                argv += _flag_tokens(s, value)
            if dataset:
                run_cfg = OfflineRunConfig(**run_kwargs)
                check_budgets(spec.algo, run_cfg.offline_steps or 0, run_cfg.online_steps, algo_cfg)
            else:
                run_cfg = RunConfig(**run_kwargs)
                env_kwargs = merged_env_kwargs(agent, algo_cfg, run_cfg)
                key = json.dumps([task, env_kwargs], sort_keys=True)
                if key not in checked:
                    check_env_kwargs(task, env_kwargs)
                    checked.add(key)
        except (ValueError, TypeError) as e:
            raise SpecError(f"trial {name}: {e}") from None
        if dataset and json.dumps([task, run_cfg.data_dir]) not in checked:
            _check_dataset(task, str(run_cfg.data_dir))
            checked.add(json.dumps([task, run_cfg.data_dir]))
        trials.append(Trial(name, "" if dataset else task, seed, varying, config_to_dict(run_cfg), config_to_dict(algo_cfg),
                            tuple(argv), dataset=task if dataset else ""))
    return trials


# ----------------------------------------------------------------------------- state on disk


@dataclasses.dataclass(frozen=True)
class TrialState:
    """What a trial's run directory holds.

    Attributes:
        trial: the trial.
        state: ``new`` (nothing to resume), ``resume`` (a checkpoint short of the budget) or ``finished``.
        step: the step of its latest checkpoint (0 for ``new``).
    """

    trial: Trial
    state: str
    step: int


def _comparable(run: dict[str, Any], ignored: Sequence[str] = RESTART_IGNORED) -> dict[str, Any]:
    return json.loads(json.dumps({k: v for k, v in run.items() if k not in ignored}))


def trial_state(trial: Trial, algo: str) -> TrialState:
    """Whether ``trial`` is new, to be resumed, or finished, from its run directory.

    A dataset agent's trial is finished, or resumable, as :func:`rlsuite.offline.train.check_resumable` says for its
    budgets (what ``rlsuite train ALGO --resume`` checks).

    Raises:
        SpecError: the directory holds a run with other settings (a changed spec), or one past the budget.
        CheckpointError: its checkpoints are damaged (the message names the file).
    """
    from rlsuite.agents.train import check_resumable
    from rlsuite.core.checkpoint import read_checkpoint_meta
    from rlsuite.core.run import NothingToDo, read_run_config, resolve_checkpoint

    run_dir = trial.run_dir
    if not (run_dir / "config.json").is_file():
        return TrialState(trial, "new", 0)
    saved = read_run_config(run_dir)
    saved_run = saved.get("run", {})
    ignored = RESTART_IGNORED
    if trial.dataset:  # a dataset run's record also names the env its dataset is for
        saved_run, ignored = {k: v for k, v in saved_run.items() if k in trial.run}, DATASET_RESTART_IGNORED
    mine = {"algo": algo, "run": _comparable(trial.run, ignored), "config": json.loads(json.dumps(trial.config))}
    theirs = {"algo": saved.get("algo"), "run": _comparable(saved_run, ignored), "config": saved.get("config", {})}
    if mine != theirs:
        diff = next((f"{part}.{k}: {theirs[part].get(k)!r} there, {mine[part].get(k)!r} in the spec"
                     for part in ("run", "config") for k in sorted(set(theirs[part]) | set(mine[part]))
                     if theirs[part].get(k) != mine[part].get(k)), f"algo: {theirs['algo']!r} there")
        raise SpecError(f"{run_dir} holds a run with other settings than this spec's trial ({diff}). Restart a sweep with "
                        "the spec it was started with, give another --out, or pass --overwrite to start it afresh.")
    if trial.dataset:
        return _dataset_trial_state(trial, algo)
    if not (run_dir / "checkpoints" / "latest.json").is_file() and not list((run_dir / "checkpoints").glob("step_*")):
        return TrialState(trial, "new", 0)
    ckpt = resolve_checkpoint(run_dir)
    step = int(read_checkpoint_meta(ckpt)["meta"]["step"])
    try:
        check_resumable(ckpt, int(trial.run["total_steps"]), run_dir)
    except NothingToDo:
        return TrialState(trial, "finished", step)
    except ValueError as e:
        raise SpecError(f"trial {trial.name}: {e}") from None
    return TrialState(trial, "resume", step)


def _dataset_trial_state(trial: Trial, algo: str) -> TrialState:
    """:func:`trial_state` of a dataset agent's trial whose run directory holds a run of its settings."""
    from rlsuite.core.run import NothingToDo
    from rlsuite.offline.datasets import DatasetError
    from rlsuite.offline.train import check_resumable

    if not (trial.run_dir / "checkpoints" / "latest.json").is_file():  # killed before its first evaluation
        return TrialState(trial, "new", 0)
    step = _latest_step(trial.run_dir)
    try:
        check_resumable(trial.run_dir, algo, int(trial.run["offline_steps"]), int(trial.run["online_steps"]))
    except NothingToDo:
        return TrialState(trial, "finished", step)
    except DatasetError as e:
        raise SpecError(f"trial {trial.name}: {e} (in a sweep: another --out, or --overwrite)") from None
    return TrialState(trial, "resume", step)


def plan_trials(trials: Sequence[Trial], algo: str) -> list[TrialState]:
    """:func:`trial_state` of every trial (nothing is written)."""
    return [trial_state(t, algo) for t in trials]


def check_out_dir(out: str | Path, overwrite: bool) -> None:
    """Refuse a ``--out`` that is a file, or a non-empty directory that is not a sweep's (no ``sweep.json``),
    with or without ``overwrite``: ``--overwrite`` only ever removes what a sweep made (:func:`clear_sweep`)."""
    out = Path(out)
    if out.is_file():
        raise FileExistsError(f"--out {str(out)!r} is a file; give a directory.")
    if out.is_dir() and any(x.name != LOCK_FILE for x in out.iterdir()) and not (out / SWEEP_FILE).is_file():
        raise FileExistsError(f"{str(out)!r} is not empty and holds no {SWEEP_FILE} (it is not a sweep's directory); "
                              "give another --out (a new or empty directory). --overwrite only clears a sweep's "
                              "directory, never other files.")


def sweep_made(out: str | Path, trials: Sequence[Trial] = ()) -> list[Path]:
    """What ``--overwrite`` removes from a sweep directory: the run directories of the trials ``sweep.json``
    lists (and of ``trials``), ``logs/``, ``report/`` and ``sweep.json``, those of them that exist."""
    out = Path(out)
    names = {t.name for t in trials}
    try:
        names |= {str(t["name"]) for t in json.loads((out / SWEEP_FILE).read_text(encoding="utf-8")).get("trials", [])}
    except (OSError, json.JSONDecodeError, AttributeError, KeyError, TypeError):
        pass
    found = []
    for name in sorted(names) + [LOG_DIR, REPORT_DIR]:
        if not name or name in (".", "..", LOCK_FILE, SWEEP_FILE) or Path(name).name != name:
            continue  # only a plain name inside the sweep directory
        path = out / name
        if path.is_dir() and not path.is_symlink():
            found.append(path)
    if (out / SWEEP_FILE).is_file():
        found.append(out / SWEEP_FILE)
    return found


def clear_sweep(out: str | Path, trials: Sequence[Trial] = ()) -> list[Path]:
    """Remove :func:`sweep_made` (never ``out`` itself nor anything else in it); returns what was removed."""
    found = sweep_made(out, trials)
    for path in found:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return found


class SweepLocked(FileExistsError):
    """Another ``rlsuite sweep`` holds the sweep directory's lock."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def acquire_lock(out: Path) -> Path:
    """Create ``out/.sweep.lock`` (``O_CREAT|O_EXCL``, holding this process's pid and host). A lock whose pid is
    not alive on this host is taken over; a live one (or another host's) raises :class:`SweepLocked`."""
    path = out / LOCK_FILE
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now()}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(me, f)
            return path
        try:
            text = path.read_text(encoding="utf-8")
            held = json.loads(text)
            pid, host = int(held["pid"]), str(held["host"])
        except FileNotFoundError:
            continue  # released meanwhile: try again
        except (OSError, ValueError, KeyError, TypeError):
            raise SweepLocked(f"{path} exists but cannot be read as a lock; another `rlsuite sweep` may be starting on "
                              f"{out}. If none is running, delete {path} and try again.") from None
        if host != me["host"] or _pid_alive(pid):
            raise SweepLocked(f"another `rlsuite sweep` (pid {pid} on {host}) is running on {out} (lock: {path}); wait "
                              f"for it to end, or, if it is not running any more, delete {path}.")
        # stale: move it aside (only one process can), then check that what was moved is the stale lock read above
        aside = path.with_name(f"{LOCK_FILE}.stale.{os.getpid()}")
        try:
            os.replace(path, aside)
        except FileNotFoundError:
            continue
        moved = aside.read_text(encoding="utf-8")
        if moved != text:  # a live lock taken meanwhile: put it back
            try:
                os.link(aside, path)
            except FileExistsError:
                pass
            aside.unlink()
            continue
        aside.unlink()
        log.warning("sweep %s: taking over a stale lock %s (pid %d on %s is not running)", out, path, pid, host)
    raise SweepLocked(f"could not take the lock {path}; another `rlsuite sweep` may be starting on {out}.")


def release_lock(path: Path) -> None:
    """Remove the lock if it is still this process's."""
    try:
        held = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if held.get("pid") == os.getpid() and held.get("host") == socket.gethostname():
        path.unlink(missing_ok=True)


def score_of(run_dir: str | Path, metric: str) -> float | None:
    """The last value of ``metric`` in a run's ``metrics.csv`` (``None`` when it logged none, or when that
    value is NaN or infinite)."""
    from rlsuite.run_groups import run_series

    try:
        _, ys = run_series(run_dir, metric, finite_only=False)
    except (ValueError, FileNotFoundError):
        return None
    return float(ys[-1]) if math.isfinite(float(ys[-1])) else None  # a NaN last value: no score, not an older one


# ----------------------------------------------------------------------------- the worker


_Fit = Callable[[], tuple[int, float | None]]
"""Trains a trial; returns its final step and its last evaluation's mean return (``None`` without one)."""


def _env_trial(spec: Any, run: dict[str, Any], config: dict[str, Any], torch_threads: int) -> tuple[int, bool, _Fit]:
    """An env agent's trial: ``(start step, whether it resumes, its training)`` (``torch_threads`` is in ``run``)."""
    from rlsuite.agents.train import train
    from rlsuite.core.checkpoint import CheckpointError, read_checkpoint_meta
    from rlsuite.core.config import config_from_dict
    from rlsuite.core.run import RunConfig, resolve_checkpoint

    run_cfg = config_from_dict(RunConfig, run)
    algo_cfg = config_from_dict(spec.config_cls, config)
    run_dir = Path(run_cfg.run_dir)
    start = 0
    try:
        ckpt = resolve_checkpoint(run_dir)
        start = int(read_checkpoint_meta(ckpt)["meta"]["step"])
        run_cfg = dataclasses.replace(run_cfg, resume=str(run_dir))
    except CheckpointError:
        if (run_dir / "checkpoints" / "latest.json").is_file():
            raise  # damaged: never start over a run that has checkpoints
        run_cfg = dataclasses.replace(run_cfg, overwrite=True)

    def fit() -> tuple[int, float | None]:
        summary = train(spec, run_cfg, algo_cfg)
        return int(summary["steps"]), float(summary["eval_mean_return"])

    return start, bool(run_cfg.resume), fit


def _dataset_trial(spec: Any, run: dict[str, Any], config: dict[str, Any], torch_threads: int) -> tuple[int, bool, _Fit]:
    """A dataset agent's trial, trained by :func:`rlsuite.offline.train.train_offline` as ``rlsuite train ALGO
    --dataset ID`` (or ``--resume RUN`` when it has a checkpoint) trains it, on ``torch_threads`` threads."""
    from rlsuite.core.config import config_from_dict
    from rlsuite.offline.train import OfflineRunConfig, train_offline

    run_cfg = config_from_dict(OfflineRunConfig, run)
    algo_cfg = config_from_dict(spec.config_cls, config)
    run_dir = Path(run_cfg.run_dir)
    resume = (run_dir / "checkpoints" / "latest.json").is_file()  # else start afresh over what a killed worker left

    def fit() -> tuple[int, float | None]:
        import torch

        if torch_threads:
            torch.set_num_threads(torch_threads)
        summary = train_offline(spec.name, run_cfg.dataset, int(run_cfg.offline_steps or 0), run_cfg.online_steps, run_cfg.seed,
                                run_cfg.eval_every, run_cfg.eval_episodes, run_dir, Path(run_cfg.data_dir) if run_cfg.data_dir else None,
                                run_cfg.device, log=log.info, config=algo_cfg, resume=resume, overwrite=not resume)
        rows = summary["rows"]
        return _latest_step(run_dir), (float(rows[-1]["return"]) if rows else None)

    return (_latest_step(run_dir) if resume else 0), resume, fit


def run_trial(algo: str, run: dict[str, Any], config: dict[str, Any], log_path: str, attempt: int,
              torch_threads: int = 0) -> dict[str, Any]:
    """Train one trial (in a Ray worker): resume it from its latest checkpoint if it has one, else start it
    afresh in its run directory (clearing what a worker that died before its first checkpoint left there).

    Log lines go to ``log_path`` (appended; each attempt starts with a header line). ``torch_threads`` sets a
    dataset agent's torch threads (0: torch's default), whose run options have none; an env agent's are in ``run``.

    Returns:
        ``{"start_step", "steps", "eval_mean_return", "seconds", "host", "pid"}``.
    """
    from rlsuite.agents import AGENTS
    from rlsuite.core.run import NothingToDo

    t0 = time.perf_counter()
    spec = AGENTS.get(algo)
    start, resuming, fit = (_dataset_trial if spec.learns_from == "dataset" else _env_trial)(spec, run, config, torch_threads)
    run_dir = Path(run["run_dir"])
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("rlsuite")
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    host, pid = socket.gethostname(), os.getpid()
    try:
        how = f"resuming from step {start}" if resuming else "starting"
        log.info("attempt %d on %s (pid %d): %s %s", attempt, host, pid, how, run_dir)
        try:
            steps, mean_return = fit()
        except NothingToDo as e:
            log.info("%s", e)
            return {"start_step": start, "steps": start, "eval_mean_return": None, "seconds": time.perf_counter() - t0,
                    "host": host, "pid": pid}
        except BaseException:
            log.error("failed:\n%s", traceback.format_exc())
            raise
        log.info("done at step %d", steps)
        return {"start_step": start, "steps": steps, "eval_mean_return": mean_return, "seconds": time.perf_counter() - t0,
                "host": host, "pid": pid}
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


# ----------------------------------------------------------------------------- the driver


def require_ray() -> Any:
    """The ``ray`` module, or :class:`ImportError` with the install line."""
    return _require_ray("rlsuite sweep runs its trials")


def _latest_step(run_dir: Path) -> int:
    """The step ``checkpoints/latest.json`` of a run names (0 without one)."""
    try:
        return int(json.loads((run_dir / "checkpoints" / "latest.json").read_text(encoding="utf-8"))["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class _Record:
    """``sweep.json``: rewritten atomically at every change of a trial's state."""

    def __init__(self, out: Path, spec: SweepSpec, spec_file: str | None, address: str, plan: list[TrialState]) -> None:
        self.path = out / SWEEP_FILE
        old = {}
        if self.path.is_file():
            try:
                old = {t["name"]: t for t in json.loads(self.path.read_text(encoding="utf-8")).get("trials", [])}
            except (json.JSONDecodeError, AttributeError, KeyError, TypeError):
                old = {}
        self.doc: dict[str, Any] = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "spec_file": spec_file, "spec": spec.to_dict(),
            "address": address, "started": _now(), "updated": _now(), "status": "running", "metric": spec.metric,
            "trials": [],
        }
        self.by_name: dict[str, dict[str, Any]] = {}
        for p in plan:
            t = p.trial
            entry = {
                "name": t.name, **({"dataset": t.dataset} if t.dataset else {"env": t.env}), "seed": t.seed,
                "settings": {k: _jsonable(v) for k, v in t.settings},
                "status": "finished" if p.state == "finished" else "pending", "step": p.step,
                "attempts": int(old.get(t.name, {}).get("attempts", 0)), "start_step": None, "score": None, "seconds": None,
                "error": None, "host": None,
                "command": shlex.join(["rlsuite", "train", spec.algo, *t.argv]),
            }
            if p.state == "finished":
                entry["score"] = score_of(t.run_dir, spec.metric)
                entry["seconds"] = old.get(t.name, {}).get("seconds")
            self.doc["trials"].append(entry)
            self.by_name[t.name] = entry

    def update(self, name: str | None = None, **fields: Any) -> None:
        if name is not None:
            self.by_name[name].update(fields)
        self.doc["updated"] = _now()
        atomic_write_json(self.path, self.doc)


def run_sweep(spec: SweepSpec, out: str | Path, *, address: str | None = None, max_concurrent: int | None = None,
              overwrite: bool = False, spec_file: str | None = None,
              on_event: Callable[[str, TrialState | None, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run every trial of ``spec`` not yet finished in ``out``; returns ``sweep.json``'s document.

    Args:
        spec: the validated spec.
        out: the sweep directory (its trials' run directories, ``sweep.json``, ``logs/``); with a cluster, a path
            every node sees (a shared filesystem).
        address: ``None`` starts Ray in this process (or uses the one this process already runs); ``auto`` or
            ``ray://host:port`` connects to a running cluster.
        max_concurrent: at most this many trials at once (``None``: as many as Ray's CPUs allow; locally, Ray is
            started with ``max_concurrent * cpus_per_trial`` CPUs, or the CPUs this process may use).
        overwrite: start afresh: remove what a sweep made in ``out`` (:func:`sweep_made`), nothing else; ``out``
            must then be a sweep's directory, or empty, or new.
        spec_file: the spec's path, recorded in ``sweep.json``.
        on_event: called as ``on_event(kind, trial_state, info)`` with kinds ``plan`` (trial_state None, info
            ``{"plan": [...]}``), ``start``, ``retry``, ``done``, ``failed``.

    Raises:
        SpecError, FileExistsError: before anything is written or started (see :func:`expand_trials`,
            :func:`trial_state`, :func:`check_out_dir`); :class:`SweepLocked` (a FileExistsError) when another
            sweep holds ``out``'s lock (:func:`acquire_lock`).
        ImportError: Ray is not installed.
        KeyboardInterrupt: the running trials are cancelled and ``sweep.json`` says ``stopped``; run the same
            sweep again to continue.
    """
    out = Path(out).absolute()
    ray = require_ray()
    if max_concurrent is not None and max_concurrent < 1:
        raise ValueError(f"--max-concurrent must be >= 1, got {max_concurrent}.")
    check_out_dir(out, overwrite)
    trials = expand_trials(spec, out)
    if not overwrite:
        plan_trials(trials, spec.algo)  # a spec error before anything is written (planned again under the lock)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        lock = acquire_lock(out)
    except SweepLocked:
        if created:
            out.rmdir()
        raise
    started = False
    try:
        check_out_dir(out, overwrite)  # again, under the lock
        if overwrite:
            removed = clear_sweep(out, trials)
            if removed:
                log.info("--overwrite: removed %s from %s", ", ".join(x.name for x in removed), out)
        plan = [TrialState(t, "new", 0) for t in trials] if overwrite else plan_trials(trials, spec.algo)
        emit = on_event or (lambda kind, ts, info: None)

        todo = deque(p for p in plan if p.state != "finished")
        where = "no Ray (nothing to run)"
        if todo:
            num_cpus = max(1, math.ceil(max_concurrent * spec.cpus_per_trial)) if max_concurrent else _usable_cpus()
            started, where = _init_ray(ray, address, None if address else num_cpus)
        return _drive(ray, spec, out, plan, todo, address, spec_file, where, max_concurrent, emit)
    finally:
        try:
            if started:
                ray.shutdown()
        finally:
            release_lock(lock)


def _drive(ray: Any, spec: SweepSpec, out: Path, plan: list[TrialState], todo: deque[TrialState],
           address: str | None, spec_file: str | None, where: str, max_concurrent: int | None,
           emit: Callable[[str, TrialState | None, dict[str, Any]], None]) -> dict[str, Any]:
    """The loop of :func:`run_sweep` once Ray is there: submit, wait, resubmit trials whose worker died."""
    record = _Record(out, spec, spec_file, address or "local", plan)
    record.update()
    log.info("sweep %s: %d trials of %s on %s (%d finished already, %d to resume, %d new)", out, len(plan), spec.algo, where,
             len(plan) - len(todo), sum(p.state == "resume" for p in todo), sum(p.state == "new" for p in todo))
    emit("plan", None, {"plan": plan, "where": where})

    task = ray.remote(run_trial)
    threads = max(1, math.ceil(spec.cpus_per_trial)) if spec.learns_from == "dataset" else 0  # env agents: in the run options
    limit = max_concurrent or len(plan) or 1
    running: dict[Any, tuple[TrialState, int]] = {}
    deaths: dict[str, int] = {}  # worker deaths of each trial in this invocation
    failed = 0
    try:
        while todo or running:
            while todo and len(running) < limit:
                p = todo.popleft()
                attempt = record.by_name[p.trial.name]["attempts"] + 1
                ref = task.options(num_cpus=spec.cpus_per_trial, num_gpus=spec.gpus_per_trial, max_retries=0,
                                   name=f"rlsuite-trial:{p.trial.name}").remote(
                    spec.algo, p.trial.run, p.trial.config, str(out / LOG_DIR / f"{p.trial.name}.log"), attempt, threads)
                running[ref] = (p, attempt)
                record.update(p.trial.name, status="running", attempts=attempt)
                emit("start", p, {"attempt": attempt})
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                p, attempt = running.pop(ref)
                name = p.trial.name
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as e:  # the trial raised: a bug or a setting it refuses; not retried
                    failed += 1
                    cause = e.cause if getattr(e, "cause", None) is not None else e
                    msg = (f"{type(cause).__name__}: {cause}".strip().splitlines() or [type(cause).__name__])[-1][:500]
                    record.update(name, status="failed", error=msg)
                    log.error("trial %s failed: %s (log: %s)", name, msg, out / LOG_DIR / f"{name}.log")
                    emit("failed", p, {"error": msg})
                    continue
                except ray.exceptions.RayError as e:  # its worker died (killed, out of memory, node lost): resume it
                    msg = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
                    deaths[name] = deaths.get(name, 0) + 1
                    if deaths[name] <= spec.max_retries:
                        log.warning("trial %s: its worker died (%s); resuming it from its last checkpoint (retry %d of %d)",
                                    name, msg, deaths[name], spec.max_retries)
                        record.update(name, status="pending", error=f"worker died: {msg}")
                        todo.appendleft(p)
                        emit("retry", p, {"attempt": attempt, "error": msg})
                    else:
                        failed += 1
                        record.update(name, status="failed", error=f"its worker died {deaths[name]} times, last: {msg}")
                        log.error("trial %s: its worker died %d times; giving up (its run directory keeps its checkpoints: "
                                  "run the sweep again to resume it)", name, deaths[name])
                        emit("failed", p, {"error": msg})
                    continue
                score = score_of(p.trial.run_dir, spec.metric)
                record.update(name, status="finished", step=result["steps"], start_step=result["start_step"], score=score,
                              seconds=round(result["seconds"], 3), error=None, host=result["host"])
                emit("done", p, {"result": result, "score": score})
    except KeyboardInterrupt:
        for ref in running:
            ray.cancel(ref, force=True)
        for p, _ in running.values():
            record.by_name[p.trial.name].update(status="stopped", step=_latest_step(p.trial.run_dir))
        record.doc["status"] = "stopped"
        record.update()
        log.warning("sweep stopped; run the same command again to resume its trials from their checkpoints")
        raise
    record.doc["status"] = "failed" if failed else "finished"
    record.update()
    return record.doc
