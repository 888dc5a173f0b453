"""The OpenAPI description says what the server really answers.

Every operation that reads a body can answer 400 when the bytes cannot be
read as JSON at all (not UTF-8, say; FastAPI's body reader decides that
before any validator runs), so it is documented on each of them here rather
than route by route, where one would be forgotten.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from aiprod.errors import error_responses


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            bad_request = error_responses(400)[400]
            for item in schema.get("paths", {}).values():
                for operation in item.values():
                    if isinstance(operation, dict) and "requestBody" in operation:
                        operation.setdefault("responses", {}).setdefault(
                            "400",
                            {
                                "description": bad_request["description"],
                                "content": {
                                    "application/json": {
                                        "schema": {"$ref": "#/components/schemas/ErrorResponse"}
                                    }
                                },
                            },
                        )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
