"""Browser fixtures: Debian's chromium driven by Playwright, never a downloaded browser."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Debian's chromium, headless and quiet: no browser download, no calls home."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is not installed: apt-get install -y chromium", pytrace=False)
    return {
        **browser_type_launch_args,
        "executable_path": chromium,
        "headless": True,
        "args": CHROMIUM_ARGS,
    }


@pytest.fixture(scope="session")
def base_url() -> str | None:
    """No base URL: pages are opened by absolute URL (the ops app's port is chosen per test).

    Defined here because pytest-playwright's fallback fixture (used when pytest-base-url is
    not installed) triggers pytest 9's deprecation warning, which this suite turns into an error.
    """
    return None
