"""Browser tests' helpers: real headless Chromium (Debian's package) against a real server."""
from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Screenshots go to docs/screenshots/ when asked (SERVELINE_SCREENSHOTS=docs/screenshots),
# else to a temp folder, so a test run leaves the checkout as it was.
SHOTS = Path(os.environ.get("SERVELINE_SCREENSHOTS") or tempfile.mkdtemp(prefix="serveline-shots-"))
SHOTS.mkdir(parents=True, exist_ok=True)
SIZES = {"wall": (1920, 1080), "ipad": (1024, 768)}

needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason="Debian chromium is not installed (apt-get install chromium)")


# Every page reports what the Content-Security-Policy blocked to its console; a screen test fails
# on any such report, so the policy is proven against every screen the tests open.
CSP_PROBE = """document.addEventListener("securitypolicyviolation", (e) => console.error(
  `CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`));"""


class WatchedBrowser:
    """Chromium whose pages are watched for Content-Security-Policy violations."""

    def __init__(self, chromium) -> None:
        self._chromium = chromium
        self.csp_violations: list[str] = []

    def _console(self, message) -> None:
        text = message.text
        if text.startswith("CSP violation") or "Content Security Policy" in text:
            self.csp_violations.append(f"{message.page.url if message.page else '?'}: {text}")

    async def new_context(self, **options):
        context = await self._chromium.new_context(**options)
        await context.add_init_script(CSP_PROBE)
        context.on("console", self._console)
        return context

    async def new_page(self, **options):
        page = await self._chromium.new_page(**options)
        await page.add_init_script(CSP_PROBE)
        page.context.on("console", self._console)
        return page

    def __getattr__(self, name: str):
        return getattr(self._chromium, name)


@pytest.fixture
async def browser() -> AsyncIterator[WatchedBrowser]:
    from playwright.async_api import async_playwright
    async with async_playwright() as playwright:
        # Playwright gives each launch a fresh, empty profile of its own.
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
        watched = WatchedBrowser(chromium)
        yield watched
        await chromium.close()
        assert not watched.csp_violations, watched.csp_violations


async def sign_in(page, base_url: str, email: str, password: str, next_path: str) -> None:
    await page.goto(f"{base_url}{next_path}")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"**{next_path}")


async def cut_sockets(client) -> None:
    """Drop every screen's socket from the server's side, once there is one to drop (a page's
    offline banner is hidden before its socket opens too)."""
    from server.keys import HUB
    rooms = client.app[HUB].rooms
    for _ in range(200):
        if any(room.connections for room in rooms.values()):
            break
        await asyncio.sleep(0.05)
    for room in rooms.values():
        for conn in list(room.connections):
            conn.transport.abort()
