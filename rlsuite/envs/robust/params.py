"""Physical parameters of existing environments, read and written in place.

A *backend* knows one kind of env: which parameters it has (``nominal``: name -> value at construction)
and how to set them (``apply(values)``, every parameter given, nominal or not, so that applying the
nominal values restores the env exactly). Backends keep a copy of the nominal arrays taken when they are
built and always write from that copy; nothing drifts over episodes.

- :class:`MujocoParams`: any Gymnasium MuJoCo env (``model`` of a ``MujocoEnv``): ``<body>_mass``,
  ``<geom>_friction``, ``<joint>_damping``, ``<actuator>_gear``, the global ``mass_scale``,
  ``friction_scale``, ``damping_scale``, ``gear_scale`` and ``gravity``.
- :class:`CartPoleParams`: Gymnasium's ``CartPole``: ``gravity``, ``cart_mass``, ``pole_mass``,
  ``pole_length``, ``force_mag``.
- :class:`PendulumParams`: Gymnasium's ``Pendulum`` and the single view of ``rlsuite/Pendulum-v0``:
  ``gravity``, ``pole_mass``, ``pole_length``, ``max_torque``.

The noise parameters every env has (``action_noise``, ``obs_noise``, ``action_delay``) are applied by
the wrapper (:mod:`rlsuite.envs.robust.wrapper`), not here; :data:`NOISE_PARAMETERS` names them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from rlsuite.core.registry import unknown_name_message

#: parameters every perturbed env has, with their nominal (off) values:
#: ``action_noise`` (Box: Gaussian std as a fraction of half the action range; Discrete: probability of a
#: uniformly random action), ``obs_noise`` (Gaussian std in observation units), ``action_delay`` (steps).
NOISE_PARAMETERS: dict[str, float] = {"action_noise": 0.0, "obs_noise": 0.0, "action_delay": 0.0}

#: parameters that must be whole numbers
INTEGER_PARAMETERS = frozenset({"action_delay"})


class ParamBackend(Protocol):
    """What the wrapper needs from a backend."""

    nominal: dict[str, float]

    def apply(self, values: Mapping[str, float]) -> None:
        """Set every parameter of ``nominal`` to ``values[name]``."""


def check_values(values: Mapping[str, Any], allowed: Mapping[str, float], where: str) -> dict[str, float]:
    """``values`` as floats after checking names and values.

    Raises:
        ValueError: an unknown name (with "did you mean" and the allowed names), a value that is not a
            finite number, a negative noise, mass, friction or damping, or a delay that is not a whole number.
    """
    out: dict[str, float] = {}
    for name, value in values.items():
        if name not in allowed:
            raise ValueError(unknown_name_message(f"perturbation parameter of {where}", str(name), allowed))
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"perturbation parameter {name!r} of {where}: got {value!r}, expected a number.") from None
        if not math.isfinite(v):
            raise ValueError(f"perturbation parameter {name!r} of {where}: got {v}, expected a finite number.")
        nonneg = ("_friction", "_damping", "_scale", "_noise", "gravity", "action_delay", "force_mag", "max_torque")
        if (name.endswith("_mass") or name in ("pole_length", "mass_scale")) and v <= 0:
            raise ValueError(f"perturbation parameter {name!r} of {where}: got {v}, must be > 0.")
        if name.endswith(nonneg) and v < 0:
            raise ValueError(f"perturbation parameter {name!r} of {where}: got {v}, must be >= 0.")
        if name in INTEGER_PARAMETERS and v != round(v):
            raise ValueError(f"perturbation parameter {name!r} of {where}: got {v}, must be a whole number of steps.")
        out[name] = v
    return out


def noise_defaults(action_noise: float, obs_noise: float, action_delay: int, perturbation: Mapping[str, Any] | None) -> dict[str, Any]:
    """The constructor's perturbation: ``perturbation`` plus the noise keywords that are set (refused when
    both give the same parameter)."""
    out = dict(perturbation or {})
    for name, value in (("action_noise", action_noise), ("obs_noise", obs_noise), ("action_delay", action_delay)):
        if value:
            if name in out and out[name] != value:
                raise ValueError(f"{name} given twice: {name}={value} and perturbation[{name!r}]={out[name]}; give it once.")
            out[name] = value
    return out


def _names(count: int, name_of: Any) -> list[tuple[int, str]]:
    """``(index, name)`` of the named elements (unnamed ones are reached through the global scales only)."""
    out = []
    for i in range(count):
        name = name_of(i)
        if name:
            out.append((i, name))
    return out


class MujocoParams:
    """Masses, friction, damping, gear and gravity of a MuJoCo model (``mujoco.MjModel``), set in place.

    Parameters (values in the model's units, SI for Gymnasium's envs):

    - ``<body>_mass`` (kg) for each named body; the body's inertia is scaled with its mass (same shape,
      denser material);
    - ``<geom>_friction``: the sliding friction coefficient of each named geom (MuJoCo uses the larger
      of the two geoms' coefficients in a contact);
    - ``<joint>_damping`` (N m s/rad or N s/m) for each named joint with degrees of freedom;
    - ``<actuator>_gear`` for each actuator (named by its own name, else by the joint it drives);
    - ``mass_scale``, ``friction_scale`` (all three friction coefficients of every geom),
      ``damping_scale``, ``gear_scale``: multiply every element, after the per-element values;
    - ``gravity`` (m/s^2): the magnitude of the gravity vector (its direction is kept).

    After a change the model's derived constants are recomputed (``mujoco.mj_setConst``).

    Args:
        model: the ``MjModel`` to perturb (of ``env.unwrapped.model``).
        data: its ``MjData`` (scratch space for ``mj_setConst``; the env's reset overwrites it).
    """

    def __init__(self, model: Any, data: Any) -> None:
        import mujoco

        self._mujoco = mujoco
        self.model, self.data = model, data
        m = model
        self._body = _names(m.nbody, lambda i: m.body(i).name if i > 0 else "")
        self._geom = _names(m.ngeom, lambda i: m.geom(i).name)
        self._joint = [(i, n) for i, n in _names(m.njnt, lambda i: m.joint(i).name) if _joint_dofs(m, i)]

        def actuator_name(i: int) -> str:
            if m.actuator(i).name:
                return m.actuator(i).name
            if int(m.actuator_trntype[i]) == int(mujoco.mjtTrn.mjTRN_JOINT):
                return m.joint(int(m.actuator_trnid[i, 0])).name
            return ""

        self._actuator = _names(m.nu, actuator_name)
        self._nominal_arrays = {
            "body_mass": m.body_mass.copy(),
            "body_inertia": m.body_inertia.copy(),
            "geom_friction": m.geom_friction.copy(),
            "dof_damping": m.dof_damping.copy(),
            "actuator_gear": m.actuator_gear.copy(),
            "gravity": m.opt.gravity.copy(),
        }
        nom = self._nominal_arrays
        self.nominal: dict[str, float] = {}
        for i, name in self._body:
            self.nominal[f"{name}_mass"] = float(nom["body_mass"][i])
        for i, name in self._geom:
            self.nominal[f"{name}_friction"] = float(nom["geom_friction"][i, 0])
        for i, name in self._joint:
            self.nominal[f"{name}_damping"] = float(nom["dof_damping"][_joint_dofs(m, i)[0]])
        for i, name in self._actuator:
            self.nominal[f"{name}_gear"] = float(nom["actuator_gear"][i, 0])
        self.nominal.update(mass_scale=1.0, friction_scale=1.0, damping_scale=1.0, gear_scale=1.0,
                            gravity=float(np.linalg.norm(nom["gravity"])))
        self._current: dict[str, float] | None = None

    def apply(self, values: Mapping[str, float]) -> None:
        """Write ``values`` (every parameter of :attr:`nominal`) into the model."""
        if self._current == values:
            return
        m, nom = self.model, self._nominal_arrays
        mass = nom["body_mass"].copy()
        for i, name in self._body:
            mass[i] = values[f"{name}_mass"]
        mass *= values["mass_scale"]
        ratio = np.divide(mass, nom["body_mass"], out=np.ones_like(mass), where=nom["body_mass"] > 0)
        m.body_mass[:] = mass
        m.body_inertia[:] = nom["body_inertia"] * ratio[:, None]
        friction = nom["geom_friction"].copy()
        for i, name in self._geom:
            friction[i, 0] = values[f"{name}_friction"]
        m.geom_friction[:] = friction * values["friction_scale"]
        damping = nom["dof_damping"].copy()
        for i, name in self._joint:
            damping[_joint_dofs(m, i)] = values[f"{name}_damping"]
        m.dof_damping[:] = damping * values["damping_scale"]
        gear = nom["actuator_gear"].copy()
        for i, name in self._actuator:
            gear[i, 0] = values[f"{name}_gear"]
        gear[:, 0] *= values["gear_scale"]
        m.actuator_gear[:] = gear
        g0 = nom["gravity"]
        norm = float(np.linalg.norm(g0))
        m.opt.gravity[:] = g0 * (values["gravity"] / norm) if norm > 0 else np.array([0.0, 0.0, -values["gravity"]])
        self._mujoco.mj_setConst(m, self.data)
        self._current = dict(values)


def _joint_dofs(m: Any, j: int) -> list[int]:
    """The dof indices of joint ``j`` (free: 6, ball: 3, slide/hinge: 1)."""
    start = int(m.jnt_dofadr[j])
    if start < 0:
        return []
    end = int(m.jnt_dofadr[j + 1]) if j + 1 < m.njnt else m.nv
    return list(range(start, end))


class CartPoleParams:
    """Gymnasium's CartPole: ``gravity`` (m/s^2), ``cart_mass``, ``pole_mass`` (kg), ``pole_length`` (m, the
    whole pole; Gymnasium stores half of it) and ``force_mag`` (N, the push of either action)."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.nominal = {"gravity": float(env.gravity), "cart_mass": float(env.masscart), "pole_mass": float(env.masspole),
                        "pole_length": 2.0 * float(env.length), "force_mag": float(env.force_mag)}

    def apply(self, values: Mapping[str, float]) -> None:
        e = self.env
        e.gravity, e.masscart, e.masspole, e.force_mag = values["gravity"], values["cart_mass"], values["pole_mass"], values["force_mag"]
        e.length = values["pole_length"] / 2.0
        e.total_mass = e.masspole + e.masscart  # the derived constants CartPole keeps
        e.polemass_length = e.masspole * e.length


