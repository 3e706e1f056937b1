"""The dispatch simulator (DispatchVecEnv): conservation of orders, vehicles and seats, candidates and masks, the
optimal matching, expiry, the reward by hand, trip replay, batched equals single, exact resume, errors, devices."""

from __future__ import annotations

import itertools
import logging
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
    """Every order in exactly one place, seats within bounds, every vehicle in one zone with eta >= 0."""
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
    for e in range(env.num_envs):
        uids = torch.cat([env.pool_uid[e][env.pool_active[e]], env.seat_uid[e][st[e] != EMPTY]])
        assert uids.unique().numel() == uids.numel() and (uids >= 0).all()  # no order in two places


def test_spaces_observation_layout_and_candidates():
    env = small(2, num_vehicles=30, orders_per_minute=12.0)
    obs, info = env.reset(seed=0)
    assert obs.shape == (2, 30, 4, 28) and obs.dtype == torch.float32
    assert env.single_observation_space.shape == (30, 4, 28) and env.single_action_space.shape == (30, 4)
    mask = info["pair_mask"]
    assert mask.dtype == torch.bool and torch.equal(info["vehicle_available"], mask.any(-1))
    for _ in range(4):  # some vehicles busy, some orders old
        obs, _, _, _, info = env.step(greedy_policy()(obs))
        mask = info["pair_mask"]
        eta = obs[..., PICKUP_ETA] * 60
        assert (obs[..., CANDIDATE_FEATURES][~mask] == 0).all() and (eta[mask] > 0).all() and (eta[mask] <= 20.0 + 1e-4).all()
        assert (mask[..., 1:] <= mask[..., :-1]).all()  # feasible pairs first (nearest first)
        assert (torch.where(mask[..., 1:], eta[..., 1:] - eta[..., :-1], 0.0) >= 0).all()
        free = (env.seat_status == EMPTY).any(-1) & ~(env.seat_status == TO_PICKUP).any(-1)
        assert (free | ~info["vehicle_available"]).all()
        travel = torch.as_tensor(env.city.travel_minutes(env.start_minute + env.t), dtype=torch.float32)
        for e in range(2):
            slots = env._cand_slot[e][mask[e]]
            assert env.pool_active[e, slots].all()
            for v in range(30):
                if not free[e, v]:
                    assert not mask[e, v].any()
                    continue
                # brute force: the K smallest ETAs among all open orders within max_pickup_minutes
                open_origin = env.pool_origin[e][env.pool_active[e]]
                all_eta = (env.eta[e, v] + travel[env.loc[e, v], open_origin]).sort().values
                best = all_eta[all_eta <= 20.0][:4]
                torch.testing.assert_close(eta[e, v][mask[e, v]], best, rtol=0, atol=1e-4)
                assert slots.numel() == 0 or env._cand_slot[e, v][mask[e, v]].unique().numel() == int(mask[e, v].sum())
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


def hand_built(threshold_min: float = 40.0) -> tuple[DispatchVecEnv, torch.Tensor]:
    """One vehicle on a 1 x 3 grid (zones 0, 1, 2 at x = 0, 1, 2 km), at 03:00 (speed factor 1 until 04:00), no noise.

    Travel (detour 1.3, 18 km/h): neighbours 1.3 km = 4.3333 min, two apart 2.6 km = 8.6667 min, inside a zone
    0.65 km = 2.1667 min. The vehicle drives to zone 0 (1 minute left) to drop order A (seat 0); order C (seat 1)
    is on board since 5 minutes ago, bound for zone 2. Order B appears at zone 1, bound for zone 1.
    """
    trips = TripRecords(minute=np.array([0]), origin=np.array([1]), destination=np.array([1]), minutes=3, start_minute=180)
    env = DispatchVecEnv(city=grid_city(1, 3), demand=trips, num_vehicles=1, num_candidates=2, horizon=3, travel_noise=0.0,
                         replay_fraction=1.0, reward=RewardConfig(threshold_min=threshold_min))
    env.reset(seed=0)
    state = env.state_dict()
    state["loc"][0, 0], state["eta"][0, 0], state["target"][0, 0] = 0, 1.0, 0
    state["seat_status"][0, 0, :2] = ONBOARD
    state["seat_origin"][0, 0, :2] = torch.tensor([2, 0])
    state["seat_dest"][0, 0, :2] = torch.tensor([0, 2])
    state["seat_uid"][0, 0, :2] = torch.tensor([100, 101])
    state["seat_picked"][0, 0, :2] = -5.0
    state["seat_direct"][0, 0, :2] = torch.tensor([8.6667, 8.6667])
    env.load_state_dict(state)
    return env, env.last_observation


