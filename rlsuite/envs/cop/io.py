"""Readers and writers for the TSPLIB (TSP, ATSP) and CVRPLIB (CVRP) instance formats.

Supported: ``TYPE`` TSP / ATSP / CVRP; ``EDGE_WEIGHT_TYPE`` EUC_2D, CEIL_2D, ATT, GEO (TSPLIB's
integer distance functions, :func:`coord_weights`) and EXPLICIT with ``EDGE_WEIGHT_FORMAT`` FULL_MATRIX,
UPPER_ROW, LOWER_ROW, LOWER_DIAG_ROW or UPPER_DIAG_ROW; sections NODE_COORD_SECTION,
EDGE_WEIGHT_SECTION, DEMAND_SECTION, DEPOT_SECTION (one depot). A malformed file raises
:class:`InstanceFormatError` with the file, the line and what was expected: node ids outside
``1..DIMENSION`` or given twice, a missing node, a wrong count of matrix entries. ``DIMENSION`` is
checked against ``max_dimension`` (default :data:`MAX_DIMENSION`) before anything of that size is
allocated.

Distance functions (Reinelt, "TSPLIB 95", 1995, section 2; ``nint(x) = int(x + 0.5)``):

- EUC_2D: ``nint(sqrt(dx^2 + dy^2))``; CEIL_2D: ``ceil(sqrt(dx^2 + dy^2))``.
- ATT (pseudo-Euclidean): ``r = sqrt((dx^2 + dy^2) / 10)``, ``t = nint(r)``, ``d = t + 1 if t < r else t``.
- GEO: coordinates are ``DDD.MM`` (degrees, minutes); with ``PI = 3.141592`` each becomes
  ``PI * (deg + 5 * min / 3) / 180`` radians (``deg`` the integer part, truncated toward zero as in the
  TSPLIB FAQ and the reference codes); with ``RRR = 6378.388``, ``q1 = cos(lon_i - lon_j)``,
  ``q2 = cos(lat_i - lat_j)``, ``q3 = cos(lat_i + lat_j)``,
  ``d = int(RRR * acos(0.5 * ((1 + q1) * q2 - (1 - q1) * q3)) + 1)`` (0 on the diagonal).

A parsed file is an :class:`Instance`: ``weights (M, M)`` in the file's own metric (what costs are
reported in), ``coords (M, 2)`` when the file has them, and for CVRP ``demand (M,)`` (depot first,
demand 0) and ``capacity``. Nodes are renumbered from 0 with the depot first.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from rlsuite.core.atomic import atomic_write_text


class InstanceFormatError(ValueError):
    """A TSPLIB / CVRPLIB file that cannot be read."""


MAX_DIMENSION = 20_000
"""Default cap on ``DIMENSION`` in :func:`read_instance`: the weights are a dense ``(n, n)`` float64
matrix (20,000 nodes: 3.2 GB). Pass ``max_dimension=`` to read larger files."""

COORD_TYPES = ("EUC_2D", "CEIL_2D", "ATT", "GEO")
"""The ``EDGE_WEIGHT_TYPE`` values whose weights are computed from NODE_COORD_SECTION."""

_GEO_PI = 3.141592  # TSPLIB's constant, not math.pi: the published optima are computed with it
_GEO_RRR = 6378.388  # TSPLIB's earth radius in km


@dataclasses.dataclass
class Instance:
    name: str
    type: str  # TSP | ATSP | CVRP
    weights: np.ndarray  # (M, M) float64, the file's metric
    coords: np.ndarray | None = None  # (M, 2)
    demand: np.ndarray | None = None  # (M,), depot first
    capacity: float | None = None
    edge_weight_type: str = "EUC_2D"

    @property
    def dimension(self) -> int:
        return self.weights.shape[0]

    def tour_cost(self, tour: list[int]) -> float:
        """Closed-tour length in the file's metric (CVRP: ``tour`` holds 0 for depot returns; it starts
        and ends at the depot)."""
        seq = [0] + [int(x) for x in tour] + [0] if self.type == "CVRP" else [int(x) for x in tour] + [int(tour[0])]
        return float(sum(self.weights[a, b] for a, b in zip(seq[:-1], seq[1:], strict=True)))


def _err(path, line_no, msg) -> InstanceFormatError:
    return InstanceFormatError(f"{path}:{line_no}: {msg}")


def read_instance(path: str | os.PathLike, max_dimension: int = MAX_DIMENSION) -> Instance:
    """Read a TSPLIB / CVRPLIB file (see the module docstring). A ``DIMENSION`` above ``max_dimension``
    is refused before any ``(n, n)`` allocation (raise the cap for larger files)."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError:
        raise InstanceFormatError(f"{path}: not a text file; expected a TSPLIB / CVRPLIB instance.") from None
    spec: dict[str, str] = {}
    sections: dict[str, list[tuple[int, list[str]]]] = {}
    current = None
    for no, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        if line == "EOF":
            break
        head = line.split(":", 1)[0].strip().upper() if ":" in line else line.split()[0].upper()
        if head.endswith("_SECTION"):
            current = head
            sections[current] = []
            continue
        if ":" in line and current is None or (":" in line and not _is_number(line.split(":", 1)[0].strip())):
            key, val = line.split(":", 1)
            spec[key.strip().upper()] = val.strip()
            current = None
            continue
        if current is None:
            raise _err(path, no, f"unexpected line {raw!r}: expected 'KEY : value' or a *_SECTION header.")
        sections[current].append((no, line.split()))
    typ = spec.get("TYPE", "").split()[0].upper() if spec.get("TYPE") else ""
    if typ not in ("TSP", "ATSP", "CVRP"):
        raise InstanceFormatError(f"{path}: TYPE {spec.get('TYPE')!r} is not supported; expected TSP, ATSP or CVRP.")
    try:
        dim = int(spec["DIMENSION"])
    except (KeyError, ValueError):
        raise InstanceFormatError(f"{path}: DIMENSION is missing or not an integer (got {spec.get('DIMENSION')!r}).") from None
    if dim < 2:
        raise InstanceFormatError(f"{path}: DIMENSION must be at least 2, got {dim}.")
    if dim > max_dimension:
        raise InstanceFormatError(
            f"{path}: DIMENSION {dim} is above the cap of {max_dimension} nodes (the weights are a dense {dim} x {dim} "
            f"float64 matrix, {dim * dim * 8 / 1e9:.1f} GB); if the machine has the memory, read it with "
            f"read_instance(path, max_dimension={dim}) (rlsuite cop solve: --max-dimension {dim}).")
    ewt = spec.get("EDGE_WEIGHT_TYPE", "").upper()
    coords = None
    if "NODE_COORD_SECTION" in sections:
        coords = _node_coords(path, sections["NODE_COORD_SECTION"], dim)
    if ewt in COORD_TYPES:
        if coords is None:
            raise InstanceFormatError(f"{path}: EDGE_WEIGHT_TYPE {ewt} needs a NODE_COORD_SECTION.")
        weights = coord_weights(ewt, coords)
    elif ewt == "EXPLICIT":
        weights = _explicit(path, spec.get("EDGE_WEIGHT_FORMAT", "").upper(), sections.get("EDGE_WEIGHT_SECTION"), dim)
    else:
        raise InstanceFormatError(f"{path}: EDGE_WEIGHT_TYPE {ewt or '(missing)'!r} is not supported; "
                                  f"use {', '.join(COORD_TYPES)} or EXPLICIT.")
    inst = Instance(spec.get("NAME", path.stem), typ, weights, coords, edge_weight_type=ewt)
    if typ == "CVRP":
        _cvrp_fields(path, inst, spec, sections, dim)
    elif typ == "TSP" and not np.allclose(weights, weights.T):
        raise InstanceFormatError(f"{path}: TYPE TSP but the weights are asymmetric; use TYPE ATSP.")
    return inst


