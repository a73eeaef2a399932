"""Send claims are fsynced by default exactly where a resend would reach a real inbox."""

import pytest

from runner.delivery.dispatch import durable_by_default


@pytest.mark.parametrize("url,expected", [
    ("smtp://relay.example:587", True),
    ("smtps://user:secret@relay.example", True),
    ("outbox:outbox", False),
    ("console", False),
])
def test_default_follows_the_transport(url, expected):
    assert durable_by_default(url, None) is expected
    assert durable_by_default(url, "") is expected


@pytest.mark.parametrize("env,expected", [("1", True), ("true", True), ("0", False), ("no", False), ("off", False)])
def test_journey_fsync_overrides_the_default(env, expected):
    assert durable_by_default("smtp://relay.example", env) is expected
    assert durable_by_default("outbox:outbox", env) is expected
