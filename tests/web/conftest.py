"""Browser tests: a real node on 127.0.0.1 and Debian's Chromium driven by Playwright (async API).

Screenshots of the main pages are written to test-artifacts/screenshots/ (the path is printed at the end).
"""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest
from web_support import NO_WAIT_LIMITS

from node.app import create_app

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SCREENSHOTS.is_dir() and any(SCREENSHOTS.glob("*.png")):
        terminalreporter.write_line(f"browser screenshots: {SCREENSHOTS}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """A running node: its base URL, an HTTP client for the API (and web forms), and its app."""

    def __init__(self, base: str, client: Any) -> None:
        self.base = base
        self.client = client
        self.app = client.server.app

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture
async def node(aiohttp_server: Any, aiohttp_client: Any, make_config: Callable[..., Any]) -> Node:
    port = _free_port()
    # The node's own links (claim_url, canonical, ActivityPub ids) must name the port the browser uses.
    # Claims without proof checks (verify_proof off), so the claim form takes x.com URLs without fetching them;
    # test_claim_proof.py covers fetched proofs.
    cfg = make_config(limits=NO_WAIT_LIMITS, node={"domain": f"127.0.0.1:{port}"}, claims={"verify_proof": False})
    server = await aiohttp_server(create_app(cfg), host="127.0.0.1", port=port)
    client = await aiohttp_client(server)
    return Node(f"http://127.0.0.1:{port}", client)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


class Watched:
    """A page with what it did that it should not: dialogs opened, console errors (CSP violations), page errors."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.accept_dialogs = False
        page.on("dialog", self._dialog)
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))

    def _console(self, msg: Any) -> None:
        # Error statuses the test asked for (a 400 form page, a 404) are logged too; they are not faults.
        if msg.type == "error" and not msg.text.startswith("Failed to load resource: the server responded with a status of 4"):
            self.console_errors.append(msg.text)

    async def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        if self.accept_dialogs:
            await dialog.accept()
        else:
            await dialog.dismiss()

    def assert_clean(self) -> None:
        assert not self.page_errors, self.page_errors
        assert not self.console_errors, self.console_errors


@pytest.fixture
async def open_page(browser: Any) -> AsyncIterator[Callable[..., Any]]:
    """open_page(viewport=DESKTOP, javascript=True, dark=False) -> Watched, in a fresh browser context."""
    contexts: list[Any] = []

    async def make(viewport: dict[str, int] = DESKTOP, javascript: bool = True, dark: bool = False) -> Watched:
        ctx = await browser.new_context(
            viewport=viewport, java_script_enabled=javascript, color_scheme="dark" if dark else "light",
        )
        contexts.append(ctx)
        return Watched(await ctx.new_page())

    yield make
    for ctx in contexts:
        await ctx.close()


@pytest.fixture
def shoot() -> Callable[..., Any]:
    """await shoot(page, name): a full-page PNG in test-artifacts/screenshots/."""

    async def take(page: Any, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path

    return take
