"""The dispatch simulator (DispatchVecEnv): conservation of orders, vehicles and seats, the position model and
pooling, candidates and masks, the optimal matching, expiry, the reward by hand and against an independent
planner, travel noise and time of day, trip replay, batched equals single, exact resume, errors, devices."""

from __future__ import annotations

import itertools
import logging
import math
from collections import Counter

import numpy as np
import pytest
import torch

from rlsuite.core.checkpoint import load_checkpoint, save_checkpoint
from rlsuite.core.vec_env import make_vec_env
from rlsuite.envs.dispatch import (
    CANDIDATE_FEATURES,
    ENV_ID,
    PICKUP_ETA,
    DemandModel,
    DispatchVecEnv,
    RewardConfig,
    TripRecords,
    greedy_policy,
    grid_city,
    random_policy,
)
from rlsuite.envs.dispatch.env import EMPTY, ONBOARD, TO_PICKUP
from tests.core.test_vec_env import run_conformance

GRID = grid_city(3, 3)


def small(num_envs: int = 1, **kw) -> DispatchVecEnv:
    """3 x 3 zones, 20 vehicles, 4 candidates, 8 orders per minute, 10-minute episodes."""
    kw = {"city": GRID, "num_vehicles": 20, "num_candidates": 4, "orders_per_minute": 8.0, "horizon": 10, **kw}
    return DispatchVecEnv(num_envs=num_envs, **kw)


def check_invariants(env: DispatchVecEnv) -> None:
    """Every order in exactly one place, seats within bounds, every vehicle in one zone with eta >= 0, legs consistent."""
    c = env.order_counts()
    assert torch.equal(c["appeared"], c["open"] + c["waiting"] + c["onboard"] + c["delivered"] + c["lost"]), c
    assert torch.equal(env.n_served, c["waiting"] + c["onboard"] + c["delivered"])
    st = env.seat_status
    assert ((st == EMPTY) | (st == TO_PICKUP) | (st == ONBOARD)).all()
    taken = (st != EMPTY).sum(-1)
    assert (taken <= env.capacity).all() and ((st == TO_PICKUP).sum(-1) <= 1).all()
    assert ((env.loc >= 0) & (env.loc < env.city.num_zones)).all() and (env.eta >= 0).all()
    idle = env.target < 0
    assert (env.eta[idle] == 0).all() and (taken[idle] == 0).all() and (taken[~idle] > 0).all()
    tgt = env.target.clamp(min=0)[..., None]
    moving_to = torch.where(st.gather(-1, tgt) == TO_PICKUP, env.seat_origin.gather(-1, tgt), env.seat_dest.gather(-1, tgt))
    assert torch.equal(env.loc[~idle], moving_to.squeeze(-1)[~idle])  # loc is the zone of the stop being driven to
    # a pending pickup is always the leg being driven (a vehicle breaks off its leg for it at once)
    pending = (st == TO_PICKUP).any(-1)
    assert (st.gather(-1, tgt).squeeze(-1) == TO_PICKUP)[pending].all()
    # legs: eta <= the leg's minutes; a drop-off leg starts at a zone; idle vehicles sit at their zone
    assert (env.eta[~idle] <= env.leg_total[~idle] + 1e-5).all()
    assert (env.leg_from[~idle & ~pending] >= 0).all()
    assert torch.equal(env.leg_from[idle], env.loc[idle]) and (env.leg_total[idle] == 0).all()
    assert ((env.leg_xy >= 0) & (env.leg_xy <= 1)).all()
    for e in range(env.num_envs):
        uids = torch.cat([env.pool_uid[e][env.pool_active[e]], env.seat_uid[e][st[e] != EMPTY]])
        assert uids.unique().numel() == uids.numel() and (uids >= 0).all()  # no order in two places


def progress(env: DispatchVecEnv, e: int, v: int) -> float:
    """Fraction of vehicle v's current leg travelled (1 at a zone), recomputed from the state."""
    eta, total = float(env.eta[e, v]), float(env.leg_total[e, v])
    return 1.0 if eta <= 0 else 1.0 - eta / max(total, eta)


def ref_minutes(T: np.ndarray, start: int, end: int, f: float, zone: int) -> float:
    """Expected minutes to ``zone`` from the point ``f`` of the way from ``start`` to ``end`` (the documented model)."""
    return (1.0 - f) * T[start, zone] + f * T[end, zone]


def ref_plan(T: np.ndarray, vehicle: dict) -> tuple[list[float], float]:
    """An independent planner (the module docstring's rules): drop-off minutes per seat and minutes to the pickup."""
    status, origin, dest = vehicle["status"], vehicle["origin"], vehicle["dest"]
    eta, target, c = vehicle["eta"], vehicle["target"], len(status)
    drop, pick = [0.0] * c, 0.0
    pending = [s for s in range(c) if status[s] == TO_PICKUP]
    if pending:  # to the pickup first (already on that leg, or breaking off / leaving a zone now)
        s = pending[0]
        pick = eta if target == s else ref_minutes(T, vehicle["leg_from"], vehicle["loc"], vehicle["f"], origin[s])
        time, pos = pick, origin[s]
        rest = [s for s in range(c) if status[s] != EMPTY]
    else:  # finish the drop-off leg first
        time, pos = eta, vehicle["loc"]
        if target >= 0:
            drop[target] = eta
        rest = [s for s in range(c) if status[s] != EMPTY and s != target]
    best = None
    for perm in itertools.permutations(rest):
        t, p, times = time, pos, {}
        for s in perm:
            t += T[p, dest[s]]
            p = dest[s]
            times[s] = t
        if best is None or sum(times.values()) < best[0] - 1e-6:
            best = (sum(times.values()), times)
    for s, t in best[1].items():
        drop[s] = t
    return drop, pick


