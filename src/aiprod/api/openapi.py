"""The OpenAPI description says what the server really answers.

Every operation that reads a body can answer 400 when the bytes cannot be
read as JSON at all (not UTF-8, say; FastAPI's body reader decides that
before any validator runs), so it is documented on each of them here rather
than route by route, where one would be forgotten.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from aiprod.errors import error_responses


def error_entry(status: int) -> dict[str, Any]:
    """An OpenAPI response of `status` in the one error shape."""
    return {
        "description": error_responses(status)[status]["description"],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }


def amend_operations(app: FastAPI, amend: Callable[[str, str, dict[str, Any]], None]) -> None:
    """Wrap whatever builds the schema now so that `amend(method, path,
    operation)` runs on every operation, once, when the schema is built."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = build()
        if fresh:
            for path, item in schema.get("paths", {}).items():
                for method, operation in item.items():
                    if isinstance(operation, dict):
                        amend(method, path, operation)
        return schema

    setattr(app, "openapi", openapi)  # noqa: B010 (FastAPI's documented override)


def install(app: FastAPI) -> None:
    """Add the 400s once, over whatever builds the schema now (FastAPI's, with
    the permission annotations of ``identity.deps.check_routes``)."""

    def bad_body(method: str, path: str, operation: dict[str, Any]) -> None:
        if "requestBody" in operation:
            operation.setdefault("responses", {}).setdefault("400", error_entry(400))

    amend_operations(app, bad_body)