def coord_weights(edge_weight_type: str, coords: np.ndarray, block: int = 1024) -> np.ndarray:
    """TSPLIB's integer distances ``(n, n)`` float64 for ``coords (n, 2)`` under ``edge_weight_type``
    (EUC_2D, CEIL_2D, ATT, GEO; formulas in the module docstring). Filled ``block`` rows at a time, so
    that the temporaries stay small beside the result."""
    ewt = edge_weight_type.upper()
    if ewt not in COORD_TYPES:
        raise ValueError(f"edge_weight_type {edge_weight_type!r} is not a coordinate type; use one of {', '.join(COORD_TYPES)}.")
    c = np.asarray(coords, dtype=np.float64)
    n = c.shape[0]
    out = np.empty((n, n))
    if ewt == "GEO":
        lat, lon = _geo_radians(c[:, 0]), _geo_radians(c[:, 1])
    for s in range(0, n, block):
        e = min(n, s + block)
        if ewt == "GEO":
            q1 = np.cos(lon[s:e, None] - lon[None, :])
            q2 = np.cos(lat[s:e, None] - lat[None, :])
            q3 = np.cos(lat[s:e, None] + lat[None, :])
            arg = np.clip(0.5 * ((1.0 + q1) * q2 - (1.0 - q1) * q3), -1.0, 1.0)
            out[s:e] = np.floor(_GEO_RRR * np.arccos(arg) + 1.0)
            continue
        sq = (c[s:e, None, 0] - c[None, :, 0]) ** 2 + (c[s:e, None, 1] - c[None, :, 1]) ** 2
        if ewt == "ATT":
            r = np.sqrt(sq / 10.0)
            t = np.floor(r + 0.5)
            out[s:e] = np.where(t < r, t + 1.0, t)
        else:
            r = np.sqrt(sq)
            out[s:e] = np.floor(r + 0.5) if ewt == "EUC_2D" else np.ceil(r)
    if ewt == "GEO":
        np.fill_diagonal(out, 0.0)  # the formula gives 1 from a node to itself
    return out


