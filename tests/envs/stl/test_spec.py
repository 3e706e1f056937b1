"""The STL language: parsing, printing, error positions, fuzzing."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlsuite.envs.stl.spec import (
    Always,
    And,
    Eventually,
    Implies,
    Not,
    Or,
    ParseError,
    Predicate,
    Until,
    horizon,
    parse,
    signals,
    to_text,
)

X_GT_1 = Predicate((("x", 1.0),), -1.0)


@pytest.mark.parametrize("long,short", [
    ("always[0:10](x > 1)", "G[0,10](x>1)"),
    ("eventually[2:5](x > 1)", "F[2,5] x>1"),
    ("(x > 1) until[0:3] (y > 1)", "x>1 U[0,3] y>1"),
    ("not(x > 1) implies (y <= 0.5)", "!(x>1) -> y<=0.5"),
    ("(x > 1) and (y > 1) or (x < 0)", "x>1 & y>1 | x<0"),
    ("always(eventually[0:3](x > 1))", "G F[0,3] x > 1"),
])
def test_rtamt_keywords_and_short_forms_parse_to_the_same_tree(long, short):
    assert parse(long) == parse(short)


def test_tree_shapes_precedence_and_normal_form():
    assert parse("x > 1") == X_GT_1
    assert parse("x - y <= 0.5") == Predicate((("x", -1.0), ("y", 1.0)), 0.5)
    assert parse("(x + 2*y)/2 >= 3 - x") == Predicate((("x", 1.5), ("y", 1.0)), -3.0)
    f = parse("a>0 & b>0 | c>0 -> d>0")  # & binds tighter than |, which binds tighter than ->
    assert isinstance(f, Implies) and isinstance(f.left, Or) and isinstance(f.left.children[0], And)
    u = parse("a>0 U[1,2] b>0 U c>0")  # until is right-associative
    assert isinstance(u, Until) and (u.a, u.b) == (1, 2) and isinstance(u.right, Until) and u.right.b is None
    g = parse("G F[2,5] !x>1")
    assert g == Always(0, None, Eventually(2, 5, Not(X_GT_1)))
    assert signals(parse("x>1 & F[0,3](y - z < 2)")) == {"x", "y", "z"}
    assert horizon(parse("G[0,10] F[2,5] x>1")) == 15 and horizon(parse("F x>1")) == float("inf")


@pytest.mark.parametrize("text", [
    "G[0,10](F[2,5](x - y <= 0.5) & !(z > 1))",
    "(x > 1 U[0,3] y > 1) | G[1,inf] (x < 2.25)",
    "!(a >= -3.5) -> F(b + 0.125*c > 1e-3)",
])
def test_print_parse_round_trip(text):
    f = parse(text)
    assert parse(to_text(f)) == f
    if "inf]" not in text:
        assert parse(to_text(f, style="rtamt")) == f


@pytest.mark.parametrize("text,position,fragment", [
    ("G[0,10](x>1", 11, "expected ')'"),
    ("G[5,2](x>1)", 4, "empty interval"),
    ("x*y > 1", 1, "nonlinear"),
    ("always[0:10] (x >> 1)", 17, "expected a signal name"),
    ("x > 1 &", 7, "end of input"),
    ("x > 1 y", 6, "after a complete formula"),
    ("G[0,a](x>1)", 4, "integer upper bound"),
    ("x $ 1", 2, "unexpected character '$'"),
    ("x + G > 1", 4, "keyword"),
    ("", 0, "end of input"),
])
def test_parse_errors_point_at_the_offending_position(text, position, fragment):
    with pytest.raises(ParseError) as info:
        parse(text)
    assert info.value.position == position and fragment in str(info.value)
    assert "^" in str(info.value)  # a caret under the position


ALPHABET = st.sampled_from(list("xyz01259 .+-*/<>=()[],:&|!GFU") + ["always", "eventually", "until", "and", "or", "not",
                                                                       "implies", "inf", " "])


@settings(max_examples=400, deadline=None)
@given(st.lists(ALPHABET, max_size=25).map("".join))
def test_any_string_gives_a_formula_or_a_parse_error(text):
    try:
        f = parse(text)
    except ParseError as e:
        assert 0 <= e.position <= len(text)
        return
    assert parse(to_text(f)) == f


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_arbitrary_unicode_never_crashes_the_parser(text):
    try:
        parse(text)
    except ParseError:
        pass
