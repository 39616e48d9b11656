"""``store import``: report directories stored one run each. Every path given must exist before
anything is stored; the store is opened (and made, where it is not there yet) only when the
first run is ready to store, so an import that has nothing to store makes no store. A report
the store holds already (a run's id is its report's content) is skipped, not an error; one that
cannot be read is named with why, and the others are still stored. A store that fails (cannot
be opened, busy, damaged, the connection lost) stops the import: no later report would fare
better."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.store.records import StoredRun

STORED, ALREADY_STORED, NOT_STORED = "stored", "already stored", "not stored"


@dataclass(frozen=True)
class Imported:
    """What became of one report directory."""

    directory: Path
    outcome: str  # STORED, ALREADY_STORED or NOT_STORED
    run: StoredRun | None = None
    configurations: int = 0
    why: str = ""  # NOT_STORED: the one-line reason
    made: bool = False  # storing it made the store


def given_reports(paths: list[Path]) -> list[Path]:
    """Every report directory ``paths`` name (each a report directory or a directory holding
    them, searched below); a path that does not exist is refused before anything is stored."""
    from alexnet_deploy.store.from_report import report_dirs

    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise AlexnetDeployError(
            f"{', '.join(missing)} {'does' if len(missing) == 1 else 'do'} not exist",
            hint="pass report directories ('alexnet-deploy bench --out' writes one) or "
            "directories holding them",
        )
    return [d for given in paths for d in report_dirs(Path(given))]


class ReportImport:
    """Report directories stored into the store ``spec`` one at a time (:meth:`add`); a context
    manager that closes the store, if one was opened."""

    def __init__(self, spec: str, *, branch: str | None = None, option: str = "--store") -> None:
        self.spec, self.branch, self.option = spec, branch, option
        self.store = None  # opened by the first run to store

    def __enter__(self) -> ReportImport:
        return self

    def __exit__(self, *exc) -> None:
        if self.store is not None:
            self.store.close()

    def add(self, directory: Path) -> Imported:
        """Store one report directory's run. A failure of the store is raised (the run is not
        stored: a run is stored whole or not at all)."""
        from alexnet_deploy.store.db import RunAlreadyStored, open_store
        from alexnet_deploy.store.from_report import run_from_report

        try:
            run, results = run_from_report(directory, branch=self.branch)
        except AlexnetDeployError as err:
            return Imported(directory, NOT_STORED, why=err.message)
        made = False
        if self.store is None:
            self.store = open_store(self.spec, option=self.option)
            made = self.store.made
        try:
            self.store.add_run(run, results)
        except RunAlreadyStored:
            return Imported(directory, ALREADY_STORED, run, len(results), made=made)
        return Imported(directory, STORED, run, len(results), made=made)