def vehicle_of(env: DispatchVecEnv, e: int, v: int) -> dict:
    return {"status": env.seat_status[e, v].tolist(), "origin": env.seat_origin[e, v].tolist(), "dest": env.seat_dest[e, v].tolist(),
            "loc": int(env.loc[e, v]), "eta": float(env.eta[e, v]), "target": int(env.target[e, v]),
            "leg_from": int(env.leg_from[e, v]), "f": progress(env, e, v)}


def test_spaces_observation_layout_and_candidates():
    env = small(2, num_vehicles=30, orders_per_minute=12.0)
    obs, info = env.reset(seed=0)
    assert obs.shape == (2, 30, 4, 28) and obs.dtype == torch.float32
    assert env.single_observation_space.shape == (30, 4, 28) and env.single_action_space.shape == (30, 4)
    mask = info["pair_mask"]
    assert mask.dtype == torch.bool and torch.equal(info["vehicle_available"], mask.any(-1))
    xy = (env.city.xy_km - env.city.xy_km.min(0)) / np.ptp(env.city.xy_km, 0)
    on_leg_seen = 0
    for _ in range(4):  # some vehicles busy (some of them on a leg and still taking orders), some orders old
        obs, _, _, _, info = env.step(greedy_policy()(obs))
        mask = info["pair_mask"]
        eta = obs[..., PICKUP_ETA] * 60
        assert (obs[..., CANDIDATE_FEATURES][~mask] == 0).all() and (eta[mask] > 0).all() and (eta[mask] <= 20.0 + 1e-4).all()
        assert (mask[..., 1:] <= mask[..., :-1]).all()  # feasible pairs first (nearest first)
        assert (torch.where(mask[..., 1:], eta[..., 1:] - eta[..., :-1], 0.0) >= 0).all()
        free = (env.seat_status == EMPTY).any(-1) & ~(env.seat_status == TO_PICKUP).any(-1)
        assert (free | ~info["vehicle_available"]).all()
        T = env.city.travel_minutes(env.start_minute + env.t)
        for e in range(2):
            slots = env._cand_slot[e][mask[e]]
            assert env.pool_active[e, slots].all()
            for v in range(30):
                f, a, b = progress(env, e, v), int(env.leg_from[e, v]), int(env.loc[e, v])
                if a >= 0:  # the position: f of the way from the leg's start zone to its end zone
                    np.testing.assert_allclose(obs[e, v, 0, :2].numpy(), (1 - f) * xy[a] + f * xy[b], atol=1e-5)
                if not free[e, v]:
                    assert not mask[e, v].any()
                    continue
                on_leg_seen += f < 1
                # brute force: the K smallest ETAs (from the interpolated position) among all open orders within reach
                open_origin = env.pool_origin[e][env.pool_active[e]].tolist()
                all_eta = np.sort([ref_minutes(T, a, b, f, o) for o in open_origin])
                best = all_eta[all_eta <= 20.0 + 1e-6][:4]
                np.testing.assert_allclose(eta[e, v][mask[e, v]].numpy(), best, rtol=0, atol=1e-4)
                assert slots.numel() == 0 or env._cand_slot[e, v][mask[e, v]].unique().numel() == int(mask[e, v].sum())
    assert on_leg_seen > 10  # vehicles carrying someone took part
    # vehicle features repeat in every candidate row; free seats / capacity and the minute
    assert torch.equal(obs[:, :, :1, :23].expand(-1, -1, 4, -1), obs[..., :23])
    assert torch.allclose(obs[..., 0, 2], (env.seat_status == EMPTY).sum(-1) / 3.0)
    assert torch.allclose(obs[..., 5], torch.full_like(obs[..., 5], 4 / 60))


@pytest.mark.parametrize("policy", ["random", "greedy"])
def test_conservation_over_two_episodes(policy):
    env = small(2, orders_per_minute=15.0, order_patience=2)
    act = random_policy(0) if policy == "random" else greedy_policy()
    obs, _ = env.reset(seed=1)
    check_invariants(env)
    ended = 0
    served_before = torch.zeros(2)
    for _ in range(2 * env.horizon):
        counts = env.order_counts()
        obs, reward, term, trunc, info = env.step(act(obs))
        if trunc.any():  # the episode's final figures, before the reset
            ended += 1
            assert torch.equal(info["episode_served"], served_before + info["served"])
            assert (info["episode_served"] > 0).all() and (info["episode_lost"] > 0).all()
            assert torch.allclose(info["episode_reward_spread"], info["vehicle_cum_reward"].std(-1, correction=0))
        else:
            assert torch.equal(info["served"], env.order_counts()["waiting"] + env.order_counts()["onboard"]
                               + env.order_counts()["delivered"] - counts["waiting"] - counts["onboard"] - counts["delivered"])
        served_before = info["episode_served"].clone()
        assert not term.any() and torch.allclose(reward, info["vehicle_reward"].sum(-1))
        assert torch.equal(info["served"], (info["assigned"] >= 0).sum(-1).float())
        assert not (info["assigned"] >= 0)[~info["acted"]].any()
        check_invariants(env)
    assert ended == 2


