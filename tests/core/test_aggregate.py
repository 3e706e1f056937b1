"""rlsuite.core.aggregate: IQM, median, mean, optimality gap, performance profiles, probability of improvement and
their stratified bootstrap intervals, against hand-computed numbers, the exact bootstrap distribution and rliable."""

import itertools

import numpy as np
import pytest

from rlsuite.core import aggregate as agg

# ----------------------------------------------------------------------------- point estimates by hand


def test_iqm_of_eight_numbers_drops_two_at_each_end():
    # 4 runs x 2 tasks = 8 scores; sorted 0 2 3 5 7 9 10 100: 8 // 4 = 2 dropped at each end, (3 + 5 + 7 + 9) / 4 = 6
    scores = np.array([[10.0, 0.0], [3.0, 7.0], [2.0, 9.0], [5.0, 100.0]])
    assert agg.interquartile_mean(scores) == 6.0
    # 10 scores: 10 // 4 = 2 dropped at each end, the middle 6 averaged: 1..10 -> (3 + ... + 8) / 6 = 5.5
    assert agg.interquartile_mean(np.arange(1.0, 11.0).reshape(5, 2)) == 5.5
    # fewer than 4 scores: nothing dropped
    assert agg.interquartile_mean(np.array([[1.0, 2.0, 6.0]])) == 3.0


def test_median_and_mean_are_over_task_means_and_optimality_gap_over_all_scores():
    scores = np.array([[0.2, 0.5, 1.4], [0.4, 0.7, 0.2], [0.6, 0.9, 0.8]])
    # task means 0.4, 0.7, 0.8 -> median 0.7, mean 1.9 / 3
    assert agg.median(scores) == pytest.approx(0.7)
    assert agg.mean(scores) == pytest.approx(1.9 / 3)
    # min(score, 1): 1.4 counts as 1 -> sum 0.2+0.4+0.6+0.5+0.7+0.9+1+0.2+0.8 = 5.3 -> gap 1 - 5.3 / 9
    assert agg.optimality_gap(scores) == pytest.approx(1 - 5.3 / 9)
    assert agg.optimality_gap(scores * 100, gamma=100) == pytest.approx(100 * (1 - 5.3 / 9))
    # one task: the median is that task's mean
    assert agg.median(np.array([[1.0], [2.0], [9.0]])) == 4.0


def test_probability_of_improvement_counts_ties_half_and_averages_tasks():
    x = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    y = np.array([[2.0, 1.0], [2.0, 1.0], [0.0, 1.0]])
    # task 0: x=1 beats 0 only -> 1; x=2 ties 2 twice (1/2 each) and beats 0 -> 2; x=3 beats all -> 3: 6 / 9 = 2/3
    # task 1: x never above -> 0; averaged: (2/3 + 0) / 2 = 1/3
    assert agg.probability_of_improvement(x, y) == pytest.approx(1 / 3)
    assert agg.probability_of_improvement(y, x) == pytest.approx(2 / 3)  # P(Y > X) = 1 - P(X > Y)
    assert agg.probability_of_improvement(x, x) == 0.5
    # different numbers of runs: x = [1, 2] against y = [1]: (1/2 + 1) / 2 = 3/4
    assert agg.probability_of_improvement(np.array([[1.0], [2.0]]), np.array([[1.0]])) == 0.75
    with pytest.raises(ValueError, match="same tasks"):
        agg.probability_of_improvement(x, y[:, :1])


def test_score_distribution_is_the_fraction_of_scores_above_each_threshold():
    scores = np.array([[0.1, 0.5], [0.5, 0.9]])
    # > 0: 4/4; > 0.5 (0.5 is not above): 0.9 only -> 1/4; > 0.9: none
    assert agg.score_distribution(scores, [0.0, 0.5, 0.9]).tolist() == [1.0, 0.25, 0.0]


