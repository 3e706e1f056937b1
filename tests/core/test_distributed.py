"""Data-parallel learners (rlsuite.core.distributed) on two gloo processes, and the single process unchanged.

Two ranks are started once per module as torchrun would start them (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT`` in their environment) and run every scenario of ``distributed_worker.py`` in one process
group; the tests here read what they wrote. About 25 s on 2 cores, most of it two Python processes
importing torch and the agents at once.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from rlsuite.agents import AGENTS
from rlsuite.agents.train import train
from rlsuite.core import distributed
from rlsuite.core.checkpoint import CheckpointError, read_checkpoint_meta
from rlsuite.core.logger import read_metrics
from rlsuite.core.normalizer import RunningNorm
from rlsuite.core.run import Run, RunConfig, check_world_size
from rlsuite.core.seeding import seed_everything
from rlsuite.core.vec_env import make_vec_env

WORKER = Path(__file__).with_name("distributed_worker.py")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(out: Path, device: str = "cpu", world: int = 2, timeout: float = 180.0) -> list[dict]:
    """Start ``world`` ranks of the worker, wait for them, return each rank's flags."""
    port = free_port()
    procs = []
    for rank in range(world):
        env = {k: v for k, v in os.environ.items() if not k.startswith("TORCHELASTIC")}
        env.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port), OMP_NUM_THREADS="1")
        log = open(out / f"rank{rank}.log", "w")  # noqa: SIM115 (closed below)
        procs.append((subprocess.Popen([sys.executable, str(WORKER), str(out), device], env=env, stdout=log, stderr=subprocess.STDOUT), log))
    try:
        codes = [p.wait(timeout=timeout) for p, _ in procs]
    finally:
        for p, log in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            log.close()
    if any(codes):
        tails = "\n".join(f"--- rank {r} (exit {c}):\n" + (out / f"rank{r}.log").read_text()[-3000:] for r, c in enumerate(codes))
        pytest.fail(f"a rank failed:\n{tails}")
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(world)]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("ddp")
    return out, launch(out)