def test_batched_env_contract_and_make_vec():
    run_conformance(make_vec_env(ENV_ID, 2, city="grid3x3", num_vehicles=10, num_candidates=3, orders_per_minute=5.0,
                                 horizon=5), steps=12)
    env = make_vec_env(ENV_ID, 2, city=GRID, num_vehicles=10, horizon=5)
    assert isinstance(env, DispatchVecEnv) and env.city is GRID


def brute_force_best(scores: np.ndarray, mask: np.ndarray, slots: np.ndarray) -> float:
    """Highest total score over all matchings of eligible pairs (each vehicle and each order at most once)."""
    options = [[None] + [k for k in range(scores.shape[1]) if mask[v, k] and scores[v, k] > 0] for v in range(scores.shape[0])]
    best = 0.0
    for choice in itertools.product(*options):
        orders = [slots[v, k] for v, k in enumerate(choice) if k is not None]
        if len(set(orders)) == len(orders):
            best = max(best, sum(scores[v, k] for v, k in enumerate(choice) if k is not None))
    return best


def test_the_matching_is_optimal_against_brute_force():
    env = small(2, city=grid_city(2, 2), num_vehicles=5, num_candidates=3, orders_per_minute=3.0, capacity=2)
    env.reset(seed=3)
    g = torch.Generator().manual_seed(0)
    contested = 0
    for _ in range(12):
        mask, slots = env._pair_mask.numpy().copy(), env._cand_slot.numpy().copy()
        scores = torch.rand((2, 5, 3), generator=g) * 1.5 - 0.5  # some negative: not eligible
        _, _, _, _, info = env.step(scores)
        for e in range(2):
            s = scores[e].double().numpy()
            assigned = info["assigned"][e].numpy()
            picked = [(v, k) for v, k in enumerate(assigned) if k >= 0]
            assert all(mask[e, v, k] and s[v, k] > 0 for v, k in picked)
            assert len({slots[e, v, k] for v, k in picked}) == len(picked)  # an order goes to one vehicle
            total = sum(s[v, k] for v, k in picked)
            assert total == pytest.approx(brute_force_best(s, mask[e], slots[e]), abs=1e-9)
            contested += len({slots[e][v, k] for v, k in zip(*np.nonzero(mask[e]), strict=True)}) < int(mask[e].any(-1).sum())
    assert contested > 0  # some steps had fewer orders than vehicles that wanted one


def test_masked_scores_are_ignored_and_orders_come_from_the_candidates():
    env = small(2, orders_per_minute=12.0)
    obs, info = env.reset(seed=4)
    matches = 0
    for _ in range(6):
        mask = info["pair_mask"]
        cand_uid = env.pool_uid.gather(1, env._cand_slot.reshape(2, -1)).reshape(mask.shape)
        scores = torch.where(mask, 0.01, 1e6)  # a huge score on every infeasible pair
        seats_before = env.seat_uid.clone()
        obs, _, _, _, info = env.step(scores)
        a = info["assigned"]
        matches += int((a >= 0).sum())
        assert mask.gather(-1, a.clamp(min=0)[..., None]).squeeze(-1)[a >= 0].all()
        new = (env.seat_uid != seats_before) & (env.seat_uid >= 0) & (env.seat_status == TO_PICKUP)  # seated this step
        for e, v in zip(*torch.nonzero(a >= 0).T.tolist(), strict=True):
            assert env.seat_uid[e, v][new[e, v]].tolist() == [cand_uid[e, v, a[e, v]].item()]
        assert int(new.sum()) == int((a >= 0).sum())
    assert matches > 10


def test_zero_or_negative_scores_match_nothing():
    env = small(2)
    env.reset(seed=0)
    for scores in (torch.zeros(2, 20, 4), -torch.ones(2, 20, 4)):
        _, reward, _, _, info = env.step(scores)
        assert (info["assigned"] == -1).all() and (reward == 0).all() and (info["served"] == 0).all()
        assert info["acted"].any()  # there were feasible pairs


@pytest.mark.parametrize("patience", [0, 3])
def test_orders_expire_after_order_patience(patience):
    env = small(2, order_patience=patience, horizon=12, orders_per_minute=6.0)
    env.reset(seed=2)
    appeared = [env.n_appeared.clone()]  # orders of minute 0
    minute0 = env.pool_uid[0][env.pool_active[0]].tolist()
    assert minute0
    for t in range(1, 12):
        _, _, _, _, info = env.step(torch.zeros(2, 20, 4))
        # after this step the minute is t: orders of minute t - 1 - patience are lost, the others still open
        expected = appeared[t - 1 - patience] - (appeared[t - 2 - patience] if t - 2 - patience >= 0 else 0) if t - 1 - patience >= 0 else 0
        assert torch.equal(info["lost"], torch.as_tensor(expected).expand(2).float()), t
        still = set(env.pool_uid[0][env.pool_active[0]].tolist())
        assert (set(minute0) <= still) == (t <= patience)
        appeared.append(env.n_appeared.clone())
    assert torch.equal(env.order_counts()["open"] + env.n_lost, env.n_appeared)


LINE = grid_city(1, 3)  # zones 0, 1, 2 at x = 0, 1, 2 km


