"""Benchmark: our GRPO step vs TRL's GRPOTrainer on the same tiny model, and memory accounting of
ReMax / GRPO vs PPO with a critic.

Step time: one SFT-warmed 0.1 M-parameter GPT-2 (our ``tiny_causal_lm``, 500 SFT steps on reversed-digit
addition, saved once and loaded by both sides), the same prompts and verifier reward, 32 prompts x 8
completions per optimizer step, micro-batches of 64, at most 6 new tokens, temperature 1, lr 1e-3 constant,
clip 0.2, no KL (beta 0, so neither side builds a reference model), one optimizer step per generation
batch. Each side runs in its own process (so peak memory is its own); the two alternate, round by round,
and medians over rounds are reported. Peak memory is ``torch.cuda.max_memory_allocated`` on a GPU and the
process's peak resident set size on a CPU (that includes the Python libraries each side imports).

Memory accounting: bytes held in parameters, gradients and Adam state of every model each method keeps
(actor, frozen reference, critic), counted from the real tensors after one optimizer step.

Writes ``docs/benchmarks/llm.csv`` and the tables between the ``llm`` markers of ``docs/benchmarks.md``.

Usage:
    python scripts/bench/llm.py                  # 3 rounds x 20 measured steps per side
    python scripts/bench/llm.py --quick          # 1 round x 5 steps (a smoke run)
    python scripts/bench/llm.py --device cpu     # default: cuda when available

Needs the llm and bench extras: pip install -e ".[llm,bench]" (TRL comes with bench).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from benchlib import ROOT, git_commit, machine, write_results  # noqa: E402  (scripts/bench on sys.path)

CSV_PATH = ROOT / "docs" / "benchmarks" / "llm.csv"

PROMPTS, GROUP, MICRO, MAX_NEW, LR, WARMUP = 32, 8, 64, 6, 1e-3, 2


def peak_memory(device: str) -> int:
    if device == "cuda":
        return int(torch.cuda.max_memory_allocated())
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


def hf_tokenizer():
    """A transformers fast tokenizer with the same ids as ``CharTokenizer`` (one token per character, BOS first)."""
    from tokenizers import Regex, Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    from rlsuite.llm.tasks import CharTokenizer

    ct = CharTokenizer()
    tk = Tokenizer(WordLevel({s: i for i, s in enumerate(ct.itos)}, unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tk.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", ct.bos_id)])
    tk.decoder = decoders.Fuse()  # characters join without spaces
    hf = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", padding_side="left")
    ids = ct.encode("57+68=", bos=True)
    assert hf("57+68=").input_ids == ids and hf.decode(ids + [ct.eos_id], skip_special_tokens=True) == "57+68="
    return hf


def worker_ours(model_dir: str, steps: int, device: str) -> dict:
    from rlsuite.llm.tasks import CharTokenizer, make_split
    from rlsuite.llm.trainer import OnlineConfig, OnlineTrainer, load_model

    model, _ = load_model(model_dir)
    model.to(device)
    tok, train = CharTokenizer(), make_split("addition", 2000, 0, False)
    cfg = OnlineConfig(method="grpo", prompts_per_step=PROMPTS, group_size=GROUP, micro_batch_size=MICRO,
                       max_new_tokens=MAX_NEW, learning_rate=LR, seed=0)
    tr = OnlineTrainer(model, tok, train, cfg)
    times, rewards = [], []
    for i in range(WARMUP + steps):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        m = tr.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= WARMUP:
            times.append(time.perf_counter() - t0)
            rewards.append(m["reward_mean"])
    return {"step_s": statistics.median(times), "peak_bytes": peak_memory(device), "reward_mean": statistics.mean(rewards)}


def worker_trl(model_dir: str, steps: int, device: str) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from rlsuite.llm.tasks import make_split, verify
    from rlsuite.llm.trainer import load_model

    model, _ = load_model(model_dir)
    train = make_split("addition", 2000, 0, False)
    ds = Dataset.from_dict({"prompt": [e.prompt for e in train]})

    def reward(prompts, completions, **_):
        return [verify("addition", p, c) for p, c in zip(prompts, completions, strict=True)]

    stamps: list[float] = []
    rewards: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if device == "cuda":
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "reward" in logs:
                rewards.append(float(logs["reward"]))

    with tempfile.TemporaryDirectory() as out:
        cfg = GRPOConfig(
            output_dir=out, per_device_train_batch_size=MICRO, gradient_accumulation_steps=PROMPTS * GROUP // MICRO,
            num_generations=GROUP, max_completion_length=MAX_NEW, learning_rate=LR, lr_scheduler_type="constant",
            warmup_steps=0, beta=0.0, num_iterations=1, temperature=1.0, epsilon=0.2, max_grad_norm=1.0,
            loss_type="grpo", scale_rewards="group", use_cpu=device == "cpu", report_to="none", logging_steps=1,
            max_steps=WARMUP + steps + 1, save_strategy="no", bf16=False, seed=0, disable_tqdm=True,
        )
        trainer = GRPOTrainer(model=model, reward_funcs=reward, args=cfg, train_dataset=ds, processing_class=hf_tokenizer(),
                              callbacks=[Clock()])
        start = time.perf_counter()
        trainer.train()
    edges = [start] + stamps
    times = [b - a for a, b in zip(edges, edges[1:], strict=False)][WARMUP : WARMUP + steps]
    return {"step_s": statistics.median(times), "peak_bytes": peak_memory(device),
            "reward_mean": statistics.mean(rewards[WARMUP:]) if rewards else float("nan")}


def run_worker(side: str, model_dir: str, steps: int, device: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", side, "--model", model_dir, "--steps", str(steps), "--device", device]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{side} worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def memory_accounting(hidden: int, layers: int) -> list[dict]:
    """Bytes per actor parameter held by each method's models, counted from real tensors after one Adam step."""
    from transformers import GPT2Config, GPT2Model

    from rlsuite.llm.model import tiny_causal_lm
    from rlsuite.llm.tasks import CharTokenizer

    vocab = CharTokenizer().vocab_size

    def trained(model: torch.nn.Module) -> int:
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        opt.step()
        state = [v for s in opt.state.values() for v in s.values() if torch.is_tensor(v) and v.dim() > 0]
        params = list(model.parameters())
        return tensor_bytes(params) + tensor_bytes(p.grad for p in params) + tensor_bytes(state)

    actor = tiny_causal_lm(vocab, hidden=hidden, layers=layers)
    n = sum(p.numel() for p in actor.parameters())
    actor_bytes = trained(actor)
    ref_bytes = tensor_bytes(copy.deepcopy(actor).requires_grad_(False).parameters())

    class Critic(torch.nn.Module):  # the usual PPO critic: the same backbone with a scalar value head
        def __init__(self) -> None:
            super().__init__()
            self.body = GPT2Model(GPT2Config(vocab_size=vocab, n_positions=64, n_embd=hidden, n_layer=layers, n_head=4,
                                                bos_token_id=1, eos_token_id=2, pad_token_id=0))
            self.head = torch.nn.Linear(hidden, 1)

    critic_bytes = trained(Critic())
    rows = []
    for method, parts in [("GRPO / ReMax (actor + frozen reference)", actor_bytes + ref_bytes),
                          ("PPO (actor + reference + critic)", actor_bytes + ref_bytes + critic_bytes)]:
        rows.append({"part": "memory", "method": method, "actor_params": n, "bytes": parts, "bytes_per_param": parts / n})
    return rows


