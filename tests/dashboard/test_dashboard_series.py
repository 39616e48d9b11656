"""What a trend is made of, on real SQLite stores of seeded copies of docs/benchmarks/main: one
machine class per page (the CPU class and the CPU model: the recorded Xeon and AMD EPYC are
both "vnni" and differ up to 2.5x), bench, gate and import runs only (never tune or plan), one
page per model whatever it was named, an unstable row named as such, a step too close to the
newest run shown as a candidate, and what the command prints off a terminal."""

from __future__ import annotations

import json
import re
from pathlib import Path

from alexnet_deploy.dashboard.site import write_dashboard
from tests.dashboard.conftest import JUDGED
from tests.dashboard.seeded import SeededLine, seeded_reports, synthetic_commits
from tests.dashboard.test_dashboard_site import _summary, embedded_figures

XEON = "Intel(R) Xeon(R) Processor"  # docs/benchmarks/main's CPU
AMD = "AMD EPYC"  # docs/benchmarks/main-amd-zen4's: of class vnni too


def _edit(report: Path, change) -> Path:
    """Rewrite a seeded report's bench-summary.json through ``change(data)``."""
    path = report / "bench-summary.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return report


def _store(path: Path, reports: list[Path], kinds: dict[int, str] | None = None) -> Path:
    """The reports stored in ``path``, oldest first (``kinds``: index -> a kind other than
    import)."""
    from alexnet_deploy.store.db import open_store
    from alexnet_deploy.store.from_report import run_from_report

    with open_store(path) as store:
        for number, report in enumerate(reports):
            kind = (kinds or {}).get(number, "import")
            store.add_run(*run_from_report(report, kind=kind, branch="main"))
    return path


def _line(tmp_path: Path, runs: int, *, step_at: int | None = None, seed: int = 0) -> list[Path]:
    line = SeededLine(synthetic_commits(runs), runs if step_at is None else step_at, seed=seed,
                      labels=(JUDGED,))  # fmt: skip
    return seeded_reports(line, tmp_path / f"line-{runs}-{seed}")


def _cpu(name: str, faster: float = 1.0):
    def change(data: dict) -> None:
        data["environment"]["cpu"] = name
        for row in data["rows"]:
            row["images_per_s"] *= faster

    return change


def test_two_cpu_models_of_one_class_are_two_pages_compared_within_each(tmp_path):
    """Xeon and AMD runs of one configuration, interleaved in time, the AMD 2.5x faster: two
    pages; each index row's change is against the previous run of its own machine class (a
    few percent of jitter), never the other CPU's (+150% or -60%)."""
    reports = _line(tmp_path, 8)
    for number, report in enumerate(reports):
        _edit(report, _cpu(AMD, 2.5) if number % 2 else _cpu(XEON))
    site = write_dashboard(_store(tmp_path / "s.sqlite", reports), tmp_path / "site")
    assert sorted((t.cpu_class, t.cpu_model, len(t.results)) for t in site.trends) == [
        ("vnni", AMD, 4), ("vnni", XEON, 4),
    ]  # fmt: skip
    assert len({t.page for t in site.trends}) == 2
    for trend in site.trends:
        assert {r.run.cpu_model for r in trend.results} == {trend.cpu_model}
        assert abs(trend.change("images/s")) < 0.1  # against its own class's previous run
    index = (site.path / "index.html").read_text()
    assert f"on vnni / {XEON}</h2>" in index and f"on vnni / {AMD}</h2>" in index
    pages = {p["cpu_model"] for p in _summary(site.path)["pages"]}
    assert pages == {XEON, AMD}


def test_tune_and_plan_runs_are_not_in_a_trend(tmp_path):
    reports = _line(tmp_path, 6)
    kinds = {2: "tune", 4: "plan", 5: "bench"}
    site = write_dashboard(_store(tmp_path / "s.sqlite", reports, kinds), tmp_path / "site")
    [trend] = site.trends
    assert [r.run.kind for r in trend.results] == ["import", "import", "import", "bench"]


