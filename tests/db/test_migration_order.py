"""Migration files read in order: sorted by file name, every revision comes
after the revisions it revises, and the name's number is not reused by a
revision that is not a sibling (parallel branches are 0002a, 0002b …)."""

from __future__ import annotations

import re
from pathlib import Path

from alembic.script import ScriptDirectory

from aiprod.db.migrate import alembic_config

VERSIONS = Path(alembic_config("sqlite://").get_main_option("script_location") or "") / "versions"


def test_file_order_is_a_topological_order_of_the_history() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    by_file = {Path(rev.path).name: rev for rev in script.walk_revisions()}
    names = sorted(by_file)
    assert names == sorted(p.name for p in VERSIONS.glob("[0-9]*.py"))
    seen: set[str] = set()
    for name in names:
        rev = by_file[name]
        parents = rev.down_revision or ()
        parents = (parents,) if isinstance(parents, str) else tuple(parents)
        assert set(parents) <= seen, f"{name} revises {parents} that come later by name"
        seen.add(rev.revision)
        assert re.match(r"^\d{4}[a-z]?_[a-z0-9_]+\.py$", name), name
    numbers = [re.match(r"^(\d{4})", n).group(1) for n in names]  # type: ignore[union-attr]
    for number in set(numbers):
        same = [by_file[n] for n in names if n.startswith(number)]
        if len(same) > 1:  # shared number: siblings of one parent, lettered
            assert len({str(r.down_revision) for r in same}) == 1, [r.revision for r in same]
            assert all(re.match(rf"^{number}[a-z]_", Path(r.path).name) for r in same)
