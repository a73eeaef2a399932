"""``build_app``: the ASGI application, its routes collected from one module per concern.

Each concern module exposes ``routes(settings) -> list[BaseRoute]``; a module added to
``CONCERNS`` is served. The store is opened once, at start-up, behind ``StoreAccess``
(``app.state.store_access``), and closed after the last request at shutdown.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from runner.serve.metrics import RejectionLog
from runner.serve.settings import ServeSettings
from runner.serve.storeaccess import StoreAccess
from runner.store.base import Store

# the modules whose routes the service serves, each with ``routes(settings)``
CONCERNS: tuple[str, ...] = ("runner.serve.events", "runner.serve.health", "runner.serve.metrics",
                             "runner.serve.providers", "runner.serve.unsubscribe", "runner.serve.openapi")


def collect_routes(settings: ServeSettings) -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    for name in CONCERNS:
        routes.extend(importlib.import_module(name).routes(settings))
    return routes


def store_opener(settings: ServeSettings) -> Callable[[], Store]:
    """How the store thread opens the configured database."""
    from runner.store import open_store

    def open_it() -> Store:
        return open_store(settings.db)

    return open_it


def build_app(settings: ServeSettings, *, open_store: Callable[[], Store] | None = None) -> Starlette:
    """The service for ``settings``; ``open_store`` replaces how the database is opened."""
    access = StoreAccess(open_store or store_opener(settings))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        access.start()
        try:
            yield
        finally:
            access.close()

    app = Starlette(routes=collect_routes(settings), lifespan=lifespan,
                    middleware=[Middleware(RejectionLog)])  # one log line per rejected request
    app.state.settings = settings
    app.state.store_access = access
    return app
