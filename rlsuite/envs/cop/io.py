"""Readers and writers for the TSPLIB (TSP, ATSP) and CVRPLIB (CVRP) instance formats.

Supported: ``TYPE`` TSP / ATSP / CVRP; ``EDGE_WEIGHT_TYPE`` EUC_2D (distances rounded to the nearest
integer, TSPLIB's ``nint``), CEIL_2D and EXPLICIT with ``EDGE_WEIGHT_FORMAT`` FULL_MATRIX,
UPPER_ROW, LOWER_DIAG_ROW or UPPER_DIAG_ROW; sections NODE_COORD_SECTION, EDGE_WEIGHT_SECTION,
DEMAND_SECTION, DEPOT_SECTION (one depot). A malformed file raises :class:`InstanceFormatError` with the
file, the line and what was expected.

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


def read_instance(path: str | os.PathLike) -> Instance:
    """Read a TSPLIB / CVRPLIB file (see the module docstring)."""
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
    ewt = spec.get("EDGE_WEIGHT_TYPE", "").upper()
    coords = None
    if "NODE_COORD_SECTION" in sections:
        coords = _node_coords(path, sections["NODE_COORD_SECTION"], dim)
    if ewt in ("EUC_2D", "CEIL_2D"):
        if coords is None:
            raise InstanceFormatError(f"{path}: EDGE_WEIGHT_TYPE {ewt} needs a NODE_COORD_SECTION.")
        d = np.sqrt(((coords[:, None, :] - coords[None, :, :]) ** 2).sum(-1))
        weights = np.floor(d + 0.5) if ewt == "EUC_2D" else np.ceil(d)
    elif ewt == "EXPLICIT":
        weights = _explicit(path, spec.get("EDGE_WEIGHT_FORMAT", "").upper(), sections.get("EDGE_WEIGHT_SECTION"), dim)
    else:
        raise InstanceFormatError(f"{path}: EDGE_WEIGHT_TYPE {ewt or '(missing)'!r} is not supported; use EUC_2D, CEIL_2D or EXPLICIT.")
    inst = Instance(spec.get("NAME", path.stem), typ, weights, coords, edge_weight_type=ewt)
    if typ == "CVRP":
        _cvrp_fields(path, inst, spec, sections, dim)
    elif typ == "TSP" and not np.allclose(weights, weights.T):
        raise InstanceFormatError(f"{path}: TYPE TSP but the weights are asymmetric; use TYPE ATSP.")
    return inst


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _node_coords(path, rows, dim) -> np.ndarray:
    coords = np.full((dim, 2), np.nan)
    for no, parts in rows:
        if len(parts) < 3:
            raise _err(path, no, f"a NODE_COORD_SECTION line is 'id x y', got {' '.join(parts)!r}.")
        try:
            i, x, y = int(parts[0]), float(parts[1]), float(parts[2])
        except ValueError:
            raise _err(path, no, f"node id and coordinates must be numbers, got {' '.join(parts)!r}.") from None
        if not 1 <= i <= dim:
            raise _err(path, no, f"node id {i} outside 1..{dim} (DIMENSION).")
        coords[i - 1] = (x, y)
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
    for no, parts in sections["DEMAND_SECTION"]:
        try:
            demand[int(parts[0]) - 1] = float(parts[1])
        except (ValueError, IndexError):
            raise _err(path, no, f"a DEMAND_SECTION line is 'id demand' with id in 1..{dim}, got {' '.join(parts)!r}.") from None
    if np.isnan(demand).any():
        raise InstanceFormatError(f"{path}: DEMAND_SECTION misses node {int(np.isnan(demand).nonzero()[0][0]) + 1}.")
    depots = [int(p[0]) for _, p in sections.get("DEPOT_SECTION", []) if p and p[0] != "-1"]
    if len(depots) > 1:
        raise InstanceFormatError(f"{path}: {len(depots)} depots; only single-depot CVRP is supported.")
    depot = (depots[0] if depots else 1) - 1
    if not 0 <= depot < dim:
        raise InstanceFormatError(f"{path}: depot {depot + 1} outside 1..{dim}.")
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
    """Write ``inst`` as TSPLIB / CVRPLIB, atomically. With coordinates: EUC_2D (coordinates written with
    ``precision`` decimals); otherwise EXPLICIT FULL_MATRIX."""
    path = Path(path)
    out = [f"NAME : {inst.name}", f"TYPE : {inst.type}", f"DIMENSION : {inst.dimension}"]
    fmt = (lambda v: f"{v:.{precision}f}") if precision else (lambda v: str(int(round(v))))
    if inst.coords is not None and inst.type != "ATSP":
        out.append(f"EDGE_WEIGHT_TYPE : {inst.edge_weight_type if inst.edge_weight_type in ('EUC_2D', 'CEIL_2D') else 'EUC_2D'}")
        if inst.type == "CVRP":
            out.append(f"CAPACITY : {fmt(inst.capacity)}")
        out.append("NODE_COORD_SECTION")
        out += [f"{i + 1} {fmt(x)} {fmt(y)}" for i, (x, y) in enumerate(inst.coords)]
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

