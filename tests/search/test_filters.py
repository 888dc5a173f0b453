"""The filter grammar on its own: what it reads, and where it says a filter is wrong."""

from __future__ import annotations

import pytest

from aiprod.search.fields import compile_filter
from aiprod.search.filters import MAX_CLAUSES, Clause, InvalidFilter, Value, parse


def test_clauses_alternatives_and_comparisons() -> None:
    source = 'status:failed|cancelled, cost:<0.5 ,created>=2026-01, title:"summer sale"'
    at = source.index
    assert parse(source) == [
        Clause(
            "status",
            0,
            (Value("=", "failed", 7, 7), Value("=", "cancelled", at("canc"), at("canc"))),
        ),
        Clause("cost", at("cost"), (Value("<", "0.5", at("0.5"), at("<0.5")),)),
        Clause("created", at("created"), (Value(">=", "2026-01", at("2026"), at(">=")),)),
        Clause(
            "title",
            at("title"),
            (Value("=", "summer sale", at('"'), at('"'), quoted=True),),
        ),
    ]


def test_values_may_hold_colons_and_comparison_signs_after_the_first() -> None:
    assert parse("aspect:9:16")[0].values == (Value("=", "9:16", 7, 7),)
    assert parse("cost:<1|>5")[0].values == (Value("<", "1", 6, 5), Value(">", "5", 9, 8))
    assert parse("voice:en+f3")[0].values[0].text == "en+f3"


def test_quotes_escape_only_quotes_and_backslashes() -> None:
    assert parse(r'title:"say \"hi\" \\ bye, ok|no"')[0].values[0].text == r'say "hi" \ bye, ok|no'


def test_an_empty_filter_is_no_filter() -> None:
    assert parse("") == [] and parse("   ") == []


def test_field_names_are_case_insensitive() -> None:
    assert parse("Status:queued")[0].field == "status"


@pytest.mark.parametrize(
    ("source", "position", "expected", "got"),
    [
        ("status", 6, "':' or a comparison", "end of input"),
        ("status queued", 7, "':' or a comparison", "'queued'"),
        ("status:", 7, "a value", "end of input"),
        ("status:queued,", 14, "a field name", "end of input"),
        ("status:queued,,cost:1", 14, "a field name", "','"),
        ("title:summer sale", 13, "',' (and), '|' (or)", "'sale'"),
        ('title:"summer sale', 18, "a closing '\"' for the quote opened at position 6", "end"),
        (r'title:"a\nb"', 9, '\\" or \\\\', "'nb'"),
        ("status:queued|", 14, "a value", "end of input"),
        ("cost:>", 6, "a value", "end of input"),
        ("9:16", 0, "a field name", "'9:16'"),
        ('status:"queued"x', 15, "',' (and)", "'x'"),
        (":queued", 0, "a field name", "':queued'"),
    ],
)
def test_malformed_filters_say_where_and_what(
    source: str, position: int, expected: str, got: str
) -> None:
    with pytest.raises(InvalidFilter) as caught:
        parse(source)
    err = caught.value
    assert err.status == 400 and err.code == "invalid_filter"
    assert err.position == position, err.message
    assert err.expected.startswith(expected), err.expected
    assert err.got.startswith(got), err.got
    assert err.details == {
        "parameter": "filter",
        "position": position,
        "expected": err.expected,
        "got": err.got,
    }
    assert f"position {position}" in err.message


def test_clauses_are_bounded() -> None:
    many = ",".join(["status:queued"] * (MAX_CLAUSES + 1))
    with pytest.raises(InvalidFilter) as caught:
        parse(many)
    assert caught.value.position == len("status:queued,") * MAX_CLAUSES
    assert len(parse(",".join(["status:queued"] * MAX_CLAUSES))) == MAX_CLAUSES


@pytest.mark.parametrize(
    ("source", "position", "expected"),
    [
        ("colour:red", 0, "a field: status, stage"),
        ("status:exploded", 7, "one of queued, processing"),
        ("status:>queued", 7, "a value (status takes no comparison)"),
        ("created:yesterday", 8, "a date"),
        ("created:2026-13-01", 8, "a date"),
        ("completed:<2026-02-30", 11, "a date"),
        ("cost:cheap", 5, "a number"),
        ("cost:>-1", 6, "a number"),
        ("cost:nan", 5, "a number"),
        ("created:9999-12-31T23:59:59.999999", 8, "a date"),
        ("created:0000", 8, "a date"),
        ("duration:" + "9" * 400 + "h", 9, "a duration"),
        ("duration:>long", 10, "a duration"),
        ("duration:1m30", 9, "a duration"),
        ("fast_track:maybe", 11, "true or false"),
        ("language:1", 9, "a language code"),
        ("title:>x", 6, "words (title takes no comparison)"),
        ('title:"!!"', 6, "words"),
        ("review:true,aspect:4:3", 19, "one of 16:9, 9:16, 1:1"),
        ("owner:someone", 0, "a field you may use"),
    ],
)
def test_fields_and_values_are_checked(source: str, position: int, expected: str) -> None:
    """A user (not an admin): unknown fields and values, comparisons a field does
    not take, and the admin-only `owner` are refused with their position."""
    with pytest.raises(InvalidFilter) as caught:
        compile_filter(parse(source), admin=False)
    assert caught.value.position == position, caught.value.message
    assert caught.value.expected.startswith(expected), caught.value.expected


def test_admins_may_name_an_owner_by_id_or_email() -> None:
    assert len(compile_filter(parse("owner:someone@example.com"), admin=True).conditions) == 1
    id_ = "6f1c1b0e-8f7e-4f5e-9a55-2a4c8f0f1e11"
    assert len(compile_filter(parse(f"owner:{id_}|b@example.com"), admin=True).conditions) == 1
    with pytest.raises(InvalidFilter) as caught:
        compile_filter(parse("owner:nobody"), admin=True)
    assert caught.value.expected == "a user id or an email address"
