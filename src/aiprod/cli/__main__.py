"""`python -m aiprod.cli`: the same as the `aiprod` console script."""

from aiprod.cli import app

if __name__ == "__main__":  # pragma: no cover
    app()