def both(out: Path, name: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    return load_file(str(out / f"{name}_rank0.safetensors")), load_file(str(out / f"{name}_rank1.safetensors"))


def identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- (a) the averaged gradient


def test_gradient_is_the_mean_over_ranks_by_hand(ranks):
    out, _ = ranks
    r0, r1 = both(out, "scalar")
    # loss = mean(w * x): rank 0's x = [1, 2] gives 1.5, rank 1's x = [3, 4] gives 3.5; their mean 2.5 is the
    # gradient of mean(w * [1, 2, 3, 4]); SGD with lr 1 from rank 0's broadcast w = 10 gives 10 - 2.5 = 7.5 on both ranks
    for r in (r0, r1):
        assert r["grad"].item() == 2.5
        assert r["weight"].item() == 7.5


def test_gradient_equals_the_gradient_of_the_mean_loss_in_one_process(ranks):
    out, _ = ranks
    r0, r1 = both(out, "mlp")
    assert identical(r0, r1)  # the same initial weights (rank 0's) and the same averaged gradients on both ranks
    net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
    net.load_state_dict({k.removeprefix("w0."): v for k, v in r0.items() if k.startswith("w0.")})
    batches = [(torch.randn(16, 3, generator=g), torch.randn(16, 1, generator=g))
               for g in (torch.Generator().manual_seed(1000 + r) for r in (0, 1))]
    x, y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    (net(x) - y).pow(2).mean().backward()  # equal batch sizes: the mean loss over both is the mean of the ranks' losses
    for name, p in net.named_parameters():
        torch.testing.assert_close(r0[f"grad.{name}"], p.grad, rtol=1e-6, atol=1e-7)


def test_drift_and_ranks_out_of_step_are_caught(ranks):
    _, flags = ranks
    for f in flags:
        assert f["drift_caught"] is True  # rank 1 changed a weight outside the optimiser: check_in_sync names the module
        assert f["step_mismatch_caught"] is True  # rank 1 one step ahead: the step's all-reduce says so


# ----------------------------------------------------------------------------- (b) agents stay bit-identical


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_agents_end_bit_identical_on_both_ranks_and_averaging_matters(ranks, algo):
    out, _ = ranks
    sync0, sync1 = both(out, f"{algo}_sync")
    assert identical(sync0, sync1)
    assert any(k.endswith("obs_norm.count") and v.item() > 0 for k, v in sync0.items())  # the normaliser took part
    free0, free1 = both(out, f"{algo}_nosync")  # the same seeds, each rank alone: nothing averaged
    assert not identical(free0, free1)
    assert not identical(sync0, free0)


def test_only_rank_0_writes_and_a_two_rank_run_resumes_exactly(ranks):
    out, flags = ranks
    run = out / "ppo_sync"
    steps = [int(r["step"]) for r in read_metrics(run / "metrics.csv") if r.get("train/policy_loss")]
    assert steps == [128, 256, 384, 512]  # one training row per rollout: rank 1 logged nothing
    assert json.loads((run / "config.json").read_text())["distributed"] == {"world_size": 2, "backend": "gloo"}
    meta = read_checkpoint_meta(run / "checkpoints" / "step_000000256")
    assert meta["meta"]["distributed"]["world_size"] == 2 and "ranks" in json.dumps(meta["skeleton"])
    # resumed from step 256 on 2 ranks: each rank takes back its own env and RNG state, so the end is the uninterrupted run's
    assert identical(both(out, "ppo_resumed")[0], both(out, "ppo_sync")[0])
    assert identical(both(out, "ppo_resumed")[1], both(out, "ppo_sync")[1])
    assert flags[0]["summary_checkpoint"].endswith("final") and flags[1]["summary_checkpoint"] is None
    assert all(f["gloo_iface"] for f in flags)  # gloo's sockets were put on the loopback interface


# ----------------------------------------------------------------------------- (c) the normaliser


def test_normalizer_is_identical_on_both_ranks_and_has_the_statistics_of_all_samples(ranks):
    out, _ = ranks
    r0, r1 = both(out, "norm")
    assert identical(r0, r1)
    data = []
    for r in (0, 1):  # the worker's batches: sizes (5, 7), (3, 0), (4, 4), rank r's scaled by 1 + r and shifted by r
        g = torch.Generator().manual_seed(7 + r)
        data += [torch.randn(rows[r], 2, generator=g) * (1 + r) + r for rows in ((5, 7), (3, 0), (4, 4))]
    x = torch.cat(data)
    assert r0["count"].item() == 23
    torch.testing.assert_close(r0["mean"], x.mean(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(r0["var"], x.var(0, unbiased=False), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- (d) one process: unchanged


def test_one_process_is_not_distributed():
    assert distributed.init("cpu", environ={}) is None
    assert distributed.init("cpu", environ={"WORLD_SIZE": "1"}) is None
    assert distributed.stats_context() is None
    t = torch.tensor([1.5])
    assert distributed.average(t) is t


def test_normalizer_update_in_one_process_is_the_former_arithmetic():
    g = torch.Generator().manual_seed(0)
    norm = RunningNorm((3,))
    mean, var, count = norm.mean.clone(), norm.var.clone(), norm.count.clone()
    for n in (4, 1, 9):
        x = torch.randn(n, 3, generator=g) * 3 + 1
        norm.update(x)
        # the update as it was written before data-parallel runs existed
        b_mean, b_var = x.mean(0), x.var(0, unbiased=False)
        total = count + n
        w = (n / total).to(mean.dtype)
        delta = b_mean - mean
        mean, var, count = mean + delta * w, var * (1.0 - w) + b_var * w + delta.pow(2) * w * (1.0 - w), total
        assert torch.equal(norm.mean, mean) and torch.equal(norm.var, var) and torch.equal(norm.count, count)


def test_driver_in_one_process_trains_as_the_plain_agent_loop(tmp_path):
    spec = AGENTS.get("ppo")
    cfg = spec.config_cls(num_envs=2, num_steps=32, num_minibatches=2, update_epochs=2, normalize_obs=True, target_kl=0.02)
    run_cfg = RunConfig(env="CartPole-v1", seed=3, total_steps=256, run_dir=str(tmp_path / "driver"), device="cpu", eval_episodes=1,
                        progress=False, tensorboard=False)
    via_driver = train(spec, run_cfg, cfg)["agent"].state_dict()["weights"]["policy"]
    # the same run without the driver: the sequence rlsuite.agents.train followed before data-parallel runs
    seed_everything(3)
    env = make_vec_env("CartPole-v1", 2, device="cpu", seed=3)
    agent = spec.agent_cls(cfg, env.single_observation_space, env.single_action_space, "cpu")
    run = Run(tmp_path / "plain", run_cfg, cfg, "ppo")
    agent.learn(env, 256, run, seed=3)
    run.finish(agent, env)
    env.close()
    plain = agent.state_dict()["weights"]["policy"]
    assert identical(via_driver, plain)


# ----------------------------------------------------------------------------- refusals and plumbing (no process group)


@pytest.mark.parametrize("environ, says", [
    ({"WORLD_SIZE": "2", "MASTER_PORT": "29500"}, "RANK is not set"),
    ({"WORLD_SIZE": "2", "RANK": "2", "MASTER_PORT": "29500"}, "RANK must be in [0, WORLD_SIZE)"),
    ({"WORLD_SIZE": "2", "RANK": "0"}, "MASTER_PORT is not set"),
    ({"WORLD_SIZE": "two", "RANK": "0"}, "WORLD_SIZE must be an integer"),
])
def test_bad_launch_variables_say_what_to_set(environ, says):
    with pytest.raises(ValueError, match="torchrun|RANK must") as e:
        distributed.launch_env(environ)
    assert says in str(e.value)


def test_launch_defaults_to_loopback():
    launch = distributed.launch_env({"WORLD_SIZE": "2", "RANK": "1", "MASTER_PORT": "29500"})
    assert launch.master_addr == "127.0.0.1" and launch.local_rank == 1 and not launch.agent_store
    assert distributed.is_loopback("127.0.0.1") and distributed.is_loopback("localhost") and not distributed.is_loopback("10.1.2.3")


def test_parts_are_found_below_the_agent_and_an_agent_without_optimiser_is_refused():
    class Inner:  # stands for TGPO's inner PPO: an object of the suite holding a module and an optimiser
        __module__ = "rlsuite.fake"

        def __init__(self) -> None:
            self.net = nn.Linear(2, 2)
            self.opt = torch.optim.Adam(self.net.parameters())

    class Agent:
        __module__ = "rlsuite.fake"

        def __init__(self) -> None:
            self.inner = Inner()
            self.heads = {"a": nn.Linear(2, 1), "b": [nn.Linear(2, 1)]}
            self.env = make_vec_env("CartPole-v1", 1, device="cpu", seed=0)  # environments are not entered

    agent = Agent()
    modules, optimizers, _ = distributed.find_parts(agent)
    assert [p for p, _ in modules] == ["agent.inner.net", "agent.heads['a']", "agent.heads['b'][0]"]
    assert [p for p, _ in optimizers] == ["agent.inner.opt"]
    agent.env.close()
    ctx = distributed.Context(rank=0, world_size=2, local_rank=0, backend="gloo", device=torch.device("cpu"))
    lone = Agent()
    lone.env.close()
    lone.inner.opt = None
    with pytest.raises(ValueError, match="no torch.optim.Optimizer.*one process"):
        distributed.make_data_parallel(lone, ctx)


def test_state_travels_without_pickle():
    state = {"obs": torch.arange(6.0).view(2, 3), "n": 3, "rng": {"python": [3, [1, 2], None]}, "t": (torch.ones(1, dtype=torch.bool), "x")}
    back = distributed.decode_state(distributed.encode_state(state))
    assert torch.equal(back["obs"], state["obs"]) and back["n"] == 3 and back["rng"] == state["rng"]
    assert torch.equal(back["t"][0], state["t"][0]) and back["t"][1] == "x"


def test_resume_with_another_number_of_processes_is_refused():
    check_world_size({"distributed": {"world_size": 2}}, 2, "ck")
    check_world_size({}, 1, "ck")
    with pytest.raises(CheckpointError, match="2 process.*this run has 1.*torchrun --nproc-per-node 2"):
        check_world_size({"distributed": {"world_size": 2}}, 1, "ck")
    with pytest.raises(CheckpointError, match="in one process"):
        check_world_size({}, 2, "ck")


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL needs one GPU per rank: 2 GPUs")
def test_two_nccl_ranks_stay_bit_identical(tmp_path):
    launch(tmp_path, device="cuda")
    for algo in ("ppo", "sac"):
        assert identical(*both(tmp_path, f"{algo}_sync"))
