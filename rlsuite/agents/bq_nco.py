"""BQ-NCO: a transformer policy over bisimulation-quotiented states, trained by imitation.

Drakulic et al., "BQ-NCO: Bisimulation Quotienting for Efficient Neural Combinatorial Optimization",
NeurIPS 2023. The state is the *tail sub-instance* that remains (an env's ``bq_view()``: rows
``[origin, remaining nodes..., destination]``); the network is an encoder only, re-applied to the
shrinking instance at every step, with no positional encoding (so it is equivariant to the order of
the rows) and ReZero residuals (each residual branch scaled by a learned scalar that starts at 0).

Network: ``Linear(F, d)`` embedding, plus learned origin and destination embeddings on the first and
last rows; ``L`` layers of ``x = x + a * MHA(x)``, ``x = x + a * FF(x)`` (ReLU); a linear head giving
one score per row (two for CVRP: go directly, or via the depot). Paper sizes: 9 layers, 12 heads,
``d = 192``, ``d_ff = 512``; the defaults here are smaller (:class:`BQNCOConfig`) so that CPU training
takes minutes. Deviation, documented: attention is PyTorch's scaled dot-product attention (the
authors' code uses its own bilinear attention without the ``1/sqrt(d)`` scaling).

Imitation data (:func:`tsp_tail_batch`, :func:`cvrp_tail_batch`): from a solved instance, the state
after a random prefix of the (re-ordered) solution, with the next node as label. One sub-path length
per minibatch, as the method requires. The solution is rotated and reversed at random (TSP) and the
CVRP subtours are sorted by the load left after them, fullest first (paper, App. E.3).

Decoding (:meth:`BQNCO.solve`): greedy or beam search (finished beams ranked by their cost), on any
env exposing ``bq_view``, ``view_mask``, ``view_action``, ``step``, ``done``, ``index_select`` and
``solutions`` (:class:`rlsuite.envs.cop.env.COPEnv`); optional k-nearest-neighbour restriction: only
the origin's ``knn`` nearest remaining nodes (plus origin and destination) are fed to the network.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rlsuite.agents.registry import AGENTS, AgentSpec
from rlsuite.core.distributions import MaskedCategorical

FEATURES = {"tsp": 2, "cvrp": 4, "op": 4, "kp": 3}
CHOICES = {"tsp": 1, "cvrp": 2, "op": 1, "kp": 1}


@dataclasses.dataclass(frozen=True)
class BQNCOConfig:
    """BQ-NCO network and training settings (paper: 9 layers, 12 heads, dim 192, ff 512, batch 1024,
    Adam 7.5e-4 decayed x0.98 every 50 epochs)."""

    problem: str = "tsp"
    dim: int = 128
    layers: int = 6
    heads: int = 8
    ff: int = 512
    learning_rate: float = 7.5e-4
    batch_size: int = 256
    lr_decay: float = 0.98
    lr_decay_every: int = 1000  # optimizer steps


class ReZeroLayer(nn.Module):
    """``x + a * MHA(x)`` then ``x + a * FF(x)``, ``a`` a learned scalar per branch initialised to 0."""

    def __init__(self, dim: int, heads: int, ff: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(dim, ff), nn.ReLU(), nn.Linear(ff, dim))
        self.alpha = nn.Parameter(torch.zeros(2))

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
        a, _ = self.attn(x, x, x, key_padding_mask=pad, need_weights=False)
        x = x + self.alpha[0] * a
        return x + self.alpha[1] * self.ff(x)


class BQPolicy(nn.Module):
    """Scores ``(B, R, K)`` for the rows of a BQ view ``feats (B, R, F)`` (``pad (B, R)`` True on padding)."""

    def __init__(self, cfg: BQNCOConfig) -> None:
        super().__init__()
        if cfg.problem not in FEATURES:
            raise ValueError(f"BQ-NCO handles {', '.join(FEATURES)}; got {cfg.problem!r} (ATSP needs edge features, not built).")
        self.cfg = cfg
        self.embed = nn.Linear(FEATURES[cfg.problem], cfg.dim)
        self.ends = nn.Parameter(torch.zeros(2, cfg.dim))  # origin, destination
        nn.init.normal_(self.ends, std=0.1)
        self.layers = nn.ModuleList(ReZeroLayer(cfg.dim, cfg.heads, cfg.ff) for _ in range(cfg.layers))
        self.head = nn.Linear(cfg.dim, CHOICES[cfg.problem])

    def forward(self, feats: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embed(feats)
        if self.cfg.problem != "kp":
            x = torch.cat([x[:, :1] + self.ends[0], x[:, 1:-1], x[:, -1:] + self.ends[1]], dim=1)
        if pad is not None and not bool(pad.any()):
            pad = None
        for layer in self.layers:
            x = layer(x, pad)
        return self.head(x)


def masked_log_probs(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B, R * K)`` log-probabilities over the allowed (row, choice) pairs (``-inf`` elsewhere). A row
    with nothing allowed (an instance already solved, in a batch that is not) is left uniform: its
    action is never applied."""
    return MaskedCategorical(scores.flatten(1), mask.flatten(1), validate=False).logits


