"""Headless Chromium for page tests: open a page, record its console, errors and requests.

Uses Debian's ``chromium`` package through Playwright (which cannot download its own
browser here). Without Chromium or Playwright a test skips with the reason, except under
``CI=true``, where it fails: CI must install both (see the Makefile's test set-up).

Example:
    with chromium_page() as session:
        session.open(tmp_path / "report.html")
        assert not session.errors()
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("LOOPML_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# What a page may load without leaving the machine.
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")


def chromium_problem() -> str | None:
    """Why page tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
    return None


def require_chromium() -> None:
    """Skips the calling test when Chromium is missing; fails it under CI=true."""
    problem = chromium_problem()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs headless Chromium for page tests: {problem}")
        pytest.skip(problem)


@dataclass
class PageSession:
    """A browser page plus everything it said and asked for since it was opened."""

    page: Any
    console: list[tuple[str, str]] = field(default_factory=list)  # (type, text)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    def open(self, path: Path) -> None:
        """Loads a local file and waits until it and its subresources have loaded."""
        self.page.goto(path.resolve().as_uri(), wait_until="load")

    def errors(self) -> list[str]:
        """Console messages of type error, then uncaught page errors."""
        return [text for kind, text in self.console if kind == "error"] + self.page_errors

    def remote_requests(self) -> list[str]:
        """Every request that tried to leave the machine (they are aborted)."""
        remote = [url for url in self.requests if not url.startswith(LOCAL_SCHEMES)]
        return sorted(set(remote + self.blocked))


@contextmanager
def chromium_page(width: int = 1280, height: int = 900) -> Iterator[PageSession]:
    """A fresh headless Chromium page; requests that are not local are recorded and aborted."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport={"width": width, "height": height})
            page = context.new_page()
            session = PageSession(page=page)

            def route(route: Any) -> None:
                url = route.request.url
                if url.startswith(LOCAL_SCHEMES):
                    route.continue_()
                else:
                    session.blocked.append(url)
                    route.abort()

            context.route("**/*", route)
            page.on("console", lambda message: session.console.append((message.type, message.text)))
            page.on("pageerror", lambda error: session.page_errors.append(str(error)))
            page.on("request", lambda request: session.requests.append(request.url))
            yield session
        finally:
            browser.close()