def render(rows: list[dict], meta: dict) -> str:
    steps = [r for r in rows if r["part"] == "step"]
    lines = [f"Measured {meta['date']} on {meta['machine']} (device {meta['device']}), commit {meta['commit']}, "
             f"torch {meta['torch']}, transformers {meta['transformers']}, TRL {meta['trl']}.", ""]
    if steps:
        ours = [r for r in steps if r["side"] == "rlsuite"]
        trl = [r for r in steps if r["side"] == "trl"]
        med = lambda rs, k: statistics.median(r[k] for r in rs)  # noqa: E731
        lines += [
            f"GRPO step: {PROMPTS} prompts x {GROUP} completions, micro-batch {MICRO}, <= {MAX_NEW} new tokens, "
            f"0.1 M-parameter GPT-2 after SFT; median over {len(ours)} alternating rounds of the per-round median step.",
            "",
            "| side | step time (s) | peak memory (MiB) | mean reward | rounds |",
            "|---|---|---|---|---|",
        ]
        for name, rs in (("rlsuite OnlineTrainer", ours), ("TRL GRPOTrainer", trl)):
            lines.append(f"| {name} | {med(rs, 'step_s'):.3f} | {med(rs, 'peak_bytes') / 2**20:.0f} | {med(rs, 'reward_mean'):.3f} | {len(rs)} |")
        lines += ["", f"TRL / rlsuite step-time ratio: **{med(trl, 'step_s') / med(ours, 'step_s'):.2f}x**; "
                  f"peak-memory ratio {med(trl, 'peak_bytes') / med(ours, 'peak_bytes'):.2f}x.", ""]
    mem = [r for r in rows if r["part"] == "memory"]
    if mem:
        base = mem[0]["bytes"]
        lines += ["Model-state memory (parameters + gradients + Adam state of every model kept; fp32; counted from "
                  f"the tensors of a {mem[0]['actor_params'] / 1e6:.1f} M-parameter actor after one optimizer step):", "",
                  "| method | bytes per actor parameter | total (MiB) | vs GRPO / ReMax |", "|---|---|---|---|"]
        for r in mem:
            lines.append(f"| {r['method']} | {r['bytes_per_param']:.1f} | {r['bytes'] / 2**20:.1f} | {r['bytes'] / base:.2f}x |")
        saving = 1 - mem[0]["bytes"] / mem[1]["bytes"]
        lines += ["", f"Dropping the critic saves {saving:.0%} of model-state memory (activations not included)."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 round x 5 steps")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20, help="measured steps per side and round")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto: cuda when available")
    ap.add_argument("--worker", choices=["ours", "trl"], help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.worker:
        fn = worker_ours if args.worker == "ours" else worker_trl
        print(json.dumps(fn(args.model, args.steps, args.device)))
        return
    import transformers
    import trl

    from rlsuite.llm.model import tiny_causal_lm
    from rlsuite.llm.tasks import CharTokenizer, make_split
    from rlsuite.llm.trainer import save_model, sft

    rounds, steps = (1, 5) if args.quick else (args.rounds, args.steps)
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": machine(args.device), "device": args.device, "commit": git_commit(),
            "torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__}
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        tok = CharTokenizer()
        model = tiny_causal_lm(tok.vocab_size, seed=0)
        sft(model, tok, make_split("addition", 2000, 0, False), 500, seed=0)
        save_model(model, Path(tmp) / "sft")
        for r in range(rounds):
            for side, key in (("rlsuite", "ours"), ("trl", "trl")):
                res = run_worker(key, str(Path(tmp) / "sft"), steps, args.device)
                rows.append({"part": "step", "side": side, "round": r, **res})
                print(f"round {r} {side}: {res['step_s']:.3f} s/step, peak {res['peak_bytes'] / 2**20:.0f} MiB, "
                      f"reward {res['reward_mean']:.3f}", flush=True)
    rows += memory_accounting(hidden=256, layers=4)
    write_results(CSV_PATH, rows, meta, "llm", render(rows, meta), "Language models: GRPO step vs TRL, memory of critic-free methods")
    print(render(rows, meta))


if __name__ == "__main__":
    main()
