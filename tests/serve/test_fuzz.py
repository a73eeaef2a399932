"""No input gets a 500 or a traceback: schemathesis fuzzes the events API from its own OpenAPI
description (``GET /openapi.json``), then explicit hostile requests over real HTTP.

The fuzz run checks that nothing is a server error and that every answer conforms to the
description (status code, content type, headers, body schema) and that the write key is
enforced. Two of schemathesis' checks are left out on purpose: ``positive_data_acceptance``
(a call can match the schema and still be refused: a timestamp before 1900, a lone UTF-16
surrogate, an invalid email in traits) and ``negative_data_rejection`` (Segment's calls carry
fields the service reads leniently, as Segment does: an id may be a string or a number).
"""

from __future__ import annotations

import hypothesis
import schemathesis
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.python.asgi import shutdown_lifespans

from runner.serve.app import build_app
from runner.serve.openapi import describe

from .conftest import basic_auth

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, ignored_auth]


def _fuzz(operation, examples: int) -> None:
    """``examples`` generated calls of one operation, each sent with a valid key and checked."""

    @hypothesis.given(case=operation.as_strategy())
    @hypothesis.settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                         suppress_health_check=list(hypothesis.HealthCheck))
    def run(case) -> None:
        case.call_and_validate(headers=basic_auth(), checks=CHECKS)

    run()


def test_fuzzing_the_events_api_from_its_description_finds_nothing(serve_settings):
    # schemathesis' pytest plugin does not run under this pytest; its Python API does the same work
    schema = schemathesis.openapi.from_asgi("/openapi.json", build_app(serve_settings))
    operations = [result.ok() for result in schema.get_all_operations()]
    try:
        assert {op.path for op in operations} >= {"/v1/track", "/v1/identify", "/v1/alias", "/v1/page",
                                                  "/v1/screen", "/v1/group", "/v1/batch"}
        for operation in operations:
            _fuzz(operation, 12)
    finally:
        shutdown_lifespans()  # the app's shutdown: the store closes


def test_the_description_names_every_events_call_and_its_answers():
    document = describe()
    for path in ("/v1/track", "/v1/identify", "/v1/alias", "/v1/page", "/v1/screen", "/v1/group", "/v1/batch"):
        assert set(document["paths"][path]["post"]["responses"]) == {"200", "400", "401", "408", "413", "415"}


def test_openapi_json_is_served(client):
    answer = client.get("/openapi.json")
    assert answer.status_code == 200 and answer.json()["openapi"].startswith("3.")
