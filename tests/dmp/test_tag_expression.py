from __future__ import annotations

import random
from collections.abc import Callable, Mapping

import pytest

from dmp.errors import ExpressionError, UnknownTag
from dmp.tag_expression import (
    MAX_DEPTH,
    And,
    Expr,
    Not,
    Or,
    TagRef,
    compile_expression,
    parse,
    referenced_tags,
    to_text,
)
from dmp.taxonomy import Taxonomy

FEMALE = "base.gender.female"
YOUNG = "base.age.18_24"
SUV = "interest.automotive.suv"
AUTO = "interest.automotive"
AUTO_INTENT = "interest.automotive.purchase_intent"
OUTBOUND = "interest.travel.outbound"
GOLF = "interest.sports.golf"

a, b, c, d = (TagRef(code) for code in ("a", "b", "c", "d"))


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return Taxonomy.default()


def profile(taxonomy: Taxonomy, codes: list[str], scores: Mapping[str, int]) -> dict[int, int]:
    """A device's tags: unscored ``codes`` with score 100, plus the scored tags of ``scores``."""
    tags = {taxonomy.tag(code).id: 100 for code in codes}
    tags.update({taxonomy.tag(code).id: score for code, score in scores.items()})
    return tags


# --- parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a", a),
        ("interest.automotive.suv", TagRef(SUV)),
        ("a AND b", And((a, b))),
        ("a OR b OR c", Or((a, b, c))),
        ("a OR b AND c", Or((a, And((b, c))))),
        ("a AND b OR c AND d", Or((And((a, b)), And((c, d))))),
        ("NOT a AND b", And((Not(a), b))),
        ("NOT a OR b", Or((Not(a), b))),
        ("NOT NOT a", Not(Not(a))),
        ("a AND NOT b OR c", Or((And((a, Not(b))), c))),
        ("(a OR b) AND c", And((Or((a, b)), c))),
        ("NOT (a OR b)", Not(Or((a, b)))),
        ("(a AND b) AND c", And((And((a, b)), c))),
        ("((a))", a),
        ("a and b or not c", Or((And((a, b)), Not(c)))),
        ("a And b Or Not c", Or((And((a, b)), Not(c)))),
        ("(a)AND(b)", And((a, b))),
        ("  a\n\tAND\r\nb  ", And((a, b))),
    ],
)
def test_parse_structure(text: str, expected: Expr) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize("op", [">=", ">", "<=", "<", "="])
def test_parse_comparison(op: str) -> None:
    assert parse(f"{AUTO_INTENT} {op} 60") == TagRef(AUTO_INTENT, op, 60)
    assert parse(f"{AUTO_INTENT}{op}60") == TagRef(AUTO_INTENT, op, 60)


def test_parse_comparison_binds_tighter_than_keywords() -> None:
    expected = And((Not(TagRef("x.y.z", ">=", 0)), TagRef("x.y.w", "<", 100)))
    assert parse("NOT x.y.z >= 0 AND x.y.w < 100") == expected