def one_vehicle(trips: TripRecords, horizon: int, **kw) -> DispatchVecEnv:
    env = DispatchVecEnv(city=LINE, demand=trips, num_vehicles=1, num_candidates=2, horizon=horizon, travel_noise=0.0,
                         replay_fraction=1.0, **kw)
    env.reset(seed=0)
    return env


def put_on_leg(state: dict, leg_from: int, loc: int, leg_total: float, eta: float, target: int) -> None:
    """Vehicle 0 of env 0 on a leg from zone ``leg_from`` to zone ``loc`` (``eta`` of ``leg_total`` minutes left)."""
    xy = torch.tensor([[0.0, 0.0], [0.5, 0.0], [1.0, 0.0]])  # the 1 x 3 line in the env's [0, 1] box (y span 0 -> 0)
    state["leg_from"][0, 0], state["loc"][0, 0], state["target"][0, 0] = leg_from, loc, target
    state["leg_total"][0, 0], state["eta"][0, 0] = leg_total, eta
    state["leg_xy"][0, 0] = xy[leg_from]


def hand_built(threshold_min: float = 40.0, horizon: int = 3) -> tuple[DispatchVecEnv, torch.Tensor]:
    """One vehicle on a 1 x 3 grid, at 03:00 (speed factor 1 until 04:00), no noise.

    Travel (detour 1.3, 18 km/h): neighbours 1.3 km = 4.3333 min, two apart 2.6 km = 8.6667 min, inside a zone
    0.65 km = 2.1667 min. The vehicle drives from zone 2 to zone 0 (a leg of 8.6667 min, 1 min left: f = 0.88462)
    to drop order A (seat 0, on board since minute -7.6667); order C (seat 1) is on board since minute -10, bound
    for zone 2. Order B appears at zone 1, bound for zone 0.
    """
    trips = TripRecords(minute=np.array([0]), origin=np.array([1]), destination=np.array([0]), minutes=3, start_minute=180)
    env = one_vehicle(trips, horizon, reward=RewardConfig(threshold_min=threshold_min))
    state = env.state_dict()
    put_on_leg(state, leg_from=2, loc=0, leg_total=2.6 / 18 * 60, eta=1.0, target=0)
    state["seat_status"][0, 0, :2] = ONBOARD
    state["seat_origin"][0, 0, :2] = torch.tensor([2, 2])
    state["seat_dest"][0, 0, :2] = torch.tensor([0, 2])
    state["seat_uid"][0, 0, :2] = torch.tensor([100, 101])
    state["seat_picked"][0, 0, :2] = torch.tensor([-7.6667, -10.0])
    state["seat_direct"][0, 0, :2] = torch.tensor([8.6667, 2.1667])
    env.load_state_dict(state)
    return env, env.last_observation


def test_the_reward_of_a_hand_built_match():
    env, obs = hand_built(threshold_min=10.0)
    assert env._pair_mask[0, 0].tolist() == [True, False]
    # the vehicle is 0.88462 of the way from zone 2 to zone 0 (x = 0.23077 km of 2 km): x, y = 0.11538, 0
    assert obs[0, 0, 0, :2].tolist() == pytest.approx([0.115385, 0.0], abs=1e-5)
    # pickup ETA from there to zone 1: (1 - f) T[2, 1] + f T[0, 1] = 4.3333 (both 4.3333)
    assert obs[0, 0, 0, PICKUP_ETA].item() * 60 == pytest.approx(4.33333, rel=1e-5)
    # old plan: A at 1, C at 1 + 8.6667 = 9.6667. New plan: break off, pick B at 4.3333 at zone 1, then the best
    # order of {A -> 0, C -> 2, B -> 0}: A, B, C: A at 4.3333 + 4.3333 = 8.6667, B at 8.6667 + 2.1667 = 10.8333,
    # C at 10.8333 + 8.6667 = 19.5 (sum 39; B, A, C ties and comes later; C first: 45.5).
    # added = A 7.6667 + C 9.8333 + B's detour (10.8333 - 4.3333 - direct 4.3333 = 2.1667) = 19.6667 minutes.
    # Threshold 10 min: A (7.6667 + 8.6667 = 16.33 min in the vehicle) and C (10 + 19.5) exceed it, B (6.5) not: n = 2.
    # r = 3 + 1 * 1.3 km - 3 * 4.3333 / 60 - 1 * 2 - 3 * 19.6667 / 60 - 5 * (19.6667 - 10) / 60
    #   = 3 + 1.3 - 0.216667 - 2 - 0.983333 - 0.805556 = 0.294444
    _, reward, _, _, info = env.step(torch.tensor([[[1.0, 0.0]]]))
    assert info["assigned"].tolist() == [[0]]
    assert reward.item() == pytest.approx(0.294444, abs=1e-5) and info["vehicle_reward"].item() == reward.item()
    assert info["pickup_minutes"].item() == pytest.approx(4.33333, rel=1e-5)
    # the paper's threshold (40 min): no long trips, no excess: r = 3 + 1.3 - 0.216667 - 0.983333 = 3.1
    env, _ = hand_built()
    assert env.step(torch.tensor([[[1.0, 0.0]]]))[1].item() == pytest.approx(3.1, abs=1e-5)


