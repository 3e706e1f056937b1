"""Perturbed single envs: MuJoCo model fields and classic-control constants really change, are restored
between episodes, and the same seed and parameters replay the same episode."""

import gymnasium as gym
import numpy as np
import pytest

import rlsuite  # noqa: F401  (registers rlsuite/Perturbed-v0)
from rlsuite.core.registry import UnknownNameError
from rlsuite.envs.robust import UNCERTAINTY_SETS, PerturbedEnv, sets_for

MODEL_FIELDS = ("body_mass", "body_inertia", "geom_friction", "dof_damping", "actuator_gear", "body_subtreemass", "dof_invweight0")


def _model(env: PerturbedEnv):
    return env.env.unwrapped.model


def _snapshot(model) -> dict[str, np.ndarray]:
    return {**{f: getattr(model, f).copy() for f in MODEL_FIELDS}, "gravity": model.opt.gravity.copy()}


def test_hopper_fields_are_set_read_back_and_restored():
    env = PerturbedEnv("Hopper-v5")
    m = _model(env)
    pristine = _snapshot(gym.make("Hopper-v5").unwrapped.model)
    torso, floor = m.body("torso").id, m.geom("floor").id
    dof = int(m.jnt_dofadr[m.joint("leg_joint").id])
    act = [i for i in range(m.nu) if m.actuator_trnid[i, 0] == m.joint("foot_joint").id][0]
    p = {"torso_mass": 7.0, "floor_friction": 0.3, "leg_joint_damping": 4.0, "foot_joint_gear": 150.0, "gravity": 5.0}
    _, info = env.reset(seed=0, options={"perturbation": p})
    assert info["perturbation"] == p
    assert m.body_mass[torso] == 7.0
    np.testing.assert_allclose(m.body_inertia[torso], pristine["body_inertia"][torso] * 7.0 / pristine["body_mass"][torso])
    assert m.geom_friction[floor, 0] == 0.3 and m.geom_friction[floor, 1] == pristine["geom_friction"][floor, 1]
    assert m.dof_damping[dof] == 4.0
    assert m.actuator_gear[act, 0] == 150.0
    np.testing.assert_allclose(m.opt.gravity, [0.0, 0.0, -5.0])
    assert m.body_subtreemass[0] != pristine["body_subtreemass"][0]  # derived constants follow (mj_setConst)
    *_, step_info = env.step(env.action_space.sample())
    assert step_info["perturbation"] == p

    # global scales multiply every element, after the per-element values
    env.reset(seed=0, options={"perturbation": {"torso_mass": 2.0, "mass_scale": 1.5, "friction_scale": 0.5}})
    assert m.body_mass[torso] == 3.0
    np.testing.assert_allclose(m.body_mass[2:], pristine["body_mass"][2:] * 1.5)
    np.testing.assert_allclose(m.geom_friction, pristine["geom_friction"] * 0.5)

    # no perturbation: every field back to the nominal model, bit for bit
    _, info = env.reset(seed=1)
    assert info["perturbation"] == {}
    for k, v in _snapshot(m).items():
        assert np.array_equal(v, pristine[k]), k


@pytest.mark.parametrize("env_id", ["Hopper-v5", "HalfCheetah-v5", "Walker2d-v5", "Ant-v5", "InvertedPendulum-v5"])
def test_every_mujoco_family_has_sets_that_change_its_model(env_id):
    env = PerturbedEnv(env_id)
    names = sets_for(env_id)
    assert len(names) >= 2
    m = _model(env)
    for name in names:
        s = UNCERTAINTY_SETS.get(name)
        assert set(s.names) <= set(env.perturbation_parameters), name
        assert 1 <= len(s.dims) <= 3
        before = _snapshot(m)
        _, info = env.reset(seed=0, options={"perturbation": s.point(s.sample(1, np.random.default_rng(0))[0])})
        assert any(not np.array_equal(v, before[k]) for k, v in _snapshot(m).items()), name
        assert set(info["perturbation"]) == set(s.names)
    # the nominal values bracketed by the default set are the model's own
    s = UNCERTAINTY_SETS.get(names[0])
    for d in s.dims:
        assert d.low <= env.perturbation_parameters[d.name] <= d.high, (name, d)