def test_the_reward_of_a_hand_built_match():
    env, obs = hand_built(threshold_min=2.0)
    assert env._pair_mask[0, 0].tolist() == [True, False]
    # pickup ETA = 1 (to zone 0) + 4.3333 (0 -> 1) = 5.3333
    assert obs[0, 0, 0, PICKUP_ETA].item() * 60 == pytest.approx(5.33333, rel=1e-5)
    # old plan: A at 1, C at 1 + 8.6667 = 9.6667. New plan: A at 1, pick B at 5.3333, then the best order of {B, C}:
    # B first: B at 5.3333 + 2.1667 = 7.5, C at 7.5 + 4.3333 = 11.8333 (sum 19.33); C first: 9.6667, 14.0 (sum 23.67).
    # added = (11.8333 - 9.6667) for C + B's detour (7.5 - 5.3333) - 2.1667 = 2.1667 + 0 = 2.1667 minutes.
    # Threshold 2 min: A (5 + 1 = 6 min), C (5 + 11.83) and B (2.1667 min in the vehicle) all exceed it: n_over = 3.
    # r = 3 + 1 * 0.65 km - 3 * 5.3333 / 60 - 1 * 3 - 3 * 2.1667 / 60 - 5 * (2.1667 - 2) / 60
    #   = 3 + 0.65 - 0.266667 - 3 - 0.108333 - 0.013889 = 0.261111
    _, reward, _, _, info = env.step(torch.tensor([[[1.0, 0.0]]]))
    assert info["assigned"].tolist() == [[0]]
    assert reward.item() == pytest.approx(0.261111, abs=1e-5) and info["vehicle_reward"].item() == reward.item()
    assert info["pickup_minutes"].item() == pytest.approx(5.33333, rel=1e-5)
    # the paper's threshold (40 min): no long trips, no excess: r = 3 + 0.65 - 0.266667 - 0.108333 = 3.275
    env, _ = hand_built()
    assert env.step(torch.tensor([[[1.0, 0.0]]]))[1].item() == pytest.approx(3.275, abs=1e-5)


def test_the_plan_executes_as_observed_without_noise():
    env, obs = hand_built()
    env.step(torch.tensor([[[1.0, 0.0]]]))  # minute 1: A dropped at minute 1 (1 min left), then on to B at zone 1
    assert env.n_delivered.item() == 1 and env.sum_delivery.item() == pytest.approx(6.0)  # A: on board from -5 to 1
    assert env.target.item() == 2 and env.loc.item() == 1 and env.eta.item() == pytest.approx(4.33333, rel=1e-5)
    obs = env.last_observation
    # seats: C (seat 1) drop-off planned at 11.8333 - 1 = 10.8333 min from now; B (seat 2) at 7.5 - 1 = 6.5
    assert obs[0, 0, 0, 8 + 5 + 2].item() * 60 == pytest.approx(10.8333, rel=1e-4)
    assert obs[0, 0, 0, 8 + 10 + 2].item() * 60 == pytest.approx(6.5, rel=1e-4)
    assert obs[0, 0, 0, 3].item() * 60 == pytest.approx(4.33333, rel=1e-4)  # minutes to the pending pickup


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
