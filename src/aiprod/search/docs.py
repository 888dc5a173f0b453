"""What the OpenAPI description says of ``filter``, ``q`` and ``sort`` (docs/api.md
says the same at length); kept beside the code that reads them."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from fastapi import Query

from aiprod.search.listing import SORTS

SortName = Literal[
    "created",
    "-created",
    "updated",
    "-updated",
    "completed",
    "-completed",
    "cost",
    "-cost",
    "duration",
    "-duration",
]
assert set(get_args(SortName)) == set(SORTS), "SortName is out of date"

FILTER = """Clauses `field:value`, joined by `,` (and).  `|` gives alternatives within a
field (or); `>`, `>=`, `<`, `<=` compare dates, numbers and durations
(`field:>value`, or `field>value`); a value with spaces, `,` or `|` is quoted
(`"…"`, with `\\"` and `\\\\` as the only escapes).

```
filter      = [ clause *( "," clause ) ]
clause      = field ( ":" alternative / comparator value ) *( "|" alternative )
alternative = [ comparator ] value
comparator  = ">=" / "<=" / ">" / "<"
value       = quoted / 1*( any character but , | " and space )
```

Fields: `status`, `stage`, `preset`, `aspect`, `resolution` (one of their
values); `language` (`en` matches `en-US`); `voice` (a voice name);
`fast_track`, `review` (`true`/`false`); `created`, `updated`, `completed`
(`2026`, `2026-03`, `2026-03-14` — the whole period — or an ISO 8601
date-time); `cost` (a number); `duration` (`90`, `90s`, `1.5m`, `1m30s`,
`1h`); `title` (words of the title, in any form); `owner` (admins only: a user
id or email).

Examples: `status:failed|cancelled`, `created:>=2026-03,cost:<0.5`,
`duration:>1m,aspect:9:16`, `title:"summer sale"`.  A filter that cannot be
read, an unknown field, or one you may not use answers 400 `invalid_filter`
with `details` {`parameter`, `position` (0-based), `expected`, `got`}."""

Q = """Full-text search over the title, prompt, script and narration: every word
must appear, in any form of it (stemming in the production's language, e.g.
`running` finds `runs`, `cheval` finds `chevaux`); case is ignored."""

SORT = """The order: a field, `-` first for descending.  Default `-created` (newest
first).  Rows without a `completed` time come last either way.  The cursor
belongs to the sort it was made with."""


FilterParam = Annotated[str, Query(alias="filter", max_length=2000, description=FILTER)]
QParam = Annotated[str, Query(max_length=500, description=Q)]
SortParam = Annotated[SortName, Query(description=SORT)]
"""The listing's search parameters, declared once for the listing and its bulk export."""
