"""store: the results store on the command line (``store import``, ``store list``,
``store show``), and the ``--store`` option that bench, tune, gate --run and plan share: the
store is checked before the work, writing nothing (a wrong URL or a corrupt file fails first, in
seconds), and the run appended once its report is written (a store not there yet made then, and
said)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from alexnet_deploy import constants as C
from alexnet_deploy.cli.console import err_console, out_console, print_table, use_format
from alexnet_deploy.cli.options import FormatOpt, PositiveInt, WorkDirOpt
from alexnet_deploy.errors import EXIT_FAILURE
from alexnet_deploy.render import TableFormat
from alexnet_deploy.store.records import KINDS, short_commit

STORE_HELP = (
    "a file (SQLite), postgresql://USER:PASSWORD@HOST:PORT/DB (the password may come from "
    "PGPASSWORD or ~/.pgpass instead), or 'default' (WORK_DIR/results.sqlite)"
)
StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        metavar="STORE",
        help=f"Also append this run to a results store: {STORE_HELP}. Checked before the work "
        "(a new store is made when the run is stored, and said); a store failure after a good "
        "run keeps the report and exits non-zero with the store's error.",
    ),
]
ReadStoreOpt = Annotated[
    str,
    typer.Option("--store", metavar="STORE", help=f"The results store: {STORE_HELP}."),
]

# command lines that write no bench report: --store given with them is a usage error
END_TO_END_NOT_STORED = (
    "--store keeps bench reports; bench --end-to-end writes another kind (end-to-end.json)",
    "run bench without --end-to-end to store the run",
)
GATE_WITHOUT_RUN_NOT_STORED = (
    "gate --store keeps the run that --run benches; this gate benches nothing",
    "add --run, or store the CURRENT report with 'alexnet-deploy store import CURRENT'",
)

store_app = typer.Typer(
    name="store",
    help="The results store: every run kept across commits and machines (docs/store.md).",
    no_args_is_help=True,
)


def check_store(
    store: str | None, work_dir: Path, *, refused: tuple[str, str] | None = None
) -> str | None:
    """``--store``'s value resolved and checked once, before the work: a store that cannot be
    used is refused now, and nothing is written (a store not there yet is made when the run is
    stored). The spec to append to afterwards (None: not asked). ``refused``: why this command
    line has nothing to store, and the hint (a usage error when --store is given)."""
    from alexnet_deploy.store.connect import probe_store
    from alexnet_deploy.store.from_report import store_spec

    if store is not None and refused is not None:
        from alexnet_deploy.errors import UsageError

        raise UsageError(refused[0], hint=refused[1])
    spec = store_spec(store, work_dir)
    if spec is not None:
        probe_store(spec)
    return spec


def append_report(
    spec: str | None, report_dir: Path, kind: str, *, exit_code: int = EXIT_FAILURE
) -> None:
    """Append the report just written to the store (nothing without ``--store``) and say so.
    A failure keeps the report and is raised with ``exit_code`` (the gate decides what its own
    exit says: a store failure never hides a regression, cli/gate_result.py)."""
    from alexnet_deploy.store.from_report import run_from_report

    append_run(
        spec,
        lambda: run_from_report(report_dir, kind=kind),
        kept=f"the report in {report_dir}",
        exit_code=exit_code,
    )


def append_run(
    spec: str | None, make: Callable[[], tuple], *, kept: str, exit_code: int = EXIT_FAILURE
) -> None:
    """Append the run ``make`` gives (a StoredRun and its results) to the store (nothing
    without ``--store``) and say so; a failure names what was kept and exits ``exit_code``."""
    if spec is None:
        return
    from alexnet_deploy.errors import AlexnetDeployError
    from alexnet_deploy.store.db import open_store

    try:
        run, results = make()
        with open_store(spec) as store:
            if store.made:
                _say_made(store.display)
            store.add_run(run, results)
            line = _stored_line(run, store.display)
    except AlexnetDeployError as err:
        err.exit_code = exit_code
        err.message += f" ({kept} was kept)"
        raise
    out_console.print(line, highlight=False, soft_wrap=True)


def _stored_line(run, display: str) -> str:
    return f"stored run {run.uuid[:8]} in {display}"


def _say_made(display: str) -> None:
    """A store made now is said (a mistyped --store makes a new file rather than failing)."""
    out_console.print(f"made a new results store at {display}", highlight=False, soft_wrap=True)


def _resolved(store: str, work_dir: Path) -> str:
    from alexnet_deploy.store.from_report import store_spec

    return store_spec(store, work_dir)


@store_app.command("import")
def import_reports(
    directories: Annotated[
        list[Path],
        typer.Argument(
            help="Bench report directories (bench-summary.json, bench-samples.parquet), or "
            "directories holding them (searched below)."
        ),
    ],
    store: ReadStoreOpt = "default",
    branch: Annotated[
        str | None,
        typer.Option(
            "--branch",
            help="The branch the reports were made on (default: this checkout's, for a report "
            "of its commit; else none).",
        ),
    ] = None,
    work_dir: WorkDirOpt = Path(C.DEFAULT_WORK_DIR),
) -> None:
    """Store existing report directories, one run each; a report already stored is skipped, one
    that cannot be stored is named with why (exit 1) and the others are still stored."""
    from alexnet_deploy.errors import AlexnetDeployError, Interrupted
    from alexnet_deploy.store.importing import NOT_STORED, ReportImport, given_reports

    found = given_reports(directories)  # a path that does not exist: refused, nothing made
    done = []
    with ReportImport(_resolved(store, work_dir), branch=branch) as importing:
        try:
            for directory in found:
                done.append(importing.add(directory))
                _say_imported(done[-1], importing.store)
        except KeyboardInterrupt:
            raise Interrupted(_imported_so_far(done, len(found))) from None
        except AlexnetDeployError as err:  # the store failed: the import stops here
            err.message += f" ({_imported_so_far(done, len(found))})" if done else ""
            raise
    refused = [i for i in done if i.outcome == NOT_STORED]
    if refused:
        raise AlexnetDeployError(
            f"{len(refused)} of {len(found)} report directories were not stored (each named "
            "above with why)",
            hint="fix what each names and import them again (the reports stored now are "
            "skipped as already stored)",
        )


def _say_imported(item, store) -> None:
    from alexnet_deploy.store.importing import ALREADY_STORED, NOT_STORED

    if item.made:
        _say_made(store.display)
    if item.outcome == NOT_STORED:
        err_console.print(
            f"Not stored: {item.directory}: {item.why}",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
        return
    line = (
        f"already stored (skipped): {item.directory}: run {item.run.uuid[:8]} is in {store.display}"
        if item.outcome == ALREADY_STORED
        else f"{_stored_line(item.run, store.display)}: {item.directory} ({item.configurations} "
        f"configurations, {item.run.created}, {item.run.cpu_class})"
    )
    out_console.print(line, highlight=False, soft_wrap=True, markup=False)


def _imported_so_far(done: list, total: int) -> str:
    """What an import had stored when it stopped (interrupted, or its store failed)."""
    from alexnet_deploy.store.importing import ALREADY_STORED, STORED

    stored = [i.run.uuid[:8] for i in done if i.outcome == STORED]
    skipped = sum(i.outcome == ALREADY_STORED for i in done)
    already = f"; {skipped} already stored" if skipped else ""
    if not stored:
        return f"stored none of {total}{already}; the store holds what it held before"
    ids = ", ".join(stored)
    return f"stored {len(stored)} of {total} ({ids}){already}; the rest were not stored"


def _kind(param: typer.CallbackParam, value: str | None):
    if value is not None and value not in KINDS:
        from alexnet_deploy.errors import UsageError

        raise UsageError(f"--kind {value!r} is not a kind", hint=f"choose from: {', '.join(KINDS)}")
    return value


@store_app.command("list")
def list_runs(
    store: ReadStoreOpt = "default",
    kind: Annotated[
        str | None,
        typer.Option("--kind", help=f"Only runs of this kind: {', '.join(KINDS)}.", callback=_kind),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", help="Only the last N runs.", callback=PositiveInt),
    ] = None,
    work_dir: WorkDirOpt = Path(C.DEFAULT_WORK_DIR),
    fmt: FormatOpt = TableFormat.table,
) -> None:
    """The stored runs, oldest first: when, what kind, commit, branch, CPU class, model, and
    how many configurations (and how many of them failed)."""
    use_format(fmt)
    import polars as pl

    from alexnet_deploy.store.db import open_store

    with open_store(_resolved(store, work_dir), create=False) as opened:
        runs = opened.runs(kind=kind, limit=limit)
        total = opened.count_runs(kind=kind)
        counts = opened.result_counts()
        display = opened.display
    frame = pl.DataFrame(
        [
            {
                "run": r.uuid[:8],
                "created": r.created,
                "kind": r.kind,
                "commit": short_commit(r.commit),
                "branch": r.branch,
                "cpu class": r.cpu_class,
                "cpu": r.cpu_model,
                "model": r.model_name,
                "configurations": counts.get(r.uuid, (0, 0))[0],
                "failed": counts.get(r.uuid, (0, 0))[0] - counts.get(r.uuid, (0, 0))[1],
            }
            for r in runs
        ],
        schema={
            "run": pl.String, "created": pl.String, "kind": pl.String, "commit": pl.String,
            "branch": pl.String, "cpu class": pl.String, "cpu": pl.String, "model": pl.String,
            "configurations": pl.Int64, "failed": pl.Int64,
        },
    )  # fmt: skip
    what = f"{total} {kind + ' ' if kind else ''}runs in {display}"
    print_table(frame, f"last {frame.height} of {what}" if frame.height < total else what)


@store_app.command("show")
def show_run(
    run: Annotated[str, typer.Argument(help="The run's id, as 'store list' shows it.")],
    store: ReadStoreOpt = "default",
    work_dir: WorkDirOpt = Path(C.DEFAULT_WORK_DIR),
    fmt: FormatOpt = TableFormat.table,
) -> None:
    """One stored run: where it came from, and each configuration's images/s, p50 and p99 with
    their intervals, and fidelity."""
    use_format(fmt)
    import polars as pl

    from alexnet_deploy.store.db import open_store

    with open_store(_resolved(store, work_dir), create=False) as opened:
        found = opened.run(run)
        results = opened.results(found.uuid)
    frame = pl.DataFrame(
        [
            {
                "configuration": r.label,
                **_status(r),
                "img/s": _round(r.images_per_s, 1),
                "p50 ms": _round(r.p50_ms),
                "p50 95% CI": _interval(r.p50_ci_ms),
                "p99 ms": _round(r.p99_ms),
                "p99 95% CI": _interval(r.p99_ci_ms),
                "top-1 agree": _round(r.top1_agreement),
                "samples": None if r.samples_ms is None else len(r.samples_ms),
            }
            for r in results
        ],
        schema={
            "configuration": pl.String, "status": pl.String, "why": pl.String,
            "img/s": pl.Float64, "p50 ms": pl.Float64, "p50 95% CI": pl.String,
            "p99 ms": pl.Float64, "p99 95% CI": pl.String, "top-1 agree": pl.Float64,
            "samples": pl.Int64,
        },
    )  # fmt: skip
    title = (
        f"run {found.uuid[:8]}: {found.kind} of {found.model_name}, {found.created}, "
        f"commit {short_commit(found.commit) or '-'}, {found.cpu_model} ({found.cpu_class})"
    )
    print_table(frame, title)
    if found.source:
        from alexnet_deploy.store.from_report import source_changed

        since = source_changed(found)
        kept = f" ({since}; the store holds its figures)" if since else ""
        err_console.print(
            f"from {found.source}{kept}", highlight=False, soft_wrap=True, markup=False
        )


def _status(result) -> dict:
    """A stored configuration's status as the bench report shows it: "failed" with its reason,
    "unstable" (its measurements disagree with themselves) with why, or "ok"."""
    from alexnet_deploy.bench.stats import Stability

    if not result.ok:
        return {"status": "failed", "why": result.record.get("reason") or None}
    stability = Stability.from_columns(result.record)  # None: a plan's, or an older report's
    if stability is not None and stability.unstable:
        return {"status": "unstable", "why": stability.text}
    return {"status": "ok", "why": None}


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _interval(pair) -> str | None:
    return None if pair is None else f"{pair[0]:.3f}-{pair[1]:.3f}"
