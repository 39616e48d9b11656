"""``dashboard STORE -o SITE``: the static site, written whole or not at all.

The pages are written into a staging directory beside SITE and renamed over it at the end
(fileio's ``replace_directory``), so a reader finds the old site, none, or the new one. SITE may
be a new directory, an empty one, or, with ``--force``, a site this command wrote before (its
marker names ``dashboard`` and lists its files: a file added since, or another command's output
directory, is refused even with ``--force``). The store is only read.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

from alexnet_deploy.dashboard.trends import Trend, shown_commit
from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.fileio import replace_directory, staging_directory
from alexnet_deploy.outputs import MARKER, OutputDir, check_outputs, mark_directory
from alexnet_deploy.progress import Progress, silent

COMMAND = "dashboard"  # the marker's command: --force replaces only a site with this one
SUMMARY = "dashboard.json"  # every page's trend, change points and verdicts, for tools
SCHEMA = "alexnet-deploy/dashboard/1"


@dataclass
class Site:
    """A written dashboard: where, what it shows, and from which store."""

    path: Path
    store: str  # the store as messages name it (a URL with its password masked)
    runs: int
    trends: list[Trend] = field(default_factory=list)

    @property
    def index(self) -> Path:
        return self.path / "index.html"


def _is_url(spec: str | os.PathLike[str]) -> bool:
    return "://" in os.fspath(spec)


def check_site(out: str | os.PathLike[str], store: str | os.PathLike[str], *, force: bool,
               work_dir: str | os.PathLike[str] | None = None) -> None:  # fmt: skip
    """Refuse, before reading the store, a site path that is the store, holds it, is the
    current or work directory, or a directory another command (or a person) filled."""
    out = Path(out)
    marker = out / MARKER
    if marker.is_file():
        try:
            command = json.loads(marker.read_text(encoding="utf-8")).get("command")
        except (OSError, ValueError, AttributeError):
            command = None
        if command != COMMAND:
            raise AlexnetDeployError(
                f"-o {out} holds the output of 'alexnet-deploy {command}', not a dashboard; "
                "nothing in it was touched",
                hint="give -o a new directory, or one a dashboard was written to",
            )
    store_file = None if _is_url(store) else Path(store)
    check_outputs(
        COMMAND, {"-o": OutputDir(out, replaced=True)}, {"results store": store_file},
        work_dir=work_dir, force=force,
    )  # fmt: skip


def _read(store: str | os.PathLike[str]) -> tuple[str, int, list[Trend]]:
    from alexnet_deploy.dashboard.trends import trends_from_store
    from alexnet_deploy.store.db import open_store

    with open_store(store, create=False) as db:  # a missing file is refused, not made
        runs = len(db.runs())
        trends = trends_from_store(db)
        display = db.display
    if not trends:
        raise AlexnetDeployError(
            f"results store {display} holds no results ({runs} runs)",
            hint="store runs first: 'alexnet-deploy bench --store ...' or 'store import'",
        )
    return display, runs, trends


def summary(site: Site, written: str) -> dict:
    """The site's ``dashboard.json``: each page's trend, its change points and verdicts."""

    def change(c) -> dict:
        return {
            "index": c.index, "commit": c.commit, "run_uuid": c.run_uuid, "before": c.before,
            "after": c.after, "relative_change": c.relative_change, "p_value": c.p_value,
        }  # fmt: skip


    pages = []
    for trend in site.trends:
        pages.append(
            {
                "page": trend.page,
                "label": trend.label,
                "cpu_class": trend.cpu_class,
                "cpu_model": trend.cpu_model,
                "model_name": trend.model_name,
                "model_sha256": trend.model_sha256,
                "commits": [r.run.commit for r in trend.results],
                "runs": [r.run.uuid for r in trend.results],
                "changes": [change(c) for c in trend.changes],
                "candidates": [change(c) for c in trend.candidates],  # p above alpha
                "statuses": list(trend.statuses),
                "verdicts": [
                    {"run_uuid": v.run_uuid, "verdict": v.verdict, "method": v.method,
                     "change_commit": v.change_commit}
                    for _, v in trend.placed_verdicts
                ],  # fmt: skip
            }
        )
    return {"schema": SCHEMA, "store": site.store, "written": written, "runs": site.runs,
            "pages": pages}  # fmt: skip


def _write(staging: Path, site: Site, written: str, progress: Progress) -> None:
    from plotly.offline import get_plotlyjs

    from alexnet_deploy.dashboard.pages import PLOTLY_JS, index_page, trend_page

    (staging / PLOTLY_JS).write_text(get_plotlyjs(), encoding="utf-8")
    progress(f"writing {len(site.trends)} trend pages")
    for number, trend in enumerate(site.trends, 1):
        progress(f"page {number}/{len(site.trends)}: {trend.title}")
        (staging / trend.page).write_text(trend_page(trend), encoding="utf-8")
    index = index_page(site.trends, store=site.store, runs=site.runs, written=written)
    (staging / "index.html").write_text(index, encoding="utf-8")
    text = json.dumps(summary(site, written), indent=2, sort_keys=True) + "\n"
    (staging / SUMMARY).write_text(text, encoding="utf-8")


def write_dashboard(
    store: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    force: bool = False,
    work_dir: str | os.PathLike[str] | None = None,
    progress: Progress = silent,
) -> Site:
    """Write the dashboard of ``store`` (a results store file or a postgresql:// URL) to the
    directory ``out``: ``index.html``, one trend page per configuration, machine class (CPU
    class and CPU model) and model,
    ``plotly.min.js`` and ``dashboard.json``. An existing site is replaced only with ``force``
    and only when this command wrote it. Raises AlexnetDeployError for a missing or empty store,
    a store that cannot be read, or a path it may not write."""
    out = Path(out)
    check_site(out, store, force=force, work_dir=work_dir)
    replace = force or (out.is_dir() and not any(out.iterdir()))  # an empty directory is free
    progress(f"reading {store if not _is_url(store) else 'the store'}")
    display, runs, trends = _read(store)
    site = Site(out, display, runs, trends)
    written = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")
    staging = staging_directory(out)
    try:
        _write(staging, site, written, progress)
        mark_directory(staging, COMMAND, complete=True)
        replace_directory(staging, out, replace=replace)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return site


def change_lines(site: Site, *, each: bool = True) -> list[str]:
    """The detected change points, for the terminal: ``each``, one line per change point;
    else one line per commit where steps came in, with how many trends show one there and
    their median step (a CI log's summary: dashboard.json lists each)."""
    if each:
        return [
            f"{t.title}: step {c.relative_change:+.1%} at commit {shown_commit(c.commit)}"
            for t in site.trends
            for c in t.changes
        ]
    by_commit: dict[str, list[float]] = {}
    for trend in site.trends:
        for c in trend.changes:
            by_commit.setdefault(shown_commit(c.commit), []).append(c.relative_change)
    return [
        f"step {median(moves):+.1%} (median) at commit {commit} in {len(moves)} of "
        f"{len(site.trends)} trends"
        for commit, moves in by_commit.items()
    ]
