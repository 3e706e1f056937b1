"""One rank of the data-parallel tests (tests/core/test_distributed.py starts two, as torchrun would).

``python distributed_worker.py OUT_DIR [DEVICE]`` with ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``
set runs every scenario in one process group (starting a process is most of the cost) and writes what the
test compares into ``OUT_DIR``: ``<scenario>_rank<r>.safetensors`` (tensors) and ``rank<r>.json`` (flags and
seconds per scenario). ``DEVICE``: cpu (gloo, default) or cuda (NCCL, one GPU per rank).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shutil
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from rlsuite.agents import AGENTS
from rlsuite.agents.train import train
from rlsuite.core import distributed
from rlsuite.core.normalizer import RunningNorm
from rlsuite.core.run import RunConfig

torch.set_num_threads(1)
OUT = Path(sys.argv[1])
DEVICE = sys.argv[2] if len(sys.argv) > 2 else "cpu"
RANK = int(os.environ["RANK"])
flags: dict[str, object] = {}


def save(name: str, tensors: dict[str, torch.Tensor]) -> None:
    save_file({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, str(OUT / f"{name}_rank{RANK}.safetensors"))


def weights(agent) -> dict[str, torch.Tensor]:
    out = {}

    def walk(x, path):
        if isinstance(x, torch.Tensor):
            out[path] = x
        elif isinstance(x, dict):
            for k, v in x.items():
                walk(v, f"{path}.{k}" if path else k)

    walk(agent.state_dict()["weights"], "")
    return out


class Tiny:
    """The smallest agent: a module, an optimiser over it, a normaliser inside it."""

    def __init__(self, layer: nn.Module) -> None:
        self.net = layer
        self.opt = torch.optim.SGD(self.net.parameters(), lr=1.0)


def scenario_gradients(ctx: distributed.Context) -> None:
    # hand-checkable: loss = mean(w * x); rank 0's x = [1, 2] (grad 1.5), rank 1's x = [3, 4] (grad 3.5); mean 2.5
    torch.manual_seed(RANK)  # other initial weights per rank: the broadcast must make them rank 0's
    scalar = Tiny(nn.Linear(1, 1, bias=False))
    with torch.no_grad():
        scalar.net.weight.fill_(10.0 + RANK)
    dp = distributed.make_data_parallel(scalar, ctx)
    x = torch.tensor([[1.0], [2.0]]) + 2.0 * RANK
    scalar.net(x).mean().backward()
    scalar.opt.step()
    save("scalar", {"grad": scalar.net.weight.grad, "weight": scalar.net.weight})
    dp.remove()
    # an MLP on each rank's own batch: the test recomputes the gradient of the mean loss over both batches
    torch.manual_seed(100 + RANK)
    mlp = Tiny(nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)))
    dp = distributed.make_data_parallel(mlp, ctx)
    initial = {f"w0.{k}": v.clone() for k, v in mlp.net.state_dict().items()}
    g = torch.Generator().manual_seed(1000 + RANK)
    x, y = torch.randn(16, 3, generator=g), torch.randn(16, 1, generator=g)
    (mlp.net(x) - y).pow(2).mean().backward()
    mlp.opt.step()
    save("mlp", {**initial, **{f"grad.{k}": p.grad for k, p in mlp.net.named_parameters()}})
    # drift is caught: rank 1 changes a weight behind the optimiser's back
    if RANK == 1:
        with torch.no_grad():
            mlp.net[0].bias.add_(1.0)
    try:
        dp.check_in_sync()
        flags["drift_caught"] = False
    except RuntimeError as e:
        flags["drift_caught"] = "net" in str(e)
    # ranks at different optimiser steps are caught (rank 1 as if it had skipped one)
    if RANK == 1:
        dp._steps[id(mlp.opt)] += 1
    try:
        mlp.opt.step()
        flags["step_mismatch_caught"] = False
    except RuntimeError as e:
        flags["step_mismatch_caught"] = "different number of times" in str(e)
    dp.remove()


def scenario_normalizer(ctx: distributed.Context) -> None:
    distributed.activate(ctx)
    norm = RunningNorm((2,))
    g = torch.Generator().manual_seed(7 + RANK)
    for rows in ((5, 7), (3, 0), (4, 4)):  # batch sizes of rank 0 and rank 1, one of them empty
        norm.update(torch.randn(rows[RANK], 2, generator=g) * (1 + RANK) + RANK)
    distributed.deactivate()
    save("norm", {"mean": norm.mean, "var": norm.var, "count": norm.count})


def run_config(name: str, env: str, total: int, **kw) -> RunConfig:
    return RunConfig(env=env, seed=5, total_steps=total, run_dir=str(OUT / name), device=DEVICE, eval_episodes=1, progress=False,
                     tensorboard=False, **kw)


PPO_CFG = dict(num_envs=2, num_steps=64, num_minibatches=2, update_epochs=2, normalize_obs=True, target_kl=0.02)
SAC_CFG = dict(hidden_sizes=(32, 32), batch_size=32, learning_starts=100, normalize_obs=True)


def scenario_agents(tag: str) -> None:
    ppo = AGENTS.get("ppo")
    s = train(ppo, run_config(f"ppo_{tag}", "CartPole-v1", 512, checkpoint_every=256, keep_checkpoints=0), ppo.config_cls(**PPO_CFG))
    save(f"ppo_{tag}", weights(s["agent"]))
    sac = AGENTS.get("sac")
    s = train(sac, run_config(f"sac_{tag}", "Pendulum-v1", 200), sac.config_cls(**SAC_CFG))
    save(f"sac_{tag}", weights(s["agent"]))


def scenario_resume() -> None:
    # resume the synced PPO run from its checkpoint at step 256 (a copy of it): rank 0's checkpoint holds every rank's state
    if RANK == 0:
        shutil.copytree(OUT / "ppo_sync", OUT / "ppo_resumed")
    torch.distributed.barrier()  # the copy is complete before rank 1 reads it
    ppo = AGENTS.get("ppo")
    cfg = dataclasses.replace(run_config("ppo_resumed", "CartPole-v1", 512), resume=str(OUT / "ppo_resumed" / "checkpoints" / "step_000000256"))
    s = train(ppo, cfg, ppo.config_cls(**PPO_CFG))
    save("ppo_resumed", weights(s["agent"]))
    flags["summary_checkpoint"] = s["checkpoint"]


def timed(name: str, fn, *args) -> None:
    t0 = time.perf_counter()
    fn(*args)
    flags[f"seconds_{name}"] = round(time.perf_counter() - t0, 2)


def main() -> None:
    flags["cpu_seconds_imports"] = round(time.process_time(), 2)
    ctx = distributed.init(DEVICE, timeout=datetime.timedelta(seconds=60))
    assert ctx is not None and ctx.rank == RANK
    flags["gloo_iface"] = os.environ.get("GLOO_SOCKET_IFNAME")
    timed("gradients", scenario_gradients, ctx)
    timed("normalizer", scenario_normalizer, ctx)
    timed("agents_sync", scenario_agents, "sync")  # train() finds the group made above and trains data-parallel in it
    timed("resume", scenario_resume)
    ctx.close()
    for var in ("WORLD_SIZE", "RANK"):  # the same runs as single processes with seed 5 + rank: nothing averaged
        os.environ.pop(var)
    timed("agents_nosync", scenario_agents_nosync)
    (OUT / f"rank{RANK}.json").write_text(json.dumps(flags))


def scenario_agents_nosync() -> None:
    ppo = AGENTS.get("ppo")
    s = train(ppo, dataclasses.replace(run_config(f"ppo_nosync{RANK}", "CartPole-v1", 512), seed=5 + RANK), ppo.config_cls(**PPO_CFG))
    save("ppo_nosync", weights(s["agent"]))
    sac = AGENTS.get("sac")
    s = train(sac, dataclasses.replace(run_config(f"sac_nosync{RANK}", "Pendulum-v1", 200), seed=5 + RANK), sac.config_cls(**SAC_CFG))
    save("sac_nosync", weights(s["agent"]))


if __name__ == "__main__":
    main()
