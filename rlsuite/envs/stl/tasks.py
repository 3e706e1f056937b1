"""Seeded STL task generator after the TeLoGraF task families (reach / stay, and-or trees, sequential
chains, until patterns), each conjoined with 0-6 obstacle-avoid clauses.

A task is a formula over the signals ``x``, ``y`` (the agent's planar position, or the end effector's
/ torso's for the arm and the legged robot) and ``d0 .. d{n-1}``, the distance from that point to the
centre of object ``i``; "inside object i" is the linear predicate ``d_i <= r_i``. Objects are discs of
radius ``r in [0.5, 1.5]`` (obstacles ``[1.0, 1.5]``) with centres uniform in ``[-5, 5]^2``, no two
discs closer than a clearance of 0.05 between their rims (our reading of TeLoGraF's 1.05 minimum gap
for discs of radius >= 0.5).

Families (:data:`FAMILIES`), time bounds scaled to the horizon ``T``:

- ``reach``: ``F[a,b] in(o)``; with probability 1/2 the "stay" form ``F[a,b] G[0,d] in(o)``, ``d in 3..9``.
- ``andor``: a random and/or tree of depth <= 2 whose leaves are (stay-)reaches.
- ``chain``: ``F[a1,b1](in(o1) & F[a2,b2](in(o2) & ...))``, 2-4 stages, early then late windows.
- ``until``: ``!in(o1) U[0,b] in(o2)`` (keep out of one region until reaching another), sometimes with an
  extra reach.

Every family is then conjoined with ``G[0,T-1] !in(obstacle)`` clauses, their number drawn with
probabilities (0.20, 0.15, 0.15, 0.15, 0.15, 0.10, 0.10) for 0..6; the mix of families for training is
1:3:2:4 (reach : andor : chain : until), as in TeLoGraF. A layout holds at most ``max_objects`` (8)
discs, so that they fit in the arena: obstacle clauses beyond that are dropped (and-or trees may use up
to 6 regions).
"""

from __future__ import annotations

import dataclasses
import math
import random

import torch

from rlsuite.envs.stl.spec import Formula, parse, to_text

FAMILIES = ("reach", "andor", "chain", "until")
FAMILY_WEIGHTS = (1, 3, 2, 4)
OBSTACLE_COUNT_PROBS = (0.20, 0.15, 0.15, 0.15, 0.15, 0.10, 0.10)
ARENA = 5.0


@dataclasses.dataclass(frozen=True)
class STLTask:
    """One generated task: the formula and the layout it refers to."""

    family: str
    text: str
    formula: Formula
    centers: torch.Tensor  # (N, 2)
    radii: torch.Tensor  # (N,)
    obstacles: tuple[int, ...]  # indices of the objects that are obstacles
    horizon: int

    @property
    def signal_names(self) -> list[str]:
        return ["x", "y"] + [f"d{i}" for i in range(self.centers.shape[0])]

    def describe(self) -> str:
        """Human-readable summary: formula and objects."""
        lines = [f"family: {self.family}", f"horizon: {self.horizon}", f"formula: {self.text}", "objects:"]
        for i, (c, r) in enumerate(zip(self.centers.tolist(), self.radii.tolist(), strict=True)):
            role = "obstacle" if i in self.obstacles else "region"
            lines.append(f"  d{i}: {role} centre ({c[0]:.2f}, {c[1]:.2f}) radius {r:.2f}")
        return "\n".join(lines)