class PendulumParams:
    """A pendulum: ``gravity`` (m/s^2), ``pole_mass`` (kg), ``pole_length`` (m) and ``max_torque`` (N m, the
    motor's limit: actions beyond it are clipped; above the action space's bound it changes nothing).

    Args:
        target: the object holding the constants: Gymnasium's ``PendulumEnv`` (``g``, ``m``, ``l``,
            ``max_torque``) or rlsuite's ``PendulumVecEnv`` (``g``, ``mass``, ``length``, ``max_torque``).
        attrs: the attribute names for gravity, mass and length on ``target``.
    """

    def __init__(self, target: Any, attrs: tuple[str, str, str]) -> None:
        self.target, self.attrs = target, attrs
        g, m, length = (float(getattr(target, a)) for a in attrs)
        self.nominal = {"gravity": g, "pole_mass": m, "pole_length": length, "max_torque": float(target.max_torque)}

    def apply(self, values: Mapping[str, float]) -> None:
        for attr, name in zip(self.attrs, ("gravity", "pole_mass", "pole_length"), strict=True):
            setattr(self.target, attr, float(values[name]))
        self.target.max_torque = float(values["max_torque"])


class NoParams:
    """An env without known physics: only the noise parameters apply."""

    nominal: dict[str, float] = {}

    def apply(self, values: Mapping[str, float]) -> None:
        return None