def _geo_radians(v: np.ndarray) -> np.ndarray:
    """TSPLIB GEO: ``DDD.MM`` (degrees, minutes) to radians with TSPLIB's ``PI``."""
    deg = np.trunc(v)
    return _GEO_PI * (deg + 5.0 * (v - deg) / 3.0) / 180.0


def _node_id(path, no, token: str, dim: int, section: str) -> int:
    """A 1-based node id from ``token``, checked against ``1..dim`` (0-based index returned)."""
    try:
        i = int(token)
    except ValueError:
        raise _err(path, no, f"{section}: node id must be an integer, got {token!r}.") from None
    if not 1 <= i <= dim:
        raise _err(path, no, f"{section}: node id {i} outside 1..{dim} (DIMENSION).")
    return i - 1


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _node_coords(path, rows, dim) -> np.ndarray:
    coords = np.full((dim, 2), np.nan)
    seen: dict[int, int] = {}
    for no, parts in rows:
        if len(parts) < 3:
            raise _err(path, no, f"a NODE_COORD_SECTION line is 'id x y', got {' '.join(parts)!r}.")
        try:
            int(parts[0])
            x, y = float(parts[1]), float(parts[2])
        except ValueError:
            raise _err(path, no, f"node id and coordinates must be numbers, got {' '.join(parts)!r}.") from None
        if not (np.isfinite(x) and np.isfinite(y)):
            raise _err(path, no, f"coordinates must be finite, got {' '.join(parts)!r}.")
        i = _node_id(path, no, parts[0], dim, "NODE_COORD_SECTION")
        if i in seen:
            raise _err(path, no, f"NODE_COORD_SECTION: node {i + 1} is given twice (first on line {seen[i]}).")
        seen[i] = no
        coords[i] = (x, y)
    if np.isnan(coords).any():
        missing = int(np.isnan(coords[:, 0]).nonzero()[0][0]) + 1
        raise InstanceFormatError(f"{path}: NODE_COORD_SECTION has no coordinates for node {missing} (DIMENSION {dim}).")
    return coords


