"""Debian's headless Chromium for the tests that look at a page in a real browser.

One place for where the browser is, how it starts and the ``browser`` fixture
(conftest.py makes it available everywhere); `.ci/test` installs the package when it may.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (.ci/test installs it)")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """A headless Chromium for the module's tests, closed after them."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