def backend_for(env: gym.Env) -> ParamBackend:
    """The backend for ``env`` (looked up on ``env.unwrapped``); :class:`NoParams` for an unknown kind."""
    base = env.unwrapped
    try:
        from gymnasium.envs.mujoco.mujoco_env import MujocoEnv
    except ImportError:  # pragma: no cover - MuJoCo is a core dependency
        MujocoEnv = ()  # type: ignore[assignment,misc]
    from gymnasium.envs.classic_control.cartpole import CartPoleEnv
    from gymnasium.envs.classic_control.pendulum import PendulumEnv as GymPendulum

    from rlsuite.envs.pendulum import PendulumEnv as OurPendulum

    if MujocoEnv and isinstance(base, MujocoEnv):
        return MujocoParams(base.model, base.data)
    if isinstance(base, CartPoleEnv):
        return CartPoleParams(base)
    if isinstance(base, GymPendulum):
        return PendulumParams(base, ("g", "m", "l"))
    if isinstance(base, OurPendulum):
        return PendulumParams(base._vec, ("g", "mass", "length"))
    return NoParams()


def merged(nominal: Mapping[str, float], *layers: Mapping[str, float] | None) -> dict[str, float]:
    """``nominal`` updated by each layer in turn (``None`` layers skipped)."""
    out = dict(nominal)
    for layer in layers:
        if layer:
            out.update(layer)
    return out


def changed(values: Mapping[str, float], nominal: Mapping[str, float], keys: Iterable[str] | None = None) -> dict[str, float]:
    """The entries of ``values`` that differ from ``nominal`` (restricted to ``keys`` when given)."""
    keys = values.keys() if keys is None else keys
    return {k: float(values[k]) for k in keys if values[k] != nominal.get(k)}
