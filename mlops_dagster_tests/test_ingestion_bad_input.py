"""Bad landing files: the run says what is wrong and where, good rows load, bad rows are
quarantined with reasons, and nothing already in the tables is lost."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from .project import project_at

pytestmark = pytest.mark.integration

INGESTION = ["raw_customers", "raw_customers_quarantine"]


def _lines(path):
    return path.read_text().splitlines()


def test_bad_files_are_quarantined_with_reasons_and_nothing_is_lost(tmp_path):
    with project_at(tmp_path / "bad_input") as project:
        first = project.land(300, seed=1, name="a_good.csv")
        assert project.run("training_job", selection=INGESTION).success
        raw_table = project.table("raw_customers")
        before = project.lakehouse.read(raw_table)
        assert len(before) == 300

        # Unparsable numbers and duplicated keys inside an otherwise good file.
        mixed = project.land(50, seed=2, name="b_mixed.csv")
        lines = _lines(mixed)
        header = lines[0].split(",")
        tenure = header.index("tenure")
        row = lines[3].split(",")
        row[tenure] = "three"
        lines[3] = ",".join(row)  # file line 4
        lines[10] = lines[5]  # file lines 6 and 11 share a customerID
        mixed.write_text("\n".join(lines) + "\n")
        # A file without the monthlyCharges column, an empty file.
        (Path(project.settings.landing_path) / "c_missing_column.csv").write_text(
            "\n".join(
                ",".join(f for i, f in enumerate(line.split(",")) if i != header.index("monthlyCharges"))
                for line in _lines(first)[:4]
            )
            + "\n"
        )
        (Path(project.settings.landing_path) / "d_empty.csv").write_text("")

        result = project.run("training_job", selection=INGESTION)
        assert result.success, project.failures(result)

        raw = project.lakehouse.read(raw_table)
        # 50 rows of the mixed file minus 1 bad number and 2 rows of the duplicated key.
        assert len(raw) == 300 + 47
        assert set(before["customerID"]) <= set(raw["customerID"])  # nothing lost
        quarantine = project.lakehouse.read(project.table("raw_customers_quarantine"))
        by_file = quarantine.groupby(quarantine["source_file"].str.rsplit("/", n=1).str[-1])
        reasons = {name: sorted(group["reason"]) for name, group in by_file}
        assert (
            reasons["b_mixed.csv"][0].startswith("customerID") and "lines 6, 11" in reasons["b_mixed.csv"][0]
        )
        assert "tenure: 'three' is not a number" in reasons["b_mixed.csv"]
        assert sorted(quarantine[quarantine["reason"].str.contains("three")]["line_number"]) == [4]
        assert len(reasons["c_missing_column.csv"]) == 3
        assert all("lacks required column(s) monthlyCharges" in r for r in reasons["c_missing_column.csv"])
        assert reasons["d_empty.csv"] == ["file is empty"]
        # The original fields are kept for every bad row (3 + 3); the empty file has none.
        assert quarantine["record"].str.len().gt(0).sum() == 6 and len(quarantine) == 7

        files = project.metadata("raw_customers")["files"]
        assert "b_mixed.csv" in files and "2 rows share a customerID" in files
        assert "file is empty" in files and "lacks required column(s) monthlyCharges" in files
        warnings = [
            e.user_message
            for e in project.instance.all_logs(result.run_id)
            if e.level == logging.WARNING and "quarantined" in e.user_message
        ]
        assert any("b_mixed.csv" in w and "1 rows quarantined" not in w for w in warnings)
        assert any("d_empty.csv" in w and "file is empty" in w for w in warnings)
        quiet = project.check_evaluations(result, "no_rows_quarantined_by_last_ingestion")
        assert quiet and not quiet[0].passed

        # Running again ingests nothing new: no duplicate quarantine rows, same raw version.
        version = project.lakehouse.version(raw_table)
        assert project.run("training_job", selection=INGESTION).success
        assert project.lakehouse.version(raw_table) == version
        assert len(project.lakehouse.read(project.table("raw_customers_quarantine"))) == len(quarantine)
        assert project.metadata("raw_customers")["files_ingested"] == 0


def test_a_corrected_file_replaces_its_rows_and_the_key_wins_from_the_newest_file(tmp_path):
    with project_at(tmp_path / "corrected") as project:
        path = project.land(100, seed=3, name="batch.csv")
        assert project.run("training_job", selection=INGESTION).success
        lines = _lines(path)
        header = lines[0].split(",")
        row = lines[1].split(",")
        row[header.index("contract")] = "Two year"
        lines[1] = ",".join(row)
        path.write_text("\n".join(lines) + "\n")  # same name, new size/mtime: ingested again
        result = project.run("training_job", selection=INGESTION)
        assert result.success
        raw = project.lakehouse.read(project.table("raw_customers"))
        assert len(raw) == 100
        assert raw.set_index("customerID").loc[row[0], "contract"] == "Two year"


def test_no_landing_files_at_all_is_a_clear_error(tmp_path):
    with project_at(tmp_path / "nothing") as project:
        result = project.run("training_job", selection=INGESTION)
        assert not result.success
        [failure] = project.failures(result)
        assert "no landing files matching '*.csv'" in failure and "mlops generate" in failure