def test_parse_documented_example() -> None:
    text = f"{FEMALE} AND ({AUTO} OR {OUTBOUND}) AND NOT {YOUNG}"
    expected = And((TagRef(FEMALE), Or((TagRef(AUTO), TagRef(OUTBOUND))), Not(TagRef(YOUNG))))
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        ("", 0, "empty expression"),
        ("   ", 0, "empty expression"),
        ("(", 1, "expected a tag code, NOT or '(', found the end"),
        ("(a", 0, "unclosed '('"),
        ("x AND (a OR (b AND c)", 6, "unclosed '('"),
        ("(a b)", 3, "expected ')', AND or OR, found 'b'"),
        ("a)", 1, "unmatched ')'"),
        ("(a))", 3, "unmatched ')'"),
        ("()", 1, "found ')'"),
        ("a b", 2, "expected AND, OR or the end, found 'b'"),
        ("a AND", 5, "found the end"),
        ("a AND OR b", 6, "found 'OR'"),
        ("AND a", 0, "found 'AND'"),
        ("NOT", 3, "found the end"),
        (">= 60", 0, "found '>='"),
        ("a & b", 2, "unexpected character '&'"),
        ("a.b.c != 3", 6, "unexpected character '!'"),
        ("Interest.automotive", 0, "invalid tag code 'Interest.automotive'"),
        ("a AND interest-automotive", 6, "invalid tag code"),
        ("a.b.c.d", 0, "invalid tag code"),
        ("a..b", 0, "invalid tag code"),
        ("a.", 0, "invalid tag code"),
        ("interest.automotive >= 60", 0, "a score comparison needs a tag"),
        ("interest >= 60", 0, "a score comparison needs a tag"),
        ("a.b.c >=", 8, "expected a score 0..100 after '>=', found the end"),
        ("a.b.c >= 101", 9, "expected a score 0..100"),
        ("a.b.c >= -1", 9, "expected a score 0..100"),
        ("a.b.c >= 6.5", 9, "expected a score 0..100"),
        ("a.b.c >= high", 9, "found 'high'"),
        ("a.b.c >= AND", 9, "found 'AND'"),
        ("a.b.c == 60", 7, "found '='"),
        ("a.b.c >= 60 >= 70", 12, "expected AND, OR or the end, found '>='"),
        ("a.b.c >= 60 70", 12, "expected AND, OR or the end, found '70'"),
    ],
)
def test_parse_errors(text: str, position: int, reason: str) -> None:
    with pytest.raises(ExpressionError) as info:
        parse(text)
    assert info.value.position == position
    assert reason in info.value.reason
    assert info.value.text == text


def test_parse_nesting_limit() -> None:
    deepest = "(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH
    assert parse(deepest) == a
    assert parse("NOT " * MAX_DEPTH + "a") is not None
    with pytest.raises(ExpressionError) as info:
        parse("(" + deepest + ")")
    assert info.value.position == MAX_DEPTH
    with pytest.raises(ExpressionError):
        parse("NOT " * (MAX_DEPTH + 1) + "a")


def test_parse_many_siblings_is_not_nesting() -> None:
    text = " OR ".join(f"(t{i} AND u{i})" for i in range(5 * MAX_DEPTH))
    parsed = parse(text)
    assert isinstance(parsed, Or)
    assert len(parsed.children) == 5 * MAX_DEPTH


@pytest.mark.parametrize(
    "make",
    [
        lambda: TagRef("A"),
        lambda: TagRef("a.b", ">=", 10),
        lambda: TagRef("a.b.c", ">=", 101),
        lambda: TagRef("a.b.c", "!=", 10),
        lambda: TagRef("a.b.c", ">="),
        lambda: And((a,)),
        lambda: Or(()),
    ],
)
def test_nodes_reject_what_the_grammar_cannot_express(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        make()


# --- canonical text ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("a and b", "a AND b"),
        ("a.b.c>=60", "a.b.c >= 60"),
        ("a.b.c = 007", "a.b.c = 7"),
        ("(a AND b) AND c", "(a AND b) AND c"),
        ("a AND (b AND c)", "a AND (b AND c)"),
        ("(a OR b) OR c", "(a OR b) OR c"),
        ("(a AND b) OR c", "a AND b OR c"),
        ("(a OR b) AND NOT (c OR d)", "(a OR b) AND NOT (c OR d)"),
        ("not not (a)", "NOT NOT a"),
        ("NOT (a AND b)", "NOT (a AND b)"),
        ("NOT a.b.c > 5", "NOT a.b.c > 5"),
    ],
)
def test_to_text(text: str, canonical: str) -> None:
    assert to_text(parse(text)) == canonical
    assert parse(canonical) == parse(text)


CODES = (FEMALE, YOUNG, SUV, AUTO, OUTBOUND, GOLF, "base", "interest.travel")
SCORED = (AUTO_INTENT, "interest.finance.loan_intent")


