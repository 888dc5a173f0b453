"""Command line: `aiprod make`, `aiprod voices`, `aiprod presets`, and the operator
commands `aiprod serve`, `aiprod worker`, `aiprod db upgrade|downgrade`,
`aiprod users create`, `aiprod audit verify`, `aiprod keys rotate-due`.

`app` is the console script (`aiprod = "aiprod.cli:app"`).  The commands live in
`producer` (make, voices, presets), `operator` (worker, db), `serve` and
`accounts` (users, audit, keys); `common` holds what they share.  Heavy
dependencies (the pipeline, the database, FastAPI) load inside the commands.
"""

from __future__ import annotations

import typer

from aiprod.cli import accounts, operator, producer, serve

__all__ = ["app"]

app = typer.Typer(
    help="AIPROD: prompt or script in, finished narrated video out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# Registration order is the order `aiprod --help` lists the commands in.
producer.register(app)
operator.register(app)  # worker, db
serve.register(app)
accounts.register(app)  # users, audit, keys