def test_missing_runs_are_nan_and_pool_like_their_values():
    # task 0 has 3 runs, task 1 has 1: the IQM pools the 4 scores, the mean averages the two task means
    scores = np.array([[1.0, 10.0], [2.0, np.nan], [6.0, np.nan]])
    assert agg.interquartile_mean(scores) == 4.0  # sorted 1 2 6 10, one dropped at each end: (2 + 6) / 2
    assert agg.mean(scores) == 6.5  # task means 3 and 10
    assert agg.optimality_gap(scores, gamma=5.0) == 5.0 - (1 + 2 + 5 + 5) / 4
    assert agg.score_distribution(scores, [1.5]).tolist() == [0.75]
    assert agg.probability_of_improvement(scores, np.array([[1.5, 20.0]])) == pytest.approx((2 / 3 + 0) / 2)
    with pytest.raises(ValueError, match=r"task column\(s\) \[1\] have no run"):
        agg.as_scores(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="infinite"):
        agg.as_scores(np.array([[1.0, np.inf]]))
    with pytest.raises(ValueError, match=r"\(num_runs, num_tasks\) matrix, got shape \(3,\)"):
        agg.as_scores(np.array([1.0, 2.0, 3.0]))


def test_statistics_of_a_batch_are_the_statistics_of_each_matrix():
    rng = np.random.default_rng(3)
    batch = rng.normal(size=(6, 5, 3))
    batch[::2, 3:, 1] = np.nan  # two numbers of scores in one batch: the masked IQM path
    for f in (agg.interquartile_mean, agg.median, agg.mean, agg.optimality_gap):
        assert f(batch) == pytest.approx(np.array([f(m) for m in batch]), rel=1e-12), f.__name__
    taus = np.linspace(-1, 1, 7)
    assert np.array_equal(agg.score_distribution(batch, taus), np.stack([agg.score_distribution(m, taus) for m in batch]))
    assert agg.probability_of_improvement(batch, batch[::-1]) == pytest.approx(
        np.array([agg.probability_of_improvement(a, b) for a, b in zip(batch, batch[::-1], strict=True)]))


def test_normalize_maps_min_to_zero_and_max_to_one_per_task():
    scores = np.array([[0.0, -100.0], [500.0, 100.0]])
    assert agg.normalize(scores, [0.0, -100.0], [500.0, 100.0]).tolist() == [[0.0, 0.0], [1.0, 1.0]]
    assert agg.normalize(scores, 0.0, 500.0)[1, 0] == 1.0
    with pytest.raises(ValueError, match="high > low"):
        agg.normalize(scores, 1.0, 1.0)


# ----------------------------------------------------------------------------- the bootstrap


def test_stratified_resample_draws_each_task_from_its_own_runs():
    scores = np.array([[0.0, 10.0, 20.0], [1.0, 11.0, np.nan], [2.0, 12.0, np.nan]])
    res = agg.stratified_resample(scores, 500, np.random.default_rng(0))
    assert res.shape == (500, 3, 3)
    assert set(np.unique(res[:, :, 0])) == {0.0, 1.0, 2.0} and set(np.unique(res[:, :, 1])) == {10.0, 11.0, 12.0}
    assert (res[:, 0, 2] == 20.0).all() and np.isnan(res[:, 1:, 2]).all()  # a missing run stays missing


def test_interval_is_the_percentile_interval_of_the_exact_stratified_bootstrap_distribution():
    # 2 tasks x 3 runs: the stratified bootstrap has 27 x 27 equally likely resamples (3**3 per task, independently).
    # Enumerated here, their IQMs give the exact 2.5% and 97.5% quantiles; with 20000 resamples the percentile
    # interval lands on them (each quantile's atom holds the crossing with a margin of several standard errors).
    scores = np.array([[0.0, 2.0], [1.0, 6.0], [4.0, 7.0]])
    per_task = [np.array(list(itertools.product(scores[:, j], repeat=3))) for j in range(2)]  # (27, 3) each
    every = np.stack([np.stack([a, b], axis=-1) for a in per_task[0] for b in per_task[1]])  # (729, 3, 2)
    values = np.sort(agg.interquartile_mean(every))
    cdf = np.arange(1, values.size + 1) / values.size
    lo, hi = values[np.searchsorted(cdf, 0.025)], values[np.searchsorted(cdf, 0.975)]
    for q, p in ((lo, 0.025), (hi, 0.975)):  # the atom spans the quantile with room to spare
        assert (values < q).mean() < p - 0.01 and (values <= q).mean() > p + 0.01
    point, low, high = agg.interval_estimate(agg.interquartile_mean, scores, reps=20000, rng=np.random.default_rng(0))
    assert point == 3.25  # sorted 0 1 2 4 6 7, one dropped at each end: (1 + 2 + 4 + 6) / 4
    assert (lo, hi) == (1.25, 5.25) and (low, high) == (lo, hi)