def test_the_plan_executes_as_observed_without_noise():
    env, obs = hand_built(horizon=21)
    env.step(torch.tensor([[[1.0, 0.0]]]))  # minute 1: the vehicle broke off its leg and is 1 minute towards B
    assert env.n_delivered.item() == 0 and env.target.item() == 2 and env.loc.item() == 1
    assert env.eta.item() == pytest.approx(3.33333, rel=1e-5) and env.leg_total.item() == pytest.approx(4.33333, rel=1e-5)
    assert env.leg_from.item() == -1  # the leg began between zones
    obs = env.last_observation
    # x: from 0.11538 towards zone 1 (0.5), 1 / 4.3333 of the way: 0.11538 + 0.38462 * 0.23077 = 0.20414
    assert obs[0, 0, 0, 0].item() == pytest.approx(0.204142, abs=1e-5)
    # seats (minutes from now): A 8.6667 - 1, C 19.5 - 1, B 10.8333 - 1; minutes to the pending pickup 3.3333
    for s, minutes in ((0, 7.66667), (1, 18.5), (2, 9.83333)):
        assert obs[0, 0, 0, 8 + 5 * s + 2].item() * 60 == pytest.approx(minutes, rel=1e-4)
    assert obs[0, 0, 0, 3].item() * 60 == pytest.approx(3.33333, rel=1e-4)
    picked = None
    for _ in range(19):
        env.step(torch.zeros(1, 1, 2))
        if picked is None and (env.seat_status[0, 0] == ONBOARD).sum() == 3:
            picked = env.t
    assert picked == 5 and env.seat_picked[0, 0, 2].item() == pytest.approx(4.33333, rel=1e-5)  # three on board
    # delivered: A at 8.6667 (16.3333 on board), B at 10.8333 (6.5), C at 19.5 (29.5)
    assert env.n_delivered.item() == 3 and env.sum_delivery.item() == pytest.approx(16.3333 + 6.5 + 29.5, abs=1e-3)
    # detours: A 16.3333 - 8.6667, B 6.5 - 4.3333 (its direct minutes at the pickup), C 29.5 - 2.1667
    assert env.sum_detour.item() == pytest.approx(7.6667 + 2.1667 + 27.3333, abs=1e-3)
    assert (env.target == -1).all() and env.loc.item() == 2 and env.eta.item() == 0


def test_a_vehicle_carrying_a_passenger_pools_an_order_near_it():
    # the review's case: the vehicle has just picked up A in zone 0, bound for zone 2 (8.6667 min); B appears in
    # zone 0, also bound for zone 2. The vehicle is still at zone 0: B's ETA is the intra-zone trip, 2.1667 min
    # (it was 8.6667 + 8.6667 = 17.3333 when the vehicle could only take B after dropping A).
    trips = TripRecords(minute=np.array([0]), origin=np.array([0]), destination=np.array([2]), minutes=20, start_minute=180)
    env = one_vehicle(trips, 20)
    state = env.state_dict()
    put_on_leg(state, leg_from=0, loc=2, leg_total=8.6667, eta=8.6667, target=0)
    state["seat_status"][0, 0, 0], state["seat_origin"][0, 0, 0], state["seat_dest"][0, 0, 0] = ONBOARD, 0, 2
    state["seat_uid"][0, 0, 0], state["seat_picked"][0, 0, 0], state["seat_direct"][0, 0, 0] = 99, 0.0, 8.6667
    env.load_state_dict(state)
    assert env.last_observation[0, 0, 0, PICKUP_ETA].item() * 60 == pytest.approx(2.16667, rel=1e-4)
    # B: picked at 2.1667, both to zone 2: one at 2.1667 + 8.6667 = 10.8333, the other 2.1667 later (another
    # point in zone 2). added = A's delay + B's detour = the minimum sum of drop-off times minus the old plan.
    _, reward, _, _, info = env.step(torch.tensor([[[1.0, 0.0]]]))
    assert info["assigned"].item() == 0
    both = []
    for _ in range(18):
        both.append(int((env.seat_status == ONBOARD).sum()))
        env.step(torch.zeros(1, 1, 2))
    assert max(both) == 2 and both.index(2) == 2  # B on board from minute 2.1667, with A
    assert env.n_delivered.item() == 2 and env.sum_delivery.item() == pytest.approx(10.8333 + 8.6667 + 2.1667, abs=1e-3)


def test_pooling_happens_in_the_default_scenario_and_makes_detours():
    env = DispatchVecEnv()  # the paper's scenario: 69 zones, 1000 vehicles, capacity 3, greedy dispatch
    obs, _ = env.reset(seed=0)
    act = greedy_policy()
    most = 0
    for _ in range(20):
        obs, _, _, _, info = env.step(act(obs))
        most = max(most, int((env.seat_status == ONBOARD).sum(-1).max()))
    check_invariants(env)
    # measured (seed 0): 3 on board at once, mean detour ~4.8 min over the delivered orders (~0 before pooling)
    assert most >= 2 and info["episode_detour_min"].item() > 1.0
    assert info["episode_delivery_min"].item() > info["episode_detour_min"].item()


