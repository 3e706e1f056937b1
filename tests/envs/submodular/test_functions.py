"""Set functions: monotone, submodular, F(empty) = 0, incremental gains telescope, batched = one by one."""

import math

import pytest
import torch

from rlsuite.envs.submodular.functions import (
    FacilityLocation,
    GPInformationGain,
    ItemCollection,
    SumOf,
    WeightedCoverage,
    bimodal_weights,
    disc_footprint,
    gp_density,
    gp_posterior_kernel,
    grid_xy,
    matern52_kernel,
    nest_density,
)

H, W = 4, 5
N = H * W


def _functions():
    g = torch.Generator().manual_seed(0)
    cov2 = WeightedCoverage(torch.rand(N, generator=g), disc_footprint(H, W, "2x2"))
    cov3 = WeightedCoverage(torch.rand(N, generator=g) + 0.5, disc_footprint(H, W, "3x3"))
    fac = FacilityLocation(torch.rand(N, 7, generator=g))
    items = torch.randint(0, N, (3, 6), generator=g)
    items[1, 4:] = -1
    itm = ItemCollection(items, torch.tensor([2.0, 1.0, 3.0]), N)
    kern = gp_posterior_kernel(matern52_kernel(grid_xy(H, W), 1.5), torch.tensor([3, 11]), 0.05)
    gp = GPInformationGain(kern, noise=0.1)
    both = SumOf([cov2, itm, gp], weights=[1.0, 0.5, 2.0])
    return {"coverage2x2": cov2, "coverage3x3": cov3, "facility": fac, "items": itm, "gp": gp, "sum": both}


FUNCS = _functions()


def _gains(f, seq):
    """Add the columns of ``seq`` (B, L) one at a time; return (state, gains (B, L))."""
    state = f.init_state(seq.shape[0], max_size=seq.shape[1])
    gains = []
    for j in range(seq.shape[1]):
        state, g = f.add(state, seq[:, j])
        gains.append(g)
    return state, torch.stack(gains, 1)


def _mask(seq):
    return torch.zeros(seq.shape[0], N, dtype=torch.bool).scatter(1, seq, True)


