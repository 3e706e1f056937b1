"""Robust evaluation: a policy's return over an uncertainty set.

:func:`robust_evaluate` runs a policy at the env's nominal parameters and at every point of a grid over
an uncertainty set (or at random points of it), each point with the same seeded episodes (common random
numbers: the start states and noise draws are the same at every point, so differences between points
are the physics'), and returns a :class:`RobustResult`:

- ``nominal``: mean return at the nominal parameters;
- ``mean``: mean over the points of each point's mean return (the points weigh equally);
- ``worst``: the lowest point mean (the robust-MDP objective over the set), and where it is;
- ``cvar``: CVaR at ``alpha`` (10 %): the mean of the lowest ``alpha`` fraction of point means (the
  fraction is exact: with 9 points, 10 % is 0.9 of a point, so CVaR equals the worst point);
- ``auc``: the area under the return-vs-perturbation curve over the box scaled to unit size (trapezoid
  rule on the grid), in return units: the curve's average height. Grid mode only (NaN for random points).

:func:`plot_robust` draws the result: a curve for a 1-D set, a heat map for 2-D, one heat map per value
of the third parameter for 3-D (random points: scatter plots).

Which envs it takes. Any env whose single env (``gymnasium.make(env_id, **env_kwargs).unwrapped``)
declares ``perturbation_parameters`` (``{name: nominal value}``) and whose constructors (single and
batched) take ``perturbation={name: value}`` is evaluated as it is; any other Gymnasium env is wrapped in
:class:`~rlsuite.envs.robust.wrapper.PerturbedEnv` (``rlsuite/Perturbed-v0``), which knows MuJoCo,
CartPole and the pendulums and adds noise parameters to every env.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlsuite.core.evaluate import ActFn, evaluate_policy
from rlsuite.envs.robust.sets import UncertaintySet, check_set, default_set, get_uncertainty_set
from rlsuite.envs.robust.wrapper import PerturbedEnv

log = logging.getLogger("rlsuite")

PERTURBED_ID = "rlsuite/Perturbed-v0"


def cvar(values: np.ndarray, alpha: float = 0.1) -> float:
    """Lower-tail conditional value at risk: the mean of the worst ``alpha`` fraction of ``values``
    (each value weighing ``1/n``; the last one counted is weighed by the fraction left).

    ``cvar([1, 2, ..., 10], 0.25)`` = ``(1 + 2 + 0.5 * 3) / 2.5`` = 1.8.
    """
    v = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if v.size == 0:
        raise ValueError("cvar of no values.")
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}.")
    mass = alpha * v.size  # in units of one value's weight
    full = int(np.floor(mass + 1e-12))
    total = v[:full].sum() + (mass - full) * (v[full] if full < v.size else 0.0)
    return float(total / mass)


def grid_auc(values: np.ndarray, axes: tuple[np.ndarray, ...]) -> float:
    """The integral of ``values`` (shape ``[len(a) for a in axes]``) over the box of ``axes`` scaled to unit
    size, by the trapezoid rule per dimension: the mean height of the curve (surface). A dimension with a
    single value is not integrated."""
    out = np.asarray(values, dtype=np.float64)
    for a in reversed(axes):  # integrate the last dimension first
        a = np.asarray(a, dtype=np.float64)
        out = out[..., 0] if a.size < 2 or a[-1] == a[0] else np.trapezoid(out, (a - a[0]) / (a[-1] - a[0]), axis=-1)
    return float(out)


@dataclasses.dataclass(frozen=True)
class RobustResult:
    """Returns of a policy over an uncertainty set (see the module docstring)."""

    env_id: str
    uncertainty_set: UncertaintySet
    mode: str
    """``grid`` or ``random``"""
    points: np.ndarray
    """``(P, D)`` parameter values of each point, in the set's dimension order"""
    returns: np.ndarray
    """``(P, E)`` return of each episode at each point"""
    nominal_returns: np.ndarray
    """``(E,)`` returns at the nominal parameters"""
    nominal: dict[str, float]
    """the env's nominal value of each dimension"""
    axes: tuple[np.ndarray, ...] | None = None
    """grid mode: the values of each dimension (``point_means.reshape(grid_shape)`` is the grid)"""
    alpha: float = 0.1
    """CVaR level"""
    metric: str = "return"
    """what ``returns`` holds: episode returns, or the episode sums of this per-step ``info`` figure (e.g. ``profit``)"""

    @property
    def point_means(self) -> np.ndarray:
        """``(P,)`` mean return at each point."""
        return self.returns.mean(axis=1)

    @property
    def grid_shape(self) -> tuple[int, ...] | None:
        return tuple(len(a) for a in self.axes) if self.axes is not None else None

    def worst_point(self) -> dict[str, float]:
        """The parameters of the point with the lowest mean return."""
        return self.uncertainty_set.point(self.points[int(np.argmin(self.point_means))])

    def summary(self) -> dict[str, float]:
        """``nominal``, ``mean``, ``worst``, ``cvar``, ``auc`` (NaN for random points), ``points``, ``episodes``."""
        means = self.point_means
        auc = grid_auc(means.reshape(self.grid_shape), self.axes) if self.axes is not None else float("nan")
        return {"nominal": float(self.nominal_returns.mean()), "mean": float(means.mean()), "worst": float(means.min()),
                "cvar": cvar(means, self.alpha), "auc": auc, "points": float(len(means)), "episodes": float(self.returns.shape[1])}


