"""``gate --history STORE``: a real store (SQLite, and a real PostgreSQL server) of real report
copies (docs/benchmarks/main-amd-zen4, two configurations, their raw samples) on a line of
commits, a 15% slowdown injected from a known commit on: the step is found at that commit and
named in every output, the current run is judged against the runs since, a slower current run
fails, another CPU class is insufficient history (never a pass), and the verdicts go back to
the store with ``--store``."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from alexnet_deploy.store.db import open_store
from alexnet_deploy.store.from_report import run_from_report
from tests.store import conftest as store_fixtures

# the real PostgreSQL server of the store's tests (.ci/run's, else one started for the session)
pg_server, pg_url = store_fixtures.pg_server, store_fixtures.pg_url

SOURCE = Path(__file__).resolve().parents[2] / "docs" / "benchmarks" / "main-amd-zen4"
LABELS = ("ort fp32 b1 latency", "ort int8 b1 latency")
KEY = ("backend", "precision", "batch", "mode")
COMMITS = [f"{i:x}" * 40 for i in range(10)]  # one commit per stored run, oldest first
STEP_AT = 6  # runs 6.. are 15% slower: the step came in at COMMITS[6]
JITTER = (1.0, 1.02, 0.99, 1.01, 0.98, 1.0, 1.01, 0.99, 1.02, 1.0, 0.99)  # run-to-run drift


def _copy(
    dst: Path, slower: float, commit: str, hour: int, cpu_isa: str | None = None,
    cpu: str | None = None, model_path: str | None = None,
) -> Path:  # fmt: skip
    """The source report's two configurations, every latency ``slower`` times longer (its
    samples too), made at ``commit`` (a report of the CPU class ``cpu_isa`` and the CPU model
    ``cpu`` if given, of the model file ``model_path`` if given)."""
    data = json.loads((SOURCE / "bench-summary.json").read_text())
    rows = [r for r in data["rows"] if f"{r['backend']} {r['precision']} b{r['batch']} {r['mode']}" in LABELS]  # fmt: skip
    for row in rows:
        for column, value in list(row.items()):
            if column.endswith("_ms") and isinstance(value, float):
                row[column] = value * slower
        row["images_per_s"] /= slower
        row["inferences_per_s"] /= slower
        row["round_images_per_s"] = [v / slower for v in row["round_images_per_s"]]
    data.update(rows=rows, created=f"2026-12-01T{hour:02d}:00:00+0000")
    data["environment"]["git_commit"] = commit
    if cpu_isa:
        data["environment"]["cpu_isa"] = cpu_isa
    if cpu:
        data["environment"]["cpu"] = cpu
    if model_path:
        data["model"]["path"] = model_path
    dst.mkdir(parents=True)
    (dst / "bench-summary.json").write_text(json.dumps(data))
    kept = pl.DataFrame([{k: r[k] for k in KEY} for r in rows])
    samples = pl.read_parquet(SOURCE / "bench-samples.parquet").join(kept, on=list(KEY))
    samples.with_columns(pl.col("latency_ns") * slower).write_parquet(dst / "bench-samples.parquet")
    return dst


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> Path:
    """Ten stored-to-be runs (a step at STEP_AT), and current runs: after the step, 30% slower
    than that, and one of another CPU class."""
    root = tmp_path_factory.mktemp("store-history")
    for i, commit in enumerate(COMMITS):
        _copy(root / f"run-{i}", JITTER[i] * (1 / 0.85 if i >= STEP_AT else 1), commit, i)
    _copy(root / "current", JITTER[10] / 0.85, "c" * 40, 12)
    _copy(root / "slower", 1.3 / 0.85, "d" * 40, 13)
    _copy(root / "avx2", JITTER[10] / 0.85, "e" * 40, 14, cpu_isa="avx2")
    return root


def _seed(spec: str, reports: Path) -> None:
    with open_store(spec) as store:
        for i in range(len(COMMITS)):
            store.add_run(*run_from_report(reports / f"run-{i}", kind="bench"))


@pytest.fixture(scope="module")
def sqlite_store(reports) -> str:
    spec = str(reports / "results.sqlite")
    _seed(spec, reports)
    return spec


def _gate(cli, store: str, current: Path, out: Path, *more):
    out.mkdir(exist_ok=True)
    result = cli(
        "gate", "--history", store, current, "--json", out / "g.json", "--md", out / "g.md",
        "--junit", out / "g.xml", "--work-dir", out / "work", *more,
    )  # fmt: skip
    return result, json.loads((out / "g.json").read_text())


def _assert_step_named(result, gate: dict, out: Path) -> None:
    """The step at COMMITS[STEP_AT] named in the terminal, JSON, Markdown and JUnit."""
    named = COMMITS[STEP_AT][:12]
    assert result.exit_code == 0, result.stdout + result.stderr
    assert gate["passed"] and gate["mode"] == "history"
    lines = gate["history"]["configurations"]
    assert [c["config"] for c in lines] == list(LABELS)
    for line in lines:
        assert line["change_commit"] == COMMITS[STEP_AT]
        [point] = line["change_points"]
        assert point["index"] == STEP_AT and point["relative_change"] == pytest.approx(
            -0.15, abs=0.02
        )
        # the current run is judged against the 4 runs since the step, and passes
        assert line["judged_against"] == [c[:12] for c in COMMITS[STEP_AT:]]
        assert line["verdict"] == "pass"
    steps = [v for v in gate["verdicts"] if v["metric"] == "step"]
    assert len(steps) == 2 and all(named in v["note"] for v in steps)
    assert all(v["metric_change"] == pytest.approx(-0.15, abs=0.02) for v in steps)
    assert named in result.stdout  # the terminal's note line under the table
    assert f"from commit {named}" in (out / "g.md").read_text()
    assert f"from commit {named}" in (out / "g.xml").read_text()


def test_a_step_in_the_store_is_named_at_its_commit_in_every_output(
    cli, reports, sqlite_store, tmp_path
):
    result, gate = _gate(cli, sqlite_store, reports / "current", tmp_path)
    _assert_step_named(result, gate, tmp_path)


def test_a_current_run_slower_than_its_history_fails_and_is_written_back(cli, reports, tmp_path):
    store = str(tmp_path / "results.sqlite")
    _seed(store, reports)
    result, gate = _gate(cli, store, reports / "slower", tmp_path / "out", "--store", store)
    assert result.exit_code == 1, result.stdout + result.stderr
    assert not gate["passed"]
    regressed = {
        (v["config"], v["metric"]) for v in gate["verdicts"] if v["verdict"] == "regressed"
    }
    assert {(label, "p50") for label in LABELS} <= regressed
    assert "verdict(s) on run" in result.stdout
    current, _ = run_from_report(reports / "slower")
    with open_store(store) as opened:
        assert opened.run(current.uuid).commit == "d" * 40  # stored, as it was not there
        for label in LABELS:
            [verdict] = opened.verdicts(label, "vnni", current.model_sha256)
            assert verdict.run_uuid == current.uuid and verdict.verdict == "regression"
            assert verdict.change_commit == COMMITS[STEP_AT]  # the step before it, still named


def test_another_cpu_class_is_insufficient_history_not_a_pass(cli, reports, sqlite_store, tmp_path):
    result, gate = _gate(cli, sqlite_store, reports / "avx2", tmp_path)
    assert result.exit_code == 2 and not gate["passed"]  # nothing comparable: never a pass
    assert {v["verdict"] for v in gate["verdicts"]} == {"not comparable"}
    assert all(
        "insufficient history" in v["note"] and "vnni" in v["note"] for v in gate["verdicts"]
    )
    assert [c["verdict"] for c in gate["history"]["configurations"]] == ["insufficient"] * 2
    assert "insufficient history" in result.stdout


def test_what_a_store_history_refuses(cli, reports, sqlite_store, tmp_path):
    before = Path(sqlite_store).read_bytes()
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_text("not a database")
    for args, message in (
        (("--history", tmp_path / "none.sqlite", reports / "current"), "none.sqlite"),
        (("--history", sqlite_store, reports / "current", reports / "slower"), "not two"),
        (("--history", sqlite_store, reports / "current", "--ratios"), "--ratios"),
        (("--history", sqlite_store, reports / "current", "--run"), "not both"),
        (("--history", sqlite_store), "needs the run to judge"),
        (("--history", sqlite_store, reports / "current", "--json", sqlite_store), "results store"),
        ((reports / "run-0", reports / "current", "--last", "3"), "--last"),
        (("--history", corrupt, reports / "current"), "not a results store"),
        (
            ("--history", sqlite_store, reports / "current", "--store", corrupt),
            "not a results store",
        ),
    ):
        result = cli("gate", *args)
        assert result.exit_code == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr
        assert len([line for line in result.stderr.splitlines() if line.startswith("Error:")]) == 1
    assert Path(sqlite_store).read_bytes() == before
    assert corrupt.read_text() == "not a database"
    assert not (tmp_path / "none.sqlite").exists()  # a missing store is not made by reading it


def test_a_directory_of_reports_as_history_is_judged_as_before(cli, reports, tmp_path):
    history = tmp_path / "history"
    history.mkdir()
    for i in (7, 8, 9):
        (history / f"run-{i}").symlink_to(reports / f"run-{i}")
    result = cli("gate", "--history", history, reports / "current", "--json", tmp_path / "g.json")
    assert result.exit_code == 0, result.stdout + result.stderr
    gate = json.loads((tmp_path / "g.json").read_text())
    assert any(note.startswith("history: 3 reports used") for note in gate["notes"])


def test_postgres_store_history_names_the_step_and_hides_the_password(
    cli, reports, pg_url, tmp_path
):
    _seed(pg_url, reports)
    result, gate = _gate(cli, pg_url, reports / "current", tmp_path, "--store", pg_url)
    _assert_step_named(result, gate, tmp_path)
    password = pg_url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    for text in (result.stdout, result.stderr, *(p.read_text() for p in tmp_path.glob("g.*"))):
        assert password not in text
    assert "***" in gate["notes"][0]  # the store is named, its password masked
    wrong = pg_url.replace(f":{password}@", ":not-the-password-4711@")
    refused = cli("gate", "--history", wrong, reports / "current")
    assert refused.exit_code == 2 and "Traceback" not in refused.stderr  # never 1: "regressed"
    assert "not-the-password-4711" not in refused.stdout + refused.stderr
    current, _ = run_from_report(reports / "current")
    with open_store(pg_url) as store:
        verdicts = store.verdicts(LABELS[0], "vnni", current.model_sha256)
    assert [(v.run_uuid, v.verdict, v.change_commit) for v in verdicts] == [
        (current.uuid, "pass", COMMITS[STEP_AT])
    ]


def test_run_benches_the_newest_stored_runs_configurations(cli, report, tmp_path):
    # a real bench of the trained test network, stored; --run benches its configurations again
    # (from its report, still on this machine) and judges them against it; --store keeps both
    store = str(tmp_path / "results.sqlite")
    with open_store(store) as opened:
        stored = opened.add_run(*run_from_report(report / "report", kind="bench"))
    work = tmp_path / "work"
    result = cli(
        "gate", "--history", store, "--run", "--store", store, "--work-dir", work,
        "--json", tmp_path / "g.json",
    )  # fmt: skip
    # its speed verdict is two runs minutes apart on a shared machine: not a test's to assume
    assert result.exit_code in (0, 1), result.stdout + result.stderr
    gate = json.loads((tmp_path / "g.json").read_text())
    assert not [v for v in gate["verdicts"] if v["verdict"] == "not comparable"]
    assert any("benched now (--run)" in note for note in gate["notes"])
    rerun, _ = run_from_report(work / "reports" / "gate-run")
    with open_store(store) as opened:
        runs = opened.runs()
        assert [r.run_id for r in runs][0] == stored and runs[-1].uuid == rerun.uuid
        assert runs[-1].kind == "gate"
        [line] = gate["history"]["configurations"]
        [verdict] = opened.verdicts(line["config"], rerun.cpu_class, rerun.model_sha256)
        assert verdict.run_uuid == rerun.uuid and verdict.verdict == line["verdict"]


def test_run_without_a_report_on_this_machine_is_refused(cli, reports, tmp_path):
    # a stored run whose report has gone (another machine's, or cleaned up): nothing to re-run
    import shutil

    store = str(tmp_path / "results.sqlite")
    gone = tmp_path / "gone"
    shutil.copytree(reports / "run-0", gone)
    with open_store(store) as opened:
        opened.add_run(*run_from_report(gone, kind="bench"))
    shutil.rmtree(gone)
    result = cli("gate", "--history", store, "--run", "--work-dir", tmp_path / "work")
    assert result.exit_code == 2, result.stdout + result.stderr
    assert "none of their reports is on this machine" in result.stderr
    assert "Traceback" not in result.stderr


XEON = "Intel(R) Xeon(R) Processor"  # the recorded Xeon report's CPU: class vnni, as the AMD's


def test_only_earlier_bench_runs_of_this_machine_class_are_its_history(cli, reports, tmp_path):
    """Stored with the ten runs: a Xeon run (class vnni too, 2x faster), a tune and a plan run
    of this machine 2x slower, and a bench run made after the current one: none is history, so
    the gate reads exactly what it reads from the ten runs alone."""
    root = tmp_path / "more"
    store = str(tmp_path / "results.sqlite")
    _seed(store, reports)
    with open_store(store) as opened:
        for name, slower, hour, cpu, kind in (
            ("xeon", 0.5, 11, XEON, "bench"), ("tune", 2.0, 11, None, "tune"),
            ("plan", 2.1, 11, None, "plan"), ("later", 2.0, 20, None, "bench"),
        ):  # fmt: skip
            copy = _copy(root / name, slower, f"{hour:x}" * 40, hour, cpu=cpu)
            opened.add_run(*run_from_report(copy, kind=kind))
    result, gate = _gate(cli, store, reports / "current", tmp_path / "out")
    _assert_step_named(result, gate, tmp_path / "out")
    for line in gate["history"]["configurations"]:
        assert line["runs"] == [c[:12] for c in COMMITS] + ["current"]

    xeon_now = _copy(root / "xeon-now", 0.5, "e" * 40, 13, cpu=XEON)
    alone = str(tmp_path / "amd.sqlite")
    _seed(alone, reports)  # the AMD runs only: a Xeon run has no history there
    result, gate = _gate(cli, alone, xeon_now, tmp_path / "xeon")
    assert result.exit_code == 2 and not gate["passed"]
    assert all(
        f"machine class vnni / {XEON}" in v["note"] and "stored on machine class vnni / AMD EPYC"
        in v["note"] for v in gate["verdicts"]
    )  # fmt: skip


def test_every_output_names_the_step_its_commit_the_units_and_the_machine_class(
    cli, reports, sqlite_store, tmp_path
):
    import io

    result, gate = _gate(cli, sqlite_store, reports / "current", tmp_path)
    clause = f"; step -15% at {COMMITS[STEP_AT][:7]} in 2/2 configurations"
    assert gate["summary"].endswith(clause) and clause in result.stdout
    means = "the last 10 stored runs of this machine class (vnni / AMD EPYC: CPU class and CPU model)"
    assert means in gate["mode_means"] and means in (tmp_path / "g.md").read_text()
    assert "the last 10 stored runs of this machine class (vnni / AMD EPYC)" in gate["notes"][0]
    steps = [v for v in gate["verdicts"] if v["metric"] == "step"]
    assert all(v["note"].endswith("judged against the 4 run(s) since that step") for v in steps)
    assert all(v["change_commit"] == COMMITS[STEP_AT] for v in gate["verdicts"])
    units = {(v["metric"], v["unit"]) for v in gate["verdicts"]}
    assert {("p50", "ms"), ("throughput", "images/s"), ("step", "images/s")} <= units
    for label in LABELS:  # the throughput check's level and the step's new level: one unit
        check, step = (
            next(v for v in gate["verdicts"] if v["config"] == label and v["metric"] == metric)
            for metric in ("throughput", "step")
        )
        assert check["baseline"] == pytest.approx(step["current"], rel=0.05)
    work = tmp_path / "work"
    csv = cli("gate", "--history", sqlite_store, reports / "current", "--format", "csv",
              "--work-dir", work)  # fmt: skip
    rows = pl.read_csv(io.StringIO(csv.stdout), infer_schema=False)  # every cell as text
    as_json = cli("gate", "--history", sqlite_store, reports / "current", "--format", "json",
                  "--work-dir", work)  # fmt: skip
    for frame in (rows, pl.DataFrame(json.loads(as_json.stdout))):
        assert {"unit", "note", "change_commit"} <= set(frame.columns)
        stepped = frame.filter(pl.col("metric") == "step")
        assert stepped.height == 2 and set(stepped["change_commit"]) == {COMMITS[STEP_AT]}
        assert all(note.endswith("since that step") for note in stepped["note"])
    assert "change points: in a history of 11 runs a step is named once 3 run(s)" in csv.stderr


def test_identical_notes_of_several_configurations_are_one_line(cli, reports, sqlite_store, tmp_path):
    result, _ = _gate(cli, sqlite_store, reports / "avx2", tmp_path)
    lines = [line for line in result.stdout.splitlines() if "insufficient history" in line]
    assert len(lines) == 1 and lines[0].startswith(f"  2 configurations ({', '.join(LABELS)}) all:")


def test_a_step_with_too_few_runs_after_it_is_a_candidate_named_with_the_floor(
    cli, reports, tmp_path
):
    """Nine runs (eight stored and the current one), 20% slower for the last three: a clear
    step, but three runs after it in nine cannot reach p <= 0.05 (exactly 0.066): a candidate,
    said so with how many runs a step needs after it."""
    root = tmp_path / "short"
    store = str(tmp_path / "results.sqlite")
    jitter = (1.0, 1.02, 0.99, 1.01, 0.98, 1.005, 1.015, 0.995, 1.025)  # no two runs alike
    with open_store(store) as opened:
        for i in range(8):
            copy = _copy(root / f"run-{i}", jitter[i] * (1.25 if i >= 6 else 1), COMMITS[i], i)
            opened.add_run(*run_from_report(copy, kind="bench"))
    current = _copy(root / "current", jitter[8] * 1.25, "c" * 40, 12)
    result, gate = _gate(cli, store, current, tmp_path / "out")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert not [v for v in gate["verdicts"] if v["metric"] == "step"]
    for line in gate["history"]["configurations"]:
        [candidate] = line["candidates"]
        assert candidate["index"] == 6 and candidate["candidate"]
        assert 0.05 < candidate["p_value"] <= 0.1
    notes = "\n".join(gate["notes"])
    assert f"candidate step at commit {COMMITS[6][:12]} in 2/2 configurations" in notes
    assert "in a history of 9 runs a step is named once 4 run(s) follow it" in notes


def test_last_is_capped(cli, reports, sqlite_store):
    result = cli("gate", "--history", sqlite_store, reports / "current", "--last", "51")
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert "at most 50 stored runs per configuration" in result.stderr


@pytest.fixture
def lock_store(monkeypatch):
    """Hold a store's write lock from another connection (a real SQLite lock: another writer)
    for the test, with the store's busy timeout at 0.3 s: a write then fails, reads do not."""
    import sqlite3

    from alexnet_deploy import constants as C

    monkeypatch.setattr(C, "STORE_BUSY_TIMEOUT_S", 0.3)
    holders = []

    def lock(path: str) -> None:
        holder = sqlite3.connect(path, isolation_level=None, timeout=0)
        holder.execute("BEGIN IMMEDIATE")
        holders.append(holder)

    yield lock
    for holder in holders:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_store_failure_after_a_regression_still_exits_1(cli, reports, tmp_path, lock_store):
    store = str(tmp_path / "results.sqlite")
    _seed(store, reports)
    lock_store(store)
    result, gate = _gate(cli, store, reports / "slower", tmp_path / "out", "--store", store)
    assert result.exit_code == 1, result.stdout + result.stderr  # the regression, not the store's 2
    assert "gate FAIL" in result.stdout and not gate["passed"]  # verdict and outputs kept
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert store in error and "the verdict above is a regression: exit 1" in error
    assert "Traceback" not in result.stderr
    # a pass whose verdicts cannot be written back: the store's failure, exit 2
    result, gate = _gate(cli, store, reports / "current", tmp_path / "pass", "--store", store)
    assert result.exit_code == 2 and gate["passed"] and "gate PASS" in result.stdout
    assert "regression" not in result.stderr


