"""docs/serve.md's deployment recipes say what the service does: real options, real probe paths.

The systemd unit's ExecStart, the container image's CMD and the Kubernetes Deployment's
args are parsed by ``journey serve``'s own command; the probes ask paths the app serves
(and the liveness path never touches the database: ``test_health``).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import yaml

from runner.cli.serve import serve
from runner.serve.app import build_app

DOC = (Path(__file__).resolve().parents[2] / "docs" / "serve.md").read_text(encoding="utf-8")


def block(language: str, marker: str) -> str:
    """The one ``language`` block of docs/serve.md that holds ``marker``."""
    found = [text for text in re.findall(rf"```{language}\n(.*?)```", DOC, flags=re.S) if marker in text]
    assert len(found) == 1, f"docs/serve.md should have one {language} block with {marker!r}"
    return found[0]


def parses_as_serve(argv: list[str]) -> dict:
    """``journey serve ARGS`` as click reads them (an unknown option or a bad value raises)."""
    assert argv[:2] == ["journey", "serve"] or argv[0].endswith("/journey") and argv[1] == "serve", argv
    return serve.make_context("serve", list(argv[2:])).params


def test_the_systemd_unit_starts_the_worker_with_real_options():
    unit = block("ini", "[Service]")
    exec_start = re.search(r"^ExecStart=(.*)$", unit, flags=re.M).group(1)
    params = parses_as_serve(shlex.split(exec_start))
    assert params["worker"] and params["log_format"] == "json" and params["port"] == 8000
    assert re.search(r"^KillSignal=SIGTERM$", unit, flags=re.M)
    assert int(re.search(r"^TimeoutStopSec=(\d+)$", unit, flags=re.M).group(1)) > 30  # > the 30 s grace period


def test_the_container_image_runs_the_worker_and_checks_healthz():
    recipe = block("dockerfile", "FROM ")
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", recipe, flags=re.M).group(1))
    params = parses_as_serve(cmd)
    assert params["worker"] and params["host"] == "0.0.0.0"
    assert "http://127.0.0.1:8000/healthz" in recipe and "STOPSIGNAL SIGTERM" in recipe


def test_the_kubernetes_probes_ask_paths_the_service_serves(serve_settings):
    deployment = yaml.safe_load(block("yaml", "kind: Deployment"))
    assert deployment["kind"] == "Deployment" and deployment["spec"]["strategy"]["type"] == "Recreate"
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    params = parses_as_serve([str(arg) for arg in container["args"]])
    assert params["worker"] and str(params["port"]) == str(container["ports"][0]["containerPort"])
    assert pod["terminationGracePeriodSeconds"] > 30
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    paths = {route.path for route in build_app(serve_settings).routes}
    probes = {container[probe]["httpGet"]["path"] for probe in ("startupProbe", "livenessProbe", "readinessProbe")}
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert probes | {annotations["prometheus.io/path"]} <= paths