@pytest.mark.parametrize("name", list(FUNCS))
def test_empty_set_is_zero_and_singletons_match_value(name):
    f = FUNCS[name]
    assert f.value(torch.zeros(3, N, dtype=torch.bool)).abs().max() < 1e-6
    torch.testing.assert_close(f.singletons(), f.value(torch.eye(N, dtype=torch.bool)), atol=1e-5, rtol=1e-5)
    state = f.init_state(2)
    _, g = f.add(state, torch.tensor([5, 7]))
    torch.testing.assert_close(g, f.singletons()[[5, 7]], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", list(FUNCS))
def test_monotone_and_diminishing_returns_on_random_nested_sets(name):
    f = FUNCS[name]
    g = torch.Generator().manual_seed(1)
    for trial in range(3):
        B = 200
        a = torch.rand(B, N, generator=g) < 0.1 + 0.1 * trial
        b = a | (torch.rand(B, N, generator=g) < 0.3)
        # x not in B: the first cell outside B in a random order (B is never full here)
        score = torch.rand(B, N, generator=g) + 2.0 * b.float()
        x = score.argmin(1)
        assert not b.gather(1, x[:, None]).any()
        xa = a.clone().scatter(1, x[:, None], True)
        xb = b.clone().scatter(1, x[:, None], True)
        fa, fb, fxa, fxb = f.value(a), f.value(b), f.value(xa), f.value(xb)
        assert (fb >= fa - 1e-4).all(), "not monotone"
        assert (fxa >= fa - 1e-4).all() and (fxb >= fb - 1e-4).all(), "not monotone"
        assert (fxa - fa >= fxb - fb - 1e-4).all(), "diminishing returns violated"
        # the incremental gain of x on top of B equals the from-scratch difference
        state, _ = _gains(f, _b_sequence(b))
        _, gx = f.add(state, x)
        torch.testing.assert_close(gx, fxb - fb, atol=1e-4, rtol=1e-4)


def _b_sequence(b):
    """A (B, N) sequence visiting exactly the cells of each mask row (the row's first cell repeated as padding)."""
    first = b.float().argmax(1, keepdim=True)
    return torch.where(b, torch.arange(N), first)


@pytest.mark.parametrize("name", list(FUNCS))
def test_incremental_gains_telescope_and_revisits_gain_nothing(name):
    f = FUNCS[name]
    g = torch.Generator().manual_seed(2)
    seq = torch.randint(0, N, (40, 15), generator=g)
    seq[:, 7] = seq[:, 3]  # a certain revisit
    state, gains = _gains(f, seq)
    assert (gains[:, 7] == 0).all()
    assert (gains >= -1e-6).all()
    torch.testing.assert_close(gains.double().sum(1).float(), f.value(_mask(seq)), atol=1e-4, rtol=1e-4)
    _, again = f.add(state, seq[:, 0])
    assert (again == 0).all()


@pytest.mark.parametrize("name", list(FUNCS))
def test_batched_equals_one_by_one(name):
    f = FUNCS[name]
    g = torch.Generator().manual_seed(3)
    seq = torch.randint(0, N, (6, 9), generator=g)
    _, batched = _gains(f, seq)
    for i in range(seq.shape[0]):
        _, single = _gains(f, seq[i : i + 1])
        torch.testing.assert_close(single[0], batched[i], atol=1e-6, rtol=1e-6)


def test_gp_gain_grows_its_rows_without_a_size_hint():
    f = FUNCS["gp"]
    state = f.init_state(3)
    seq = torch.randint(0, N, (3, 12), generator=torch.Generator().manual_seed(4))
    total = torch.zeros(3)
    for j in range(12):
        state, g = f.add(state, seq[:, j])
        total += g
    torch.testing.assert_close(total, f.value(_mask(seq)), atol=1e-4, rtol=1e-4)


def test_hand_computed_coverage_on_a_3x3_grid():
    fp = disc_footprint(3, 3, "2x2")
    # cell 0 = (x0, y0) covers itself, right (1), down (3) and down-right (4); the corner 8 only itself
    assert sorted(c for c in fp[0].tolist() if c >= 0) == [0, 1, 3, 4]
    assert sorted(c for c in fp[8].tolist() if c >= 0) == [8]
    f = WeightedCoverage(torch.ones(9), fp)
    state, g0 = f.add(f.init_state(1), torch.tensor([0]))
    state, g4 = f.add(state, torch.tensor([4]))  # covers {4, 5, 7, 8}; 4 already covered -> 3
    state, g8 = f.add(state, torch.tensor([8]))  # 8 already covered -> 0
    assert (g0.item(), g4.item(), g8.item()) == (4.0, 3.0, 0.0)
    assert f.value(_mask_n(9, [0, 4, 8])).item() == 7.0
    assert disc_footprint(3, 3, "3x3")[4].ge(0).sum() == 9 and disc_footprint(3, 3, 1)[4].ge(0).sum() == 5


def _mask_n(n, cells):
    m = torch.zeros(1, n, dtype=torch.bool)
    m[0, cells] = True
    return m


def test_hand_computed_item_thresholds():
    # type 0 on cells {0, 1, 2} worth up to 2; type 1 on {2, 5} worth up to 1
    f = ItemCollection(torch.tensor([[0, 1, 2], [2, 5, -1]]), [2.0, 1.0], 9)
    assert f.value(_mask_n(9, [0, 1, 2])).item() == 3.0  # min(3, 2) + min(1, 1)
    assert f.value(_mask_n(9, [2])).item() == 2.0  # 1 + 1
    assert f.value(_mask_n(9, [2, 5])).item() == 2.0  # 1 + min(2, 1)
    state, g = f.add(f.init_state(1), torch.tensor([2]))
    state, g5 = f.add(state, torch.tensor([5]))
    assert (g.item(), g5.item()) == (2.0, 0.0)


def test_hand_computed_gp_information_gain_and_facility_location():
    rho = 0.6
    f = GPInformationGain(torch.tensor([[1.0, rho], [rho, 1.0]]), noise=1.0)
    # 1/2 logdet(I + K) = 1/2 log((2)(2) - rho^2); one cell: 1/2 log 2
    assert f.value(torch.tensor([[True, True]])).item() == pytest.approx(0.5 * math.log(4 - rho**2), rel=1e-6)
    state, g0 = f.add(f.init_state(1), torch.tensor([0]))
    _, g1 = f.add(state, torch.tensor([1]))
    assert g0.item() == pytest.approx(0.5 * math.log(2.0), rel=1e-6)
    # posterior variance of cell 1 after one noisy look at 0: 1 - rho^2 / 2
    assert g1.item() == pytest.approx(0.5 * math.log(1 + 1 - rho**2 / 2), rel=1e-6)
    fl = FacilityLocation(torch.tensor([[1.0, 0.0, 0.5], [0.2, 0.9, 0.5]]))
    assert fl.value(torch.tensor([[True, True]])).item() == pytest.approx(1.0 + 0.9 + 0.5)
    assert fl.value(torch.tensor([[False, True]])).item() == pytest.approx(1.6)


def test_instance_helpers_are_positive_seeded_and_shaped():
    d = gp_density(10, 12, lengthscale=3.0, seed=5)
    assert d.shape == (120,) and (d > 0).all()
    torch.testing.assert_close(d, gp_density(10, 12, lengthscale=3.0, seed=5))
    assert not torch.equal(d, gp_density(10, 12, lengthscale=3.0, seed=6))
    # a sample far below -3 is shifted up (not down, as in the reference code): still positive
    assert (gp_density(10, 12, lengthscale=3.0, seed=5, shift=-10.0) > 0).all()
    nd = nest_density(30, 30, seed=1)
    assert nd.shape == (900,) and nd.max().item() == pytest.approx(1.0) and (nd >= 0).all()
    bw = bimodal_weights(30, 30)
    assert bw[0] > 0.7 and bw[-1] > 0.7 and bw[29] < 0.3  # high in two opposite corners, low in the others


def test_bad_inputs_say_what_is_wrong():
    with pytest.raises(ValueError, match="non-negative"):
        WeightedCoverage(-torch.ones(4), disc_footprint(2, 2))
    with pytest.raises(ValueError, match="repeat"):
        WeightedCoverage(torch.ones(4), torch.tensor([[0, 0], [1, -1], [2, -1], [3, -1]]))
    with pytest.raises(ValueError, match="noise"):
        GPInformationGain(torch.eye(3), noise=0.0)
    with pytest.raises(ValueError, match="one cell per trajectory"):
        FUNCS["items"].add(FUNCS["items"].init_state(2), torch.tensor([1, 2, 3]))
