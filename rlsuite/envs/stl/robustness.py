"""Quantitative (space) robustness of STL formulas, batched in torch, as whole traces.

``robustness(formula, x, names)`` takes signals ``x`` of shape ``(B, T, S)`` (``names[s]`` names column
``s``) and returns the robustness trace ``rho`` of shape ``(B, T)``: ``rho[:, t]`` is the robustness of
the formula evaluated from time ``t``. Semantics (Donze and Maler; discrete time, steps)::

    rho(sum c_i x_i + c_0 >= 0, t) = sum c_i x_i(t) + c_0
    rho(!f) = -rho(f);  rho(f & g) = min;  rho(f | g) = max;  rho(f -> g) = max(-rho(f), rho(g))
    rho(F[a,b] f, t) = max_{t' in [t+a, t+b]} rho(f, t');   rho(G[a,b] f, t) = min_{...}
    rho(f U[a,b] g, t) = max_{t' in [t+a, t+b]} min(rho(g, t'), min_{t'' in [t, t')} rho(f, t''))

Windows are cut at the end of the trace, as rtamt's discrete-time offline monitor does: an operator whose
window lies wholly past the end gets the value of its empty max (``-inf`` for F and U) or min (``+inf`` for
G). ``rho[:, 0]`` is the robustness of the whole trace. Checked against rtamt by a property test.

``mode="smooth"`` replaces min and max by ``-/+ temperature * logsumexp(-/+ x / temperature)`` (an upper
bound of max / lower bound of min that tends to them as the temperature goes to 0; differentiable
everywhere). Use hard robustness to decide success and smooth robustness only for shaping.

Everything is tensor code on the input's device: a GPU trace batch stays on the GPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rlsuite.envs.stl.spec import Always, And, Eventually, Formula, Implies, Not, Or, Predicate, Until, parse

INF = float("inf")


def _reduce(stack: torch.Tensor, dim: int, kind: str, mode: str, temperature: float) -> torch.Tensor:
    if mode == "hard":
        return stack.amax(dim) if kind == "max" else stack.amin(dim)
    if kind == "max":
        return temperature * torch.logsumexp(stack / temperature, dim)
    return -temperature * torch.logsumexp(-stack / temperature, dim)


def _shift(x: torch.Tensor, k: int, fill: float) -> torch.Tensor:
    """``y[:, t] = x[:, t + k]`` with ``fill`` past the end; ``x`` is ``(B, T)``."""
    if k == 0:
        return x
    t = x.shape[1]
    if k >= t:
        return torch.full_like(x, fill)
    return torch.cat([x[:, k:], torch.full_like(x[:, :k], fill)], 1)


def _window(x: torch.Tensor, a: int, b: int | None, kind: str, mode: str, temperature: float) -> torch.Tensor:
    """``max`` or ``min`` of ``x[:, t+a : t+b+1]`` for every ``t`` (cut at the end; empty -> -inf / +inf)."""
    t = x.shape[1]
    fill = -INF if kind == "max" else INF
    hi = t - 1 if b is None else min(b, t - 1)  # offsets past t - 1 never reach the trace
    width = hi - a + 1
    if width <= 0:
        return torch.full_like(x, fill)
    shifted = _shift(x, a, fill)
    if mode == "hard" and b is None:  # suffix max/min: one cumulative scan
        rev = shifted.flip(1)
        scan = torch.cummax(rev, 1).values if kind == "max" else torch.cummin(rev, 1).values
        return scan.flip(1)
    padded = torch.cat([shifted, torch.full((x.shape[0], width - 1), fill, dtype=x.dtype, device=x.device)], 1)
    return _reduce(padded.unfold(1, width, 1), -1, kind, mode, temperature)


def _until(phi: torch.Tensor, psi: torch.Tensor, a: int, b: int | None, mode: str, temperature: float) -> torch.Tensor:
    t = phi.shape[1]
    hi = t - 1 if b is None else min(b, t - 1)
    terms = []
    running = torch.full_like(phi, INF)  # min of phi over [t, t + k)
    for k in range(0, hi + 1):
        if k >= a:
            pair = torch.stack([_shift(psi, k, -INF), running], -1)
            terms.append(_reduce(pair, -1, "min", mode, temperature))
        running = _reduce(torch.stack([running, _shift(phi, k, INF)], -1), -1, "min", mode, temperature)
    if not terms:
        return torch.full_like(phi, -INF)
    return _reduce(torch.stack(terms, -1), -1, "max", mode, temperature)


def robustness(
    formula: Formula | str,
    x: torch.Tensor,
    names: Sequence[str],
    mode: str = "hard",
    temperature: float = 0.1,
) -> torch.Tensor:
    """Robustness trace ``(B, T)`` of ``formula`` on signals ``x`` ``(B, T, S)`` named ``names`` (length S).

    ``mode``: ``hard`` (exact min/max) or ``smooth`` (log-sum-exp with ``temperature``). A formula may be
    given as text (parsed with :func:`rlsuite.envs.stl.spec.parse`).
    """
    f = parse(formula) if isinstance(formula, str) else formula
    if mode not in ("hard", "smooth"):
        raise ValueError(f"unknown robustness mode {mode!r}; allowed: hard, smooth.")
    if mode == "smooth" and temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
    if x.dim() != 3 or x.shape[2] != len(names):
        raise ValueError(f"x must be (batch, time, signals) with {len(names)} signals named {list(names)}, got {tuple(x.shape)}.")
    if not x.is_floating_point():
        x = x.float()
    column = {n: i for i, n in enumerate(names)}

    def go(g: Formula) -> torch.Tensor:
        if isinstance(g, Predicate):
            missing = [n for n, _ in g.terms if n not in column]
            if missing:
                raise ValueError(f"the formula reads signal(s) {missing} that are not among the trace's {list(names)}.")
            out = torch.full(x.shape[:2], g.const, dtype=x.dtype, device=x.device)
            for n, c in g.terms:
                out = out + c * x[:, :, column[n]]
            return out
        if isinstance(g, Not):
            return -go(g.child)
        if isinstance(g, (And, Or)):
            return _reduce(torch.stack([go(c) for c in g.children], -1), -1, "min" if isinstance(g, And) else "max", mode, temperature)
        if isinstance(g, Implies):
            return _reduce(torch.stack([-go(g.left), go(g.right)], -1), -1, "max", mode, temperature)
        if isinstance(g, Eventually):
            return _window(go(g.child), g.a, g.b, "max", mode, temperature)
        if isinstance(g, Always):
            return _window(go(g.child), g.a, g.b, "min", mode, temperature)
        if isinstance(g, Until):
            return _until(go(g.left), go(g.right), g.a, g.b, mode, temperature)
        raise TypeError(f"not an STL formula node: {type(g).__name__}")

    return go(f)
