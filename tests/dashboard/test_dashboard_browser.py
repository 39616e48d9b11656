"""The dashboard in a real headless browser (Debian's Chromium driven by Playwright): every page
of the seeded store's site opens from file:// with no console error and no request outside the
site, each plot renders (Plotly's SVG is there and its screenshot is not blank), and every link
leads to a page that exists. Skipped only where Chromium or Playwright is missing and CI is not
"true" (under CI a missing browser fails: .ci/run installs it)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from alexnet_deploy.dashboard.browser import chromium_available, pixel_spread
from alexnet_deploy.dashboard.site import write_dashboard

MISSING = [
    what
    for what, there in (
        ("Chromium (/usr/bin/chromium: apt-get install chromium)", chromium_available()),
        ("Playwright (pip install -e '.[dev]')", importlib.util.find_spec("playwright")),
    )
    if not there
]
pytestmark = pytest.mark.skipif(
    bool(MISSING) and os.environ.get("CI") != "true", reason=f"{', '.join(MISSING)} not installed"
)
MIN_SPREAD = 10.0  # grey-level deviation: 0 for a blank page or plot, 30-60 for these


@pytest.fixture(scope="module")
def opened(small_store, tmp_path_factory):
    """The site of the small seeded store, every page of it opened (with screenshots)."""
    from alexnet_deploy.dashboard.browser import check_pages

    assert not MISSING, f"{', '.join(MISSING)} missing under CI=true"
    root = tmp_path_factory.mktemp("browser")
    site = write_dashboard(small_store.path, root / "site")
    pages = ["index.html", *(t.page for t in site.trends)]
    checks = check_pages(site.path, pages, screenshots=root / "shots")
    return site, {check.page: check for check in checks}


def test_every_page_loads_with_no_console_error_and_no_network(opened):
    site, checks = opened
    assert len(checks) == 1 + len(site.trends) == 4
    for check in checks.values():
        assert check.console_errors == [], (check.page, check.console_errors)
        assert check.failed_requests == [], (check.page, check.failed_requests)


def test_every_plot_renders_and_is_not_blank(opened):
    site, checks = opened
    for trend in site.trends:
        check = checks[trend.page]
        assert check.plots == check.rendered == 4, (trend.page, check.plots, check.rendered)
        assert set(check.plot_spreads) == {"throughput", "p50", "p99", "fidelity"}
        blank = {k: v for k, v in check.plot_spreads.items() if v < MIN_SPREAD}
        assert not blank, (trend.page, blank)
    for check in checks.values():  # the whole page too, the index included
        assert pixel_spread(check.screenshot) > MIN_SPREAD, check.page


def test_every_link_resolves_to_a_page_that_exists(opened):
    site, checks = opened
    index = checks["index.html"]
    linked = {Path(link.removeprefix("file://")) for link in index.links}
    assert linked == {(site.path / t.page).resolve() for t in site.trends}
    for check in checks.values():
        for link in check.links:
            assert link.startswith("file://") and Path(link.removeprefix("file://")).is_file(), (
                check.page,
                link,
            )
    for trend in site.trends:
        assert [Path(link).name for link in checks[trend.page].links] == ["index.html"]


def test_a_missing_script_is_seen(small_store, tmp_path):
    """The check can fail: without plotly.min.js no plot renders and the request fails."""
    from alexnet_deploy.dashboard.browser import check_pages

    site = write_dashboard(small_store.path, tmp_path / "site")
    (site.path / "plotly.min.js").unlink()
    (check,) = check_pages(site.path, [site.trends[0].page])
    assert check.rendered == 0 and check.plots == 4
    assert any("plotly.min.js" in failed for failed in check.failed_requests)
    assert not check.clean


def test_a_candidate_step_and_unstable_rows_render_cleanly(tmp_path):
    """A page with a candidate step (a faint dotted line) and hollow markers for unstable rows
    opens with no console error and draws every plot."""
    from alexnet_deploy.dashboard.browser import check_pages
    from tests.dashboard.test_dashboard_series import _edit, _line, _store

    assert not MISSING, f"{', '.join(MISSING)} missing under CI=true"
    reports = _line(tmp_path, 9, step_at=6)
    _edit(reports[3], lambda data: data["rows"][0].update(unstable=True, instability="drift"))
    site = write_dashboard(_store(tmp_path / "s.sqlite", reports), tmp_path / "site")
    [trend] = site.trends
    assert trend.candidates and trend.unstable[3] == "drift"
    [check] = check_pages(site.path, [trend.page], screenshots=tmp_path / "shots")
    assert check.clean and check.console_errors == [] and check.failed_requests == []
    assert check.plots == check.rendered == 4
    assert min(check.plot_spreads.values()) > MIN_SPREAD
