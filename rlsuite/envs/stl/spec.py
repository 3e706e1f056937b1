"""Signal Temporal Logic over named signals in discrete time: syntax tree, parser and printer.

Grammar (lowest precedence first; keywords are case-sensitive; time bounds are integers, in steps)::

    formula     := implication
    implication := disjunction [ ("->" | "implies") implication ]           right-associative
    disjunction := conjunction { ("|" | "or") conjunction }
    conjunction := until { ("&" | "and") until }
    until       := unary [ ("U" | "until") [interval] until ]                right-associative
    unary       := ("!" | "not") unary
                 | ("G" | "always" | "F" | "eventually") [interval] unary
                 | "(" formula ")" | predicate
    interval    := "[" int ("," | ":") (int | "inf") "]"                   omitted: [0, inf]
    predicate   := expr ("<" | "<=" | ">" | ">=") expr                     linear in the signals
    expr        := ["-"] term { ("+" | "-") term };  term := atom { ("*" | "/") atom }
    atom        := number | signal | "(" expr ")"

``G``, ``F``, ``U`` and the long keywords are reserved and cannot name signals. Both the rtamt-style
long forms (``always[0:10](x > 1)``) and the short forms (``G[0,10](x>1)``) are accepted; ``print``
writes either (:func:`to_text` with ``style="short"`` or ``"rtamt"``). A predicate is stored in the
normal form ``sum_i c_i * x_i + c_0 >= 0`` (strict and non-strict comparisons have the same robustness).
Malformed text raises :class:`ParseError` with the offending position; nothing is ever ``eval``-ed.
"""

from __future__ import annotations

import dataclasses
import math
import re

KEYWORDS = {"always", "eventually", "until", "and", "or", "not", "implies", "G", "F", "U", "inf"}


class ParseError(ValueError):
    """Malformed STL text. ``position`` is the 0-based character offset of the problem."""

    def __init__(self, message: str, text: str, position: int) -> None:
        self.text, self.position, self.reason = text, position, message
        caret = " " * position + "^"
        super().__init__(f"{message} at position {position}:\n  {text}\n  {caret}")


# --- syntax tree ------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Predicate:
    """``sum(coef * signal) + const >= 0``; ``terms`` is sorted by signal name."""

    terms: tuple[tuple[str, float], ...]
    const: float


@dataclasses.dataclass(frozen=True)
class Not:
    child: Formula


@dataclasses.dataclass(frozen=True)
class And:
    children: tuple[Formula, ...]


@dataclasses.dataclass(frozen=True)
class Or:
    children: tuple[Formula, ...]


@dataclasses.dataclass(frozen=True)
class Implies:
    left: Formula
    right: Formula


@dataclasses.dataclass(frozen=True)
class Always:
    """``G[a, b] child``; ``b = None`` means unbounded."""

    a: int
    b: int | None
    child: Formula


@dataclasses.dataclass(frozen=True)
class Eventually:
    """``F[a, b] child``; ``b = None`` means unbounded."""

    a: int
    b: int | None
    child: Formula


@dataclasses.dataclass(frozen=True)
class Until:
    """``left U[a, b] right``: ``right`` holds at some ``t'`` in ``[t+a, t+b]`` and ``left`` on ``[t, t')``."""

    a: int
    b: int | None
    left: Formula
    right: Formula


Formula = Predicate | Not | And | Or | Implies | Always | Eventually | Until


def signals(f: Formula) -> set[str]:
    """Names of the signals a formula reads."""
    if isinstance(f, Predicate):
        return {n for n, _ in f.terms}
    return set().union(*(signals(c) for c in children(f)))


def children(f: Formula) -> tuple[Formula, ...]:
    """Direct sub-formulas."""
    if isinstance(f, Predicate):
        return ()
    if isinstance(f, (Not, Always, Eventually)):
        return (f.child,)
    if isinstance(f, (And, Or)):
        return f.children
    return (f.left, f.right)


def horizon(f: Formula) -> float:
    """Steps of future the formula needs beyond t (``inf`` with an unbounded operator)."""
    if isinstance(f, Predicate):
        return 0
    own = 0.0
    if isinstance(f, (Always, Eventually, Until)):
        own = math.inf if f.b is None else f.b
    return own + max(horizon(c) for c in children(f))


# --- printer ----------------------------------------------------------------------------------------------


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))


