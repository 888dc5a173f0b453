"""Rooms of a screen or two: a module past ~500 lines says why at its top."""

from __future__ import annotations

import ast
from pathlib import Path

import aiprod

SRC = Path(aiprod.__file__).parent
LIMIT = 500


def test_long_modules_give_their_reason() -> None:
    unexplained = []
    for path in sorted(SRC.rglob("*.py")):
        lines = path.read_text().count("\n")
        if lines <= LIMIT:
            continue
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        if "Size (" not in doc:
            unexplained.append(f"{path.relative_to(SRC)} ({lines} lines)")
    assert unexplained == [], "add a 'Size (...)' reason to the module docstring, or split it"
