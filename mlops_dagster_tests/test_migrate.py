"""Upgrades lose nothing: a home the release before use cases left (format 1: every table in schema
`churn`, landing files flat in `landing/`) is refused by `mlops run` before anything writes, and
`mlops migrate` moves it to today's format with every table's rows and every file. The old home is
built here from that format's description, with deltalake, as that release wrote it."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from mlops_dagster.assets.ingestion import files_to_ingest
from mlops_dagster.assets.sources import Source
from mlops_dagster.cli import main
from mlops_dagster.resources.local_lakehouse import LocalLakehouse
from mlops_dagster.resources.migration import check_home
from mlops_dagster.settings import load_project

CATALOG = "ml_dev_catalog"
# The tables of a format-1 home after a few runs (names unchanged since; only the schema moved).
OLD_TABLES = {
    "raw_customers": 5,
    "raw_customers_quarantine": 1,
    "churn_features": 10,
    "churn_predictions": 5,
    "audit_log": 7,
}
CUSTOMER_FILES = ("customers_7043_seed42.csv", "customers_drifted_7043_seed7.csv")


def _csv(path: Path, columns: list[str], rows: int) -> None:
    path.write_text(
        ",".join(columns) + "\n" + "".join(",".join(f"{c}{i}" for c in columns) + "\n" for i in range(rows))
    )


def old_home(root: Path, tables: bool = True) -> Path:
    """A format-1 home: Delta tables in lakehouse/<catalog>/churn/, landing files flat in landing/,
    and the ingestion log naming those files by their resolved paths."""
    churn = load_project().use_case("churn")
    landing = root / "landing"
    landing.mkdir(parents=True)
    for name in CUSTOMER_FILES:
        _csv(landing / name, list(churn.dataset.columns), 3)
    (root / "mlflow").mkdir()
    (root / "mlflow" / "mlflow.db").write_bytes(b"sqlite")
    if not tables:
        return root
    schema = root / "lakehouse" / CATALOG / "churn"
    for name, rows in OLD_TABLES.items():
        write_deltalake(str(schema / name), pa.table({"id": pa.array(range(rows // 2 + 1), pa.int64())}))
        write_deltalake(
            str(schema / name),
            pa.table({"id": pa.array(range(rows // 2 + 1, rows), pa.int64())}),
            mode="append",
        )
    # As that release's ingestion logged its files: the listing's path, size and mtime, and the run.
    files = sorted(landing.iterdir())
    mtimes = [datetime.fromtimestamp(f.stat().st_mtime, tz=UTC) for f in files]
    write_deltalake(
        str(schema / "landing_file_log"),
        pa.table(
            {
                "file_path": [str(f.resolve()) for f in files],
                "size_bytes": [f.stat().st_size for f in files],
                "modified_at": pa.array(mtimes, pa.timestamp("us", tz="UTC")),
                "rows_loaded": [3] * len(files),
                "dagster_run_id": ["run-1"] * len(files),
            }
        ),
    )
    return root


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and modification time."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def new_table(root: Path, name: str) -> Path:
    return root / "lakehouse" / CATALOG / "mlops" / name


def test_migrate_moves_every_table_and_landing_file(local_root, capsys):
    home = old_home(local_root)
    assert main(["migrate"]) == 0
    out = capsys.readouterr().out
    assert f"MLOPS_HOME {home} is in the previous format" in out
    assert (
        "raw_customers" in out and "lakehouse/ml_dev_catalog/churn/ -> lakehouse/ml_dev_catalog/mlops/" in out
    )
    assert "landing/" in out and "landing/churn/" in out and "2 file(s)" in out

    for name, rows in {**OLD_TABLES, "landing_file_log": 2}.items():
        table = DeltaTable(str(new_table(home, name)))
        assert table.count() == rows, name
        assert (
            DeltaTable(str(new_table(home, name)), version=0).to_pyarrow_table().num_rows > 0
        )  # history kept
        assert f"{name}" in out
    assert not (home / "lakehouse" / CATALOG / "churn").exists()
    assert sorted(p.name for p in (home / "landing" / "churn").iterdir()) == sorted(CUSTOMER_FILES)
    assert not any(p.is_file() for p in (home / "landing").iterdir())
    # The ingestion log names the files where they are now: the next run does not ingest them again.
    logged = (
        DeltaTable(str(new_table(home, "landing_file_log")))
        .to_pyarrow_table()
        .column("file_path")
        .to_pylist()
    )
    assert sorted(logged) == sorted(str((home / "landing" / "churn" / f).resolve()) for f in CUSTOMER_FILES)
    assert "landing_file_log: 2 row(s) now name their file's new path" in out
    # and today's ingestion, asked for every new or changed file, finds none but a file added since.
    churn = load_project().use_case("churn")
    source = Source(
        "customers",
        churn.landing_path,
        churn.dataset,
        {},
        "customerID",
        "raw_customers",
        "raw_customers_quarantine",
        "churn_ingestion",
        "",
        required=True,
    )
    lakehouse = LocalLakehouse(root=str(home / "lakehouse"))
    assert files_to_ingest(lakehouse, churn, source, []) == []
    _csv(home / "landing" / "churn" / "customers_new.csv", list(churn.dataset.columns), 1)
    assert [Path(f["file_path"]).name for f in files_to_ingest(lakehouse, churn, source, [])] == [
        "customers_new.csv"
    ]
    assert json.loads((home / "format.json").read_text()) == {"format": 2}
    assert (home / "mlflow" / "mlflow.db").read_bytes() == b"sqlite"  # untouched: its names did not change
    check_home(load_project())  # today's code reads it


def test_the_dry_run_changes_nothing(local_root, capsys):
    home = old_home(local_root)
    before = tree(home)
    assert main(["migrate", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Dry run: nothing moved" in out
    assert re.search(r"^  raw_customers +5 rows  \(churn\)$", out, re.M)
    assert "audit_log" in out and "(project)" in out
    assert "landing_file_log: 2 row(s) will name their file's new path" in out
    assert tree(home) == before


def test_a_second_migrate_is_a_no_op(local_root, capsys):
    home = old_home(local_root)
    assert main(["migrate"]) == 0
    after = tree(home)
    capsys.readouterr()
    assert main(["migrate"]) == 0
    assert f"MLOPS_HOME {home} is already in format 2: nothing to migrate" in capsys.readouterr().out
    assert tree(home) == after


def test_run_refuses_an_old_home_before_writing_anything(local_root, capsys):
    home = old_home(local_root)
    before = tree(home)
    for command in (["run"], ["generate"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert f"MLOPS_HOME {home} is in the previous format" in err and "run `mlops migrate`" in err
    assert tree(home) == before  # no format file, no demo file, no table


def test_a_table_already_in_the_new_place_stops_the_migration(local_root, capsys):
    home = old_home(local_root)
    write_deltalake(str(new_table(home, "raw_customers")), pa.table({"id": [1]}))
    before = tree(home)
    assert main(["migrate"]) == 1
    out = capsys.readouterr().out
    assert "Nothing moved:" in out and f"{new_table(home, 'raw_customers')} already exists" in out
    assert tree(home) == before


def test_a_landing_file_already_in_the_new_place_stops_the_migration(local_root, capsys):
    home = old_home(local_root)
    (home / "landing" / "churn").mkdir()
    (home / "landing" / "churn" / CUSTOMER_FILES[0]).write_text("other\n")
    before = tree(home)
    assert main(["migrate"]) == 1
    assert "already exists" in capsys.readouterr().out
    assert tree(home) == before


def test_landing_files_go_to_the_use_case_whose_contract_they_meet(local_root, capsys):
    home = old_home(local_root, tables=False)  # landing files only: both demos' patterns are *.csv
    houses = load_project().use_case("house_prices")
    _csv(home / "landing" / "houses_1.csv", list(houses.dataset.columns), 2)
    _csv(home / "landing" / "mystery.csv", ["a", "b"], 2)
    assert main(["migrate"]) == 1
    assert "cannot tell whose landing file landing/mystery.csv is" in capsys.readouterr().out
    (home / "landing" / "mystery.csv").unlink()
    assert main(["migrate"]) == 0
    assert sorted(p.name for p in (home / "landing" / "churn").iterdir()) == sorted(CUSTOMER_FILES)
    assert [p.name for p in (home / "landing" / "house_prices").iterdir()] == ["houses_1.csv"]


def test_a_new_home_is_recorded_in_todays_format(local_root, capsys):
    check_home(load_project())
    assert json.loads((local_root / "format.json").read_text()) == {"format": 2}
    (local_root / "format.json").write_text('{"format": 3}')
    with pytest.raises(ValueError, match="format 3, written by a newer release"):
        check_home(load_project())


def test_bootstrap_tells_a_schema_of_another_format():
    """On a Databricks target the schema's mlops_dagster.format property records the format (bootstrap
    sets it when it makes the schema, the workspace emulator test checks that); one it finds with
    another format is reported, not changed."""
    from types import SimpleNamespace

    from mlops_dagster.governance.bootstrap import _schema

    class Schemas:
        def get(self, name):
            return SimpleNamespace(properties={"mlops_dagster.format": "1"})

    outcome = _schema(SimpleNamespace(schemas=Schemas()), "ml_dev_catalog", "mlops", LookupError)
    assert (
        outcome.result == "exists"
        and "mlops_dagster.format is 1, this release writes format 2" in outcome.detail
    )


def test_runs_from_dagster_are_refused_when_the_lakehouse_is_set_up(local_root):
    """Runs started from the UI or a sensor do not pass through `mlops run`: the local lakehouse
    refuses a format-1 home when a run sets it up, before any step writes."""
    from dagster import build_init_resource_context

    home = old_home(local_root)
    before = tree(home)
    with pytest.raises(ValueError, match=f"MLOPS_HOME {home} is in the previous format"):
        LocalLakehouse(root=str(home / "lakehouse")).setup_for_execution(build_init_resource_context())
    assert tree(home) == before
    assert main(["migrate"]) == 0
    LocalLakehouse(root=str(home / "lakehouse")).setup_for_execution(build_init_resource_context())


def test_a_home_first_used_from_dagster_is_recorded(local_root):
    from dagster import build_init_resource_context

    LocalLakehouse(root=str(local_root / "lakehouse")).setup_for_execution(build_init_resource_context())
    assert json.loads((local_root / "format.json").read_text()) == {"format": 2}


def _as_format_1(home: Path) -> None:
    """Today's home laid out as format 1: the schema folder renamed to churn, the landing files flat,
    the ingestion log naming them there, no format file."""
    tables = home / "lakehouse" / CATALOG
    (tables / "mlops").rename(tables / "churn")
    moved = {}
    for path in sorted((home / "landing" / "churn").iterdir()):
        if path.is_file():
            moved[str(path.resolve())] = str(path.rename(home / "landing" / path.name).resolve())
    log = DeltaTable(str(tables / "churn" / "landing_file_log")).to_pyarrow_table()
    paths = [moved.get(p, p) for p in log.column("file_path").to_pylist()]
    write_deltalake(
        str(tables / "churn" / "landing_file_log"),
        log.set_column(log.schema.get_field_index("file_path"), "file_path", pa.array(paths)),
        mode="overwrite",
    )
    (home / "format.json").unlink()


@pytest.mark.integration
def test_ingestion_and_features_go_on_after_a_migration_without_ingesting_anything_again(tmp_path):
    """Today's ingestion and features on Spark (the lifecycle's first stages; the rest only reads what
    they write): refused on a format-1 home before any step, and after `mlops migrate` they run on the
    moved tables and files, finding no landing file they have not ingested."""
    from mlops_dagster.resources.migration import migrate

    from .project import project_at

    stages = ["raw_customers", "raw_customers_quarantine", "churn_features", "churn_labels"]
    with project_at(tmp_path / "home", overrides={"use_cases": {}}) as project:
        project.land(300, seed=3)
        assert project.run("lifecycle_job", selection=stages).success
        lakehouse = project.lakehouse
        counted = ("raw_customers", "churn_features", "landing_file_log")
        rows = {t: lakehouse.row_count(project.table(t)) for t in counted}
        _as_format_1(project.root)
        before = {k: v for k, v in tree(project.root).items() if k.startswith(("lakehouse", "landing"))}

        refused = project.run("lifecycle_job", selection=stages)
        assert not refused.success
        told = " ".join(f"{e.message} {e.event_specific_data}" for e in refused.all_events)
        assert f"MLOPS_HOME {project.root} is in the previous format" in told
        assert {
            k: v for k, v in tree(project.root).items() if k.startswith(("lakehouse", "landing"))
        } == before

        assert migrate(project.use_cases) == 0
        again = project.run("lifecycle_job", selection=stages)
        assert again.success, project.failures(again)
        assert {t: lakehouse.row_count(project.table(t)) for t in counted} == rows  # nothing ingested twice
        assert project.metadata("raw_customers")["files_ingested"] == 0
