"""Temporal grounding of STL formulas and the stage-wise reward of TGPO (``reward_mode="tgpo"``).

TGPO (Meng, Chen, Fan, 2025) grounds a formula in time and trains a time-conditioned policy on timed
subgoals; its code is not public and this is our reconstruction (choices marked below and in
``agents/tgpo.py``).

1. **Temporal grounding** (:class:`TemporalGrounding`). Each existential temporal node gets a time:
   ``F[a,b] f`` at ``t0`` picks ``tau in [t0+a, t0+b]`` (cut at the horizon) where ``f`` must hold;
   ``f U[a,b] g`` picks ``tau`` where ``g`` must hold and makes ``f`` an invariance on ``[t0, tau)``;
   ``G[a,b] f`` with a state formula ``f`` (no temporal operator inside) is an invariance on
   ``[t0+a, t0+b]`` (plus a reach at ``t0+a`` when it is nested, the "stay" pattern ``F G``); an ``or``
   with temporal children picks one branch; a state formula at ``t0`` is a reach at ``t0``. Choices are
   one number ``u in [0, 1]`` per F, U and or-node of the tree (preorder), so an allocation is a fixed
   length vector whatever branches it takes. ``G`` over a temporal formula other than the stay pattern,
   and ``not`` / ``->`` over temporal formulas, are refused with a clear error.
2. **Stages.** Reaches sorted by their times are the stages. The augmented observation is the env's
   observation plus: stage progress ``k / K``, time to the current deadline, the current reach's
   robustness, the direction to its target region (objects named by ``d_i <= r`` predicates), the least
   robustness of the active invariances, and every allocated stage time (the critic needs the
   allocation to tell feasible from infeasible ones).
3. **Stage-wise dense reward** (shape from the paper's summaries, weights ours, :class:`StageWeights`):
   progress ``w_p * (rho_k(s_{t+1}) - rho_k(s_t))`` toward the current reach; ``+w_b`` when the reach
   holds at its deadline (the stage then advances, held or not); ``-w_i * relu(-rho_inv)`` for every
   active invariance; ``+w_s`` at the end when the whole formula's hard robustness is positive.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch

from rlsuite.core.vec_env import TorchVecEnv
from rlsuite.envs.stl.caching import tensor_version as _version
from rlsuite.envs.stl.robustness import robustness
from rlsuite.envs.stl.spec import (
    Always,
    And,
    Eventually,
    Formula,
    Implies,
    Not,
    Or,
    Predicate,
    Until,
    children,
)

if TYPE_CHECKING:  # envs.py builds a GroundedSTLVecEnv in make_stl_vec_env: a runtime import would be a cycle
    from rlsuite.envs.stl.envs import STLVecEnv


@dataclasses.dataclass(frozen=True)
class StageWeights:
    """Weights of the stage-wise reward (ours; the paper's constants are not published)."""

    w_progress: float = 1.0
    """Progress toward the current reach."""
    w_stage: float = 1.0
    """Bonus when a reach holds at its deadline."""
    w_invariance: float = 1.0
    """Active invariance violations."""
    w_success: float = 5.0
    """Bonus at the end when the whole formula is satisfied."""


RHO_CLIP = 10.0


def is_state_formula(f: Formula) -> bool:
    """True when ``f`` has no temporal operator (its truth at ``t`` depends on the state at ``t`` only)."""
    if isinstance(f, (Always, Eventually, Until)):
        return False
    return all(is_state_formula(c) for c in children(f))


@dataclasses.dataclass
class Plan:
    """One grounding: ``reaches`` ``[(reach_id, time)]`` sorted by time; ``invariances`` ``[(inv_id, lo, hi)]``."""

    reaches: list[tuple[int, int]]
    invariances: list[tuple[int, int, int]]


class TemporalGrounding:
    """Compile a formula into allocation slots, reach and invariance state formulas (see item 1 above)."""

    def __init__(self, formula: Formula, horizon: int) -> None:
        self.formula, self.horizon = formula, horizon
        self.slots: dict[int, int] = {}  # id(node) -> slot index
        self.reach_formulas: list[Formula] = []
        self.inv_formulas: list[Formula] = []
        self._reach_id: dict[int, int] = {}
        self._inv_id: dict[int, int] = {}
        self._compile(formula, nested=False)
        if not self.reach_formulas and not self.inv_formulas:
            raise ValueError("nothing to ground in this formula.")

    @property
    def num_slots(self) -> int:
        return len(self.slots)

    def _reach(self, f: Formula) -> None:
        self._reach_id.setdefault(id(f), len(self.reach_formulas))
        if len(self.reach_formulas) < len(self._reach_id):
            self.reach_formulas.append(f)

    def _inv(self, f: Formula) -> None:
        self._inv_id.setdefault(id(f), len(self.inv_formulas))
        if len(self.inv_formulas) < len(self._inv_id):
            self.inv_formulas.append(f)

    def _compile(self, f: Formula, nested: bool) -> None:
        if is_state_formula(f):
            self._reach(f)
            return
        if isinstance(f, And):
            for c in f.children:
                self._compile(c, nested)
        elif isinstance(f, Or):
            self.slots[id(f)] = len(self.slots)
            for c in f.children:
                self._compile(c, nested)
        elif isinstance(f, Eventually):
            self.slots[id(f)] = len(self.slots)
            self._compile(f.child, nested=True)
        elif isinstance(f, Until):
            if not is_state_formula(f.left):
                raise ValueError("TGPO grounding needs a state formula (no temporal operator) left of U.")
            self.slots[id(f)] = len(self.slots)
            self._inv(f.left)
            self._compile(f.right, nested=True)
        elif isinstance(f, Always):
            if not is_state_formula(f.child):
                raise ValueError("TGPO grounding supports G over a state formula only (e.g. G[0,T] !obstacle, F[a,b] G[0,d] region).")
            self._inv(f.child)
            self._reach(f.child)
        else:  # Not / Implies over temporal formulas
            kind = "not" if isinstance(f, Not) else "->" if isinstance(f, Implies) else type(f).__name__
            raise ValueError(f"TGPO grounding cannot ground {kind!r} over a temporal formula; push negations to the predicates.")

    def ground(self, u: list[float] | np.ndarray) -> Plan:
        """The plan for allocation ``u`` (``num_slots`` numbers in [0, 1])."""
        reaches: list[tuple[int, int]] = []
        invs: list[tuple[int, int, int]] = []
        last = self.horizon - 1

        def pick(node: Formula, lo: int, hi: int | None) -> int:
            hi = last if hi is None else min(hi, last)
            lo = min(lo, last)
            if hi <= lo:
                return lo
            return lo + int(round(float(u[self.slots[id(node)]]) * (hi - lo)))

        def go(f: Formula, t0: int, nested: bool) -> None:
            if is_state_formula(f):
                reaches.append((self._reach_id[id(f)], t0))
            elif isinstance(f, And):
                for c in f.children:
                    go(c, t0, nested)
            elif isinstance(f, Or):
                n = len(f.children)
                go(f.children[min(n - 1, int(float(u[self.slots[id(f)]]) * n))], t0, nested)
            elif isinstance(f, Eventually):
                go(f.child, pick(f, t0 + f.a, None if f.b is None else t0 + f.b), True)
            elif isinstance(f, Until):
                tau = pick(f, t0 + f.a, None if f.b is None else t0 + f.b)
                if tau - 1 >= t0:
                    invs.append((self._inv_id[id(f.left)], t0, tau - 1))
                go(f.right, tau, True)
            elif isinstance(f, Always):
                lo = min(t0 + f.a, last)
                hi = last if f.b is None else min(t0 + f.b, last)
                invs.append((self._inv_id[id(f.child)], lo, hi))
                if nested or f.a > 0:
                    reaches.append((self._reach_id[id(f.child)], lo))

        go(self.formula, 0, False)
        reaches.sort(key=lambda r: r[1])
        return Plan(reaches, invs)


def _target_objects(f: Formula, negated: bool = False) -> list[int]:
    """Objects ``i`` that ``f`` asks to be inside of (a predicate ``d_i <= r`` not under a negation)."""
    if isinstance(f, Predicate):
        if not negated and len(f.terms) == 1 and f.terms[0][0].startswith("d") and f.terms[0][1] < 0 and f.const > 0:
            name = f.terms[0][0][1:]
            return [int(name)] if name.isdigit() else []
        return []
    if isinstance(f, Not):
        return _target_objects(f.child, not negated)
    return [i for c in children(f) for i in _target_objects(c, negated)]


class GroundedSTLVecEnv(TorchVecEnv):
    """An :class:`STLVecEnv` seen through a temporal grounding (``reward_mode="tgpo"``): augmented
    observations and the stage-wise reward of TGPO (see the module docstring).

    At each episode start the allocation comes from ``allocation_sampler(base_obs) -> u (N, num_slots)``
    when one is set (TGPO* sets a critic-guided sampler), else uniformly."""

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, base: STLVecEnv, weights: StageWeights | None = None, seed: int | None = None) -> None:
        self.base, self.cfg = base, weights or StageWeights()
        self.num_envs, self.device = base.num_envs, base.device
        self.H = base.horizon
        self.grounding = TemporalGrounding(base.task.formula, self.H)
        self.K = max(1, len(self.grounding.reach_formulas))
        n_inv = len(self.grounding.inv_formulas)
        targets = []
        for f in self.grounding.reach_formulas:
            objs = _target_objects(f)
            targets.append(base.centers[objs].mean(0) if objs else torch.full((2,), float("nan"), device=self.device))
        self.targets = torch.stack(targets) if targets else torch.zeros((0, 2), device=self.device)
        extra = 1 + 1 + 1 + 3 + 1 + self.K
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (base.single_observation_space.shape[0] + extra,), np.float32)
        self.single_action_space = base.single_action_space
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = base.action_space
        self.rng = np.random.default_rng(seed)
        self.allocation_sampler = None  # optional: base observations (N, D) -> allocations (N, num_slots)
        self.u = self.uniform_allocations()
        self.stage_reach = torch.zeros((self.num_envs, self.K), dtype=torch.long, device=self.device)
        self.stage_time = torch.zeros((self.num_envs, self.K), dtype=torch.long, device=self.device)
        self.n_stages = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        self.inv_lo = torch.ones((self.num_envs, n_inv), dtype=torch.long, device=self.device)
        self.inv_hi = torch.zeros((self.num_envs, n_inv), dtype=torch.long, device=self.device)
        self.k = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        self._init_episode_stats()

    # plans
    def _plan_tensors(self, u: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n = u.shape[0]
        sr = torch.zeros((n, self.K), dtype=torch.long)
        st = torch.full((n, self.K), self.H - 1, dtype=torch.long)
        ns = torch.zeros(n, dtype=torch.long)
        lo = torch.ones((n, len(self.grounding.inv_formulas)), dtype=torch.long)
        hi = torch.zeros_like(lo)
        for i, row in enumerate(u.tolist()):
            plan = self.grounding.ground(row)
            ns[i] = len(plan.reaches)
            for j, (rid, t) in enumerate(plan.reaches):
                sr[i, j], st[i, j] = rid, t
            for iid, a, b in plan.invariances:
                lo[i, iid], hi[i, iid] = a, b
        return tuple(x.to(self.device) for x in (sr, st, ns, lo, hi))

    def set_allocation(self, u: torch.Tensor) -> None:
        """Use allocation ``u`` ``(N, num_slots)`` for the current episodes."""
        self.u = u.float().cpu()
        self.stage_reach, self.stage_time, self.n_stages, self.inv_lo, self.inv_hi = self._plan_tensors(self.u)
        self.k = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)

    # features
    def _state_rho(self, formulas: list[Formula], sig: torch.Tensor) -> torch.Tensor:
        if not formulas:
            return torch.zeros((sig.shape[0], 0), device=self.device)
        return torch.stack([robustness(f, sig.unsqueeze(1), self.base.signal_names)[:, 0] for f in formulas], 1).clamp(-RHO_CLIP, RHO_CLIP)

    def _rho(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Robustness of every reach and invariance state formula at ``state`` ``(N, R)``, ``(N, I)``;
        computed once per state tensor (the reward, the observation and the next step's progress share it)."""
        c = getattr(self, "_rho_cache", None)
        if c is None or c[0] is not state or c[1] != _version(state):
            sig = self.base.signals_of(state)
            c = (state, _version(state), self._state_rho(self.grounding.reach_formulas, sig), self._state_rho(self.grounding.inv_formulas, sig))
            self._rho_cache = c
        return c[2], c[3]

    def _features(self, base_obs: torch.Tensor, state: torch.Tensor, t: int, stage_reach, stage_time, n_stages, inv_lo, inv_hi, k):
        rho_r, rho_i = self._rho(state)
        idx = k.clamp(max=self.K - 1)
        active = k < n_stages
        cur = stage_reach.gather(1, idx[:, None])[:, 0]
        deadline = stage_time.gather(1, idx[:, None])[:, 0]
        rho_cur = torch.where(active, rho_r.gather(1, cur[:, None])[:, 0] if rho_r.shape[1] else torch.zeros_like(deadline, dtype=torch.float32), 0.0)
        to_deadline = torch.where(active, (deadline - t).float() / self.H, 0.0)
        tgt = self.targets[cur] if self.targets.shape[0] else torch.full((self.num_envs, 2), float("nan"), device=self.device)
        has = (~torch.isnan(tgt[:, 0])) & active
        rel = torch.where(has[:, None], torch.nan_to_num(tgt) - self.base.dyn.point(state).float(), 0.0)
        on = (inv_lo <= t) & (t <= inv_hi)
        inv_min = torch.where(on, rho_i, RHO_CLIP).amin(1) if rho_i.shape[1] else torch.full_like(rho_cur, RHO_CLIP)
        inv_min = torch.where(on.any(1), inv_min, 0.0) if rho_i.shape[1] else torch.zeros_like(rho_cur)
        times = torch.where(torch.arange(self.K, device=self.device)[None] < n_stages[:, None], stage_time.float() / self.H, -1.0)
        extra = torch.stack([k.float() / self.K, to_deadline, rho_cur.float(), rel[:, 0], rel[:, 1], has.float(), inv_min.float()], 1)
        return torch.cat([base_obs, extra, times], 1).float(), rho_r, rho_i

    def observe(self, base_obs: torch.Tensor) -> torch.Tensor:
        """The augmented observation of the current state for the base env's observation ``base_obs``."""
        return self._obs_now(base_obs)

    def _obs_now(self, base_obs: torch.Tensor) -> torch.Tensor:
        return self._features(base_obs, self.base.state, self.base.t, self.stage_reach, self.stage_time, self.n_stages,
                              self.inv_lo, self.inv_hi, self.k)[0]

    def start_obs_for(self, base_obs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Augmented start observations of the current start states under allocations ``u`` ``(N, slots)``."""
        sr, st, ns, lo, hi = self._plan_tensors(u)
        zero = torch.zeros(self.num_envs, dtype=torch.long, device=self.device)
        return self._features(base_obs, self.base.state, 0, sr, st, ns, lo, hi, zero)[0]

    def uniform_allocations(self, n: int | None = None) -> torch.Tensor:
        """``n`` (default ``num_envs``) allocations drawn uniformly, ``(n, num_slots)``."""
        return torch.tensor(self.rng.random((n or self.num_envs, self.grounding.num_slots)), dtype=torch.float32)

    def _new_allocations(self, base_obs: torch.Tensor) -> None:
        u = self.allocation_sampler(base_obs) if self.allocation_sampler is not None else self.uniform_allocations()
        self.set_allocation(u)

    # protocol
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
            self.u = self.uniform_allocations()  # a seeded start for the MH chains as well
        base_obs, info = self.base.reset(seed=seed, options=options)
        self._new_allocations(base_obs)
        self._init_episode_stats()
        return self._obs_now(base_obs), info

    def step(self, action: torch.Tensor):
        cfg = self.cfg
        rho_before = self._rho(self.base.state)[0]
        base_obs, _, terminated, truncated, info = self.base.step(action)
        done = "success" in info  # the base env ends every episode together and auto-resets
        t = self.H - 1 if done else self.base.t
        state = info["final_state"] if done else self.base.state
        rho_r, rho_i = self._rho(state)
        reward = torch.zeros(self.num_envs, device=self.device)
        if rho_r.shape[1]:
            active = self.k < self.n_stages
            cur = self.stage_reach.gather(1, self.k.clamp(max=self.K - 1)[:, None])
            progress = rho_r.gather(1, cur)[:, 0] - rho_before.gather(1, cur)[:, 0]
            reward += torch.where(active, cfg.w_progress * progress, 0.0)
            for _ in range(self.K):  # every stage whose deadline has come is judged, then the next one is current
                idx = self.k.clamp(max=self.K - 1)[:, None]
                due = (self.k < self.n_stages) & (self.stage_time.gather(1, idx)[:, 0] <= t)
                if not bool(due.any()):
                    break
                held = rho_r.gather(1, self.stage_reach.gather(1, idx))[:, 0] > 0
                reward += torch.where(due & held, cfg.w_stage, 0.0)
                self.k = self.k + due.long()
        if rho_i.shape[1]:
            on = (self.inv_lo <= t) & (t <= self.inv_hi)
            reward -= cfg.w_invariance * torch.where(on, torch.relu(-rho_i), 0.0).sum(1)
        if done:
            reward += cfg.w_success * info["success"].float()
            info["final_obs"] = self._features(info["final_obs"], state, t, self.stage_reach, self.stage_time,
                                               self.n_stages, self.inv_lo, self.inv_hi, self.k)[0]
            self._new_allocations(base_obs)
        obs = self._obs_now(base_obs)
        if not done:
            info["final_obs"] = obs
        self._track_episodes(reward, terminated, info)
        return obs, reward, terminated, truncated, info

    def state_dict(self) -> dict[str, Any]:
        """Everything exact resume needs: the base env, the allocations and plans, the stage reached, the RNG."""
        return {"base": self.base.state_dict(), "u": self.u.clone(), "k": self.k.clone(),
                "stage_reach": self.stage_reach.clone(), "stage_time": self.stage_time.clone(), "n_stages": self.n_stages.clone(),
                "inv_lo": self.inv_lo.clone(), "inv_hi": self.inv_hi.clone(), "rng": _rng_state(self.rng),
                **self._episode_stats_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.base.load_state_dict(state["base"])
        self.u = state["u"].float().cpu().clone()
        for name in ("k", "stage_reach", "stage_time", "n_stages", "inv_lo", "inv_hi"):
            setattr(self, name, state[name].to(self.device, torch.long).clone())
        self.rng = _rng_from_state(state["rng"])
        self._load_episode_stats_state(state)


def _rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """A NumPy generator's state as JSON-able data (the 128-bit PCG64 words as decimal strings)."""
    st = rng.bit_generator.state
    return {"bit_generator": st["bit_generator"], "state": str(st["state"]["state"]), "inc": str(st["state"]["inc"]),
            "has_uint32": int(st["has_uint32"]), "uinteger": int(st["uinteger"])}


def _rng_from_state(data: dict[str, Any]) -> np.random.Generator:
    rng = np.random.default_rng()
    rng.bit_generator.state = {"bit_generator": data["bit_generator"], "state": {"state": int(data["state"]), "inc": int(data["inc"])},
                               "has_uint32": int(data["has_uint32"]), "uinteger": int(data["uinteger"])}
    return rng
