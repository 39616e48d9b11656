"""dashboard STORE -o SITE on a real SQLite store of 12 seeded runs (tests/dashboard/conftest.py):
the pages written, the injected step marked at its commit in the figures the pages embed, the
gate's verdicts marked, the site written whole or not at all, and what --force may replace."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from alexnet_deploy.dashboard.site import SUMMARY, write_dashboard
from alexnet_deploy.dashboard.trends import shown_commit
from alexnet_deploy.outputs import MARKER, mark_directory
from tests.dashboard.conftest import JUDGED, store_reports
from tests.dashboard.seeded import SeededLine, seeded_reports
from tests.test_faults import _snapshot, assert_clean_failure


def embedded_figures(html: str) -> dict[str, tuple[list, dict]]:
    """Each Plotly figure a page embeds: div id -> (traces, layout), read from the
    ``Plotly.newPlot("id", [traces], {layout}, ...)`` call Plotly writes."""
    decoder = json.JSONDecoder()
    figures = {}
    for match in re.finditer(r'Plotly\.newPlot\(\s*"([^"]+)",\s*', html):
        traces, end = decoder.raw_decode(html, match.end())
        start = re.compile(r"\s*,\s*").match(html, end).end()
        layout, _ = decoder.raw_decode(html, start)
        figures[match.group(1)] = (traces, layout)
    return figures


def _summary(site) -> dict:
    return json.loads((site / SUMMARY).read_text())


def _page_of(summary: dict, label: str) -> dict:
    return next(p for p in summary["pages"] if p["label"] == label)


def test_the_site_has_an_index_a_page_per_trend_and_no_network_reference(seeded_store, tmp_path):
    site = write_dashboard(seeded_store.path, tmp_path / "site")
    files = sorted(p.name for p in site.path.iterdir())
    pages = [f for f in files if f.startswith("trend-")]
    assert len(pages) == len(site.trends) == 26  # docs/benchmarks/main's 26 configurations
    assert {"index.html", "plotly.min.js", SUMMARY, MARKER} <= set(files)
    index = (site.path / "index.html").read_text()
    assert sorted(set(re.findall(r'href="(trend-[^"]+)"', index))) == pages
    for name in pages:
        html = (site.path / name).read_text()
        assert html.count('src="plotly.min.js"') == 1  # the one copy, beside the page
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), name  # no CDN, no URL
        assert set(embedded_figures(html)) == {"throughput", "p50", "p99", "fidelity"}
    assert len((site.path / "plotly.min.js").read_bytes()) > 1_000_000  # the whole library


def test_the_injected_step_is_marked_at_its_commit(small_store, tmp_path):
    """The figures draw each change point the gate's detector (gate.changepoint) finds, where
    it says; in the judged configuration the injected 15% step, at the injected commit."""
    from alexnet_deploy.gate.changepoint import detect_changes
    from alexnet_deploy.store.db import open_store

    site = write_dashboard(small_store.path, tmp_path / "site")
    summary = _summary(site.path)
    with open_store(small_store.path) as store:
        for page in summary["pages"]:
            expected = detect_changes(store.series(page["label"], "vnni", page["model_sha256"]))
            assert [c["index"] for c in page["changes"]] == [c.index for c in expected]
            figures = embedded_figures((site.path / page["page"]).read_text())
            for name, (_, layout) in figures.items():
                drawn = [s["x0"] for s in layout.get("shapes", ())]
                assert drawn == [c.index for c in expected], (page["label"], name)
    judged = _page_of(summary, JUDGED)
    (change,) = judged["changes"]
    assert change["commit"] == small_store.step_commit and change["index"] == small_store.line.step_at
    assert -0.2 < change["relative_change"] < -0.1
    figures = embedded_figures((site.path / judged["page"]).read_text())
    texts = [a["text"] for a in figures["throughput"][1]["annotations"]]
    assert texts == [f"step {change['relative_change']:+.1%} at {shown_commit(change['commit'])}"]
    ticks = figures["throughput"][1]["xaxis"]["ticktext"]
    assert ticks == [shown_commit(c) for c in small_store.line.commits]  # commits, run order


def test_every_configuration_shows_the_injected_step_at_its_commit(seeded_store, tmp_path):
    """Issue #26's "done when": the dashboard of the seeded history marks the injected change
    at the right commit, in every configuration (each a clean 15% step under 2% jitter)."""
    site = write_dashboard(seeded_store.path, tmp_path / "site")
    placed = {
        page["label"]: [(c["commit"][:7], round(c["relative_change"], 3)) for c in page["changes"]]
        for page in _summary(site.path)["pages"]
    }
    wrong = {
        label: changes
        for label, changes in placed.items()
        if len(changes) != 1 or changes[0][0] != seeded_store.step_commit[:7]
    }
    assert not wrong, f"injected at {seeded_store.step_commit[:7]}; found: {wrong}"


def test_a_history_without_a_step_marks_none(tmp_path):
    from tests.dashboard.seeded import synthetic_commits

    labels = (JUDGED, "ort int8 b1 latency")
    line = SeededLine(synthetic_commits(10), step_at=10, seed=3, labels=labels)
    reports = seeded_reports(line, tmp_path / "r")
    store_reports(tmp_path / "flat.sqlite", reports)
    site = write_dashboard(tmp_path / "flat.sqlite", tmp_path / "site")
    assert all(not page["changes"] for page in _summary(site.path)["pages"])
    page = (site.path / site.trends[0].page).read_text()
    assert "No change point detected." in page
    assert all(not layout.get("shapes") for _, layout in embedded_figures(page).values())


def test_gate_verdicts_are_marked_on_the_runs_they_judged(small_store, tmp_path):
    site = write_dashboard(small_store.path, tmp_path / "site")
    judged = _page_of(_summary(site.path), JUDGED)
    traces, _ = embedded_figures((site.path / judged["page"]).read_text())["throughput"]
    marks = {t["name"]: t["x"] for t in traces if t["name"].startswith("gate: ")}
    at = small_store.line.step_at
    assert marks == {"gate: pass": [at - 2, 9], "gate: regression": [at]}
    index = (site.path / "index.html").read_text()
    row = next(r for r in index.split("<tr>") if f">{JUDGED}</a>" in r)
    assert '<span class="pass">pass</span>' in row  # the latest run's verdict
    others = [r for r in index.split("<tr>") if "</a>" in r and f">{JUDGED}</a>" not in r]
    verdict_cells = [re.findall(r"<td[^>]*>(.*?)</td>", r)[-2] for r in others]
    assert len(verdict_cells) == 2 and set(verdict_cells) == {"-"}  # no verdict stored there


def test_the_index_compares_the_latest_run_with_the_previous_one(small_store, tmp_path):
    from alexnet_deploy.store.db import open_store

    site = write_dashboard(small_store.path, tmp_path / "site")
    trend = next(t for t in site.trends if t.label == JUDGED)
    with open_store(small_store.path) as store:
        latest, previous = store.results(small_store.run_uuids[-1]), store.results(
            small_store.run_uuids[-2]
        )
    now = next(r for r in latest if r.label == JUDGED).images_per_s
    before = next(r for r in previous if r.label == JUDGED).images_per_s
    assert trend.change("images/s") == pytest.approx(now / before - 1)
    index = (site.path / "index.html").read_text()
    row = next(r for r in index.split("<tr>") if f">{JUDGED}</a>" in r)
    assert f"<td>{now:.1f}</td>" in row and f"{now / before - 1:+.1%}" in row
    assert shown_commit(small_store.line.commits[-2]) in index  # the previous run, named


def test_the_cli_writes_the_site_and_names_the_change_points(cli, small_store, tmp_path):
    result = cli("dashboard", small_store.path, "-o", tmp_path / "site")
    assert result.exit_code == 0, result.stderr
    assert f"at commit {shown_commit(small_store.step_commit)}" in result.stdout
    assert "10 runs, 3 trends" in result.stdout and "index.html" in result.stdout


def test_an_interrupted_run_leaves_the_old_site_as_it_was(small_store, tmp_path):
    site = tmp_path / "site"
    write_dashboard(small_store.path, site)
    before = _snapshot(site)

    def interrupt(message: str) -> None:
        if message.startswith("page 3/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_dashboard(small_store.path, site, force=True, progress=interrupt)
    assert _snapshot(site) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]  # no staging left beside


def test_force_replaces_only_a_site_this_command_wrote(cli, small_store, tmp_path):
    site = tmp_path / "site"
    write_dashboard(small_store.path, site)
    before = _snapshot(site)
    again = cli("dashboard", small_store.path, "-o", site)
    assert_clean_failure(again, 1, "already exists", before, [site])
    assert "--force" in again.stderr
    inode = site.stat().st_ino
    forced = cli("dashboard", small_store.path, "-o", site, "--force")
    assert forced.exit_code == 0, forced.stderr
    assert site.stat().st_ino != inode and (site / "index.html").is_file()  # a new site, whole

    (site / "notes.txt").write_text("mine")  # a user's file in the site: never deleted
    before = _snapshot(site)
    result = cli("dashboard", small_store.path, "-o", site, "--force")
    assert_clean_failure(result, 1, "notes.txt", before, [site])


def test_force_never_replaces_a_directory_the_dashboard_did_not_write(cli, small_store, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "index.html").write_text("<p>my own page</p>")
    before = _snapshot(mine)
    result = cli("dashboard", small_store.path, "-o", mine, "--force")
    assert_clean_failure(result, 1, "not made by alexnet-deploy", before, [mine])

    repository = tmp_path / "repository"  # another command's output (a Triton repository)
    repository.mkdir()
    (repository / "config.pbtxt").write_text("name: 'm'")
    mark_directory(repository, "package", complete=True)
    before = _snapshot(repository)
    result = cli("dashboard", small_store.path, "-o", repository, "--force")
    assert_clean_failure(result, 1, "holds the output of 'alexnet-deploy package'", before,
                         [repository])  # fmt: skip

    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli("dashboard", small_store.path, "-o", empty).exit_code == 0
    assert (empty / "index.html").is_file()


def test_the_site_may_not_be_or_hold_the_store(cli, small_store, tmp_path):
    store = tmp_path / "work" / "results.sqlite"
    store.parent.mkdir()
    shutil.copy(small_store.path, store)
    before = _snapshot(tmp_path)
    result = cli("dashboard", store, "-o", store, "--force")
    assert_clean_failure(result, 2, "is the results store", before, [tmp_path])
    result = cli("dashboard", store, "-o", tmp_path, "--force")
    assert_clean_failure(result, 2, "holds the results store", before, [tmp_path])


def test_a_missing_or_corrupt_store_is_one_line_and_nothing_written(cli, tmp_path):
    result = cli("dashboard", tmp_path / "none.sqlite", "-o", tmp_path / "site")
    assert_clean_failure(result, 1, "no results store at")
    assert not (tmp_path / "none.sqlite").exists() and not (tmp_path / "site").exists()

    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"SQLite format 3\x00" + b"\x13" * 4000)
    before = _snapshot(tmp_path)
    result = cli("dashboard", corrupt, "-o", tmp_path / "site")
    assert_clean_failure(result, 1, "is not a results store", before, [tmp_path])
    assert not (tmp_path / "site").exists()


def test_an_empty_store_is_refused(cli, tmp_path):
    from alexnet_deploy.store.db import open_store

    with open_store(tmp_path / "empty.sqlite"):
        pass
    result = cli("dashboard", tmp_path / "empty.sqlite", "-o", tmp_path / "site")
    assert_clean_failure(result, 1, "holds no results (0 runs)")
    assert not (tmp_path / "site").exists()


def test_a_failed_run_is_a_gap_named_with_its_reason(tmp_path):
    from tests.dashboard.seeded import synthetic_commits

    line = SeededLine(synthetic_commits(6), step_at=6, labels=(JUDGED, "ort int8 b1 latency"))
    reports = seeded_reports(line, tmp_path / "r")
    summary = json.loads((reports[-1] / "bench-summary.json").read_text())
    row = next(r for r in summary["rows"] if r["backend"] == "ort" and r["precision"] == "fp32")
    row.update(status="failed", reason="engine build failed: out of memory")
    (reports[-1] / "bench-summary.json").write_text(json.dumps(summary))
    store_reports(tmp_path / "s.sqlite", reports)
    site = write_dashboard(tmp_path / "s.sqlite", tmp_path / "site")
    trend = next(t for t in site.trends if t.label == JUDGED)
    assert not trend.latest.ok and trend.previous is trend.results[-2]
    index = (site.path / "index.html").read_text()
    row_html = next(r for r in index.split("<tr>") if f">{JUDGED}</a>" in r)
    assert "failed: engine build failed: out of memory" in row_html
    page = (site.path / trend.page).read_text()
    traces, _ = embedded_figures(page)["throughput"]
    values = next(t for t in traces if t["name"] == "images/s")["y"]
    assert values[-1] is None and all(v is not None for v in values[:-1])  # a gap, not a zero
    reason = "failed: engine build failed: out of memory"
    assert page.count(f">{reason}</span>") == 1  # in the runs table
    assert next(t for t in traces if t["name"] == "images/s")["customdata"][-1][-1] == reason
