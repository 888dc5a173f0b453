"""The OpenAPI description says what the server really answers.

Every operation that reads a body can answer 400 when the bytes cannot be
read as JSON at all (not UTF-8, say; FastAPI's body reader decides that
before any validator runs), so it is documented on each of them here rather
than route by route, where one would be forgotten.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from aiprod.errors import error_responses


def install(app: FastAPI) -> None:
    """Wrap whatever builds the schema now (FastAPI's, with the permission
    annotations of ``identity.deps.check_routes``) and add the 400s once."""
    build = app.openapi
    bad_request = {
        "description": error_responses(400)[400]["description"],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = build()
        if fresh:
            for item in schema.get("paths", {}).values():
                for operation in item.values():
                    if isinstance(operation, dict) and "requestBody" in operation:
                        operation.setdefault("responses", {}).setdefault("400", bad_request)
        return schema

    setattr(app, "openapi", openapi)  # noqa: B010 (FastAPI's documented override)