def imitation_loss(scores: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of the expert's (row, choice) ``target (B,)`` (flat index ``row * K + choice``)."""
    if mask is not None:
        return -MaskedCategorical(scores.flatten(1), mask.flatten(1)).log_prob(target).mean()
    return F.cross_entropy(scores.flatten(1), target)


# --- imitation data
def tsp_tail_batch(locs: torch.Tensor, tours: torch.Tensor, remaining: int, generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """BQ states of TSP ``locs (B, N, 2)`` with expert ``tours (B, N)`` after ``N - 1 - remaining`` steps.

    Each tour is rotated to a random start and reversed with probability 1/2 (both leave it optimal).
    Returns ``feats (B, remaining + 2, 2)`` = rows ``[current, remaining in tour order, start]`` and the
    target row ``(B,)``, always 1 (the network cannot see row order)."""
    B, N = tours.shape
    if not 1 <= remaining <= N - 1:
        raise ValueError(f"remaining must be in 1..{N - 1}, got {remaining}.")
    shift = torch.randint(0, N, (B, 1), generator=generator).to(tours.device)
    pos = (torch.arange(N, device=tours.device)[None] + shift) % N
    flip = torch.rand(B, 1, generator=generator).to(tours.device) < 0.5
    pos = torch.where(flip, pos.flip(1).roll(1, dims=1), pos)
    t = tours.gather(1, pos)  # a rotated / reversed optimal tour
    rows = torch.cat([t[:, N - 1 - remaining : N], t[:, :1]], dim=1)
    feats = locs.gather(1, rows[..., None].expand(-1, -1, 2))
    return feats, torch.ones(B, dtype=torch.long, device=locs.device)


def cvrp_order(routes: list[list[int]], demand: list[float], capacity: float) -> tuple[list[int], list[int]]:
    """A CVRP solution as a client sequence and via-depot flags, subtours sorted by the load left after
    them, ascending (fullest first)."""
    trips = sorted(routes, key=lambda r: capacity - sum(demand[c] for c in r))
    seq, via = [], []
    for r in trips:
        for k, c in enumerate(r):
            seq.append(c)
            via.append(1 if k == 0 else 0)
    return seq, via


def cvrp_tail_batch(locs: torch.Tensor, demand: torch.Tensor, capacity: torch.Tensor, seqs: torch.Tensor, via: torch.Tensor,
                    start: int) -> tuple[torch.Tensor, torch.Tensor]:
    """BQ states of CVRP instances (``locs (B, N + 1, 2)``, ``demand (B, N + 1)``, ``capacity (B,)``)
    with expert client sequences ``seqs (B, N)`` and via-depot flags ``via (B, N)``, after ``start``
    clients (``0 <= start <= N - 2``). Rows ``[origin, clients start..N-1 in order, depot]``, features
    ``x, y, demand / C, load left / C``; target ``(B,)`` = ``1 * 2 + via[start]``."""
    B, N = seqs.shape
    if not 0 <= start <= N - 2:
        raise ValueError(f"start must be in 0..{N - 2}, got {start}.")
    dev = locs.device
    origin = seqs[:, start - 1] if start > 0 else torch.zeros(B, dtype=torch.long, device=dev)
    # load left at the origin: capacity minus the demand served since the last refill
    d_seq = demand.gather(1, seqs)
    trip_id = via.cumsum(1)
    load = capacity.clone()
    if start > 0:
        cur_trip = trip_id[:, start - 1 : start]
        served = (d_seq[:, :start] * (trip_id[:, :start] == cur_trip)).sum(1)
        load = capacity - served
    rows = torch.cat([origin[:, None], seqs[:, start:], torch.zeros(B, 1, dtype=torch.long, device=dev)], dim=1)
    xy = locs.gather(1, rows[..., None].expand(-1, -1, 2))
    dem = demand.gather(1, rows) / capacity[:, None]
    feats = torch.cat([xy, dem[..., None], (load / capacity)[:, None, None].expand(-1, rows.shape[1], 1)], dim=-1)
    return feats, 2 + via[:, start].long()


# --- the agent
class BQNCO:
    """Policy + training step + decoding. ``device`` as everywhere in rlsuite."""

    algo = "bq-nco"
    export_unavailable = ("BQ-NCO's policy is a transformer over the instance that remains, not a network over a "
                          "fixed-size observation, so it has no export module; solve with it instead: "
                          "rlsuite cop solve FILE --problem tsp --model RUN_DIR")

    def __init__(self, cfg: BQNCOConfig, device: str | torch.device = "cpu", seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.cfg, self.device = cfg, torch.device(device)
        self.policy = BQPolicy(cfg).to(self.device)
        self.opt = torch.optim.Adam(self.policy.parameters(), lr=cfg.learning_rate)
        self.steps = 0
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def global_step(self) -> int:
        return self.steps

    def learn(self, data: dict[str, torch.Tensor], total_steps: int, on_checkpoint: Callable[[BQNCO], None] | None = None,
              checkpoint_every: int = 1000, on_log: Callable[[int, float], None] | None = None, log_every: int = 100,
              time_limit_s: float | None = None) -> list[float]:
        """Imitation training on ``data`` (from :func:`imitation_data`) until ``steps == total_steps``,
        continuing a restored agent where it stopped (minibatches come from the agent's own generator, so
        a resumed run draws what an unbroken one would). ``on_checkpoint(agent)`` every ``checkpoint_every``
        steps; ``on_log(step, mean loss)`` every ``log_every``. Returns the losses of this call."""
        import time

        losses, t0 = [], time.monotonic()
        while self.steps < total_steps:
            feats, target = sample_batch(self.cfg.problem, data, self.cfg.batch_size, self.generator)
            losses.append(self.train_step(feats, target))
            if on_log is not None and self.steps % log_every == 0:
                on_log(self.steps, sum(losses[-log_every:]) / len(losses[-log_every:]))
            if on_checkpoint is not None and self.steps % checkpoint_every == 0 and self.steps < total_steps:
                on_checkpoint(self)
            if time_limit_s is not None and time.monotonic() - t0 > time_limit_s:
                break
        return losses

    def prepare_data(self, inst: dict[str, torch.Tensor], solutions: list[list[int]]) -> dict[str, torch.Tensor]:
        """The imitation tensors of solved instances for :meth:`learn` (see :func:`imitation_data`)."""
        return imitation_data(self.cfg.problem, inst, solutions)

    def state_dict(self) -> dict[str, Any]:
        """``weights`` (the policy), ``optim`` (Adam, with the decayed learning rate), ``counters`` and the sampling ``generator``."""
        return {"weights": {"policy": self.policy.state_dict()}, "optim": {"adam": self.opt.state_dict()},
                "counters": {"steps": self.steps}, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["weights"]["policy"])
        if "optim" in state:
            self.opt.load_state_dict(state["optim"]["adam"])
        self.steps = int(state.get("counters", {}).get("steps", 0))
        if "generator" in state:
            self.generator.set_state(state["generator"].cpu().to(torch.uint8))

    def train_step(self, feats: torch.Tensor, target: torch.Tensor) -> float:
        """One Adam step of the imitation loss on a batch of BQ states; returns the loss."""
        self.policy.train()
        loss = imitation_loss(self.policy(feats.to(self.device)), target.to(self.device))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.steps += 1
        if self.cfg.lr_decay_every and self.steps % self.cfg.lr_decay_every == 0:
            for g in self.opt.param_groups:
                g["lr"] *= self.cfg.lr_decay
        return float(loss.detach())

    @torch.no_grad()
    def _log_probs(self, env, knn: int | None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        view = env.bq_view()
        if knn is not None and "feats" in view and view["feats"].shape[1] - 2 > knn and self.cfg.problem != "kp":
            view = knn_view(view, knn)
        mask = env.view_mask(view)
        scores = self.policy(view["feats"], view["pad"])
        return view, masked_log_probs(scores, mask)

    @torch.no_grad()
    def solve(self, env, beam: int = 1, knn: int | None = None, cost_fn: Callable[[list[list[int]]], torch.Tensor] | None = None
              ) -> list[list[int]]:
        """Decode a solution for every instance of ``env`` (greedy when ``beam == 1``). With a beam,
        ``cost_fn(solutions) -> (B * beam,)`` ranks the finished beams (required). Any width works: when
        fewer moves are valid than ``beam``, the extra slots follow the best move with a ``-inf`` score
        and never win, so a beam at least as wide as the number of complete solutions is exhaustive."""
        self.policy.eval()
        K = CHOICES[self.cfg.problem]
        if beam <= 1:
            while not bool(env.done.all()):
                view, logp = self._log_probs(env, knn)
                flat = logp.argmax(1)
                env.step(env.view_action(view, flat // K, flat % K))
            return env.solutions()
        if cost_fn is None:
            raise ValueError("beam search needs cost_fn to rank the finished beams.")
        B = env.B
        env = env.index_select(torch.arange(B, device=env.device).repeat_interleave(beam))
        score = torch.full((B, beam), float("-inf"), device=env.device)
        score[:, 0] = 0.0  # all beams start identical: expand only the first
        while not bool(env.done.all()):
            view, logp = self._log_probs(env, knn)
            done = env.done
            # a finished beam keeps its score through one "stay" choice
            logp = torch.where(done[:, None], torch.full_like(logp, float("-inf")), logp)
            logp[done, 0] = 0.0
            A = logp.shape[1]
            total = (score.reshape(-1, 1) + logp).reshape(B, beam * A)
            top, arg = total.topk(beam, dim=1)
            parent = arg // A
            choice = arg % A
            # fewer valid (row, choice) pairs than beams (a beam wider than the candidates, near the end of
            # a tour): the slots topk filled with -inf candidates are masked moves. Park each such dead slot
            # on the best candidate's move, which is valid; its -inf score keeps it out of the ranking.
            dead = torch.isneginf(top)
            parent = torch.where(dead, parent[:, :1], parent)
            choice = torch.where(dead, choice[:, :1], choice)
            rows = (torch.arange(B, device=env.device)[:, None] * beam + parent).reshape(-1)
            env = env.index_select(rows)
            view = {k: v[rows] for k, v in view.items()}
            flat = choice.reshape(-1)
            action = env.view_action(view, flat // K, flat % K)
            env.step(action)
            score = top
        sols = env.solutions()
        costs = cost_fn(sols).to(score.device, torch.float32).reshape(B, beam)
        costs = torch.where(torch.isfinite(score), costs, torch.full_like(costs, math.inf))
        best = costs.argmin(1)
        return [sols[b * beam + int(best[b])] for b in range(B)]

    # --- persistence (safetensors + JSON; never pickle)
    def save(self, path) -> None:
        """Write ``path`` (a directory): ``model.safetensors`` and ``config.json``, atomically."""
        from pathlib import Path

        from safetensors.torch import save_file

        from rlsuite.core.atomic import atomic_dir

        with atomic_dir(Path(path)) as tmp:  # the model directory appears whole or not at all
            save_file({k: v.detach().cpu().contiguous() for k, v in self.policy.state_dict().items()}, str(tmp / "model.safetensors"))
            (tmp / "config.json").write_text(json.dumps({"algo": "bq-nco", "config": dataclasses.asdict(self.cfg), "steps": self.steps},
                                                        indent=2))

    @staticmethod
    def load(path, device: str | torch.device = "cpu") -> BQNCO:
        """A model directory written by :meth:`save` (the shipped models), or a ``rlsuite train bq-nco``
        run directory / checkpoint directory."""
        import json
        from pathlib import Path

        from safetensors.torch import load_file

        path = Path(path)
        if (path / "checkpoints").is_dir() or (path / "meta.json").is_file():
            from rlsuite.core.checkpoint import load_checkpoint
            from rlsuite.core.config import config_from_dict
            from rlsuite.core.run import resolve_checkpoint

            state, meta = load_checkpoint(resolve_checkpoint(path), device=device)
            if meta.get("algo") != "bq-nco":
                raise ValueError(f"{path} holds a {meta.get('algo')} run, not a BQ-NCO one.")
            agent = BQNCO(config_from_dict(BQNCOConfig, meta["config"]), device)
            agent.load_state_dict(state["agent"])
            return agent
        if not (path / "config.json").exists() or not (path / "model.safetensors").exists():
            raise FileNotFoundError(f"{path} is not a BQ-NCO checkpoint (needs config.json and model.safetensors); "
                                    "train one with `rlsuite cop train`.")
        meta = json.loads((path / "config.json").read_text())
        if meta.get("algo") != "bq-nco":
            raise ValueError(f"{path}: config.json is not a BQ-NCO checkpoint (algo {meta.get('algo')!r}).")
        agent = BQNCO(BQNCOConfig(**meta["config"]), device)
        agent.policy.load_state_dict(load_file(str(path / "model.safetensors"), device=str(agent.device)))
        agent.steps = int(meta.get("steps", 0))
        return agent


def knn_view(view: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    """Keep the origin, the ``k`` remaining rows nearest to it (by the first two features, the
    coordinates) and the destination."""
    xy = view["feats"][..., :2]
    d = (xy[:, 1:-1] - xy[:, :1]).norm(dim=-1).masked_fill(view["pad"][:, 1:-1], float("inf"))
    near = d.topk(k, dim=1, largest=False).indices + 1
    R = view["feats"].shape[1]
    rows = torch.cat([torch.zeros_like(near[:, :1]), near.sort(1).values, torch.full_like(near[:, :1], R - 1)], dim=1)
    out = {"feats": view["feats"].gather(1, rows[..., None].expand(-1, -1, view["feats"].shape[2])),
           "index": view["index"].gather(1, rows), "pad": view["pad"].gather(1, rows)}
    return out


# --- imitation training
def imitation_data(problem: str, inst: dict[str, torch.Tensor], solutions: list[list[int]]) -> dict[str, torch.Tensor]:
    """Tensors for :func:`sample_batch` from instances and expert solutions (TSP tours; CVRP client
    sequences with 0 marking depot returns)."""
    if problem == "tsp":
        return {"locs": inst["locs"].float(), "tours": torch.tensor(solutions, dtype=torch.long)}
    if problem == "cvrp":
        seqs, vias = [], []
        for b, s in enumerate(solutions):
            routes, cur = [], []
            for x in s:
                if x == 0:
                    if cur:
                        routes.append(cur)
                    cur = []
                else:
                    cur.append(x)
            if cur:
                routes.append(cur)
            seq, via = cvrp_order(routes, inst["demand"][b].tolist(), float(inst["capacity"][b]))
            seqs.append(seq)
            vias.append(via)
        return {"locs": inst["locs"].float(), "demand": inst["demand"].float(), "capacity": inst["capacity"].float(),
                "seqs": torch.tensor(seqs, dtype=torch.long), "via": torch.tensor(vias, dtype=torch.long)}
    raise ValueError(f"imitation training is built for tsp and cvrp, not {problem!r}.")


def sample_batch(problem: str, data: dict[str, torch.Tensor], batch_size: int, generator: torch.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """A minibatch of BQ states with one sub-path length for the whole batch (TSP: 2..N-1 nodes left,
    CVRP: any start 0..N-2)."""
    key = "tours" if problem == "tsp" else "seqs"
    count, N = data[key].shape
    idx = torch.randint(0, count, (batch_size,), generator=generator)
    if problem == "tsp":
        remaining = int(torch.randint(2, N, (1,), generator=generator)) if N > 2 else 1
        return tsp_tail_batch(data["locs"][idx], data["tours"][idx], remaining, generator)
    start = int(torch.randint(0, N - 1, (1,), generator=generator))
    return cvrp_tail_batch(data["locs"][idx], data["demand"][idx], data["capacity"][idx], data["seqs"][idx], data["via"][idx], start)


def fit(agent: BQNCO, data: dict[str, torch.Tensor], steps: int, seed: int = 0, time_limit_s: float | None = None,
        on_log: Callable[[int, float], None] | None = None, log_every: int = 100) -> list[float]:
    """Imitation training for ``steps`` optimizer steps (or until ``time_limit_s``); returns the losses."""
    import time

    g = torch.Generator().manual_seed(seed)
    losses, t0 = [], time.monotonic()
    for i in range(steps):
        feats, target = sample_batch(agent.cfg.problem, data, agent.cfg.batch_size, g)
        losses.append(agent.train_step(feats, target))
        if on_log is not None and (i + 1) % log_every == 0:
            on_log(i + 1, sum(losses[-log_every:]) / log_every)
        if time_limit_s is not None and time.monotonic() - t0 > time_limit_s:
            break
    return losses


AGENTS.register("bq-nco", AgentSpec(
    name="bq-nco", config_cls=BQNCOConfig, agent_cls=BQNCO, learns_from="instances",
    summary="BQ-NCO: transformer over the remaining instance, imitation of solved TSP / CVRP instances",
    build=lambda cfg, obs_space, act_space, device, seed: BQNCO(cfg, device, seed),
))