def _rollout(env, seed, actions, options=None):
    obs, _ = env.reset(seed=seed, options=options)
    out = [obs]
    for a in actions:
        obs, *_ = env.step(a)
        out.append(obs)
    return np.stack(out)


def test_same_seed_and_parameters_give_the_same_episode_bit_for_bit():
    kw = {"action_noise": 0.2, "obs_noise": 0.01, "action_delay": 2}
    a, b = PerturbedEnv("Hopper-v5", **kw), PerturbedEnv("Hopper-v5", **kw)
    actions = np.random.default_rng(0).uniform(-1, 1, (40, 3)).astype(np.float32)
    opts = {"perturbation": {"torso_mass": 5.0, "friction_scale": 0.7}}
    ra, rb = _rollout(a, 3, actions, opts), _rollout(b, 3, actions, opts)
    assert np.array_equal(ra, rb)
    assert np.array_equal(ra, _rollout(a, 3, actions, opts))  # the same env again after other episodes
    assert not np.array_equal(ra, _rollout(a, 4, actions, opts))  # another seed
    heavier = _rollout(a, 3, actions, {"perturbation": {"torso_mass": 6.0, "friction_scale": 0.7}})
    assert not np.array_equal(ra, heavier)  # the physics matter


def test_perturbed_mujoco_changes_the_trajectory_but_not_the_start():
    env = PerturbedEnv("InvertedPendulum-v5")
    actions = np.full((20, 1), 0.5, dtype=np.float32)
    nominal = _rollout(env, 0, actions)
    heavy = _rollout(env, 0, actions, {"perturbation": {"pole_mass": 15.0}})
    assert np.array_equal(nominal[0], heavy[0])
    assert np.abs(nominal[-1] - heavy[-1]).max() > 1e-3
    assert np.array_equal(nominal, _rollout(env, 0, actions))  # restored


def test_cartpole_constants_change_the_dynamics_and_come_back():
    env = PerturbedEnv("CartPole-v1")
    base = env.env.unwrapped
    actions = [1] * 6
    nominal = _rollout(env, 0, actions)
    p = {"pole_length": 3.0, "pole_mass": 0.5, "force_mag": 5.0, "gravity": 20.0, "cart_mass": 2.0}
    _, info = env.reset(seed=0, options={"perturbation": p})
    assert (base.length, base.masspole, base.force_mag, base.gravity, base.masscart) == (1.5, 0.5, 5.0, 20.0, 2.0)
    assert base.total_mass == 2.5 and base.polemass_length == 0.75
    changed = _rollout(env, 0, actions, {"perturbation": p})
    assert np.array_equal(nominal[0], changed[0]) and not np.allclose(nominal[-1], changed[-1])
    env.reset(seed=0)
    assert (base.length, base.masspole, base.total_mass, base.polemass_length) == (0.5, 0.1, 1.1, 0.05)


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "rlsuite/Pendulum-v0"])
def test_pendulum_step_follows_the_perturbed_equation(env_id):
    # thdot' = thdot + (3 g / (2 l) sin th + 3 / (m l^2) u) dt, u clipped to max_torque; dt = 0.05
    # th = 0.5, thdot = 0.2, g = 5, m = 2, l = 0.5, u = 1.5 clipped to 1.2:
    # thdot' = 0.2 + (15 sin 0.5 + 24 * 1.2) * 0.05 = 0.2 + (7.19138 + 28.8) * 0.05 = 1.99957
    env = PerturbedEnv(env_id)
    p = {"gravity": 5.0, "pole_mass": 2.0, "pole_length": 0.5, "max_torque": 1.2}
    if env_id == "Pendulum-v1":
        env.reset(seed=0, options={"perturbation": p})
        env.env.unwrapped.state = np.array([0.5, 0.2])
    else:
        env.reset(seed=0, options={"perturbation": p, "state": [0.5, 0.2]})
    obs, reward, *_ = env.step(np.array([1.5], dtype=np.float32))
    thdot = 0.2 + (3 * 5.0 / (2 * 0.5) * np.sin(0.5) + 3 / (2.0 * 0.25) * 1.2) * 0.05
    assert obs[2] == pytest.approx(thdot, abs=1e-5)
    assert np.arctan2(obs[1], obs[0]) == pytest.approx(0.5 + thdot * 0.05, abs=1e-5)
    assert reward == pytest.approx(-(0.25 + 0.1 * 0.04 + 0.001 * 1.2**2), abs=1e-5)


