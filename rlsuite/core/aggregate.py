"""Aggregate statistics of many runs on many tasks, with stratified bootstrap confidence intervals.

The statistics of Agarwal et al., "Deep Reinforcement Learning at the Edge of the Statistical Precipice"
(NeurIPS 2021), as pure numpy functions. Their input is a score matrix ``scores`` of shape
``(num_runs, num_tasks)``: ``scores[i, j]`` is the final score of run ``i`` on task ``j``. A task may have
fewer runs than another: ``NaN`` marks a missing run (the tasks' runs need not be aligned; row ``i`` of
one task has nothing to do with row ``i`` of another). Every statistic also accepts a batch of matrices,
``(..., num_runs, num_tasks)``, and returns one value per matrix: this is how the bootstrap evaluates its
resamples at once.

Point estimates (each run and task counts once; with missing runs, "over all runs" weighs a task by its
number of runs):

- :func:`interquartile_mean` (IQM): the mean of the middle half of all scores (runs and tasks pooled):
  sorted, ``n // 4`` dropped at each end (``n`` scores), the rest averaged; robust to outlier runs and
  tasks, yet uses half the data (the median uses one or two values);
- :func:`median`: the median over tasks of each task's mean score;
- :func:`mean`: the mean over tasks of each task's mean score;
- :func:`optimality_gap`: ``gamma - mean(min(score, gamma))`` over all scores: how far runs fall short of
  a target ``gamma`` (1 for normalised scores), scores above it count as ``gamma``; lower is better;
- :func:`score_distribution`: for each threshold ``tau``, the fraction of scores ``> tau`` (a
  performance profile: one curve per method, higher is better);
- :func:`probability_of_improvement`: ``P(X > Y)`` of two methods: per task, the probability that a run
  of ``X`` scores above a run of ``Y`` (all pairs, a tie counts half: the Mann-Whitney U statistic over
  the number of pairs), averaged over tasks.

Interval estimates (:func:`interval_estimate`): the stratified bootstrap. One resample draws, for each
task independently, as many runs as the task has, with replacement, from that task's runs (the tasks
are fixed: the interval is about repeating the experiment with other seeds on the same tasks); the
statistic is computed on each of ``reps`` resamples, and the ``(1 - confidence) / 2`` and
``(1 + confidence) / 2`` percentiles of those values (linear interpolation, :func:`numpy.percentile`'s
default) bound the interval. A statistic of two methods (probability of improvement) resamples each of
them independently. The resamples come from the numpy ``Generator`` given, so a seed fixes the intervals.

    import numpy as np
    from rlsuite.core import aggregate as agg

    scores = np.array([[0.2, 0.9], [0.4, 0.7], [0.3, 1.1]])     # 3 runs on 2 tasks
    point, low, high = agg.interval_estimate(agg.interquartile_mean, scores, reps=2000,
                                             rng=np.random.default_rng(0))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["AGGREGATES", "as_scores", "interquartile_mean", "interval_estimate", "mean", "median", "normalize",
           "optimality_gap", "probability_of_improvement", "score_distribution", "stratified_resample"]


def as_scores(scores: object, name: str = "scores") -> np.ndarray:
    """``scores`` as a float array ``(num_runs, num_tasks)``, checked.

    Raises:
        ValueError: not 2-D, empty, an infinite value, or a task without any run (a column of NaN).
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.size == 0:
        raise ValueError(f"{name} must be a non-empty (num_runs, num_tasks) matrix, got shape {s.shape}.")
    if np.isinf(s).any():
        raise ValueError(f"{name} holds an infinite value; scores must be finite (NaN marks a missing run).")
    empty = np.flatnonzero(np.isnan(s).all(axis=0))
    if empty.size:
        raise ValueError(f"{name}: task column(s) {empty.tolist()} have no run (every entry NaN).")
    return s


def _valid(scores: np.ndarray) -> np.ndarray:
    return ~np.isnan(scores)


def interquartile_mean(scores: np.ndarray) -> np.ndarray:
    """Interquartile mean of all scores: sort the ``n`` scores of all runs and tasks, drop ``n // 4`` at each end,
    average the rest (``n < 4``: the plain mean).

    Args:
        scores: ``(..., num_runs, num_tasks)``; NaN: a missing run.

    Returns:
        ``(...)``: a float for one matrix.
    """
    s = np.asarray(scores, dtype=np.float64)
    flat = np.sort(s.reshape(*s.shape[:-2], -1), axis=-1)  # NaN sorts last
    n = _valid(flat).sum(axis=-1)
    cut = n // 4
    if np.all(n == n.flat[0]):  # every matrix of the batch has as many scores (always so in a bootstrap)
        k, c = int(n.flat[0]), int(cut.flat[0])
        return flat[..., c:k - c].mean(axis=-1)
    pos = np.arange(flat.shape[-1])
    keep = (pos >= cut[..., None]) & (pos < (n - cut)[..., None])
    return np.where(keep, flat, 0.0).sum(axis=-1) / (n - 2 * cut)


def _task_means(scores: np.ndarray) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    valid = _valid(s)
    return np.where(valid, s, 0.0).sum(axis=-2) / valid.sum(axis=-2)


def mean(scores: np.ndarray) -> np.ndarray:
    """Mean over tasks of each task's mean score. ``scores``: ``(..., num_runs, num_tasks)`` -> ``(...)``."""
    return _task_means(scores).mean(axis=-1)


def median(scores: np.ndarray) -> np.ndarray:
    """Median over tasks of each task's mean score (one task: its mean). ``(..., num_runs, num_tasks)`` -> ``(...)``."""
    return np.median(_task_means(scores), axis=-1)


