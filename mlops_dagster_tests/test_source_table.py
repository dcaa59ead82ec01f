"""Another team's Delta table as a use case's source (issue 14): each run reads only what changed
since the version it read last, a rewritten table is read whole (and says so), bad rows are
quarantined with the source version, and a broken source fails the run naming it, touching nothing."""

from __future__ import annotations

import pytest
from dagster import build_sensor_context
from deltalake import DeltaTable, write_deltalake

from mlops_dagster.resources.local_lakehouse import LocalLakehouse

from .project import project_at
from .support.subscribers import SUBSCRIBERS, subscribers

pytestmark = pytest.mark.integration

INGESTION = ["raw_subscribers", "raw_subscribers_quarantine"]


def _config(table) -> dict:
    return {
        "name": "cancellation",
        **SUBSCRIBERS,
        "dataset": {**SUBSCRIBERS["dataset"], "source": {"kind": "delta", "table": str(table)}},
    }


def _ingest(project):
    result = project.run(selection=INGESTION)
    assert result.success, project.failures(result)
    return project.metadata("raw_subscribers")


def test_a_delta_source_is_read_incrementally_and_whole_when_rewritten(tmp_path):
    source = tmp_path / "other_team" / "subscribers"
    first = subscribers(300, seed=1)
    first.loc[5, "months"] = -1.0  # out of range: quarantined, with the version it came from
    write_deltalake(source, first)
    with project_at(tmp_path / "delta_source", overrides=_config(source)) as project:
        raw_table = project.table("raw_subscribers")

        read = _ingest(project)
        assert (read["read"], read["why"], read["source_version"], read["rows_loaded"]) == (
            "whole table",
            "first read",
            0,
            299,
        )
        quarantine = project.lakehouse.read(project.table("raw_subscribers_quarantine"))
        [bad] = quarantine.to_dict("records")
        assert bad["reason"] == "months: -1.0 is below the minimum 0"
        assert bad["source_file"] == f"delta:{source}@v0"
        assert set(project.lakehouse.read(raw_table)["_source_file"]) == {f"delta:{source}@v0"}

        # Appended rows: only they are read.
        more = subscribers(50, seed=2)
        write_deltalake(source, more, mode="append")
        read = _ingest(project)
        assert (read["read"], read["source_version"], read["previous_version"], read["rows_loaded"]) == (
            "changes since version 0",
            1,
            0,
            50,
        )
        assert len(project.lakehouse.read(raw_table)) == 349

        # Nothing new: nothing read, the raw table keeps its version.
        version = project.lakehouse.version(raw_table)
        read = _ingest(project)
        assert read["read"] == "nothing new" and read["rows_loaded"] == 0
        assert project.lakehouse.version(raw_table) == version

        # An update (merge): the changed row arrives with its new value.
        changed = first.iloc[[0]].assign(spend=999.0)
        (
            DeltaTable(str(source))
            .merge(changed, "t.subscriber_id = s.subscriber_id", "s", "t")
            .when_matched_update_all()
            .execute()
        )
        read = _ingest(project)
        assert read["read"] == "changes since version 1" and read["source_version"] == 2
        raw = project.lakehouse.read(raw_table).set_index("subscriber_id")
        assert raw.loc[first["subscriber_id"][0], "spend"] == 999.0
        assert raw.loc[first["subscriber_id"][0], "_source_file"] == f"delta:{source}@v2"

        # Overwritten with fewer rows: read whole, said so; rows already loaded stay.
        write_deltalake(source, subscribers(40, seed=3), mode="overwrite")
        read = _ingest(project)
        assert read["read"] == "whole table" and "replaced or deleted since version 2" in read["why"]
        assert read["rows_loaded"] == 40 and len(project.lakehouse.read(raw_table)) == 349 + 40

        log = project.lakehouse.read(project.table("source_table_log")).sort_values("ingested_at")
        assert log["source_version"].tolist() == [0, 1, 2, 3]  # "nothing new" is not a read
        assert log["read"].tolist()[:2] == ["whole table", "changes since version 0"]


def test_wrong_types_in_the_source_are_quarantined_and_a_broken_source_fails_naming_it(tmp_path):
    source = tmp_path / "other_team" / "subscribers"
    rows = subscribers(100, seed=4).astype({"months": str})  # another team keeps months as text
    rows.loc[7, "months"] = "seven"
    write_deltalake(source, rows)
    with project_at(tmp_path / "broken_source", overrides=_config(source)) as project:
        read = _ingest(project)
        assert read["rows_loaded"] == 99
        [bad] = project.lakehouse.read(project.table("raw_subscribers_quarantine")).to_dict("records")
        assert bad["reason"] == "months: 'seven' is not a number"
        raw_version = project.lakehouse.version(project.table("raw_subscribers"))

        # A contract column disappears from the source: one clear failure, nothing touched.
        write_deltalake(
            source, subscribers(10, seed=5).drop(columns=["plan"]), mode="overwrite", schema_mode="overwrite"
        )
        result = project.run(selection=INGESTION)
        assert not result.success
        [failure] = project.failures(result)
        assert f"{source}" in failure and "lacks the contract column(s) plan" in failure
        assert project.lakehouse.version(project.table("raw_subscribers")) == raw_version

    with project_at(tmp_path / "no_source", overrides=_config(tmp_path / "nowhere")) as project:
        result = project.run(selection=INGESTION)
        [failure] = project.failures(result)
        assert f"source table {tmp_path / 'nowhere'} (dataset.source.table) does not exist" in failure


def test_the_source_table_sensor_asks_for_one_run_per_new_version(tmp_path):
    source = tmp_path / "other_team" / "subscribers"
    with project_at(tmp_path / "sensor", overrides=_config(source)) as project:
        repository = project.defs.get_repository_def()
        names = [s.name for s in repository.sensor_defs]
        assert "cancellation_source_table_sensor" in names and "cancellation_landing_file_sensor" not in names
        sensor = repository.get_sensor_def("cancellation_source_table_sensor")
        resources = {"lakehouse": LocalLakehouse(root=str(tmp_path / "unused"))}

        def tick(cursor):
            result = sensor.evaluate_tick(
                build_sensor_context(instance=project.instance, cursor=cursor, resources=resources)
            )
            return result.run_requests or [], result.skip_message, result.cursor

        requests, skipped, cursor = tick(None)
        assert not requests and "does not exist" in skipped
        write_deltalake(source, subscribers(20, seed=6))
        [request], _, cursor = tick(None)
        assert request.tags["mlops/source_version"] == f"{source}@v0"
        assert tick(cursor)[0] == []  # same version: no second run
        write_deltalake(source, subscribers(5, seed=7), mode="append")
        [request], _, _ = tick(cursor)
        assert request.tags["mlops/source_version"] == f"{source}@v1"
        assert sensor.job_name == "cancellation_lifecycle_job"