def perturbable(env_id: str, env_kwargs: dict[str, Any] | None = None) -> tuple[str, dict[str, Any], dict[str, float]]:
    """How to build ``env_id`` with a perturbation: ``(id, kwargs, parameters)``; ``make_vec_env(id, N,
    **kwargs, perturbation={...})`` then gives perturbed envs, and ``parameters`` maps each parameter to its
    nominal value. An env that declares ``perturbation_parameters`` is used as it is, any other wrapped."""
    env_kwargs = dict(env_kwargs or {})
    wrapped = PerturbedEnv(env_id, env_kwargs)
    try:
        inner = wrapped.env.unwrapped
        if hasattr(inner, "perturbation_parameters"):
            return env_id, env_kwargs, dict(inner.perturbation_parameters)
        return PERTURBED_ID, {"env": env_id, **({"env_kwargs": env_kwargs} if env_kwargs else {})}, dict(wrapped.perturbation_parameters)
    finally:
        wrapped.close()


def robust_evaluate(
    act: ActFn,
    env_id: str,
    uncertainty_set: str | UncertaintySet | None = None,
    grid: int | None = None,
    samples: int | None = None,
    episodes: int = 10,
    seed: int = 0,
    device: torch.device | str = "cpu",
    env_kwargs: dict[str, Any] | None = None,
    alpha: float = 0.1,
    on_point: Callable[[int, int, dict[str, float], float], None] | None = None,
    metric: str = "return",
) -> RobustResult:
    """Evaluate ``act`` over an uncertainty set of ``env_id`` (see the module docstring).

    Args:
        act: the policy, as :func:`rlsuite.core.evaluate.evaluate_policy` takes it.
        env_id: the env (any Gymnasium id the wrapper knows, or one declaring perturbation parameters).
        uncertainty_set: a set name, inline text or set (default: the env family's default set).
        grid: values per dimension (default 10 for 1-D and 2-D sets, 5 for 3-D); ignored with ``samples``.
        samples: evaluate this many uniformly drawn points instead of a grid (seeded by ``seed``).
        episodes: episodes per point (the same seeds at every point).
        seed: seeds the episodes (and the random points).
        device: device of the env tensors and the policy's input.
        env_kwargs: the env's keyword arguments (a run's).
        alpha: CVaR level.
        on_point: called after each point as ``on_point(i, count, parameters, mean_return)``.
        metric: ``"return"``, or a per-step ``info`` figure of the env summed over each episode (the greenhouse's
            ``profit``); see :func:`rlsuite.core.evaluate.evaluate_policy`.

    Raises:
        ValueError: a set that names a parameter the env does not have, a grid below 2, no samples.
        UnknownNameError: an unknown set name (the message lists the env's sets).
    """
    uset = get_uncertainty_set(uncertainty_set, env_id) if uncertainty_set is not None else default_set(env_id)
    eid, kwargs, params = perturbable(env_id, env_kwargs)
    check_set(uset, params, env_id)
    if samples is not None:
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}.")
        points, axes, mode = uset.sample(samples, np.random.default_rng(seed)), None, "random"
    else:
        n = grid if grid is not None else (10 if len(uset.dims) <= 2 else 5)
        if n < 2:
            raise ValueError(f"grid must be >= 2 values per dimension, got {n}.")
        (points, axes), mode = uset.grid(n), "grid"
    base = dict(kwargs.get("perturbation") or {})

    def run(perturbation: dict[str, float] | None) -> np.ndarray:
        kw = {**kwargs, "perturbation": {**base, **perturbation}} if perturbation else kwargs
        return evaluate_policy(act, eid, episodes=episodes, seed=seed, device=device, env_kwargs=kw, metric=metric)

    nominal_returns = run(None)
    returns = np.empty((len(points), episodes), dtype=np.float64)
    for i, p in enumerate(points):
        point = uset.point(p)
        returns[i] = run(point)
        log.debug("robust eval %s: point %d/%d %s: mean return %.3f", uset.name, i + 1, len(points), point, returns[i].mean())
        if on_point is not None:
            on_point(i, len(points), point, float(returns[i].mean()))
    return RobustResult(env_id, uset, mode, points, returns, nominal_returns, {d.name: params[d.name] for d in uset.dims},
                        axes, alpha, metric=metric)