@pytest.mark.parametrize("noise", [0.0, 0.1])
def test_rewards_and_pickups_follow_the_documented_plan_in_reachable_states(noise):
    """Every match's reward and pickup ETA (greedy and random matches, most of them pooled) against the independent
    planner; without noise every pickup happens at the match minute + its ETA."""
    env = DispatchVecEnv(num_envs=2, city=grid_city(4, 4), num_vehicles=30, num_candidates=5, orders_per_minute=14.0,
                         horizon=30, travel_noise=noise, start_minute=18 * 60 + 50)  # the speed changes on the way
    obs, _ = env.reset(seed=1)
    rc, D = env.reward_config, env.city.distance_km
    matched_at: dict[tuple[int, int], float] = {}  # (env, uid) -> planned pickup minute
    worst_reward, worst_pick, matches, pooled, checked_picks = 0.0, 0.0, 0, 0, 0
    for step in range(25):
        T = env.city.travel_minutes(env.start_minute + env.t)
        before = {(e, v): vehicle_of(env, e, v) for e in range(2) for v in range(30)}
        picked_at = env.seat_picked.clone()
        cand_slot, cand_eta, tnow = env._cand_slot.clone(), env._cand_eta.clone(), env.t
        pool = (env.pool_origin.clone(), env.pool_dest.clone(), env.pool_uid.clone())
        act = greedy_policy() if step % 2 else random_policy(step)
        obs, _, _, _, info = env.step(act(obs))
        for e, v in zip(*torch.nonzero(info["assigned"] >= 0).T.tolist(), strict=True):
            k = int(info["assigned"][e, v])
            slot = int(cand_slot[e, v, k])
            o, d, uid = int(pool[0][e, slot]), int(pool[1][e, slot]), int(pool[2][e, slot])
            veh = before[(e, v)]
            old_drop, _ = ref_plan(T, veh)
            s_new = veh["status"].index(EMPTY)
            after = dict(veh, status=list(veh["status"]), origin=list(veh["origin"]), dest=list(veh["dest"]))
            after["status"][s_new], after["origin"][s_new], after["dest"][s_new] = TO_PICKUP, o, d
            new_drop, pick = ref_plan(T, after)
            eta = float(cand_eta[e, v, k])
            worst_pick = max(worst_pick, abs(pick - eta))
            onboard = [s for s, st in enumerate(veh["status"]) if st == ONBOARD]
            pooled += bool(onboard)
            added = sum(new_drop[s] - old_drop[s] for s in onboard) + (new_drop[s_new] - pick) - T[o, d]
            in_vehicle = [tnow - float(picked_at[e, v, s]) + new_drop[s] for s in onboard] + [new_drop[s_new] - pick]
            n_over = sum(x > rc.threshold_min for x in in_vehicle)
            r = (rc.base + rc.distance * D[o, d] - rc.pickup * eta / 60 - rc.long_trips * n_over - rc.added * added / 60
                 - rc.excess * max(added - rc.threshold_min, 0) / 60)
            worst_reward = max(worst_reward, abs(r - float(info["vehicle_reward"][e, v])))
            matches += 1
            matched_at[(e, uid)] = tnow + eta
        for e, v, s in zip(*torch.nonzero(env.seat_status == ONBOARD).T.tolist(), strict=True):
            uid = int(env.seat_uid[e, v, s])
            if (e, uid) in matched_at and float(env.seat_picked[e, v, s]) > tnow:  # picked up in this step
                checked_picks += 1
                if noise == 0:
                    assert float(env.seat_picked[e, v, s]) == pytest.approx(matched_at[(e, uid)], abs=1e-3)
        check_invariants(env)
    assert matches > 150 and pooled > 80 and checked_picks > 100  # measured: ~225 matches, ~165 pooled, ~205 pickups
    assert worst_pick < 1e-4 and worst_reward < 1e-4


def test_travel_noise_is_mean_one_per_leg():
    # minute 0: every vehicle idle at a zone, so each matched vehicle's leg to its pickup takes T[zone, origin] * a
    # factor of its own. 3 km blocks: a leg lasts >= 6.5 min, so none ends within the minute and all are observed.
    # 400 zones x K = 8: idle vehicles in one zone share their candidate list, so at most 8 matches per zone.
    sigma = 0.3
    env = DispatchVecEnv(city=grid_city(20, 20, block_km=3.0), num_vehicles=4000, orders_per_minute=6000.0, horizon=5,
                         travel_noise=sigma, max_open_orders=8192)
    obs, _ = env.reset(seed=0)
    start = env.loc.clone()
    T = torch.as_tensor(env.city.travel_minutes(env.start_minute), dtype=torch.float32)
    _, _, _, _, info = env.step(greedy_policy()(obs))
    legs = info["assigned"][0] >= 0
    ratio = (env.leg_total[0] / T[start[0], env.loc[0]])[legs].double()
    n = int(legs.sum())
    assert n > 2500 and (env.target[0][legs] >= 0).all()
    # a mean-one log-normal factor exp(sigma z - sigma^2 / 2) has sd sqrt(exp(sigma^2) - 1) = 0.307: the sample mean
    # of n > 2500 legs is within 4 standard errors (4 * 0.307 / sqrt(n) < 0.025) of 1; log-factors: mean -sigma^2 / 2
    sd = math.sqrt(math.exp(sigma**2) - 1)
    assert abs(ratio.mean().item() - 1.0) < 4 * sd / math.sqrt(n)
    assert abs(ratio.log().mean().item() + sigma**2 / 2) < 4 * sigma / math.sqrt(n)
    assert ratio.log().std().item() == pytest.approx(sigma, rel=0.1)


