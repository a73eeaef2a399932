"""``GET /openapi.json``: the OpenAPI 3 description of the service, written in one place.

Each concern module may expose ``openapi_paths() -> dict`` (and ``openapi_components() -> dict``)
for the operations it serves; this module joins them. The fuzz test (tests/serve/test_fuzz.py)
runs schemathesis against the app from this description.
"""

from __future__ import annotations

import importlib
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from runner import __version__
from runner.serve.settings import ServeSettings


def routes(settings: ServeSettings) -> list[BaseRoute]:
    document = describe()

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    return [Route("/openapi.json", openapi, methods=["GET"], name="openapi")]


def describe() -> dict[str, Any]:
    """The document: every concern's paths and components."""
    from runner.serve.app import CONCERNS

    paths: dict[str, Any] = {}
    components: dict[str, dict[str, Any]] = {}
    for name in CONCERNS:
        module = importlib.import_module(name)
        if hasattr(module, "openapi_paths"):
            paths.update(module.openapi_paths())
        if hasattr(module, "openapi_components"):
            for kind, entries in module.openapi_components().items():
                components.setdefault(kind, {}).update(entries)
    return {
        "openapi": "3.0.3",
        "info": {"title": "journey serve", "version": __version__,
                 "description": "The journey-runner production service (docs/serve.md)."},
        "paths": paths,
        "components": components,
    }
