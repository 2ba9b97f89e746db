"""Browser tests' helpers: real headless Chromium (Debian's package) against a real server."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import AsyncIterator

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Screenshots go to docs/screenshots/ when asked (SERVELINE_SCREENSHOTS=docs/screenshots),
# else to a temp folder, so a test run leaves the checkout as it was.
SHOTS = Path(os.environ.get("SERVELINE_SCREENSHOTS") or tempfile.mkdtemp(prefix="serveline-shots-"))
SHOTS.mkdir(parents=True, exist_ok=True)
SIZES = {"wall": (1920, 1080), "ipad": (1024, 768)}

needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason="Debian chromium is not installed (apt-get install chromium)")


@pytest.fixture
async def browser() -> AsyncIterator:
    from playwright.async_api import async_playwright
    async with async_playwright() as playwright:
        # Playwright gives each launch a fresh, empty profile of its own.
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
        yield chromium
        await chromium.close()


async def sign_in(page, base_url: str, email: str, password: str, next_path: str) -> None:
    await page.goto(f"{base_url}{next_path}")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"**{next_path}")