def test_a_store_failure_does_not_skip_update_baseline(cli, report, tmp_path, lock_store):
    import shutil

    baseline = tmp_path / "baseline"
    shutil.copytree(report / "report", baseline)
    before = (baseline / "bench-summary.json").read_bytes()
    store = str(tmp_path / "results.sqlite")
    with open_store(store):
        pass  # an empty store, held by another writer while the gate runs
    lock_store(store)
    result = cli(
        "gate", baseline, "--run", "--store", store, "--update-baseline",
        "--work-dir", tmp_path / "work",
    )  # fmt: skip
    # its speed verdict is two runs minutes apart on a shared machine: not a test's to assume
    regressed = "gate FAIL" in result.stdout
    assert result.exit_code == (1 if regressed else 2), result.stdout + result.stderr
    assert f"baseline {baseline} updated from" in result.stdout
    assert (baseline / "bench-summary.json").read_bytes() != before
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert store in error and "was kept" in error


def test_run_reruns_a_bench_run_of_this_machine_class_never_a_tune_report(reports, tmp_path):
    from alexnet_deploy.cpu_isa import this_cpu
    from alexnet_deploy.gate.store_history import _rerun_plan
    from alexnet_deploy.sysinfo import cpu_info

    here = (this_cpu().name, cpu_info()["model"])
    store = str(tmp_path / "results.sqlite")
    with open_store(store) as opened:
        for name, hour, cpu, kind in (("bench", 1, here[1], "bench"), ("tune", 2, here[1], "tune"),
                                      ("other", 3, "Another CPU", "bench")):  # fmt: skip
            model = tmp_path / f"{name}.onnx"
            model.write_bytes(b"a model file")
            copy = _copy(tmp_path / name, 1.0, f"{hour:x}" * 40, hour, cpu_isa=here[0], cpu=cpu,
                         model_path=str(model))  # fmt: skip
            opened.add_run(*run_from_report(copy, kind=kind))
        assert _rerun_plan(opened, *here).model == tmp_path / "bench.onnx"