def _edges(axis: np.ndarray) -> np.ndarray:
    """Cell edges around grid values (midpoints inside, half a step outside)."""
    a = np.asarray(axis, dtype=np.float64)
    if a.size == 1:
        return np.array([a[0] - 0.5, a[0] + 0.5])
    mid = (a[1:] + a[:-1]) / 2
    return np.concatenate([[a[0] - (mid[0] - a[0])], mid, [a[-1] + (a[-1] - mid[-1])]])


def plot_robust(result: RobustResult, path: str | Path, title: str = "") -> Path:
    """Draw ``result`` into a PNG at ``path`` (written atomically): 1-D a curve (mean and the episodes'
    range), 2-D a heat map of the mean return (nominal parameters: a star; the worst point: a cross),
    3-D one heat map per value of the third parameter; random points as scatter plots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlsuite.core.atomic import atomic_path

    s, dims, means = result.summary(), result.uncertainty_set.dims, result.point_means
    head = (f"nominal {s['nominal']:.4g}, mean {s['mean']:.4g}, worst {s['worst']:.4g}, "
            f"CVaR{result.alpha * 100:g}% {s['cvar']:.4g}" + (f", AUC {s['auc']:.4g}" if result.axes is not None else ""))
    worst = int(np.argmin(means))
    nominal = [result.nominal[d.name] for d in dims]
    if len(dims) == 1:
        fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
        order = np.argsort(result.points[:, 0])
        x = result.points[order, 0]
        ax.plot(x, means[order], marker="o", ms=3, label=f"mean {result.metric}")
        ax.fill_between(x, result.returns[order].min(1), result.returns[order].max(1), alpha=0.2, label="episodes' range")
        ax.axhline(s["nominal"], color="gray", ls="--", lw=1, label=f"nominal parameters' {result.metric}")
        ax.axvline(nominal[0], color="gray", ls=":", lw=1)
        ax.plot([result.points[worst, 0]], [means[worst]], "rx", ms=9, label="worst point")
        ax.set_xlabel(dims[0].name)
        ax.set_ylabel(f"episode {result.metric}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        axes_list = [ax]
    else:
        lo, hi = float(means.min()), float(means.max())
        if result.axes is not None and len(dims) == 3:
            panels = [(k, v) for k, v in enumerate(result.axes[2])]
        else:
            panels = [(None, None)]
        cols = min(len(panels), 5)
        rows = (len(panels) + cols - 1) // cols
        fig, axs = plt.subplots(rows, cols, figsize=(max(8.0, 4.2 * cols + 1), 3.8 * rows + 1.2), dpi=100, squeeze=False)
        axes_list = list(axs.ravel())
        image = None
        for n, ((k, v), ax) in enumerate(zip(panels, axes_list, strict=False)):
            if result.axes is not None:
                grid = means.reshape(result.grid_shape)
                plane = grid[..., k] if k is not None else grid
                image = ax.pcolormesh(_edges(result.axes[1]), _edges(result.axes[0]), plane, vmin=lo, vmax=hi, cmap="viridis")
                if plane.size <= 144:
                    for i, y in enumerate(result.axes[0]):
                        for j, x in enumerate(result.axes[1]):
                            dark = plane[i, j] < (lo + hi) / 2  # viridis is dark at the low end
                            ax.text(x, y, f"{plane[i, j]:.3g}", ha="center", va="center", fontsize=7, color="w" if dark else "k")
                wp = result.points[worst]
                if k is None or wp[2] == v:
                    ax.plot([wp[1]], [wp[0]], "rx", ms=10, mew=2)
            else:
                image = ax.scatter(result.points[:, 1], result.points[:, 0], c=means, vmin=lo, vmax=hi, cmap="viridis", s=25)
                ax.plot([result.points[worst, 1]], [result.points[worst, 0]], "rx", ms=10, mew=2)
            if k is None or np.isclose(v, nominal[2]):
                ax.plot([nominal[1]], [nominal[0]], marker="*", color="white", mec="black", ms=12, ls="none")
            ax.set_xlabel(dims[1].name)
            if n % cols == 0:
                ax.set_ylabel(dims[0].name)
            if k is not None:
                ax.set_title(f"{dims[2].name} = {v:g}", fontsize=9)
        for ax in axes_list[len(panels):]:
            ax.axis("off")
        if image is not None:
            fig.colorbar(image, ax=axes_list[: len(panels)], label=f"mean episode {result.metric}")
    note = "" if len(dims) == 1 else "; star: nominal parameters, cross: worst point"
    if result.axes is None and len(dims) == 3:
        note += f"; {dims[2].name} not shown"
    fig.suptitle(f"{title}\n{head}{note}" if title else head + note, fontsize=9)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return out
