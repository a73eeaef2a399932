"""``journey serve``: the production service (a thin shell over ``runner.serve``)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from runner.cli.common import project_root


@click.command("serve")
@click.option("--host", metavar="HOST", help="Address to listen on (default: project.yaml serve.host, "
              "then 127.0.0.1; 0.0.0.0 for every interface).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port to listen on (default: project.yaml "
              "serve.port, then 8000; 0 picks a free port, printed at start).")
@click.option("--db", "db", metavar="PATH", help="Database (default: JOURNEY_DB, then project.yaml "
              "'database', then journey.db).")
@click.option("--worker", is_flag=True, help="Also run the tick loop (as `journey run --every`, every "
              "project.yaml serve.every, default 60s) in the same process.")
@click.option("--log-format", "log_format", type=click.Choice(["json", "text"]), help="json: one JSON object "
              "per line (default when stdout is not a terminal); text: for a terminal. Addresses, tokens and "
              "secrets are masked in both.")
def serve(host: str | None, port: int | None, db: str | None, worker: bool, log_format: str | None) -> None:
    """Serve the production HTTP API: Segment-compatible events in (POST /v1/track, …).

    Write keys come from JOURNEY_WRITE_KEYS (comma-separated; HTTP Basic user
    name). SIGTERM/SIGINT: requests in flight finish, the tick finishes its
    batch, exit 0. See docs/serve.md.
    """
    from runner.serve.logs import start_logging
    from runner.serve.server import serve as run_server
    from runner.serve.settings import load_settings

    root = Path(project_root())
    settings = load_settings(root, db, os.environ, host=host, port=port)
    run_server(settings, worker=worker, log=start_logging(settings, log_format, os.environ))