def test_a_series_is_one_machine_class_of_bench_kinds_before_a_time(reports, tmp_path):
    """Store.series and Store.configurations, as the gate and the dashboard read them."""
    from alexnet_deploy.store.records import KINDS

    store = str(tmp_path / "results.sqlite")
    _seed(store, reports)
    root = tmp_path / "more"
    with open_store(store) as opened:
        opened.add_run(*run_from_report(_copy(root / "x", 0.5, "a" * 40, 11, cpu=XEON)))
        opened.add_run(*run_from_report(_copy(root / "t", 2.0, "b" * 40, 11), kind="tune"))
        current, _ = run_from_report(reports / "run-5")
        label, sha = LABELS[0], current.model_sha256
        amd = opened.series(label, "vnni", sha, cpu_model="AMD EPYC")
        assert [r.run.commit for r in amd] == COMMITS  # bench runs of the AMD only
        assert len(opened.series(label, "vnni", sha, cpu_model="AMD EPYC", kinds=KINDS)) == 11
        assert {r.run.cpu_model for r in opened.series(label, "vnni", sha)} == {"AMD EPYC", XEON}
        before = opened.series(label, "vnni", sha, cpu_model="AMD EPYC", before=current.created)
        assert [r.run.commit for r in before] == COMMITS[:5]
        keys = [k for k in opened.configurations() if k.label == label]
        assert [(k.cpu_class, k.cpu_model) for k in keys] == [("vnni", "AMD EPYC"), ("vnni", XEON)]
        assert len(opened.configurations(kinds=("tune",))) == 2  # the tune run's two