def optimality_gap(scores: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """``gamma`` minus the mean of ``min(score, gamma)`` over all runs and tasks (lower is better).

    Args:
        scores: ``(..., num_runs, num_tasks)``, normalised so that ``gamma`` is the target (default 1).
        gamma: the target score; a score above it counts as ``gamma``.
    """
    s = np.asarray(scores, dtype=np.float64)
    valid = _valid(s)
    clipped = np.where(valid, np.minimum(s, gamma), 0.0)
    return gamma - clipped.sum(axis=(-2, -1)) / valid.sum(axis=(-2, -1))


def score_distribution(scores: np.ndarray, taus: Sequence[float] | np.ndarray) -> np.ndarray:
    """Performance profile: for each threshold ``tau``, the fraction of all scores (runs and tasks) above ``tau``.

    Args:
        scores: ``(..., num_runs, num_tasks)``.
        taus: ``(K,)`` thresholds.

    Returns:
        ``(..., K)``: non-increasing in ``tau`` when ``taus`` increase.
    """
    s = np.asarray(scores, dtype=np.float64)
    taus = np.asarray(taus, dtype=np.float64)
    valid = _valid(s)
    above = (s[..., None] > taus) & valid[..., None]  # NaN > tau is False, the mask is for clarity
    return above.sum(axis=(-3, -2)) / valid.sum(axis=(-2, -1))[..., None]


def probability_of_improvement(scores_x: np.ndarray, scores_y: np.ndarray) -> np.ndarray:
    """``P(X > Y)``: per task, the fraction of run pairs ``(x, y)`` with ``x > y`` (a tie counts 1/2), averaged over tasks.

    Args:
        scores_x: ``(..., runs_x, num_tasks)``, method X.
        scores_y: ``(..., runs_y, num_tasks)``, method Y on the same tasks (in the same order).

    Returns:
        ``(...)`` in ``[0, 1]``; ``P(Y > X) = 1 - P(X > Y)``, and a method against itself gives 0.5.
    """
    x = np.asarray(scores_x, dtype=np.float64)
    y = np.asarray(scores_y, dtype=np.float64)
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(f"X and Y must be scored on the same tasks: {x.shape[-1]} against {y.shape[-1]} task columns.")
    xs, ys = x[..., :, None, :], y[..., None, :, :]  # (..., runs_x, runs_y, tasks)
    pairs = _valid(xs) & _valid(ys)
    wins = np.where(pairs, (xs > ys) + 0.5 * (xs == ys), 0.0).sum(axis=(-3, -2))
    return (wins / pairs.sum(axis=(-3, -2))).mean(axis=-1)


AGGREGATES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "IQM": interquartile_mean,
    "median": median,
    "mean": mean,
    "optimality gap": optimality_gap,
}
"""The aggregate point estimates by name (optimality gap at ``gamma=1``: for normalised scores)."""


def normalize(scores: np.ndarray, low: float | np.ndarray, high: float | np.ndarray) -> np.ndarray:
    """``(scores - low) / (high - low)``: ``low`` scores 0, ``high`` scores 1.

    Args:
        scores: ``(num_runs, num_tasks)``.
        low, high: floats, or ``(num_tasks,)`` per task (e.g. a random and an expert policy's return).

    Raises:
        ValueError: ``high <= low`` somewhere.
    """
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    if np.any(high <= low):
        raise ValueError(f"normalisation needs high > low, got low {low.tolist()} and high {high.tolist()}.")
    return (np.asarray(scores, dtype=np.float64) - low) / (high - low)


def stratified_resample(scores: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """``reps`` stratified bootstrap resamples of a score matrix.

    For each task independently, as many runs as it has are drawn with replacement from its own runs; the
    missing runs of a task (NaN) stay missing (they fill the task's last rows of every resample).

    Args:
        scores: ``(num_runs, num_tasks)`` (checked with :func:`as_scores`).
        reps: the number of resamples.
        rng: the random generator (seeded for repeatable intervals).

    Returns:
        ``(reps, num_runs, num_tasks)``.
    """
    s = as_scores(scores)
    out = np.full((reps, *s.shape), np.nan)
    for task in range(s.shape[1]):
        runs = s[:, task][_valid(s[:, task])]
        out[:, : runs.size, task] = runs[rng.integers(0, runs.size, size=(reps, runs.size))]
    return out


def interval_estimate(statistic: Callable[..., np.ndarray], *scores: np.ndarray, reps: int = 2000,
                      rng: np.random.Generator, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point estimate and stratified bootstrap percentile confidence interval of a statistic.

    Args:
        statistic: a function of one or more score matrices that also takes batches (every function of this
            module does; bind extra arguments with a lambda, e.g. ``lambda s: score_distribution(s, taus)``).
        scores: its score matrices, ``(num_runs, num_tasks)`` each; several are resampled independently.
        reps: bootstrap resamples.
        rng: the random generator of the resamples.
        confidence: the interval's coverage (0.95: from the 2.5th to the 97.5th percentile).

    Returns:
        ``(point, low, high)``, each of the statistic's shape for one matrix (a 0-d array for a scalar statistic).
    """
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    checked = [as_scores(s, f"scores[{i}]") for i, s in enumerate(scores)]
    point = np.asarray(statistic(*checked))
    chunk = max(1, (1 << 16) // sum(s.size for s in checked))  # bounds the memory of one batch
    values = []
    for start in range(0, reps, chunk):
        k = min(chunk, reps - start)
        values.append(np.asarray(statistic(*(stratified_resample(s, k, rng) for s in checked))))
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(np.concatenate(values), [100.0 * alpha, 100.0 * (1.0 - alpha)], axis=0)
    return point, low, high
