"""``rlsuite data collect|list|info``: D4RL-style datasets made locally, in the Minari format."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from rlsuite.cli.args import at_least, group_usage, parse

# the choices of rlsuite.offline.datasets (LEVELS, ENV_NAMES), spelt out so that --help needs no torch import;
# tests/cli/test_cli_args.py checks that they agree
Level = Literal["random", "medium", "expert", "medium-replay", "medium-expert", "waypoint", "waypoint-noisy"]


@dataclasses.dataclass(frozen=True)
class CollectArgs:
    """Collect a dataset with a (cached) behaviour policy."""

    env: str
    """Hopper-v5, HalfCheetah-v5, Walker2d-v5, Ant-v5, InvertedPendulum-v5, InvertedDoublePendulum-v5, Pendulum-v1, rlsuite/Pendulum-v0, rlsuite/PointMaze-UMaze-v0, rlsuite/PointMaze-Medium-v0 or rlsuite/PointMaze-Large-v0"""
    level: Level
    """behaviour level, as D4RL defines them; the PointMaze envs take random, waypoint or waypoint-noisy (a scripted controller), the others random or the SAC levels"""
    steps: int = 100_000
    """transitions (whole episodes: a little more)"""
    seed: int = 0
    """seed of the behaviour agent and of the collection"""
    behaviour_steps: int = 300_000
    """SAC training steps of the behaviour (expert) agent (not used by the waypoint levels)"""
    data_dir: str | None = None
    """datasets root (None: $RLSUITE_DATA_DIR or ~/.local/share/rlsuite)"""
    overwrite: bool = False
    """replace a dataset of the same id"""

    def __post_init__(self) -> None:
        at_least(self, 1, "steps", "behaviour_steps")


@dataclasses.dataclass(frozen=True)
class ListArgs:
    """List the datasets under the data directory."""

    data_dir: str | None = None
    """datasets root (None: $RLSUITE_DATA_DIR or ~/.local/share/rlsuite)"""


@dataclasses.dataclass(frozen=True)
class InfoArgs:
    """Describe a dataset: episodes, transitions, reference returns, behaviour policy."""

    id: str
    """dataset id, e.g. rlsuite/hopper/medium-v0 (see rlsuite data list)"""
    data_dir: str | None = None
    """datasets root (None: $RLSUITE_DATA_DIR or ~/.local/share/rlsuite)"""


SUBCOMMANDS = {
    "collect": "make a dataset with a (cached) behaviour policy",
    "list": "the datasets under the data directory",
    "info": "episodes, transitions, reference returns and behaviour of a dataset",
}


def cmd_data(argv: list[str]) -> int:
    """``rlsuite data collect|list|info``: D4RL-style datasets made locally, in the Minari format."""
    import json

    sub, rest = (argv[0], argv[1:]) if argv else ("", [])
    if sub == "collect":
        a = parse(CollectArgs, rest, "rlsuite data collect")
        from rlsuite.offline import datasets as D

        root = Path(a.data_dir) if a.data_dir else None
        ds_id, path = D.collect(a.env, a.level, a.steps, a.seed, a.behaviour_steps, a.overwrite, root,
                                log=lambda m: print(m, flush=True))
        print(f"wrote {ds_id} to {path}")
        print(f"dataset={ds_id}")
        return 0
    if sub == "list":
        a = parse(ListArgs, rest, "rlsuite data list")
        from rlsuite.offline import datasets as D

        root = Path(a.data_dir) if a.data_dir else D.data_dir()
        ids = D.list_datasets(root)
        print(f"datasets under {root}:" if ids else f"no datasets under {root}; make one with `rlsuite data collect`.")
        for i in ids:
            print(f"  {i}")
        return 0
    if sub == "info":
        a = parse(InfoArgs, rest, "rlsuite data info", positional=("id",))
        from rlsuite.offline import datasets as D

        ds = D.load_dataset(a.id, Path(a.data_dir) if a.data_dir else None)
        meta = ds.storage.metadata
        desc = json.loads(meta.get("description") or "{}")
        print(f"{a.id}: {meta['total_episodes']} episodes, {meta['total_steps']} transitions, env {desc.get('env')}")
        print(f"reference returns: random {meta['ref_min_score']:.3f}, expert {meta['ref_max_score']:.3f} ({desc.get('reference')})")
        if "mean_return" in desc:
            score = float(D.normalized_score(desc["mean_return"], meta["ref_min_score"], meta["ref_max_score"]))
            print(f"mean episode return {desc['mean_return']:.2f} (normalized score {score:.1f})")
        if "behaviour" in desc:
            b = desc["behaviour"]
            print(f"behaviour: {b['algorithm']} {b['steps']} steps, cache {b['cache']} (sha256 {b['sha256'][:16]}...)")
        if "controller" in desc:
            c = desc["controller"]
            print(f"behaviour: {c['name']} (kp {c['kp']}, kd {c['kd']}, action noise std {c['noise']})")
        if "success_rate" in desc:
            print(f"success rate of the collected episodes {desc['success_rate']:.3f}")
        return 0
    return group_usage("data", SUBCOMMANDS, sub)
