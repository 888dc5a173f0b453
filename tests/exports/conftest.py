"""The exports run against the real app of tests/api (SQLite and PostgreSQL)."""

from tests.api.conftest import api, api_settings  # noqa: F401  (fixtures)
