"""Driving LiteLLM's Admin UI (shipped in the wheel)
in Debian's headless Chromium through playwright.

Never downloads a browser: playwright-python is given ``executable_path`` (``/usr/bin/chromium``,
from ``scripts/install-browser.sh``, or ``$LITEMAAS_HOOKS_CHROMIUM``). Screenshots go to
``artifacts/screenshots/litellm-<version>/`` (``$LITEMAAS_HOOKS_SCREENSHOTS`` overrides the folder).

Two UI generations: LiteLLM 1.108's (a ``<nav>`` of links, one route per page: ``/ui/<page>/``) and
1.81's (an antd menu, pages as ``/ui/?page=<key>``).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from litemaas_hooks_sandbox.proxy import SandboxProxy

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]
TIMEOUT_MS = 30_000


def chromium_path() -> str:
    path = os.environ.get("LITEMAAS_HOOKS_CHROMIUM", "/usr/bin/chromium")
    if not Path(path).exists():
        message = (
            f"no Chromium at {path}: run scripts/install-browser.sh (apt-get install chromium)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def screenshot_dir(version: str) -> Path:
    root = Path(os.environ.get("LITEMAAS_HOOKS_SCREENSHOTS", REPO / "artifacts" / "screenshots"))
    folder = root / f"litellm-{version}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def browser_page() -> Iterator[Any]:
    """A fresh page (1400x900) of headless Chromium."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install './sandbox[browser]')")
    executable = chromium_path()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            context.set_default_timeout(TIMEOUT_MS)
            yield context.new_page()
        finally:
            browser.close()


@dataclass
class ServerErrors:
    """5xx responses the page received (method, status, URL path)."""

    seen: list[tuple[str, int, str]] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("response", self._on_response)

    def _on_response(self, response: Any) -> None:
        if response.status >= 500:
            path = re.sub(r"^https?://[^/]+", "", response.url)
            self.seen.append((response.request.method, response.status, path))

    def take(self) -> list[tuple[str, int, str]]:
        seen, self.seen = self.seen, []
        return seen


def is_new_ui(version: str) -> bool:
    major, minor, *_ = (int(p) for p in re.findall(r"\d+", version)[:3])
    return (major, minor) >= (1, 100)


def sidebar_ready(page: Any, version: str) -> None:
    page.wait_for_selector("nav a[href]" if is_new_ui(version) else "li.ant-menu-item")


def login(page: Any, proxy: SandboxProxy) -> None:
    page.goto(proxy.ui_url + "/")
    page.wait_for_selector("input[type=password]")
    page.fill("input[name=username], #username", proxy.ui_username)
    page.fill("input[type=password]", proxy.ui_password)
    page.click("button[type=submit]")
    sidebar_ready(page, proxy.litellm_version)


def settle(page: Any, version: str) -> None:
    """The app is rendered (sidebar present) and the network has been quiet for 500 ms."""
    sidebar_ready(page, version)
    page.wait_for_load_state("networkidle")


def sidebar_pages(page: Any, version: str) -> list[tuple[str, str]]:
    """(label, URL path) of every page in the sidebar, submenus expanded."""
    _expand_submenus(page, version)
    if is_new_ui(version):
        links = page.eval_on_selector_all(
            "nav a[href]", "els => els.map(e => [e.innerText.trim(), e.getAttribute('href')])"
        )
        seen: dict[str, str] = {}
        for label, href in links:
            if href.startswith("/ui/") and href not in seen.values():
                seen[label] = href
        return list(seen.items())
    items = page.eval_on_selector_all(
        "li.ant-menu-item",
        "els => els.map(e => [e.innerText.trim(), (e.getAttribute('data-menu-id') || '')"
        ".replace(/^rc-menu-uuid-[0-9]+-[0-9]+-/, '')])",
    )
    return [(label, f"/ui/?page={key}") for label, key in items if key]


def _expand_submenus(page: Any, version: str) -> None:
    selector = (
        "nav button[aria-expanded=false]"
        if is_new_ui(version)
        else ".ant-menu-submenu:not(.ant-menu-submenu-open) > .ant-menu-submenu-title"
    )
    for _ in range(3):
        closed = page.query_selector_all(selector)
        if not closed:
            return
        for element in closed:
            element.click()
            # a toggle that opens a popover (account menu) is closed again
            page.keyboard.press("Escape")


@dataclass(frozen=True)
class ModelsUi:
    """Where the Models + Endpoints flow differs between the two UI generations (everything else,
    the Add Model form's ``#custom_llm_provider``/``#model``/``#api_base``/``#api_key``, the Model
    Mappings table, the "Edit Settings" / "Save Changes" / "Delete Model" buttons and the confirm
    dialog, is the same)."""

    path: str  # the Models + Endpoints page
    option: str  # an entry of an open antd select, ``{}`` = its label
    model_link: str  # the model's ID in the All Models table (opens its page), ``{}`` = the ID
    field: str  # an input of the Edit Settings form, ``{}`` = the form field's name


def models_ui(version: str) -> ModelsUi:
    if is_new_ui(version):
        return ModelsUi(
            path="/ui/models-and-endpoints/",
            option='role=option[name="{}"]',
            model_link='role=button[name="{}"]',
            field="input[name={}]",
        )
    return ModelsUi(
        path="/ui/?page=models",
        # 1.81's role=option elements are antd's hidden a11y
        # list; the visible entries carry the title
        option='.ant-select-dropdown:visible .ant-select-item-option[title="{}"]',
        # 1.81 shows the ID as a truncated <div> in the cell
        # (the table is rendered twice, one copy hidden)
        model_link='td div.cursor-pointer:text-is("{}") >> visible=true',
        field="input#{}",  # 1.81's antd form items have id=<name>, no name attribute
    )


def open_sidebar_page(page: Any, version: str, path: str) -> None:
    """Open a sidebar page and wait until it settled.

    1.108: click its link (client-side navigation, as a person does; the URL then is ``path``).
    1.81's antd menu switches pages without touching the URL,
    so there the page is loaded by its ``?page=`` URL."""
    if not is_new_ui(version):
        page.goto(page.url.split("/ui", 1)[0] + path)
        settle(page, version)
        return
    entry = page.locator(f'nav a[href="{path}"]').first
    page.keyboard.press("Escape")  # no popover left over the sidebar
    if not entry.is_visible():
        _expand_submenus(page, version)
    entry.click()
    page.wait_for_url(re.compile(re.escape(path)))
    settle(page, version)
