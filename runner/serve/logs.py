"""The service's logs: its own lines and uvicorn's, one JSON object per line (or text), redacted.

Every secret the process knows (write keys, the unsubscribe secret, the SMTP password in the
transport URL, any environment variable named like a secret) is masked in every line, as
are email addresses and unsubscribe tokens (``runner.production.jsonlog``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping

from runner.production.jsonlog import configure, default_format, environment_secrets, log_event
from runner.serve.settings import ServeSettings

LOGGERS = ("journey", "uvicorn")  # uvicorn.error propagates to uvicorn; its access log stays off


def start_logging(settings: ServeSettings, fmt: str | None, environ: Mapping[str, str]) -> Callable[[str], None]:
    """Send the service's records to stdout as ``fmt`` (None: JSON unless stdout is a terminal);
    returns the function the server writes its own lines with."""
    secrets = environment_secrets(environ, [settings.project.unsubscribe_secret_env], [settings.worker.transport_url or ""])
    secrets += [key.decode("utf-8", "replace") for key in settings.write_keys]
    if settings.unsubscribe_secret:
        secrets.append(settings.unsubscribe_secret.decode("utf-8", "replace"))
    configure(fmt or default_format(sys.stdout), secrets=secrets, stream=sys.stdout, loggers=LOGGERS)
    logger = logging.getLogger("journey.serve")
    return lambda line: log_event(logger, line)
