"""``GET /healthz`` (the process answers) and ``GET /readyz`` (it can do its work).

Liveness asks nothing of the database: a slow or locked database is no reason to
restart the process (a restart would not help and would drop requests in flight).
Readiness does: the database answers within a few seconds, its schema is current
(no migration pending: say, a database restored from an older backup under a running
service, which would need a restart to migrate), and it reports the tick lease (who holds it and whether it has expired)
and the workers' contact leases (how many contacts, by how many workers, the oldest expiry, how many expired) so
an operator sees at a glance whether a worker is ticking and whether a dead one left contacts behind. A load balancer sends
events only to a ready instance; a 503 carries the reason as JSON.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from runner.production.tick import LEASE_NAME
from runner.serve.settings import ServeSettings
from runner.store.base import Store
from runner.store.errors import StoreError

READY_TIMEOUT_SECONDS = 2.0  # a readiness probe that waits longer than this has its answer: not ready


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def _readiness(store: Store, now: datetime) -> dict[str, Any]:
    """What the store says about itself (runs on the store's thread)."""
    lease = store.lease(LEASE_NAME)
    pending = store.pending_migrations()
    contacts = None if pending else store.contact_leases(now)  # an old schema may lack the lease columns
    return {
        "pending_migrations": pending,
        "lease": None if lease is None else {
            "name": LEASE_NAME,
            "holder": lease["holder"],
            "expires_at": lease["expires_at"].isoformat(),
            "expired": lease["expires_at"] <= now,
        },
        "contact_leases": None if contacts is None else {
            **contacts,
            "oldest_expires_at": contacts["oldest_expires_at"] and contacts["oldest_expires_at"].isoformat(),
        },
    }


async def readyz(request: Request) -> JSONResponse:
    now = datetime.now(UTC)
    try:
        found = await asyncio.wait_for(
            request.app.state.store_access.read(lambda store: _readiness(store, now)), READY_TIMEOUT_SECONDS)
    except TimeoutError:
        return _not_ready(f"the database did not answer within {READY_TIMEOUT_SECONDS:g} s")
    except StoreError as error:  # its message says what failed, passwords redacted
        return _not_ready(f"the database cannot be read ({error})")
    except Exception as error:  # noqa: BLE001 - any failure to read is the answer: not ready
        return _not_ready(f"the database cannot be read ({type(error).__name__})")
    if found["pending_migrations"]:
        return _not_ready("the database needs migrating: " + ", ".join(found["pending_migrations"]),
                          lease=found["lease"])
    return JSONResponse({"status": "ready", "database": "ok", "migrations": "current", "lease": found["lease"],
                         "contact_leases": found["contact_leases"]})


def _not_ready(reason: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"status": "not ready", "reason": reason, **extra}, status_code=503)


def routes(settings: ServeSettings) -> list[BaseRoute]:
    return [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]
