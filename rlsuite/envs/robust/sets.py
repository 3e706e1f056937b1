"""Uncertainty sets: named boxes of perturbation parameters (1 to 3 dimensions), per env family.

A set is what robust evaluation sweeps (a grid over the box, or random points in it) and what domain
randomisation samples from (uniformly, at every episode start). Each dimension names a perturbation
parameter of the env (see :mod:`rlsuite.envs.robust.params`) and its range in that parameter's units.

Named sets are registered in :data:`UNCERTAINTY_SETS` (``rlsuite.envs.robust.list_sets()`` lists them);
an env family's first set is its default. A set can also be written inline, ``"torso_mass=1:7,
friction_scale=0.25:2"`` (``name=low:high`` per dimension), wherever a set name is taken. Other env
packages register their own sets with :func:`register_uncertainty_set`.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Mapping

import numpy as np

from rlsuite.core.registry import Registry, UnknownNameError, unknown_name_message
from rlsuite.envs.robust.params import INTEGER_PARAMETERS


@dataclasses.dataclass(frozen=True)
class Dim:
    """One dimension of an uncertainty set: a perturbation parameter and its range."""

    name: str
    """the perturbation parameter (e.g. ``torso_mass``)"""
    low: float
    """smallest value (in the parameter's units)"""
    high: float
    """largest value"""

    def __post_init__(self) -> None:
        if not (np.isfinite(self.low) and np.isfinite(self.high)) or self.low > self.high:
            raise ValueError(f"dimension {self.name!r}: got low={self.low}, high={self.high}; need finite low <= high.")
        if self.integer and (self.low != round(self.low) or self.high != round(self.high)):
            raise ValueError(f"dimension {self.name!r} takes whole numbers: got low={self.low}, high={self.high}.")

    @property
    def integer(self) -> bool:
        """Whether the parameter takes whole numbers (``action_delay``)."""
        return self.name in INTEGER_PARAMETERS

    def axis(self, n: int) -> np.ndarray:
        """``n`` evenly spaced values from ``low`` to ``high`` (whole numbers: rounded, duplicates dropped)."""
        if n < 1:
            raise ValueError(f"a grid needs at least 1 point per dimension, got {n}.")
        values = np.linspace(self.low, self.high, n) if n > 1 else np.array([(self.low + self.high) / 2])
        return np.unique(np.round(values)) if self.integer else values


@dataclasses.dataclass(frozen=True)
class UncertaintySet:
    """A box of perturbation parameters."""

    name: str
    """registry name (``hopper-mass-friction``) or the inline text it was parsed from"""
    dims: tuple[Dim, ...]
    """1 to 3 dimensions, distinct parameters"""
    envs: tuple[str, ...] = ()
    """env families it is made for (``Hopper``, ``rlsuite/Pendulum``; see :func:`env_family`); empty: any env"""
    description: str = ""
    """one line for listings"""

    def __post_init__(self) -> None:
        if not 1 <= len(self.dims) <= 3:
            raise ValueError(f"uncertainty set {self.name!r}: {len(self.dims)} dimensions; allowed: 1 to 3.")
        names = [d.name for d in self.dims]
        if len(set(names)) != len(names):
            raise ValueError(f"uncertainty set {self.name!r} names a parameter twice: {names}.")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dims)

    def grid(self, n: int) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """The Cartesian grid with ``n`` values per dimension.

        Returns:
            ``(points, axes)``: ``points`` ``(P, D)`` in C order (the last dimension varies fastest, so
            ``values.reshape([len(a) for a in axes])`` is the grid), ``axes`` the values of each dimension.
        """
        axes = tuple(d.axis(n) for d in self.dims)
        points = np.array(list(itertools.product(*axes)), dtype=np.float64).reshape(-1, len(self.dims))
        return points, axes

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``(n, D)`` points drawn uniformly from the box (whole-number parameters uniformly among their values)."""
        out = np.empty((n, len(self.dims)), dtype=np.float64)
        for j, d in enumerate(self.dims):
            if d.integer:
                out[:, j] = rng.integers(int(d.low), int(d.high) + 1, size=n)
            else:
                out[:, j] = rng.uniform(d.low, d.high, size=n)
        return out

    def point(self, values: np.ndarray) -> dict[str, float]:
        """``{parameter: value}`` of one point ``(D,)``."""
        return {d.name: float(v) for d, v in zip(self.dims, values, strict=True)}

    def describe(self) -> str:
        """``torso_mass in [1, 7] x friction_scale in [0.25, 2]``."""
        return " x ".join(f"{d.name} in [{d.low:g}, {d.high:g}]" for d in self.dims)


UNCERTAINTY_SETS: Registry[UncertaintySet] = Registry("uncertainty set")
_ORDER: list[str] = []  # registration order (the registry lists names sorted; a family's default is its first set)


def register_uncertainty_set(s: UncertaintySet) -> UncertaintySet:
    """Add a named set (the first set registered for an env family is that family's default)."""
    UNCERTAINTY_SETS.register(s.name, s)
    _ORDER.append(s.name)
    return s


def env_family(env_id: str) -> str:
    """The env id without its version: ``Hopper-v5`` -> ``Hopper``, ``rlsuite/Pendulum-v0`` -> ``rlsuite/Pendulum``."""
    return re.sub(r"-v\d+$", "", env_id)


def sets_for(env_id: str) -> list[str]:
    """Names of the sets made for ``env_id``'s family, default first (sets for any env not included)."""
    fam = env_family(env_id)
    return [n for n in _ORDER if fam in UNCERTAINTY_SETS.get(n).envs]


_INLINE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*([-+0-9.eE]+)\s*:\s*([-+0-9.eE]+)\s*$")


def parse_inline(text: str) -> UncertaintySet:
    """An inline set, ``"name=low:high[,name=low:high]"`` (1 to 3 parts).

    Raises:
        ValueError: a part that is not ``name=low:high`` (the message shows the form).
    """
    dims = []
    for part in text.split(","):
        m = _INLINE.match(part)
        if not m:
            raise ValueError(f"cannot read {part.strip()!r} of the uncertainty set {text!r}: write each dimension as "
                             "name=low:high, separated by commas (e.g. torso_mass=1:7,friction_scale=0.25:2).")
        try:
            dims.append(Dim(m.group(1), float(m.group(2)), float(m.group(3))))
        except ValueError as e:
            if "could not convert" in str(e):
                raise ValueError(f"cannot read the numbers of {part.strip()!r} in the uncertainty set {text!r}.") from None
            raise
    return UncertaintySet(text.strip(), tuple(dims))


def get_uncertainty_set(name: str | UncertaintySet, env_id: str | None = None) -> UncertaintySet:
    """A registered set by name, an inline set (text with ``=``), or ``name`` itself when it is a set.

    Raises:
        UnknownNameError: an unknown name; the message suggests a close name and lists the sets made for
            ``env_id`` (all sets when ``env_id`` is not given) and the inline form.
    """
    if isinstance(name, UncertaintySet):
        return name
    if "=" in name:
        return parse_inline(name)
    if name in UNCERTAINTY_SETS:
        return UNCERTAINTY_SETS.get(name)
    known = UNCERTAINTY_SETS.names()
    hint = "Or give a set inline: name=low:high[,name=low:high] (rlsuite.envs.robust.list_sets() describes each set)."
    if env_id is not None:
        mine = sets_for(env_id) + [n for n in _ORDER if not UNCERTAINTY_SETS.get(n).envs]
        hint = f"Sets for {env_id}: {', '.join(mine) or 'none'}. " + hint
    raise UnknownNameError(unknown_name_message("uncertainty set", name, known, hint=hint))


def default_set(env_id: str) -> UncertaintySet:
    """The default set of ``env_id``'s family.

    Raises:
        ValueError: the family has no named set (the message says how to give one).
    """
    mine = sets_for(env_id)
    if not mine:
        anyenv = [n for n in _ORDER if not UNCERTAINTY_SETS.get(n).envs]
        raise ValueError(f"no uncertainty set is made for {env_id}; name one (sets for any env: {', '.join(anyenv)}) or give "
                         "one inline: --set name=low:high[,name=low:high] with the env's perturbation parameters.")
    return UNCERTAINTY_SETS.get(mine[0])


def check_set(s: UncertaintySet, allowed: Mapping[str, float], where: str) -> None:
    """Refuse a set that names a parameter ``where`` does not have (the message lists those it has)."""
    missing = [n for n in s.names if n not in allowed]
    if missing:
        mine = sets_for(where)
        made = f" Sets made for it: {', '.join(mine)}." if mine else ""
        raise ValueError(f"uncertainty set {s.name!r} varies {', '.join(missing)}, which {where} does not have.{made} "
                         f"Its parameters: {', '.join(allowed)}.")


def list_sets() -> list[str]:
    """One line per registered set, in registration order: ``name  [envs]  box  (description)``."""
    out = []
    for n in _ORDER:
        s = UNCERTAINTY_SETS.get(n)
        out.append(f"{n}  [{', '.join(s.envs) or 'any env'}]  {s.describe()}" + (f"  ({s.description})" if s.description else ""))
    return out


def _set(name: str, envs: tuple[str, ...], description: str, *dims: tuple[str, float, float]) -> None:
    register_uncertainty_set(UncertaintySet(name, tuple(Dim(*d) for d in dims), envs, description))


# ---------------------------------------------------------------------------------------------- the named sets
# Ranges bracket each model's nominal value (Gymnasium v5 models: Hopper torso 3.67 kg, thigh 4.06 kg;
# HalfCheetah torso 6.25 kg, back thigh 1.54 kg; Walker2d torso 3.67 kg, thigh 4.06 kg; Ant torso 0.33 kg,
# legs 0.039 kg; InvertedPendulum pole 5.02 kg, cart 10.5 kg; CartPole pole 0.1 kg, 1 m, cart 1 kg,
# force 10 N; Pendulum 1 kg, 1 m, g 10, 2 N m). Each family's first set (2-D) is its default.
_FRICTION = ("friction_scale", 0.25, 2.0)
_set("hopper-mass-friction", ("Hopper",), "torso mass and contact friction", ("torso_mass", 1.0, 7.0), _FRICTION)
_set("hopper-friction", ("Hopper",), "contact friction", _FRICTION)
_set("hopper-mass-friction-thigh", ("Hopper",), "torso and thigh mass, contact friction",
     ("torso_mass", 1.0, 7.0), _FRICTION, ("thigh_mass", 1.0, 8.0))
_set("halfcheetah-mass-friction", ("HalfCheetah",), "torso mass and contact friction", ("torso_mass", 1.0, 12.0), _FRICTION)
_set("halfcheetah-friction", ("HalfCheetah",), "contact friction", _FRICTION)
_set("halfcheetah-mass-friction-bthigh", ("HalfCheetah",), "torso and back-thigh mass, contact friction",
     ("torso_mass", 1.0, 12.0), _FRICTION, ("bthigh_mass", 0.5, 3.0))
_set("walker2d-mass-friction", ("Walker2d",), "torso mass and contact friction", ("torso_mass", 1.0, 7.0), _FRICTION)
_set("walker2d-friction", ("Walker2d",), "contact friction", _FRICTION)
_set("walker2d-mass-friction-thigh", ("Walker2d",), "torso and right-thigh mass, contact friction",
     ("torso_mass", 1.0, 7.0), _FRICTION, ("thigh_mass", 1.0, 8.0))
_set("ant-mass-leg", ("Ant",), "torso and front-left-leg mass", ("torso_mass", 0.1, 1.0), ("front_left_leg_mass", 0.01, 0.12))
_set("ant-mass", ("Ant",), "torso mass", ("torso_mass", 0.1, 1.0))
_set("ant-mass-legs", ("Ant",), "torso and both front legs' mass",
     ("torso_mass", 0.1, 1.0), ("front_left_leg_mass", 0.01, 0.12), ("front_right_leg_mass", 0.01, 0.12))
_set("invertedpendulum-pole-cart-mass", ("InvertedPendulum",), "pole and cart mass", ("pole_mass", 1.0, 15.0), ("cart_mass", 2.0, 30.0))
_set("invertedpendulum-pole-mass", ("InvertedPendulum",), "pole mass", ("pole_mass", 1.0, 15.0))
_set("invertedpendulum-gravity-gear", ("InvertedPendulum",), "gravity and motor gear", ("gravity", 4.0, 16.0), ("gear_scale", 0.5, 1.5))
_set("cartpole-length-mass", ("CartPole",), "pole length and mass", ("pole_length", 0.2, 3.0), ("pole_mass", 0.02, 1.0))
_set("cartpole-length", ("CartPole",), "pole length", ("pole_length", 0.2, 3.0))
_set("cartpole-force-gravity", ("CartPole",), "push force and gravity", ("force_mag", 3.0, 20.0), ("gravity", 4.0, 20.0))
_PENDULUMS = ("Pendulum", "rlsuite/Pendulum")
_set("pendulum-mass-length", _PENDULUMS, "pole mass and length", ("pole_mass", 0.5, 2.0), ("pole_length", 0.5, 1.5))
_set("pendulum-mass", _PENDULUMS, "pole mass", ("pole_mass", 0.5, 2.0))
_set("pendulum-mass-length-gravity", _PENDULUMS, "pole mass and length, gravity",
     ("pole_mass", 0.5, 2.0), ("pole_length", 0.5, 1.5), ("gravity", 5.0, 15.0))
_set("pendulum-torque", _PENDULUMS, "motor torque limit", ("max_torque", 0.5, 2.0))
# the linear-feature envs of DR-RPO (rlsuite.envs.robust.linear_mdp, put_option)
_set("linear-mdp-q", ("rlsuite/LinearMDP",), "mass of the risky transition moved to the fail state", ("q", 0.0, 0.5))
_set("put-option-p", ("rlsuite/PutOption",), "probability of an up move of the price", ("p", 0.3, 0.7))
# the lettuce greenhouse (rlsuite.envs.greenhouse): model parameters scaled by +-20 %, the weather shifted, noise
_GREENHOUSE = ("rlsuite/Greenhouse-Lettuce",)
_set("greenhouse-params", _GREENHOUSE, "light use efficiency and cover heat transmission (x 0.8 to 1.2)",
     ("c_eps_scale", 0.8, 1.2), ("c_ai_ou_scale", 0.8, 1.2))
_set("greenhouse-weather", _GREENHOUSE, "outdoor temperature shift (degC) and radiation scale",
     ("temp_shift", -4.0, 4.0), ("radiation_scale", 0.7, 1.3))
_set("greenhouse-param-noise", _GREENHOUSE, "per-episode multiplicative noise on every model parameter (half-width)",
     ("param_noise", 0.0, 0.2))
# any env
_set("action-noise", (), "Gaussian action noise (fraction of half the action range; Discrete: random-action probability)",
     ("action_noise", 0.0, 0.5))
_set("obs-noise", (), "Gaussian observation noise (observation units)", ("obs_noise", 0.0, 0.1))
_set("action-delay", (), "actions applied 0 to 3 steps late", ("action_delay", 0.0, 3.0))
_set("action-obs-noise", (), "action and observation noise", ("action_noise", 0.0, 0.5), ("obs_noise", 0.0, 0.1))