def test_intervals_are_repeatable_with_a_seed_and_cover_the_point():
    scores = np.random.default_rng(1).uniform(size=(5, 4))
    a = agg.interval_estimate(agg.mean, scores, reps=300, rng=np.random.default_rng(7))
    b = agg.interval_estimate(agg.mean, scores, reps=300, rng=np.random.default_rng(7))
    c = agg.interval_estimate(agg.mean, scores, reps=300, rng=np.random.default_rng(8))
    assert a == b and a != c
    point, low, high = a
    assert low < point < high
    with pytest.raises(ValueError, match="reps must be >= 1"):
        agg.interval_estimate(agg.mean, scores, reps=0, rng=np.random.default_rng(0))


# ----------------------------------------------------------------------------- against rliable
# Reference numbers from rliable 1.2.0 (numpy 2.4.6, scipy 1.17.1, arch 7.2.0, pandas 2.3.3) in a separate
# environment: X, Y, Z = np.round(np.random.RandomState(7).normal(m, 0.3, size), 3) with (m, size) = (0.6, (5, 3)),
# (0.5, (5, 3)), (0.5, (7, 3)) drawn in that order, then Y[1, 0] = X[2, 0] (a tie between methods);
# point estimates from rliable.metrics.aggregate_iqm / aggregate_median / aggregate_mean /
# aggregate_optimality_gap / probability_of_improvement and rliable.library.score_distributions; intervals from
# rliable.library.get_interval_estimates (percentile, 95%) after np.random.seed(0) with 50000 resamples (the four
# aggregates), np.random.seed(1) and 20000 (create_performance_profile with taus = np.linspace(0, 1.2, 13)),
# np.random.seed(2) and 20000 (probability of improvement of X over Y and over Z).
X = np.array([[1.107, 0.46, 0.61], [0.722, 0.363, 0.601], [0.6, 0.074, 0.905], [0.78, 0.412, 0.549], [0.752, 0.522, 0.527]])
Y = np.array([[0.064, 0.666, 0.537], [0.6, 0.042, 0.995], [0.546, 0.384, 1.109], [0.486, 0.065, 0.378], [-0.186, 0.815, 0.375]])
Z = np.array([[0.277, 0.822, 0.005], [0.661, -0.119, 0.301], [0.139, 0.939, 1.03], [0.401, 0.752, 0.446],
              [0.67, 0.274, -0.013], [-0.041, 0.615, 1.174], [0.581, 0.343, 1.074]])
RLIABLE_POINTS = {  # IQM, median, mean, optimality gap
    "X": (0.5936666666666667, 0.6384, 0.5989333333333332, 0.4082000000000001),
    "Y": (0.44855555555555554, 0.3944, 0.4584, 0.5488666666666667),
    "Z": (0.4837272727272728, 0.518, 0.491952380952381, 0.5212857142857144),
}
RLIABLE_INTERVALS = {  # (lower bounds, upper bounds) of IQM, median, mean, optimality gap
    "X": ((0.5455555555555556, 0.548, 0.5227983333333335, 0.33666500000000005),
          (0.6677805555555557, 0.7686, 0.6787999999999998, 0.47939999999999994)),
    "Y": ((0.27066666666666667, 0.20579999999999998, 0.30046500000000004, 0.39879999999999993),
          (0.6298888888888888, 0.6352, 0.6135333333333334, 0.7023999999999999)),
    "Z": ((0.2790909090909091, 0.29857142857142854, 0.33328571428571435, 0.3736654761904762),
          (0.6756363636363636, 0.6888571428571428, 0.6478095238095238, 0.6725714285714285)),
}
RLIABLE_POI = {"Y": 0.6866666666666666, "Z": 0.6285714285714286}  # P(X > Y), P(X > Z)
RLIABLE_POI_INTERVALS = {"Y": (0.49333333333333335, 0.8799999999999999), "Z": (0.45714285714285713, 0.7999999999999999)}
TAUS = np.linspace(0.0, 1.2, 13)
RLIABLE_PROFILE_X = np.array([15, 14, 14, 14, 13, 11, 7, 5, 2, 2, 1, 1, 0]) / 15  # its 15 scores above each tau
RLIABLE_PROFILE_X_INTERVAL = (np.array([15, 12, 12, 12, 11, 10, 4, 3, 0, 0, 0, 0, 0]) / 15,
                              np.array([15, 15, 15, 15, 15, 13, 9, 7, 5, 5, 3, 3, 0]) / 15)