def test_one_model_stored_under_two_names_is_one_page_named_as_its_latest_run(tmp_path):
    reports = _line(tmp_path, 4)

    def named(name: str):
        return lambda data: data["model"].update(name=name)

    for number, report in enumerate(reports):
        _edit(report, named("alexnet-old-name" if number < 2 else "alexnet-new-name"))
    site = write_dashboard(_store(tmp_path / "s.sqlite", reports), tmp_path / "site")
    [trend] = site.trends
    assert trend.model_name == "alexnet-new-name" and len(trend.results) == 4
    assert len([p for p in site.path.iterdir() if p.name.startswith("trend-")]) == 1


def test_an_unstable_row_says_so_with_its_reason_and_a_hollow_marker(tmp_path):
    reports = _line(tmp_path, 5)
    why = "rounds disagree: 14% apart"

    def unstable(data: dict) -> None:
        data["rows"][0].update(unstable=True, instability=why)

    _edit(reports[2], unstable)
    _edit(reports[4], unstable)  # the latest run: the index's status too
    site = write_dashboard(_store(tmp_path / "s.sqlite", reports), tmp_path / "site")
    [trend] = site.trends
    status = f"unstable: {why}"
    assert trend.statuses == ("ok", "ok", status, "ok", status)
    index = (site.path / "index.html").read_text()
    row = next(r for r in index.split("<tr>") if f">{JUDGED}</a>" in r)
    assert f'<span class="unstable" title="{status}">{status}</span>' in row
    page = (site.path / trend.page).read_text()
    assert page.count(f">{status}</span>") == 2  # the runs table
    traces, _ = embedded_figures(page)["throughput"]
    line = next(t for t in traces if t["name"] == "images/s")
    assert [c[-1] for c in line["customdata"]] == list(trend.statuses)  # the hover
    assert line["marker"]["symbol"] == ["circle", "circle", "circle-open", "circle", "circle-open"]


def test_a_step_three_runs_from_the_end_of_nine_is_a_faint_candidate(tmp_path):
    """Nine runs, 15% slower for the last three: the permutation test cannot name it yet
    (p >= 0.066 exactly, however clear); the page draws it faint and dotted, the index says
    "candidate", dashboard.json lists it apart from the change points."""
    reports = _line(tmp_path, 9, step_at=6)
    site = write_dashboard(_store(tmp_path / "s.sqlite", reports), tmp_path / "site")
    [trend] = site.trends
    assert trend.changes == () and [c.index for c in trend.candidates] == [6]
    [page] = _summary(site.path)["pages"]
    assert page["changes"] == [] and [c["index"] for c in page["candidates"]] == [6]
    assert 0.05 < page["candidates"][0]["p_value"] <= 0.1
    html = (site.path / trend.page).read_text()
    _, layout = embedded_figures(html)["throughput"]
    [line] = layout["shapes"]
    assert line["x0"] == 6 and line["line"]["dash"] == "dot" and "0.35" in line["line"]["color"]
    [text] = [a["text"] for a in layout["annotations"]]
    assert text.startswith("candidate step -1") and "(p=0." in text
    index = (site.path / "index.html").read_text()
    assert '<span class="candidate">candidate step' in index


def test_off_a_terminal_the_command_prints_a_summary_not_a_line_per_page(cli, seeded_store, tmp_path):
    result = cli("dashboard", seeded_store.path, "-o", tmp_path / "site")
    assert result.exit_code == 0, result.stderr
    changes = [line for line in result.stdout.splitlines() if line.startswith("change point:")]
    step = seeded_store.step_commit[:7]
    assert len(changes) == 1 and f"at commit {step} in 26 of 26 trends" in changes[0]
    assert not re.search(r"page \d+/", result.stderr) and "writing 26 trend pages" in result.stderr


def test_the_command_list_names_the_dashboard_in_one_whole_sentence(cli):
    """The command list shows a docstring's first paragraph line by line: its first line alone
    must be a whole sentence (it read "... an index of every configuration's")."""
    import inspect

    from alexnet_deploy.cli.dashboard import dashboard

    first, _ = inspect.getdoc(dashboard).split("\n\n", 1)
    assert "\n" not in first and re.fullmatch(r"[A-Z][^.]*\.", first), first
    result = cli("--help")
    assert result.exit_code == 0
    entry = result.stdout[result.stdout.index("│ dashboard ") :].split("│ doctor", 1)[0]
    assert " ".join(part.strip(" │") for part in entry.splitlines()) == f"dashboard  {first}"
