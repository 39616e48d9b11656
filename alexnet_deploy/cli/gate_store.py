"""``gate --history STORE``: the current run against a results store's runs of its machine
class (gate/store_history.py), and with ``--store`` the verdicts written back. ``gate``
(cli/gate.py) parses the command line and calls :func:`gate_store`."""

from __future__ import annotations

from pathlib import Path

import typer

from alexnet_deploy import constants as C
from alexnet_deploy.cli.console import out_console, status
from alexnet_deploy.cli.gate_result import after_verdict, raise_store_failure, show_result
from alexnet_deploy.render import TableFormat


def gate_store(
    history: str, current: Path | None, run_now: bool, last: int | None, store: str | None,
    thresholds: list[str], top1_budget: float, outputs: dict, strict: bool, work_dir: Path,
    not_here: list[str], fmt: TableFormat = TableFormat.table,
) -> None:  # fmt: skip
    """``gate --history STORE``: the current run against the store's runs (gate/store_history.py);
    with ``--store``, the verdicts written back."""
    from alexnet_deploy.cli.store import check_store
    from alexnet_deploy.errors import UsageError
    from alexnet_deploy.gate.output import write_outputs
    from alexnet_deploy.gate.store_history import (
        StoreGateRequest,
        check_store_request,
        judge_with_store,
        store_failures_exit_2,
        write_back,
    )
    from alexnet_deploy.gate.thresholds import Thresholds
    from alexnet_deploy.store.from_report import store_spec
    from alexnet_deploy.workflow import gate_makers

    if not_here:
        raise UsageError(
            f"{', '.join(not_here)} do(es) not apply to gate --history STORE",
            hint="--history STORE judges separate runs against the store's: drop them",
        )
    with store_failures_exit_2():  # --store opened before any work
        write_to = check_store(store, work_dir)
    request = StoreGateRequest(
        store_spec(history, work_dir), current, run=run_now,
        last=C.GATE_HISTORY_RUNS if last is None else last,
        thresholds=Thresholds.parse(thresholds, top1_budget), write_to=write_to,
        work_dir=work_dir,
    )  # fmt: skip
    check_store_request(request, outputs)
    with status("gate") as shown:
        result, run, results = judge_with_store(
            request, gate_makers(work_dir, shown.update), progress=shown.update
        )
    code = show_result(result, strict, fmt)
    write_outputs(result, *outputs.values())

    def written_back() -> None:
        line = write_back(request.write_to, run, results, result.history)
        out_console.print(line, highlight=False, soft_wrap=True)

    if request.write_to:  # after the verdict is out
        failed = after_verdict(written_back)
        raise_store_failure(failed, code, "the gate's verdict above and its outputs were kept")
    if code:
        raise typer.Exit(code)