def _predicate_text(p: Predicate, explicit: bool = False) -> str:
    if explicit:  # rtamt: every coefficient written out ("-1*x", not "-x")
        lhs = ""
        for k, (name, c) in enumerate(p.terms):
            lhs += f"{_num(c)}*{name}" if k == 0 else f" - {_num(-c)}*{name}" if c < 0 else f" + {_num(c)}*{name}"
        return f"{lhs} >= {_num(-p.const) if p.const != 0 else '0'}"
    flip = p.terms[0][1] < 0  # write "d0 <= 1.3" rather than "-d0 >= -1.3"
    sign = -1.0 if flip else 1.0
    parts = []
    for name, c in p.terms:
        c *= sign
        body = name if abs(c) == 1 else f"{_num(abs(c))}*{name}"
        parts.append(("- " if c < 0 else "+ ") + body)
    lhs = " ".join(parts)
    lhs = lhs[2:] if lhs.startswith("+ ") else "-" + lhs[2:]
    rhs = -sign * p.const
    return f"{lhs} {'<=' if flip else '>='} {_num(rhs) if rhs != 0 else '0'}"


def to_text(f: Formula, style: str = "short") -> str:
    """Text that :func:`parse` reads back to an equal formula. ``style``: ``short`` (G, F, U, &, |, !, ->)
    or ``rtamt`` (always, eventually, until, and, or, not, implies; rtamt's syntax)."""
    if style not in ("short", "rtamt"):
        raise ValueError(f"unknown style {style!r}; allowed: short, rtamt.")
    long = style == "rtamt"

    def interval(a: int, b: int | None) -> str:
        if b is None:
            if long and a:
                raise ValueError(f"rtamt cannot express the unbounded interval [{a}, inf) with a > 0; use style='short'.")
            return f"[{a},inf]" if a else ""
        return f"[{a}:{b}]" if long else f"[{a},{b}]"

    def go(g: Formula) -> str:
        if isinstance(g, Predicate):
            return f"({_predicate_text(g, explicit=long)})"
        if isinstance(g, Not):
            return f"{'not' if long else '!'}({go(g.child)})"
        if isinstance(g, (And, Or)):
            op = (" and " if long else " & ") if isinstance(g, And) else (" or " if long else " | ")
            return "(" + op.join(go(c) for c in g.children) + ")"
        if isinstance(g, Implies):
            return f"({go(g.left)} {'implies' if long else '->'} {go(g.right)})"
        if isinstance(g, (Always, Eventually)):
            kw = ("always" if isinstance(g, Always) else "eventually") if long else ("G" if isinstance(g, Always) else "F")
            return f"{kw}{interval(g.a, g.b)}({go(g.child)})"
        return f"({go(g.left)} {'until' if long else 'U'}{interval(g.a, g.b)} {go(g.right)})"

    return go(f)


# --- tokenizer --------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op><=|>=|->|[<>()\[\],:&|!+\-*/]))"
)


