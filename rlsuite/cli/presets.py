"""``rlsuite presets [ALGO] [--env ID]``: the tuned values of every agent and where they come from.

An agent's values are its config dataclass's defaults (their source is said in the class docstring,
e.g. "defaults: CleanRL's ppo_continuous_action") overridden, for an env agent, by the preset of the
env it trains on (``AgentSpec.presets``: env id -> overrides; the comment above each preset in the
agent's file says where its values come from). ``rlsuite train <algo> --env ID`` resolves them in that
order, then applies the flags given.

    rlsuite presets                  every agent: the source of its defaults, each preset and its source
    rlsuite presets ppo              ppo's defaults, one line per field, and the envs that have a preset
    rlsuite presets ppo --env ID     the values ``train ppo --env ID`` starts from, the preset's changes marked
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import textwrap
from pathlib import Path
from typing import Any

from rlsuite.cli.args import flag, parse


@dataclasses.dataclass(frozen=True)
class PresetsArgs:
    """Show the tuned values (config defaults and per-env presets) of the registered agents, and their source."""

    algo: str | None = None
    """an agent (rlsuite list); none: every agent"""
    env: str | None = None
    """an env id: the values an env agent trains with there (defaults + the env's preset, changes marked)"""


# ----------------------------------------------------------------------------- reading the agent files


def _doc_line(cls: type) -> str:
    """The class docstring on one line ('' when the class has none of its own)."""
    doc = inspect.cleandoc(cls.__dict__.get("__doc__") or "")
    if not doc or doc.startswith(f"{cls.__name__}("):  # dataclass's generated signature, not a docstring
        return ""
    return " ".join(doc.split())


def _field_docs(cls: type) -> dict[str, str]:
    """Field name -> the docstring written under it in the class body (empty where there is none)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for node, nxt in zip(body, [*body[1:], None], strict=True):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


_ENTRY = re.compile(r"""^\s*["'](?P<env>[^"']+)["']\s*:""")


def preset_sources(spec: Any) -> dict[str, str]:
    """Env id -> where ``spec``'s preset for it comes from: ``file:line``, then the comment written above the
    preset in the agent's file (a comment above a run of one-line presets covers each of them); ``file:line``
    alone where no comment says it."""
    try:
        path = Path(inspect.getsourcefile(spec.config_cls) or "")
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, TypeError):
        return {}
    start = next((i for i, line in enumerate(lines) if re.search(r"\bpresets\s*=", line)), None)
    if start is None:
        return {}
    try:
        shown = path.relative_to(Path(__file__).resolve().parents[2])
    except ValueError:
        shown = path
    out: dict[str, str] = {}
    for env in spec.presets:
        at = next((i for i in range(start, len(lines)) if (m := _ENTRY.match(lines[i])) and m.group("env") == env), None)
        if at is None:
            continue
        comment: list[str] = []
        i = at - 1
        while i > start:
            text = lines[i].strip()
            if text.startswith("#"):
                comment.insert(0, text.lstrip("#").strip())
            elif comment or not (_ENTRY.match(lines[i]) and text.endswith("),")):  # a comment ended, or not a one-line preset
                break
            i -= 1
        out[env] = f"{shown}:{at + 1}" + (f": {' '.join(comment)}" if comment else " (no comment says where it comes from)")
    return out


# ----------------------------------------------------------------------------- values


def flat_values(config: Any, prefix: str = "") -> dict[str, Any]:
    """Field -> value of a config dataclass; a nested config's fields as ``outer.inner``."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out.update(flat_values(value, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = value
    return out


def _docs(config_cls: type) -> dict[str, str]:
    docs = _field_docs(config_cls)
    for f in dataclasses.fields(config_cls):
        default = f.default if f.default is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(default):
            docs.update({f"{f.name}.{k}": v for k, v in _docs(type(default)).items()})
    return docs


def fmt(value: Any) -> str:
    """A value as it is written on the command line (``(64, 64)`` -> ``64 64``)."""
    if isinstance(value, (tuple, list)):
        return " ".join(fmt(v) for v in value) if value else "()"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _flag(name: str) -> str:
    return flag(name.rsplit(".", 1)[-1])  # nested configs' flags carry no prefix (tyro.conf.OmitArgPrefixes)


def as_flag(name: str, value: Any) -> str:
    """Field ``name`` set to ``value`` as written on the command line: ``--gamma 0.9``, ``--normalize-obs``,
    ``--no-anneal-lr``, ``--hidden-sizes 64 64``, ``--objects ''``."""
    if isinstance(value, bool):
        return _flag(name) if value else "--no-" + _flag(name)[2:]
    if value == "":
        return f"{_flag(name)} ''"
    return f"{_flag(name)} {fmt(value)}"


def _table(values: dict[str, Any], docs: dict[str, str], changed: dict[str, Any] | None = None) -> list[str]:
    width = max(len(as_flag(n, v)) for n, v in values.items())
    rows = []
    for name, value in values.items():
        mark = "*" if changed is not None and name in changed else " "
        was = f"(default {fmt(changed[name])})" if changed is not None and name in changed else ""
        text = as_flag(name, value)
        rows.append(f"  {mark} {text:<{width}}  {was:<{20 if changed else 0}}{docs.get(name, '')}".rstrip())
    return rows


def defaults_source(spec: Any) -> str:
    return _doc_line(spec.config_cls) or f"{spec.config_cls.__name__} does not say where its defaults come from"


# ----------------------------------------------------------------------------- the command


def _changes(spec: Any, overrides: dict[str, Any]) -> str:
    """A preset's overrides as flags, only those that differ from the defaults (the others are counted)."""
    defaults = spec.config_cls()
    changed = {k: v for k, v in overrides.items() if not hasattr(defaults, k) or getattr(defaults, k) != v}
    same = len(overrides) - len(changed)
    text = " ".join(as_flag(k, v) for k, v in changed.items()) or "(nothing differs from the defaults)"
    return text + (f"  (+{same} set to the default value)" if same else "")


def _overview(specs: list[Any]) -> list[str]:
    lines = []
    for spec in specs:
        where = f", default env {spec.default_env}" if spec.default_env else ""
        lines.append(f"{spec.name} (learns from {spec.learns_from}{where})")
        lines.append(f"  defaults: {defaults_source(spec)}")
        if not spec.presets:
            lines.append("  presets:  none (the defaults apply " + ("on every env)" if spec.learns_from == "env" else
                                                                    f"to every {'dataset' if spec.learns_from == 'dataset' else 'instance set'})"))
            continue
        sources = preset_sources(spec)
        for env, overrides in spec.presets.items():
            lines.append(f"  preset {env}: " + _changes(spec, overrides))
            if env in sources:
                lines.append(f"      source: {sources[env]}")
    lines.append("rlsuite presets ALGO lists every value with its help; rlsuite presets ALGO --env ID the values training on ID starts from.")
    return lines


def _one(spec: Any) -> list[str]:
    values = flat_values(spec.config_cls())
    lines = [f"{spec.name} defaults ({spec.config_cls.__name__}): {defaults_source(spec)}", *_table(values, _docs(spec.config_cls))]
    if spec.learns_from != "env":
        lines.append(f"{spec.name} learns from a {spec.learns_from}: no per-env presets, these defaults apply (flags override them).")
        return lines
    if not spec.presets:
        lines.append(f"no per-env presets: these defaults apply on every env (default env {spec.default_env}).")
        return lines
    lines.append(f"envs with a preset (rlsuite presets {spec.name} --env ID shows the values there; "
                 f"without --env, rlsuite train {spec.name} uses {spec.default_env}):")
    sources = preset_sources(spec)
    width = max(len(e) for e in spec.presets)
    for env, overrides in spec.presets.items():
        lines.append(f"  {env:<{width}}  " + _changes(spec, overrides))
        if env in sources:
            lines.append(f"  {'':<{width}}  source: {sources[env]}")
    return lines


def _for_env(spec: Any, env_id: str) -> list[str]:
    from rlsuite.core.registry import suggest
    from rlsuite.core.vec_env import check_env_id

    if spec.learns_from != "env":
        raise ValueError(f"{spec.name} learns from a {spec.learns_from}, not an env: it has no per-env presets "
                         f"(its values: rlsuite presets {spec.name}).")
    if env_id not in spec.presets:
        import rlsuite.envs  # noqa: F401  (registers rlsuite/... ids)

        near = suggest(env_id, spec.presets)
        if near:  # a near miss of a preset's env is more likely a typo than another env
            try:
                check_env_id(env_id)
            except ValueError:
                raise ValueError(f"unknown environment {env_id!r}. Did you mean {near[0]!r}? "
                                 f"Envs with a {spec.name} preset: {', '.join(spec.presets)}.") from None
        check_env_id(env_id)  # unknown to Gymnasium: "did you mean" over every registered id
    overrides = spec.presets.get(env_id, {})
    defaults = flat_values(spec.config_cls())
    values = flat_values(spec.config_cls(**overrides))
    changed = {k: defaults[k] for k in values if values[k] != defaults[k]}
    if overrides:
        source = preset_sources(spec).get(env_id, "")
        head = [f"{spec.name} on {env_id}: the defaults with {env_id}'s preset ({len(changed)} changed, marked *)",
                f"  defaults: {defaults_source(spec)}", f"  preset:   {source}" if source else "  preset:   (source not found)"]
    else:
        head = [f"{spec.name} on {env_id}: no preset for {env_id}, the defaults apply "
                f"(envs with a preset: {', '.join(spec.presets) or 'none'})",
                f"  defaults: {defaults_source(spec)}"]
    return [*head, *_table(values, _docs(spec.config_cls), changed),
            f"rlsuite train {spec.name} --env {env_id} starts from these values; flags override them."]


def cmd_presets(argv: list[str]) -> int:
    """``rlsuite presets [ALGO] [--env ID]``."""
    a = parse(PresetsArgs, argv, "rlsuite presets", positional=("algo",))
    from rlsuite.agents import AGENTS

    if a.algo is None:
        if a.env is not None:  # the agents with a preset for that env
            specs = [AGENTS.get(n) for n in AGENTS.names() if a.env in AGENTS.get(n).presets]
            if not specs:
                import rlsuite.envs  # noqa: F401  (registers rlsuite/... ids)
                from rlsuite.core.vec_env import check_env_id

                check_env_id(a.env)
                print(f"no agent has a preset for {a.env}: each trains there with its defaults (rlsuite presets ALGO).")
            for spec in specs:
                print("\n".join(_for_env(spec, a.env)))
            return 0
        print("\n".join(_overview([AGENTS.get(n) for n in AGENTS.names()])))
        return 0
    spec = AGENTS.get(a.algo)
    print("\n".join(_for_env(spec, a.env) if a.env is not None else _one(spec)))
    return 0
