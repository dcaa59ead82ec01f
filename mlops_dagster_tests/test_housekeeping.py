"""The housekeeping job on a real project: Delta tables written in daily appends, a real MLflow store
with registered versions and runs, report files. A dry run changes nothing; the run deletes exactly
what is past its age, keeps every other row, bounds the file count, never touches a version with an
alias, and audits what it did; a restore past the retained versions is refused."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from mlops_dagster.governance.retention import ARCHIVED_TAG

from .project import project_at, run_in_process

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
DAYS = 40


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


@pytest.fixture
def project(tmp_path):
    with project_at(tmp_path / "mlops", {"retention": {"table_versions_days": 0}}) as project:
        yield project


def fill_tables(project) -> dict[str, str]:
    """The inference table and the prediction log, one small append a day for DAYS days."""
    s, lake = project.settings, project.lakehouse
    tables = {s.inference_table(): "request_time", s.table(s.names.prediction_log): "scored_at"}
    for day in range(DAYS):
        at = ago(DAYS - 1 - day + 0.5)
        for table, column in tables.items():
            ids = [f"{day}-{i}" for i in range(4)]
            lake.write(table, pd.DataFrame({"id": ids, column: [at] * 4}), "append")
    return tables


def fill_registry(project) -> tuple[MlflowClient, dict[str, str]]:
    """Three registered versions (v2 champion, v3 challenger; v1 and v2 archived long ago) and an
    old run that registered nothing."""
    m = project.settings.mlflow
    client = MlflowClient(m.tracking_uri, m.registry_uri)
    experiment = client.get_experiment_by_name(m.experiment)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(m.experiment)
    registry = project.registry
    runs = {}
    for name in ("v1", "v2", "v3", "unregistered"):
        run = client.create_run(experiment_id, start_time=int(ago(DAYS).timestamp() * 1000), run_name=name)
        client.set_terminated(run.info.run_id)
        runs[name] = run.info.run_id
        if name != "unregistered":
            registry.register(run.info.artifact_uri, run.info.run_id, None, {}, name)
    registry.set_alias("champion", 2)
    registry.set_alias("challenger", 3)
    for version in (1, 2):
        registry.set_tags(version, {ARCHIVED_TAG: ago(800).isoformat()})
    return client, runs


def fill_reports(project) -> tuple[Path, Path]:
    folder = Path(project.settings.reports_path, "drift", project.settings.name)
    folder.mkdir(parents=True)
    old, new = folder / "old.html", folder / "new.html"
    for path in (old, new):
        path.write_text("<html></html>")
    stamp = ago(100).timestamp()
    os.utime(old, (stamp, stamp))
    return old, new


def fill_landing(project) -> dict[str, Path]:
    """Landing files and the landing file log as ingestion leaves them: one ingested 40 days ago
    (and an outcome file as old), one ingested 40 days ago but changed since, one ingested
    yesterday, one never ingested."""
    s = project.settings
    landing, outcomes = Path(s.landing_path), Path(s.ground_truth_path)
    outcomes.mkdir(parents=True, exist_ok=True)
    files = {
        "old": landing / "old.csv",
        "changed": landing / "changed.csv",
        "recent": landing / "recent.csv",
        "new": landing / "new.csv",
        "old_outcomes": outcomes / "outcomes.csv",
    }
    log = []
    for name, path in files.items():
        path.write_text("customerID,x\n1,2\n")
        stat = path.stat()
        ingested = ago(1 if name == "recent" else DAYS)
        if name != "new":
            log.append(
                {
                    "file_path": str(path.resolve()),
                    "size_bytes": stat.st_size + (1 if name == "changed" else 0),
                    "modified_at": datetime.fromtimestamp(stat.st_mtime, UTC),
                    "ingested_at": ingested,
                }
            )
    project.lakehouse.write(s.table("landing_file_log"), pd.DataFrame(log), "append")
    return files


def fill_snapshots(project) -> None:
    """Two Evidently snapshots of the use case: one taken 100 days ago, one now."""
    from evidently import Report
    from evidently.presets import DataSummaryPreset

    from mlops_dagster.monitoring.evidently_workspace import add_snapshot

    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    for taken in (ago(100), NOW):
        snapshot = Report([DataSummaryPreset()]).run(frame, None, timestamp=taken.replace(tzinfo=None))
        add_snapshot(project.settings.evidently_path, project.settings.name, snapshot, "classification")


def snapshots(project) -> int:
    from evidently.ui.workspace import Workspace

    workspace = Workspace.create(project.settings.evidently_path)
    [found] = workspace.search_project(project.settings.name)
    return len(workspace.list_runs(found.id))


def housekeeping(project, dry_run: bool):
    job = project.defs.resolve_job_def(project.job("housekeeping"))
    op = project.settings.names.op(project.settings.names.housekeeping)
    result = run_in_process(job, project.instance, run_config={"ops": {op: {"config": {"dry_run": dry_run}}}})
    assert result.success, project.failures(result)
    return project.metadata(project.settings.names.housekeeping)


def state(project, tables, client, runs) -> dict:
    lake = project.lakehouse
    return {
        "versions": {t: lake.version(t) for t in tables},
        "sizes": {t: lake.size(t) for t in tables},
        "model_versions": sorted(str(v.version) for v in project.registry.versions()),
        "runs": {n: client.get_run(r).info.lifecycle_stage for n, r in runs.items()},
        "audit": lake.exists(project.settings.table("audit_log")),
    }


def checksum(frame: pd.DataFrame) -> str:
    return hashlib.sha256(frame.sort_values("id").to_csv(index=False).encode()).hexdigest()


def test_housekeeping_removes_what_is_past_its_age_and_nothing_else(project):
    s, lake = project.settings, project.lakehouse
    tables = fill_tables(project)
    client, runs = fill_registry(project)
    old_report, new_report = fill_reports(project)
    landing = fill_landing(project)
    fill_snapshots(project)
    before = state(project, tables, client, runs)
    inference, log = s.inference_table(), s.table(s.names.prediction_log)
    kept = {
        inference: lake.read(inference).query("request_time >= @ago(30)"),
        log: lake.read(log),  # 90 days: every row stays
    }

    # A dry run reports and changes nothing.
    planned = housekeeping(project, dry_run=True)
    assert state(project, tables, client, runs) == before
    assert old_report.exists() and all(path.exists() for path in landing.values())
    assert snapshots(project) == 2
    assert planned["rows_deleted"] == (DAYS - 30) * 4
    assert (planned["runs_deleted"], planned["reports_deleted"], planned["evidently_snapshots_deleted"]) == (
        1,
        1,
        1,
    )
    assert planned["landing_files_removed"] == 2
    assert "| 1 | delete | archived more than 730 days ago |" in planned["model_versions"]
    assert "| 2 | keep | holds alias champion |" in planned["model_versions"]

    done = housekeeping(project, dry_run=False)

    assert done["rows_deleted"] == planned["rows_deleted"]
    for table, rows in kept.items():
        assert checksum(lake.read(table)) == checksum(rows)  # exactly the young rows, unchanged
        size = lake.size(table)
        assert size.files == 1 < before["sizes"][table].files == DAYS  # compacted: one file, not 40
        assert size.disk_bytes < before["sizes"][table].disk_bytes  # old files vacuumed
    assert done["files_before"] == 2 * DAYS and done["files_after"] == 2
    assert done["bytes_freed"] > 0
    # v1 is gone; v2 (champion) and v3 (challenger) stay whatever their age or archive.
    assert sorted(str(v.version) for v in project.registry.versions()) == ["2", "3"]
    with pytest.raises(Exception, match="not found|RESOURCE_DOES_NOT_EXIST|No Run"):
        client.get_run(runs["unregistered"])  # purged from the store
    assert {n: client.get_run(r).info.lifecycle_stage for n, r in runs.items() if n != "unregistered"} == {
        "v1": "active",
        "v2": "active",
        "v3": "active",
    }
    assert not old_report.exists() and new_report.exists()
    assert snapshots(project) == 1 and done["evidently_snapshots_deleted"] == 1
    # Landing files whose present content was ingested 40 days ago go to a dated archive folder;
    # the changed, the recent and the never-ingested ones stay where ingestion lists them.
    day = ago(DAYS).date().isoformat()
    for name in ("old", "old_outcomes"):
        path = landing[name]
        assert not path.exists() and (path.parent / "archive" / day / path.name).read_text().startswith(
            "customerID"
        )
    assert all(landing[name].exists() for name in ("changed", "recent", "new"))
    assert "MLflow store" in done["disk_use"] and done["disk_bytes_total"] > 0

    audit = lake.read(s.table("audit_log"))
    assert set(audit.query("action == 'housekept'")["object"]) >= {inference, log}
    assert list(audit.query("action == 'deleted'")["object"]) == [f"{s.mlflow.model_name} v1"]
    archived = set(audit.query("action == 'archived'")["object"])
    assert {str(landing["old"].resolve()), str(landing["old_outcomes"].resolve())} <= archived


def test_landing_files_can_be_deleted_instead_of_archived(tmp_path):
    with project_at(tmp_path / "mlops", {"retention": {"landing_action": "delete"}}) as project:
        landing = fill_landing(project)
        done = housekeeping(project, dry_run=False)
        assert done["landing_files_removed"] == 2
        assert not landing["old"].exists() and not landing["old_outcomes"].exists()
        assert not (landing["old"].parent / "archive").exists()
        assert all(landing[name].exists() for name in ("changed", "recent", "new"))


def test_a_restore_past_the_retained_versions_is_refused_naming_the_oldest_restorable(project):
    s, lake = project.settings, project.lakehouse
    fill_tables(project)
    housekeeping(project, dry_run=False)
    table = s.inference_table()
    current = lake.version(table)

    job = project.defs.resolve_job_def(project.job("restore_table"))
    config = {"table": table, "version": 3, "reason": "test"}
    result = run_in_process(
        job, project.instance, run_config={"ops": {s.names.op("restore_table"): {"config": config}}}
    )

    assert not result.success
    [message] = project.failures(result)
    assert (
        f"{table} version 3 is past its retention (retention.table_versions_days): "
        f"the oldest version still restorable is {current}" in message  # 0 days: only the current one
    )
    assert lake.version(table) == current


def test_mlops_housekeeping_dry_run_prints_what_would_go_and_the_disk_use(project, tmp_path):
    fill_tables(project)
    inference = project.settings.inference_table()
    version = project.lakehouse.version(inference)
    env = {
        **os.environ,
        "MLOPS_HOME": str(project.root),
        "MLOPS_CONFIG": str(project.root / "override.yaml"),
        "DAGSTER_HOME": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "mlops_dagster.cli", "housekeeping", "--dry-run", "--use-case", "churn"],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"Housekeeping:      would delete {(DAYS - 30) * 4} rows, 0 MLflow runs, 0 reports" in done.stdout
    assert f"| {inference} | {DAYS} |" in done.stdout  # its disk use: DAYS files
    assert "| MLflow store |" in done.stdout
    assert project.lakehouse.version(inference) == version
