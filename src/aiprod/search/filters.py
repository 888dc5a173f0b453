"""The filter language of listings (``filter=``), read into clauses with positions.

Grammar (ABNF; whitespace is allowed between any two tokens)::

    filter      = [ clause *( "," clause ) ]        ; "," is AND
    clause      = field ( ":" alternatives / comparison *( "|" alternative ) )
    alternatives= alternative *( "|" alternative )  ; "|" is OR within the field
    alternative = [ comparator ] value
    comparison  = comparator value
    comparator  = ">=" / "<=" / ">" / "<"
    value       = quoted / bare
    quoted      = DQUOTE *( char / "\\" DQUOTE / "\\\\" ) DQUOTE  ; char: any but DQUOTE and "\\"
    bare        = 1*( any character but "," "|" DQUOTE and whitespace )
    field       = 1*( ALPHA / "_" )

Examples: ``status:completed``, ``status:failed|cancelled,created:>=2026-01-01``,
``cost:<0.5,duration:>1m``, ``title:"summer sale"``, ``aspect:9:16``.

This module knows the syntax only; which fields exist and what their values
mean is :mod:`aiprod.search.fields`.  Every mistake is an
:class:`InvalidFilter` (400 ``invalid_filter``) saying where (0-based character
position), what was expected and what was found there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aiprod.errors import BadRequest

Op = Literal["=", ">", ">=", "<", "<="]
MAX_CLAUSES = 20
MAX_ALTERNATIVES = 50
_SEPARATORS = ',|"'
_COMPARATORS: tuple[Op, ...] = (">=", "<=", ">", "<")


class InvalidFilter(BadRequest):
    """A `filter`, `q` or `sort` the server cannot read: where, and what it wanted."""

    default_code = "invalid_filter"

    def __init__(self, parameter: str, position: int, expected: str, got: str) -> None:
        super().__init__(
            f"{parameter}: expected {expected} at position {position}, got {got}",
            details={
                "parameter": parameter,
                "position": position,
                "expected": expected,
                "got": got,
            },
        )
        self.parameter = parameter
        self.position = position
        self.expected = expected
        self.got = got


@dataclass(frozen=True)
class Value:
    op: Op
    text: str
    position: int  # where the value starts (after its comparator, if any)
    start: int  # where the alternative starts (its comparator, or its value)
    quoted: bool = False


@dataclass(frozen=True)
class Clause:
    field: str
    position: int
    values: tuple[Value, ...]


def describe(source: str, position: int) -> str:
    """What stands at `position`, for an error message."""
    if position >= len(source):
        return "end of input"
    char = source[position]
    if char in _SEPARATORS or char.isspace():
        return repr(char)
    end = position
    while end < len(source) and end - position < 24:
        if source[end] in _SEPARATORS or source[end].isspace():
            break
        end += 1
    return repr(source[position:end])


class _Reader:
    def __init__(self, source: str, parameter: str) -> None:
        self.source = source
        self.parameter = parameter
        self.pos = 0

    def fail(self, expected: str, position: int | None = None) -> InvalidFilter:
        at = self.pos if position is None else position
        return InvalidFilter(self.parameter, at, expected, describe(self.source, at))

    def skip_space(self) -> None:
        while self.pos < len(self.source) and self.source[self.pos].isspace():
            self.pos += 1

    def at_end(self) -> bool:
        return self.pos >= len(self.source)

    def peek(self) -> str:
        return self.source[self.pos] if self.pos < len(self.source) else ""

    def clauses(self) -> list[Clause]:
        self.skip_space()
        if self.at_end():
            return []
        found = [self.clause()]
        while True:
            self.skip_space()
            if self.at_end():
                return found
            if self.peek() != ",":
                raise self.fail("',' (and), '|' (or) or the end of the filter")
            self.pos += 1
            self.skip_space()
            if len(found) == MAX_CLAUSES:
                raise self.fail(f"at most {MAX_CLAUSES} clauses")
            found.append(self.clause())

    def clause(self) -> Clause:
        start = self.pos
        while self.peek() == "_" or (self.peek().isascii() and self.peek().isalpha()):
            self.pos += 1
        if self.pos == start:
            raise self.fail("a field name")
        field = self.source[start : self.pos].lower()
        self.skip_space()
        if self.peek() == ":":
            self.pos += 1
        elif not self.source.startswith(("<", ">"), self.pos):
            raise self.fail("':' or a comparison (>, >=, <, <=) after the field name")
        values = [self.alternative()]
        while True:
            self.skip_space()
            if self.peek() != "|":
                return Clause(field, start, tuple(values))
            self.pos += 1
            if len(values) == MAX_ALTERNATIVES:
                raise self.fail(f"at most {MAX_ALTERNATIVES} alternatives")
            values.append(self.alternative())

    def alternative(self) -> Value:
        self.skip_space()
        start = self.pos
        op: Op = "="
        for comparator in _COMPARATORS:
            if self.source.startswith(comparator, self.pos):
                op = comparator
                self.pos += len(comparator)
                self.skip_space()
                break
        if self.peek() == '"':
            opening = self.pos
            return Value(op, self.quoted(), opening, start, quoted=True)
        value_start = self.pos
        while self.pos < len(self.source):
            char = self.source[self.pos]
            if char in _SEPARATORS or char.isspace():
                break
            self.pos += 1
        if self.pos == value_start:
            raise self.fail("a value (quote it if it has spaces, commas or '|')")
        return Value(op, self.source[value_start : self.pos], value_start, start)

    def quoted(self) -> str:
        opening = self.pos
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.source):
            char = self.source[self.pos]
            if char == '"':
                self.pos += 1
                return "".join(out)
            if char == "\\":
                following = self.source[self.pos + 1 : self.pos + 2]
                if following not in ('"', "\\"):
                    raise self.fail('\\" or \\\\ (the only escapes)', self.pos + 1)
                out.append(following)
                self.pos += 2
                continue
            out.append(char)
            self.pos += 1
        raise self.fail(f"a closing '\"' for the quote opened at position {opening}")


def parse(source: str, parameter: str = "filter") -> list[Clause]:
    """The clauses of `source` (none for an empty filter); InvalidFilter if malformed."""
    return _Reader(source, parameter).clauses()