SCORES = {"X": X, "Y": Y, "Z": Z}
AGGREGATES = (agg.interquartile_mean, agg.median, agg.mean, agg.optimality_gap)


def _all_aggregates(s):
    return np.stack([f(s) for f in AGGREGATES], axis=-1)


@pytest.mark.parametrize("name", ["X", "Y", "Z"])
def test_point_estimates_match_rliable(name):
    iqm, median, mean, gap = RLIABLE_POINTS[name]
    # the IQM sums the middle half in sorted order, rliable (scipy.stats.trim_mean) in np.partition's order: the
    # last bit may differ (it does for X: 1 ulp)
    assert agg.interquartile_mean(SCORES[name]) == pytest.approx(iqm, rel=1e-15)
    assert (agg.median(SCORES[name]), agg.mean(SCORES[name]), agg.optimality_gap(SCORES[name])) == (median, mean, gap)


def test_probability_of_improvement_and_profile_match_rliable():
    assert agg.probability_of_improvement(X, Y) == RLIABLE_POI["Y"]
    assert agg.probability_of_improvement(X, Z) == RLIABLE_POI["Z"]  # 5 runs against 7
    assert np.array_equal(agg.score_distribution(X, TAUS), RLIABLE_PROFILE_X)


# The intervals come from other random draws (rliable: numpy's global RandomState through arch; here a Generator),
# so they agree up to Monte Carlo error. The tolerances are about twice the largest difference seen over 100 seeds
# at these numbers of resamples: aggregates 0.0099 at 10000 (scores around 0.5, intervals 0.1-0.4 wide),
# probability of improvement 0.013 at 5000; the profile's bounds are multiples of 1/15 and moved by at most one step.


@pytest.mark.parametrize("name", ["X", "Y", "Z"])
def test_aggregate_intervals_agree_with_rliable(name):
    point, low, high = agg.interval_estimate(_all_aggregates, SCORES[name], reps=10000, rng=np.random.default_rng(0))
    assert point == pytest.approx(RLIABLE_POINTS[name], rel=1e-15)
    ref_low, ref_high = RLIABLE_INTERVALS[name]
    assert low == pytest.approx(ref_low, abs=0.02) and high == pytest.approx(ref_high, abs=0.02)


def test_improvement_and_profile_intervals_agree_with_rliable():
    rng = np.random.default_rng(0)
    for other in ("Y", "Z"):
        point, low, high = agg.interval_estimate(agg.probability_of_improvement, X, SCORES[other], reps=5000, rng=rng)
        assert point == RLIABLE_POI[other]
        assert (low, high) == pytest.approx(RLIABLE_POI_INTERVALS[other], abs=0.03)
    point, low, high = agg.interval_estimate(lambda s: agg.score_distribution(s, TAUS), X, reps=5000, rng=rng)
    assert np.array_equal(point, RLIABLE_PROFILE_X)
    ref_low, ref_high = RLIABLE_PROFILE_X_INTERVAL
    assert np.abs(low - ref_low).max() <= 1 / 15 + 1e-12 and np.abs(high - ref_high).max() <= 1 / 15 + 1e-12