@dataclasses.dataclass(frozen=True)
class _Tok:
    kind: str  # num | name | op | end
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    toks, i = [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        m = _TOKEN.match(text, i)
        if not m or m.end() == i:
            raise ParseError(f"unexpected character {text[i]!r}", text, i)
        kind = m.lastgroup
        assert kind is not None
        toks.append(_Tok(kind, m.group(kind), m.start(kind)))
        i = m.end()
    toks.append(_Tok("end", "", len(text)))
    return toks


# --- parser -----------------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.furthest: ParseError | None = None

    # helpers
    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def fail(self, message: str, tok: _Tok | None = None) -> ParseError:
        tok = tok or self.tok
        err = ParseError(message, self.text, tok.pos)
        if self.furthest is None or err.position >= self.furthest.position:
            self.furthest = err
        return err

    def at(self, *texts: str) -> bool:
        return self.tok.kind in ("op", "name") and self.tok.text in texts

    def expect(self, text: str, what: str = "") -> _Tok:
        if not self.at(text):
            got = "end of input" if self.tok.kind == "end" else repr(self.tok.text)
            raise self.fail(f"expected {what or repr(text)}, got {got}")
        t = self.tok
        self.i += 1
        return t

    # grammar
    def formula(self) -> Formula:
        left = self.disjunction()
        if self.at("->", "implies"):
            self.i += 1
            return Implies(left, self.formula())
        return left

    def disjunction(self) -> Formula:
        items = [self.conjunction()]
        while self.at("|", "or"):
            self.i += 1
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def conjunction(self) -> Formula:
        items = [self.until()]
        while self.at("&", "and"):
            self.i += 1
            items.append(self.until())
        return items[0] if len(items) == 1 else And(tuple(items))

    def until(self) -> Formula:
        left = self.unary()
        if self.at("U", "until"):
            self.i += 1
            a, b = self.interval()
            return Until(a, b, left, self.until())
        return left

    def interval(self) -> tuple[int, int | None]:
        if not self.at("["):
            return 0, None
        self.i += 1
        a = self.integer("a non-negative integer lower bound")
        if not self.at(",", ":"):
            raise self.fail("expected ',' or ':' between the interval bounds")
        self.i += 1
        if self.at("inf"):
            self.i += 1
            b = None
        else:
            b_tok = self.tok
            b = self.integer("an integer upper bound or 'inf'")
            if b < a:
                raise self.fail(f"empty interval [{a}, {b}]: the upper bound must be >= the lower bound", b_tok)
        self.expect("]", "']'")
        return a, b

    def integer(self, what: str) -> int:
        t = self.tok
        if t.kind != "num" or not t.text.isdigit():
            raise self.fail(f"expected {what}")
        self.i += 1
        return int(t.text)

    def unary(self) -> Formula:
        if self.at("!", "not"):
            self.i += 1
            return Not(self.unary())
        if self.at("G", "always", "F", "eventually"):
            kind = self.tok.text
            self.i += 1
            a, b = self.interval()
            child = self.unary()
            return Always(a, b, child) if kind in ("G", "always") else Eventually(a, b, child)
        if self.at("("):
            start = self.i
            try:  # "(x + y) > 1" is a predicate; "(x > 1)" is a parenthesised formula
                return self.predicate()
            except ParseError:
                self.i = start
            self.i += 1
            inner = self.formula()
            self.expect(")", "')'")
            return inner
        return self.predicate()

    def predicate(self) -> Predicate:
        lhs = self.expr()
        if not self.at("<", "<=", ">", ">="):
            got = "end of input" if self.tok.kind == "end" else repr(self.tok.text)
            raise self.fail(f"expected a comparison (<, <=, >, >=) after the expression, got {got}")
        op = self.tok.text
        self.i += 1
        rhs = self.expr()
        diff = _sub(lhs, rhs) if op in (">", ">=") else _sub(rhs, lhs)  # normal form: diff >= 0
        terms = tuple(sorted((n, c) for n, c in diff[0].items() if c != 0))
        if not terms:
            raise self.fail("a predicate must read at least one signal")
        return Predicate(terms, diff[1])

    # linear expressions: (coefficients by signal, constant)
    def expr(self) -> tuple[dict[str, float], float]:
        neg = False
        if self.at("-"):
            self.i += 1
            neg = True
        value = self.term()
        if neg:
            value = _scale(value, -1.0)
        while self.at("+", "-"):
            op = self.tok.text
            self.i += 1
            rhs = self.term()
            value = _add(value, rhs) if op == "+" else _sub(value, rhs)
        return value

    def term(self) -> tuple[dict[str, float], float]:
        value = self.atom()
        while self.at("*", "/"):
            op_tok = self.tok
            self.i += 1
            rhs = self.atom()
            if op_tok.text == "*":
                if value[0] and rhs[0]:
                    raise self.fail("nonlinear term: a product of two signals (predicates must be linear)", op_tok)
                value = _scale(rhs, value[1]) if not value[0] else _scale(value, rhs[1])
            else:
                if rhs[0]:
                    raise self.fail("nonlinear term: division by a signal (predicates must be linear)", op_tok)
                if rhs[1] == 0:
                    raise self.fail("division by zero", op_tok)
                value = _scale(value, 1.0 / rhs[1])
        return value

    def atom(self) -> tuple[dict[str, float], float]:
        t = self.tok
        if t.kind == "num":
            self.i += 1
            return {}, float(t.text)
        if t.kind == "name":
            if t.text in KEYWORDS:
                raise self.fail(f"{t.text!r} is a keyword and cannot be used as a signal name")
            self.i += 1
            return {t.text: 1.0}, 0.0
        if self.at("("):
            self.i += 1
            inner = self.expr()
            self.expect(")", "')'")
            return inner
        if self.at("-"):
            self.i += 1
            return _scale(self.atom(), -1.0)
        got = "end of input" if t.kind == "end" else repr(t.text)
        raise self.fail(f"expected a signal name, a number or '(', got {got}")


def _add(x, y):
    d = dict(x[0])
    for n, c in y[0].items():
        d[n] = d.get(n, 0.0) + c
    return d, x[1] + y[1]


def _scale(x, k):
    return {n: c * k for n, c in x[0].items()}, x[1] * k


def _sub(x, y):
    return _add(x, _scale(y, -1.0))


def parse(text: str) -> Formula:
    """Parse STL ``text`` into a formula tree; malformed text raises :class:`ParseError`."""
    if not isinstance(text, str):
        raise TypeError(f"parse expects a string, got {type(text).__name__}.")
    p = _Parser(text)
    try:
        f = p.formula()
    except ParseError as e:
        raise (p.furthest if p.furthest is not None and p.furthest.position > e.position else e) from None
    if p.tok.kind != "end":
        err = p.fail(f"unexpected {p.tok.text!r} after a complete formula")
        raise (p.furthest if p.furthest is not None and p.furthest.position > err.position else err)
    return f