def _explicit(path, fmt, rows, dim) -> np.ndarray:
    if rows is None:
        raise InstanceFormatError(f"{path}: EDGE_WEIGHT_TYPE EXPLICIT needs an EDGE_WEIGHT_SECTION.")
    try:
        vals = [float(v) for _, parts in rows for v in parts]
    except ValueError:
        raise InstanceFormatError(f"{path}: EDGE_WEIGHT_SECTION holds a non-number.") from None
    need = {"FULL_MATRIX": dim * dim, "UPPER_ROW": dim * (dim - 1) // 2, "LOWER_ROW": dim * (dim - 1) // 2,
            "LOWER_DIAG_ROW": dim * (dim + 1) // 2, "UPPER_DIAG_ROW": dim * (dim + 1) // 2}
    if fmt not in need:
        raise InstanceFormatError(f"{path}: EDGE_WEIGHT_FORMAT {fmt or '(missing)'!r} is not supported; use one of {', '.join(need)}.")
    if len(vals) != need[fmt]:
        raise InstanceFormatError(f"{path}: EDGE_WEIGHT_SECTION has {len(vals)} numbers; {fmt} with DIMENSION {dim} needs {need[fmt]}.")
    if fmt == "FULL_MATRIX":
        return np.array(vals).reshape(dim, dim)
    w = np.zeros((dim, dim))
    it = iter(vals)
    for i in range(dim):
        if fmt == "UPPER_ROW":
            cols = range(i + 1, dim)
        elif fmt == "LOWER_ROW":
            cols = range(0, i)
        elif fmt == "LOWER_DIAG_ROW":
            cols = range(0, i + 1)
        else:
            cols = range(i, dim)
        for j in cols:
            w[i, j] = w[j, i] = next(it)
    return w


def _cvrp_fields(path, inst, spec, sections, dim) -> None:
    try:
        inst.capacity = float(spec["CAPACITY"])
    except (KeyError, ValueError):
        raise InstanceFormatError(f"{path}: a CVRP needs 'CAPACITY : <number>' (got {spec.get('CAPACITY')!r}).") from None
    if "DEMAND_SECTION" not in sections:
        raise InstanceFormatError(f"{path}: a CVRP needs a DEMAND_SECTION.")
    demand = np.full(dim, np.nan)
    seen: dict[int, int] = {}
    for no, parts in sections["DEMAND_SECTION"]:
        if len(parts) < 2:
            raise _err(path, no, f"a DEMAND_SECTION line is 'id demand' with id in 1..{dim}, got {' '.join(parts)!r}.")
        i = _node_id(path, no, parts[0], dim, "DEMAND_SECTION")
        try:
            q = float(parts[1])
        except ValueError:
            raise _err(path, no, f"DEMAND_SECTION: the demand of node {i + 1} must be a number, got {parts[1]!r}.") from None
        if not np.isfinite(q) or q < 0:
            raise _err(path, no, f"DEMAND_SECTION: the demand of node {i + 1} must be finite and >= 0, got {parts[1]!r}.")
        if i in seen:
            raise _err(path, no, f"DEMAND_SECTION: node {i + 1} is given twice (first on line {seen[i]}).")
        seen[i] = no
        demand[i] = q
    if np.isnan(demand).any():
        raise InstanceFormatError(f"{path}: DEMAND_SECTION misses node {int(np.isnan(demand).nonzero()[0][0]) + 1}.")
    depots: list[int] = []
    for no, parts in sections.get("DEPOT_SECTION", []):
        for tok in parts:
            if tok == "-1":
                break
            depots.append(_node_id(path, no, tok, dim, "DEPOT_SECTION"))
        else:
            continue
        break  # -1 ends the section
    if len(set(depots)) > 1:
        raise InstanceFormatError(f"{path}: {len(set(depots))} depots; only single-depot CVRP is supported.")
    depot = depots[0] if depots else 0
    if (demand > inst.capacity).any():
        j = int((demand > inst.capacity).nonzero()[0][0]) + 1
        raise InstanceFormatError(f"{path}: node {j} demands {demand[j - 1]:g} > CAPACITY {inst.capacity:g}: no solution exists.")
    order = [depot] + [i for i in range(dim) if i != depot]
    inst.weights = inst.weights[np.ix_(order, order)]
    inst.coords = inst.coords[order] if inst.coords is not None else None
    demand = demand[order]
    demand[0] = 0.0
    inst.demand = demand


def write_instance(inst: Instance, path: str | os.PathLike, precision: int = 0) -> Path:
    """Write ``inst`` as TSPLIB / CVRPLIB, atomically. With coordinates and a coordinate type
    (EUC_2D, CEIL_2D, ATT, GEO; an instance built with coordinates but no type is EUC_2D): that type,
    coordinates written with ``precision`` decimals (GEO: as read, since ``DDD.MM`` must not be
    rounded); otherwise EXPLICIT FULL_MATRIX."""
    path = Path(path)
    out = [f"NAME : {inst.name}", f"TYPE : {inst.type}", f"DIMENSION : {inst.dimension}"]
    fmt = (lambda v: f"{v:.{precision}f}") if precision else (lambda v: str(int(round(v))))
    ewt = (inst.edge_weight_type or "EUC_2D").upper()
    if inst.coords is not None and inst.type != "ATSP" and ewt in COORD_TYPES:
        cfmt = (lambda v: repr(float(v))) if ewt == "GEO" and not precision else fmt
        out.append(f"EDGE_WEIGHT_TYPE : {ewt}")
        if inst.type == "CVRP":
            out.append(f"CAPACITY : {fmt(inst.capacity)}")
        out.append("NODE_COORD_SECTION")
        out += [f"{i + 1} {cfmt(x)} {cfmt(y)}" for i, (x, y) in enumerate(inst.coords)]
    else:
        out += ["EDGE_WEIGHT_TYPE : EXPLICIT", "EDGE_WEIGHT_FORMAT : FULL_MATRIX"]
        if inst.type == "CVRP":
            out.append(f"CAPACITY : {fmt(inst.capacity)}")
        out.append("EDGE_WEIGHT_SECTION")
        out += [" ".join(fmt(v) for v in row) for row in inst.weights]
    if inst.type == "CVRP":
        out.append("DEMAND_SECTION")
        out += [f"{i + 1} {fmt(d)}" for i, d in enumerate(inst.demand)]
        out += ["DEPOT_SECTION", "1", "-1"]
    out.append("EOF")
    atomic_write_text(path, "\n".join(out) + "\n")
    return path


def normalised_coords(inst: Instance) -> np.ndarray:
    """Coordinates shifted and scaled uniformly into the unit square (what a model trained on U[0,1]^2
    instances expects); aspect ratio kept."""
    if inst.coords is None:
        raise InstanceFormatError(f"{inst.name}: the file has no coordinates; a coordinate-based model cannot read it.")
    c = inst.coords - inst.coords.min(0)
    span = float(c.max()) or 1.0
    return c / span

