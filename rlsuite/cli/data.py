"""``rlsuite data collect|list|info``: D4RL-style datasets made locally, in the Minari format."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def cmd_data(argv: list[str]) -> int:
    """``rlsuite data collect|list|info``: D4RL-style datasets made locally, in the Minari format."""
    import json

    from rlsuite.offline import datasets as D

    sub, rest = (argv[0], argv[1:]) if argv else ("", [])
    if sub == "collect":
        p = argparse.ArgumentParser(prog="rlsuite data collect", description="Collect a dataset with a (cached) behaviour policy.")
        p.add_argument("--env", required=True, help=f"one of {', '.join(D.ENV_NAMES)}")
        p.add_argument("--level", required=True, choices=D.LEVELS)
        p.add_argument("--steps", type=int, default=100_000, help="transitions (whole episodes: a little more)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--behaviour-steps", type=int, default=300_000, help="SAC training steps of the behaviour (expert) agent")
        p.add_argument("--data-dir", default=None, help="default $RLSUITE_DATA_DIR or ~/.local/share/rlsuite")
        p.add_argument("--overwrite", action="store_true")
        a = p.parse_args(rest)
        root = Path(a.data_dir) if a.data_dir else None
        ds_id, path = D.collect(a.env, a.level, a.steps, a.seed, a.behaviour_steps, a.overwrite, root,
                                log=lambda m: print(m, flush=True))
        print(f"wrote {ds_id} to {path}")
        print(f"dataset={ds_id}")
        return 0
    if sub == "list":
        p = argparse.ArgumentParser(prog="rlsuite data list")
        p.add_argument("--data-dir", default=None)
        a = p.parse_args(rest)
        root = Path(a.data_dir) if a.data_dir else D.data_dir()
        ids = D.list_datasets(root)
        print(f"datasets under {root}:" if ids else f"no datasets under {root}; make one with `rlsuite data collect`.")
        for i in ids:
            print(f"  {i}")
        return 0
    if sub == "info":
        p = argparse.ArgumentParser(prog="rlsuite data info")
        p.add_argument("id")
        p.add_argument("--data-dir", default=None)
        a = p.parse_args(rest)
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
        return 0
    print("usage: rlsuite data collect|list|info [options]  (rlsuite data <command> --help)", file=sys.stderr)
    return 2