def random_expr(rng: random.Random, depth: int = 0) -> Expr:
    roll = rng.random()
    if depth >= 4 or roll < 0.35:
        if rng.random() < 0.3:
            op = rng.choice([">=", ">", "<=", "<", "="])
            return TagRef(rng.choice(SCORED), op, rng.choice([0, 1, 50, 60, 99, 100]))
        return TagRef(rng.choice(CODES))
    if roll < 0.5:
        return Not(random_expr(rng, depth + 1))
    children = tuple(random_expr(rng, depth + 1) for _ in range(rng.randint(2, 4)))
    return And(children) if roll < 0.75 else Or(children)


@pytest.mark.parametrize("seed", range(20))
def test_to_text_round_trips(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(25):
        expr = random_expr(rng)
        assert parse(to_text(expr)) == expr


# --- compilation -----------------------------------------------------------------------


DOC_EXAMPLE = f"{FEMALE} AND ({AUTO} OR {OUTBOUND}) AND NOT {YOUNG}"


@pytest.mark.parametrize(
    ("text", "codes", "scores", "expected"),
    [
        (SUV, [SUV], {}, True),
        (SUV, [GOLF], {}, False),
        (SUV, [], {}, False),
        (AUTO, [SUV], {}, True),
        (AUTO, [], {AUTO_INTENT: 10}, True),
        (AUTO, [OUTBOUND, GOLF], {}, False),
        ("interest", [GOLF], {}, True),
        ("interest", [FEMALE], {}, False),
        (f"NOT {AUTO}", [GOLF], {}, True),
        (f"NOT {AUTO}", [SUV, GOLF], {}, False),
        (f"NOT NOT {SUV}", [SUV], {}, True),
        (DOC_EXAMPLE, [FEMALE, SUV], {}, True),
        (DOC_EXAMPLE, [FEMALE, OUTBOUND], {}, True),
        (DOC_EXAMPLE, [FEMALE, OUTBOUND, YOUNG], {}, False),
        (DOC_EXAMPLE, [FEMALE, GOLF], {}, False),
        (DOC_EXAMPLE, [SUV, OUTBOUND], {}, False),
        (f"{AUTO_INTENT} >= 60", [], {AUTO_INTENT: 60}, True),
        (f"{AUTO_INTENT} >= 60", [], {AUTO_INTENT: 59}, False),
        (f"{AUTO_INTENT} >= 60", [SUV], {}, False),
        (f"{AUTO_INTENT} >= 0", [], {AUTO_INTENT: 0}, True),
        (f"{AUTO_INTENT} >= 0", [], {}, False),
        (f"{AUTO_INTENT} > 60", [], {AUTO_INTENT: 60}, False),
        (f"{AUTO_INTENT} > 60", [], {AUTO_INTENT: 61}, True),
        (f"{AUTO_INTENT} = 60", [], {AUTO_INTENT: 60}, True),
        (f"{AUTO_INTENT} = 60", [], {AUTO_INTENT: 61}, False),
        (f"{AUTO_INTENT} < 30", [], {AUTO_INTENT: 29}, True),
        (f"{AUTO_INTENT} < 30", [], {AUTO_INTENT: 30}, False),
        (f"{AUTO_INTENT} < 30", [], {}, False),
        (f"{AUTO_INTENT} <= 30", [], {AUTO_INTENT: 0}, True),
        (f"{AUTO_INTENT} <= 30", [], {}, False),
        (f"NOT {AUTO_INTENT} >= 60", [], {}, True),
        (f"NOT {AUTO_INTENT} >= 60", [], {AUTO_INTENT: 80}, False),
        # An unscored tag's presence reads as score 100.
        (f"{SUV} >= 100", [SUV], {}, True),
        (f"{FEMALE} AND {AUTO_INTENT} >= 60 OR {GOLF}", [GOLF], {}, True),
        (f"{FEMALE} AND {AUTO_INTENT} >= 60 OR {GOLF}", [FEMALE], {AUTO_INTENT: 70}, True),
        (f"{FEMALE} AND {AUTO_INTENT} >= 60 OR {GOLF}", [FEMALE], {AUTO_INTENT: 50}, False),
        (f"{FEMALE} AND NOT {YOUNG} AND NOT {GOLF}", [FEMALE], {}, True),
        (f"{FEMALE} AND NOT {YOUNG} AND NOT {GOLF}", [FEMALE, GOLF], {}, False),
        (f"(({SUV} OR {GOLF}) OR ({OUTBOUND} OR base)) OR {YOUNG}", [OUTBOUND], {}, True),
        (f"(({SUV} OR {GOLF}) OR ({OUTBOUND} OR base)) OR {YOUNG}", [], {AUTO_INTENT: 9}, False),
        (f"(({SUV} AND {GOLF}) AND ({OUTBOUND} AND {FEMALE}))", [SUV, GOLF, OUTBOUND], {}, False),
        (f"{SUV} AND {GOLF} AND {OUTBOUND} AND {FEMALE}", [SUV, GOLF, OUTBOUND, FEMALE], {}, True),
    ],
)
def test_compile_evaluates(
    taxonomy: Taxonomy, text: str, codes: list[str], scores: dict[str, int], expected: bool
) -> None:
    predicate = compile_expression(parse(text), taxonomy)
    tags = profile(taxonomy, codes, scores)
    assert predicate(tags) is expected


def reference(expr: Expr, taxonomy: Taxonomy, tags: Mapping[int, int]) -> bool:
    """The semantics spelled out plainly, to check the optimised closures against."""
    match expr:
        case TagRef(code=code, op=None):
            return any(i in tags for i in taxonomy.resolve(code))
        case TagRef(code=code, op=op, value=value):
            assert value is not None
            score = tags.get(taxonomy.tag(code).id)
            if score is None:
                return False
            return {
                ">=": score >= value,
                ">": score > value,
                "<=": score <= value,
                "<": score < value,
                "=": score == value,
            }[str(op)]
        case Not(child=child):
            return not reference(child, taxonomy, tags)
        case And(children=children):
            return all(reference(child, taxonomy, tags) for child in children)
        case Or(children=children):
            return any(reference(child, taxonomy, tags) for child in children)


@pytest.mark.parametrize("seed", range(20))
def test_compile_agrees_with_reference(taxonomy: Taxonomy, seed: int) -> None:
    rng = random.Random(seed)
    pool = [taxonomy.tag(code).id for code in (FEMALE, YOUNG, SUV, OUTBOUND, GOLF, *SCORED)]
    pool += rng.sample([tag.id for tag in taxonomy.tags], 5)
    devices = [
        {tid: rng.choice([0, 30, 59, 60, 61, 100]) for tid in rng.sample(pool, rng.randint(0, 6))}
        for _ in range(40)
    ]
    for _ in range(25):
        expr = random_expr(rng)
        predicate = compile_expression(expr, taxonomy)
        for tags in devices:
            assert predicate(tags) is reference(expr, taxonomy, tags), (to_text(expr), tags)


@pytest.mark.parametrize(
    "text",
    [
        "interest.automotive.hovercraft",
        f"{SUV} AND NOT interest.cars",
        f"{SUV} OR interest.cars.suv >= 10",
        "NOT (a AND b)",
    ],
)
def test_compile_unknown_codes(taxonomy: Taxonomy, text: str) -> None:
    with pytest.raises(UnknownTag):
        compile_expression(parse(text), taxonomy)
    with pytest.raises(UnknownTag):
        referenced_tags(parse(text), taxonomy)


def test_referenced_tags(taxonomy: Taxonomy) -> None:
    expr = parse(f"{FEMALE} AND ({AUTO} OR NOT {OUTBOUND} OR {AUTO_INTENT} >= 60)")
    expected = {taxonomy.tag(FEMALE).id, taxonomy.tag(OUTBOUND).id} | taxonomy.resolve(AUTO)
    assert referenced_tags(expr, taxonomy) == expected
    assert referenced_tags(parse("base"), taxonomy) == taxonomy.resolve("base")