def test_noise_and_delay():
    # delay 2: the first two steps apply the neutral action (zero torque), then the actions of two steps before
    delayed, plain = PerturbedEnv("Pendulum-v1", action_delay=2), PerturbedEnv("Pendulum-v1")
    acts = [np.array([a], dtype=np.float32) for a in (2.0, -1.0, 0.5, 1.0, -2.0)]
    zero = np.zeros(1, dtype=np.float32)
    assert np.allclose(_rollout(delayed, 5, acts), _rollout(plain, 5, [zero, zero, *acts[:3]]))
    # observation noise: the noiseless trajectory plus noise of about the std asked for
    noisy = PerturbedEnv("Pendulum-v1", obs_noise=0.05)
    diff = _rollout(noisy, 5, acts * 40) - _rollout(plain, 5, acts * 40)
    assert 0.03 < diff.std() < 0.07
    # discrete action noise is a random-action probability, at most 1
    with pytest.raises(ValueError, match="probability"):
        PerturbedEnv("CartPole-v1", action_noise=1.5)
    cart = PerturbedEnv("CartPole-v1", perturbation={"action_noise": 1.0})
    cart.reset(seed=0)
    with_noise = _rollout(cart, 0, [0] * 8)
    assert not np.array_equal(with_noise, _rollout(PerturbedEnv("CartPole-v1"), 0, [0] * 8))


def test_domain_randomisation_draws_inside_the_set_every_episode_and_reset_overrides_it():
    env = gym.make("rlsuite/Perturbed-v0", env="Hopper-v5", domain_rand="hopper-mass-friction")
    seen = []
    _, info = env.reset(seed=0)
    for _ in range(4):
        seen.append(info["perturbation"])
        assert 1.0 <= info["perturbation"]["torso_mass"] <= 7.0 and 0.25 <= info["perturbation"]["friction_scale"] <= 2.0
        assert env.unwrapped.env.unwrapped.model.body("torso").mass[0] == info["perturbation"]["torso_mass"]
        _, info = env.reset()
    assert len({p["torso_mass"] for p in seen}) == 4
    _, again = env.reset(seed=0)
    assert again["perturbation"] == seen[0]  # seeded
    _, info = env.reset(options={"perturbation": {"torso_mass": 2.0}})
    assert info["perturbation"] == {"torso_mass": 2.0}


def test_unknown_names_and_bad_values_are_refused_with_what_is_allowed():
    env = PerturbedEnv("Hopper-v5")
    with pytest.raises(ValueError, match=r"unknown perturbation parameter of Hopper-v5 'torso_mas'\. Did you mean 'torso_mass'\?") as e:
        env.reset(options={"perturbation": {"torso_mas": 1.0}})
    assert "friction_scale" in str(e.value) and "gravity" in str(e.value)
    with pytest.raises(ValueError, match="'torso_mass' of Hopper-v5: got -1.0, must be > 0"):
        env.reset(options={"perturbation": {"torso_mass": -1.0}})
    with pytest.raises(ValueError, match="whole number"):
        env.reset(options={"perturbation": {"action_delay": 1.5}})
    with pytest.raises(ValueError, match="expected a number"):
        env.reset(options={"perturbation": {"gravity": "high"}})
    with pytest.raises(UnknownNameError, match=r"Did you mean 'hopper-mass-friction'\?.*Sets for Hopper-v5: hopper-mass-friction"):
        PerturbedEnv("Hopper-v5", domain_rand="hoper-mass-friction")
    with pytest.raises(ValueError, match="varies pole_length, which Hopper-v5 does not have. Sets made for it: hopper-mass-friction.*Its parameters: .*torso_mass"):
        PerturbedEnv("Hopper-v5", domain_rand="cartpole-length")
    with pytest.raises(ValueError, match="action_noise given twice"):
        PerturbedEnv("Pendulum-v1", perturbation={"action_noise": 0.1}, action_noise=0.2)