def test_the_time_of_day_sets_the_leg_durations():
    # one idle vehicle, one order two zones away bound back: the same trip at 03:00 (speed factor 1) and 19:00 (0.62)
    def trip(start_minute: int) -> tuple[float, float, float]:
        trips = TripRecords(minute=np.array([0]), origin=np.array([2]), destination=np.array([0]), minutes=40,
                            start_minute=start_minute)
        env = one_vehicle(trips, 40)
        state = env.state_dict()
        state["loc"][0, 0] = state["leg_from"][0, 0] = 0
        state["leg_xy"][0, 0] = 0.0
        env.load_state_dict(state)
        eta = env.last_observation[0, 0, 0, PICKUP_ETA].item() * 60
        env.step(torch.tensor([[[1.0, 0.0]]]))
        leg = env.leg_total.item()
        for _ in range(30):  # within the episode (its figures reset with the next one)
            env.step(torch.zeros(1, 1, 2))
        assert env.n_delivered.item() == 1
        return eta, leg, env.sum_delivery.item()

    speed = LINE.speed_factor(19 * 60)
    assert speed == pytest.approx(0.62) and LINE.speed_factor(180) == 1.0
    night, evening = trip(180), trip(19 * 60)
    assert night == pytest.approx((8.66667, 8.66667, 8.66667), rel=1e-5)  # 2.6 km at 18 km/h
    # at 19:00 the pickup leg starts at minute 0 (speed 0.62); the ride starts at minute ~14 (19:14, speed 0.6284)
    assert evening[0] == pytest.approx(8.66667 / speed, rel=1e-5) and evening[1] == pytest.approx(evening[0], rel=1e-6)
    assert evening[2] == pytest.approx(8.66667 / LINE.speed_factor(19 * 60 + 13), rel=1e-5)


def test_trip_records_replay_exactly_the_kept_trips_at_their_minutes():
    rng = np.random.default_rng(0)
    m = 200
    trips = TripRecords(minute=rng.integers(0, 8, m), origin=rng.integers(0, 9, m), destination=rng.integers(0, 9, m), minutes=8,
                        start_minute=18 * 60)
    records = sorted(zip(trips.minute.tolist(), trips.origin.tolist(), trips.destination.tolist(), strict=True))
    full = small(1, demand=trips, replay_fraction=1.0, order_patience=20, horizon=8, max_open_orders=256)
    assert full.start_minute == 18 * 60  # the records' clock
    full.reset(seed=0)
    for _ in range(7):
        full.step(torch.zeros(1, 20, 4))
    released = sorted(zip(full.pool_appear[0][full.pool_active[0]].tolist(), full.pool_origin[0][full.pool_active[0]].tolist(),
                          full.pool_dest[0][full.pool_active[0]].tolist(), strict=True))
    assert released == records
    part = small(2, demand=trips, replay_fraction=0.5, order_patience=20, horizon=8, max_open_orders=256)
    part.reset(seed=0)
    for _ in range(7):
        part.step(torch.zeros(2, 20, 4))
    kept = []
    for e in range(2):
        active = part.pool_active[e]
        got = sorted(zip(part.pool_appear[e][active].tolist(), part.pool_origin[e][active].tolist(),
                         part.pool_dest[e][active].tolist(), strict=True))
        assert len(got) == 100 and not Counter(got) - Counter(records)  # exactly half, every one a record at its minute
        kept.append(got)
    assert kept[0] != kept[1]  # each env draws its own subsample


def test_pool_overflow_counts_as_lost_and_is_logged(caplog):
    env = small(1, max_open_orders=5, orders_per_minute=20.0)
    with caplog.at_level(logging.WARNING):
        env.reset(seed=0)
        env.step(torch.zeros(1, 20, 4))
    assert "max_open_orders=5" in caplog.text and caplog.text.count("order pool is full") == 1
    check_invariants(env)
    assert env.n_lost.item() > 0 and env.order_counts()["open"].item() == 5


def test_a_batch_equals_single_envs_with_the_same_seeds():
    vec = small(3)
    singles = [small(1) for _ in range(3)]
    obs, info = vec.reset(seed=10)
    outs = [e.reset(seed=10 + i) for i, e in enumerate(singles)]
    assert torch.equal(obs, torch.cat([o for o, _ in outs]))
    g = torch.Generator().manual_seed(1)
    for _ in range(14):  # through the episode's end and into the next one
        scores = torch.rand((3, 20, 4), generator=g) - 0.2
        obs, reward, _, trunc, info = vec.step(scores)
        outs = [e.step(scores[i : i + 1]) for i, e in enumerate(singles)]
        assert torch.equal(obs, torch.cat([o[0] for o in outs])) and torch.equal(reward, torch.cat([o[1] for o in outs]))
        assert torch.equal(trunc, torch.cat([o[3] for o in outs]))
        for key in ("final_obs", "vehicle_reward", "assigned", "pair_mask", "vehicle_cum_reward", "episode_served",
                    "episode_pickup_min", "episode_reward_spread", "lost", "delivered"):
            assert torch.equal(info[key], torch.cat([o[4][key] for o in outs])), key