def task_signals(points: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Signals ``(..., 2 + N)`` of a task from planar points ``(..., 2)``: ``x``, ``y``, then the distance to
    each object centre ``(N, 2)``."""
    d = torch.linalg.vector_norm(points.unsqueeze(-2) - centers.to(points), dim=-1)
    return torch.cat([points, d], -1)


def _place(rng: random.Random, radii: list[float], clearance: float = 0.05, tries: int = 2000) -> list[tuple[float, float]]:
    for _ in range(100):
        out: list[tuple[float, float]] = []
        for r in radii:
            for _ in range(tries):
                c = (rng.uniform(-ARENA + r, ARENA - r), rng.uniform(-ARENA + r, ARENA - r))
                if all(math.dist(c, o) >= r + ro + clearance for o, ro in zip(out, radii, strict=False)):
                    out.append(c)
                    break
            else:
                break
        if len(out) == len(radii):
            return out
    raise RuntimeError(f"could not place {len(radii)} non-overlapping discs in the arena; use fewer objects.")


class _Builder:
    def __init__(self, rng: random.Random, horizon: int) -> None:
        self.rng, self.T = rng, horizon
        self.radii: list[float] = []
        self.obstacles: list[int] = []

    def new_object(self, obstacle: bool = False) -> int:
        self.radii.append(self.rng.uniform(1.0, 1.5) if obstacle else self.rng.uniform(0.5, 1.5))
        if obstacle:
            self.obstacles.append(len(self.radii) - 1)
        return len(self.radii) - 1

    def inside(self, i: int) -> str:
        return f"(d{i} <= {self.radii[i]:.3f})"

    def window(self, lo: float, hi: float) -> tuple[int, int]:
        """A window inside [lo*T, hi*T] at least T/8 long."""
        t_lo, t_hi = int(lo * (self.T - 1)), int(hi * (self.T - 1))
        a = self.rng.randint(t_lo, max(t_lo, (t_lo + t_hi) // 2))
        b = self.rng.randint(min(t_hi, a + max(1, self.T // 8)), t_hi)
        return a, b

    def reach(self, lo: float = 0.0, hi: float = 1.0) -> str:
        o = self.new_object()
        if self.rng.random() < 0.5:
            d = self.rng.randint(3, 9)
            a, b = self.window(lo, hi)
            b = max(a, min(b, self.T - 1 - d))
            return f"F[{a},{b}] G[0,{d}] {self.inside(o)}"
        a, b = self.window(lo, hi)
        return f"F[{a},{b}] {self.inside(o)}"


def sample_task(family: str, seed: int, horizon: int = 64, max_obstacles: int = 6, max_objects: int = 8) -> STLTask:
    """A task of ``family`` (one of :data:`FAMILIES`, or ``mixed`` for the 1:3:2:4 mix), reproducible from ``seed``."""
    rng = random.Random(seed)
    if family == "mixed":
        family = rng.choices(FAMILIES, weights=FAMILY_WEIGHTS)[0]
    if family not in FAMILIES:
        raise ValueError(f"unknown task family {family!r}; allowed: {', '.join(FAMILIES)}, mixed.")
    if horizon < 16:
        raise ValueError(f"horizon must be >= 16 steps, got {horizon}.")
    b = _Builder(rng, horizon)
    if family == "reach":
        core = b.reach()
    elif family == "andor":
        def tree(depth: int) -> str:
            if depth == 0 or rng.random() < 0.3:
                return b.reach()
            op = rng.choice([" & ", " | "])
            return "(" + op.join(tree(depth - 1) for _ in range(2)) + ")"
        core = tree(2)
    elif family == "chain":
        k = rng.randint(2, 4)
        objs = [b.new_object() for _ in range(k)]
        core = ""
        for j in reversed(range(k)):  # innermost last stage first
            a, w = b.window(0.0, 1.0 / k) if j == 0 else (0, max(1, (horizon - 1) // k))
            inner = b.inside(objs[j]) if not core else f"({b.inside(objs[j])} & {core})"
            core = f"F[{a},{w}] {inner}"
    else:
        keep_out, goal = b.new_object(), b.new_object()
        _, hi = b.window(0.3, 1.0)
        core = f"(!{b.inside(keep_out)} U[0,{hi}] {b.inside(goal)})"
        if rng.random() < 0.5:
            core = f"({core} & {b.reach()})"
    n_obs = rng.choices(range(len(OBSTACLE_COUNT_PROBS)), weights=OBSTACLE_COUNT_PROBS)[0]
    n_obs = max(0, min(n_obs, max_obstacles, max_objects - len(b.radii)))
    clauses = [core] + [f"G[0,{horizon - 1}] !{b.inside(b.new_object(obstacle=True))}" for _ in range(n_obs)]
    text = " & ".join(f"({c})" for c in clauses) if len(clauses) > 1 else core
    formula = parse(text)
    centers = torch.tensor(_place(rng, b.radii), dtype=torch.float32)
    return STLTask(family, to_text(formula), formula, centers, torch.tensor(b.radii, dtype=torch.float32),
                   tuple(b.obstacles), horizon)
