"""A written dashboard opened in a real headless browser (Debian's Chromium, driven by
Playwright, both installed by the test setup, never by this package: ``playwright`` is a dev
dependency and is imported only here, inside the function). Each page is loaded from
``file://`` with every request outside the site refused (no network at view time); what the
browser said (console errors, failed requests), which plots rendered, where the links lead and,
on request, a screenshot per page are returned for the caller to judge."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = os.environ.get("ALEXNET_DEPLOY_CHROMIUM", "/usr/bin/chromium")  # Debian's package
VIEWPORT = {"width": 1360, "height": 1000}
RENDER_TIMEOUT_MS = 20_000  # Plotly draws in well under a second; a 2-core CI box is slow


@dataclass
class PageCheck:
    """What the browser saw on one page."""

    page: str
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)  # refused (outside) or missing
    plots: int = 0  # Plotly's plot divs on the page
    rendered: int = 0  # of those, the ones holding the SVG Plotly draws into (.main-svg)
    links: list[str] = field(default_factory=list)  # each <a href>, resolved to a file:// URL
    screenshot: Path | None = None
    plot_spreads: dict[str, float] = field(default_factory=dict)  # plot div id -> pixel_spread

    @property
    def clean(self) -> bool:
        return not self.console_errors and not self.failed_requests and self.plots == self.rendered


def chromium_available(executable: str = CHROMIUM) -> bool:
    return Path(executable).is_file() and os.access(executable, os.X_OK)


def check_pages(
    site: Path,
    pages: list[str],
    *,
    screenshots: Path | None = None,
    executable: str = CHROMIUM,
    full_page: bool = False,
    viewport: dict | None = None,
) -> list[PageCheck]:
    """Open each of ``pages`` (file names in ``site``) in headless Chromium; with
    ``screenshots``, save ``screenshots/<page stem>.png`` of each (``full_page``: the whole
    page, else the ``viewport``: width and height in px) and measure each plot's own
    screenshot (``plot_spreads``)."""
    from playwright.sync_api import TimeoutError as RenderTimeout
    from playwright.sync_api import sync_playwright

    site = Path(site).resolve()
    checks = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            context = browser.new_context(viewport=viewport or VIEWPORT)
            for name in pages:
                checks.append(_check(context, site, name, screenshots, full_page, RenderTimeout))
        finally:
            browser.close()
    return checks


def _check(context, site: Path, name: str, screenshots: Path | None, full_page: bool, timeout):
    check = PageCheck(name)
    page = context.new_page()

    def refuse_outside(route) -> None:  # the site must not need the network
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            check.failed_requests.append(f"{route.request.url} (outside the site)")
            route.abort()

    page.route("**/*", refuse_outside)
    page.on(
        "console",
        lambda message: check.console_errors.append(message.text)
        if message.type == "error"
        else None,
    )
    page.on("pageerror", lambda error: check.console_errors.append(str(error)))
    page.on(
        "requestfailed",
        lambda request: check.failed_requests.append(f"{request.url} ({request.failure})"),
    )
    page.goto((site / name).as_uri(), wait_until="load")
    check.plots = page.locator("div.plotly-graph-div").count()
    if check.plots and page.evaluate("typeof window.Plotly !== 'undefined'"):
        with contextlib.suppress(timeout):  # the plots that did not render are counted below
            page.wait_for_function(
                "n => document.querySelectorAll('div.plotly-graph-div .main-svg').length >= n",
                arg=check.plots,
                timeout=RENDER_TIMEOUT_MS,
            )
    check.rendered = page.locator("div.plotly-graph-div:has(.main-svg)").count()
    check.links = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
    if screenshots is not None:
        screenshots.mkdir(parents=True, exist_ok=True)
        check.screenshot = screenshots / f"{Path(name).stem}.png"
        page.screenshot(path=str(check.screenshot), full_page=full_page)
        for plot in page.locator("div.plotly-graph-div").all():
            check.plot_spreads[plot.get_attribute("id")] = pixel_spread(plot.screenshot())
    page.close()
    return check


def pixel_spread(png: Path | bytes) -> float:
    """The standard deviation of a screenshot's grey levels (0-255; a file or PNG bytes): 0
    for a blank page or plot, tens for text, axes and lines."""
    import io

    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(png) if isinstance(png, bytes) else png) as image:
        return float(np.asarray(image.convert("L"), dtype=np.float32).std())