def test_state_dict_resume_is_bit_exact(tmp_path):
    env = small(2, orders_per_minute=12.0)
    env.reset(seed=7)
    g = torch.Generator().manual_seed(2)
    acts = [torch.rand((2, 20, 4), generator=g) for _ in range(15)]
    for a in acts[:7]:
        env.step(a)
    save_checkpoint(tmp_path / "env", env.state_dict())  # safetensors + JSON, no pickle
    state, _ = load_checkpoint(tmp_path / "env")
    first = [env.step(a) for a in acts[7:]]  # crosses the episode end at step 10
    other = small(2, orders_per_minute=12.0)
    other.reset(seed=123)
    other.load_state_dict(state)
    second = [other.step(a) for a in acts[7:]]
    for (o1, r1, _, t1, i1), (o2, r2, _, t2, i2) in zip(first, second, strict=True):
        assert torch.equal(o1, o2) and torch.equal(r1, r2) and torch.equal(t1, t2)
        assert all(torch.equal(i1[k], i2[k]) for k in i1)
    assert any(t.any() for _, _, _, t, _ in first)
    with pytest.raises(ValueError, match="num_envs, num_vehicles"):
        small(3).load_state_dict(state)


def test_the_same_seed_gives_the_same_episode_and_another_seed_another():
    def rollout(seed):
        env = small(2)
        obs, _ = env.reset(seed=seed)
        act = random_policy(0)
        return torch.stack([obs] + [env.step(act(obs))[0] for _ in range(5)])

    assert torch.equal(rollout(3), rollout(3)) and not torch.equal(rollout(3), rollout(4))


def test_bad_arguments_and_actions_are_refused_with_what_is_allowed():
    with pytest.raises(ValueError, match="unknown city 'paris'.*manhattan"):
        DispatchVecEnv(city="paris")
    with pytest.raises(ValueError, match="num_candidates = 0.*integer >= 1"):
        small(num_candidates=0)
    with pytest.raises(ValueError, match="capacity = 4.*1..3"):
        small(capacity=4)
    with pytest.raises(ValueError, match="replay_fraction"):
        small(replay_fraction=0.0)
    with pytest.raises(ValueError, match="4 zones, the city 'grid3x3' 9"):
        small(demand=DemandModel(rate=np.ones(4), od=np.full((4, 4), 0.25)))
    with pytest.raises(ValueError, match="unknown reward field.*threshold_min"):
        small(reward={"treshold_min": 30.0})
    env = small(2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(20, 4\); expected .* \(2, 20, 4\)"):
        env.step(torch.zeros(20, 4))
    with pytest.raises(ValueError, match="dtype torch.int64; expected floating-point"):
        env.step(torch.zeros((2, 20, 4), dtype=torch.int64))
    bad = torch.zeros(2, 20, 4)
    bad[1, 3, 2] = float("inf")
    with pytest.raises(ValueError, match=r"non-finite scores \(first at \[1, 3, 2\]"):
        env.step(bad)
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(options={"start_day": 1})
    assert small(city="grid2x3").city.num_zones == 6


def test_default_size_steps():
    env = DispatchVecEnv()  # the paper's scenario: 69 zones, 1000 vehicles, K = 8, ~150 orders per minute
    obs, info = env.reset(seed=0)
    assert obs.shape == (1, 1000, 8, 28) and env.city.num_zones == 69
    assert 100 < env.n_appeared.item() < 200 and info["vehicle_available"].float().mean() > 0.9
    for _ in range(2):
        obs, reward, _, _, info = env.step(greedy_policy()(obs))
        assert info["served"].item() > 50 and reward.item() > 0
    check_invariants(env)


def test_device_cpu():
    env = small(2, device="cpu")
    obs, info = env.reset(seed=0)
    obs, reward, _, _, info = env.step(greedy_policy()(obs))
    assert all(t.device.type == "cpu" for t in (obs, reward, info["pair_mask"], info["assigned"]))


@pytest.mark.gpu
def test_cuda_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    # no randomness after the reset (replayed trips, no leg noise): the CUDA env starts from the CPU env's state
    rng = np.random.default_rng(0)
    trips = TripRecords(minute=rng.integers(0, 10, 400), origin=rng.integers(0, 16, 400), destination=rng.integers(0, 16, 400),
                        minutes=10, start_minute=19 * 60)
    kw = {"city": grid_city(4, 4), "demand": trips, "replay_fraction": 1.0, "travel_noise": 0.0, "num_vehicles": 40}
    cpu, cuda = small(2, **kw), small(2, device="cuda", **kw)
    cpu.reset(seed=0)
    cuda.reset(seed=0)
    state = cpu.state_dict()
    state["generators"] = cuda.state_dict()["generators"]
    cuda.load_state_dict(state)
    act = greedy_policy()
    oc, og = cpu.last_observation, cuda.last_observation
    for _ in range(9):
        torch.testing.assert_close(og.cpu(), oc, rtol=1e-5, atol=1e-5)
        oc, rc, _, _, ic = cpu.step(act(oc))
        og, rg, _, _, ig = cuda.step(act(og))
        assert og.device.type == "cuda" and torch.equal(ig["assigned"].cpu(), ic["assigned"])
        torch.testing.assert_close(rg.cpu(), rc, rtol=1e-5, atol=1e-4)
    big = DispatchVecEnv(num_envs=4, device="cuda")  # the default scenario, a batch on the device
    obs, _ = big.reset(seed=0)
    for _ in range(3):
        obs, reward, _, _, info = big.step(act(obs))
    assert obs.device.type == "cuda" and (info["served"] > 0).all()
    check_invariants(big)
