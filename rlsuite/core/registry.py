"""Name registries with helpful errors.

A :class:`Registry` maps a name (``"ppo"``) to an object (an agent spec). Looking up an unknown name
raises :class:`UnknownNameError`, whose message lists the known names and a "did you mean" guess, so a
typo on the command line is fixed in one read.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


def suggest(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """Return up to ``n`` known names close to ``name`` (case-insensitive), best first."""
    known = list(known)
    lowered = {k.lower(): k for k in known}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    return [lowered[h] for h in hits]


def unknown_name_message(kind: str, name: str, known: Iterable[str], hint: str = "") -> str:
    """Build the message for an unknown ``name`` of a ``kind`` (e.g. "agent"): known names and a guess."""
    known = sorted(known)
    guess = suggest(name, known)
    msg = f"unknown {kind} {name!r}."
    if guess:
        msg += f" Did you mean {guess[0]!r}?"
    shown = known if len(known) <= 50 else known[:50] + [f"... ({len(known) - 50} more)"]
    msg += f" Known {kind}s: {', '.join(shown)}."
    if hint:
        msg += " " + hint
    return msg


class UnknownNameError(KeyError, ValueError):
    """Raised for a name that is not registered. Subclasses both KeyError and ValueError."""

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return str(self.args[0])


class Registry(Generic[T]):
    """A name -> object map for one kind of thing ("agent", "task", ...).

    Args:
        kind: what is registered, used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T) -> T:
        """Register ``obj`` under ``name``; a second registration of the same name is an error."""
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered; pick another name.")
        self._items[name] = obj
        return obj

    def decorator(self, name: str) -> Callable[[T], T]:
        """``@registry.decorator("name")`` registers the decorated object."""

        def wrap(obj: T) -> T:
            return self.register(name, obj)

        return wrap

    def get(self, name: str) -> T:
        """Return the object registered as ``name`` or raise :class:`UnknownNameError`."""
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(unknown_name_message(self.kind, name, self._items)) from None

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
