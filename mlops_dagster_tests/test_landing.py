"""Landing files against the real dataset contract, checked on Spark: typed valid rows, every
refusal quarantined with its physical line, original fields and every reason."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_dagster.data.telco import COLUMNS, generate_customers
from mlops_dagster.ml.contract import cell_reasons, rule_codes
from mlops_dagster.ml.landing import read_landing_files
from mlops_dagster.ml.landing_tasks import QUARANTINE_SCHEMA, valid_schema
from mlops_dagster.settings import INGESTED_AT, SOURCE_FILE, load_settings

ROWS = 30
QUARANTINE_COLUMNS = ["source_file", "line_number", "record", "reason"]
AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
def dataset(local_root):
    return load_settings("local").dataset


@pytest.fixture
def rules(dataset):
    return dataset.columns


@pytest.fixture
def key(dataset):
    return dataset.key


@pytest.fixture
def frame() -> pd.DataFrame:
    """Generated customers as strings, ready to be corrupted cell by cell."""
    df = generate_customers(ROWS, seed=42)
    assert df["totalCharges"].notna().all()  # no blank cells unless a test puts them there
    return df.astype(object)


def write_csv(df: pd.DataFrame, path: Path, **kwargs) -> Path:
    df.to_csv(path, index=False, **kwargs)
    return path


def line_of(row: int) -> int:
    """Physical line of a data row (0-based) in a file with a one-line header."""
    return row + 2


@dataclass
class Parsed:
    """One landing file as ingestion left it: valid rows (contract columns), quarantine, report."""

    path: str
    valid: pd.DataFrame
    quarantine: pd.DataFrame
    problems: list[str]
    rows_read: int


def read_staged(files: list[str], schema: pa.Schema) -> pd.DataFrame:
    return (
        pa.concat_tables([pq.read_table(f) for f in files]) if files else schema.empty_table()
    ).to_pandas()


@pytest.fixture
def parse_files(spark, tmp_path, rules, key):
    def parse_files(paths, options=None, rules=rules) -> tuple[list[Parsed], pd.DataFrame]:
        out = tmp_path / f"staging_{len(list(tmp_path.glob('staging_*')))}"
        batch = read_landing_files(spark, [str(p) for p in paths], rules, key, str(out), AT, "run-1", options)
        valid = read_staged(batch.valid_files, valid_schema(rules))
        quarantine = read_staged(batch.quarantine_files, QUARANTINE_SCHEMA)
        assert (quarantine["quarantined_at"] == pd.Timestamp(AT)).all() and (
            quarantine["dagster_run_id"] == "run-1"
        ).all()
        assert (valid[INGESTED_AT] == pd.Timestamp(AT)).all()
        parsed = []
        for f in batch.files:
            mine = quarantine[quarantine["source_file"] == f.path].sort_values("line_number")
            rows = valid[valid[SOURCE_FILE] == f.path]
            assert f.rows_quarantined == len(mine)
            # A file's loaded rows are counted before a newer file of the same run supersedes them.
            assert f.rows_loaded == len(rows) if len(batch.files) == 1 else f.rows_loaded >= len(rows)
            parsed.append(
                Parsed(
                    f.path,
                    rows[list(rules)].reset_index(drop=True),
                    mine[QUARANTINE_COLUMNS].reset_index(drop=True),
                    f.problems(key),
                    f.rows_read,
                )
            )
        return parsed, valid

    return parse_files


def in_order(parsed: Parsed, frame: pd.DataFrame) -> pd.DataFrame:
    """The valid rows in the order of ``frame`` (a table has no row order; the file had one)."""
    by_key = parsed.valid.set_index("customerID", drop=False)
    return by_key.loc[[k.strip() for k in frame["customerID"]]].reset_index(drop=True)


@pytest.fixture
def parse(parse_files):
    def parse(path, options=None) -> Parsed:
        [parsed], _ = parse_files([path], options)
        assert parsed.rows_read == len(parsed.valid) + len(parsed.quarantine)
        assert list(parsed.quarantine.columns) == QUARANTINE_COLUMNS
        return parsed

    return parse


def test_dataset_contract_is_the_telco_schema(dataset):
    assert list(dataset.columns) == COLUMNS
    assert dataset.key == "customerID"


def test_clean_file_loads_every_row_typed(tmp_path, rules, parse):
    df = generate_customers(ROWS, seed=42)
    path = write_csv(df, tmp_path / "clean.csv")
    parsed = parse(path)
    assert parsed.path == str(path)
    assert len(parsed.valid) == ROWS
    assert parsed.rows_read == ROWS
    assert parsed.quarantine.empty
    assert parsed.problems == []
    valid = in_order(parsed, df)
    for column, rule in rules.items():
        if rule.type == "double":
            assert valid[column].dtype == np.float64, column
            np.testing.assert_array_equal(valid[column].to_numpy(), df[column].to_numpy())
        else:
            assert valid[column].tolist() == df[column].tolist(), column


def test_unparsable_number_is_quarantined_with_its_line(tmp_path, rules, key, frame, parse):
    frame.loc[4, "tenure"] = "abc"
    parsed = parse(write_csv(frame, tmp_path / "bad_number.csv"))
    assert len(parsed.valid) == ROWS - 1
    assert frame.loc[4, "customerID"] not in set(parsed.valid["customerID"])
    [row] = parsed.quarantine.to_dict("records")
    assert row["line_number"] == line_of(4) == 6
    assert "tenure: 'abc' is not a number" in row["reason"]
    assert "tenure is empty" not in row["reason"]  # unparsable is not also reported as empty
    assert row["source_file"] == str(tmp_path / "bad_number.csv")
    assert "1 of 30 rows quarantined" in parsed.problems


def test_value_not_in_allowed_list(tmp_path, rules, key, frame, parse):
    frame.loc[0, "gender"] = "Robot"
    frame.loc[7, "contract"] = "Monthly"
    parsed = parse(write_csv(frame, tmp_path / "allowed.csv"))
    assert len(parsed.valid) == ROWS - 2
    reasons = dict(zip(parsed.quarantine["line_number"], parsed.quarantine["reason"]))
    assert set(reasons) == {line_of(0), line_of(7)}
    assert reasons[line_of(0)] == "gender: 'Robot' is not one of ['Male', 'Female']"
    assert "contract: 'Monthly' is not one of" in reasons[line_of(7)]


def test_numeric_value_not_in_allowed_list(tmp_path, rules, key, frame, parse):
    frame.loc[2, "seniorCitizen"] = "2"
    parsed = parse(write_csv(frame, tmp_path / "senior.csv"))
    [reason] = parsed.quarantine["reason"]
    assert "seniorCitizen" in reason and "is not one of [0, 1]" in reason


def test_value_out_of_range(tmp_path, rules, key, frame, parse):
    frame.loc[3, "tenure"] = "99"
    frame.loc[5, "totalCharges"] = "-1"
    parsed = parse(write_csv(frame, tmp_path / "range.csv"))
    assert len(parsed.valid) == ROWS - 2
    reasons = dict(zip(parsed.quarantine["line_number"], parsed.quarantine["reason"]))
    assert "above the maximum 72" in reasons[line_of(3)]
    assert reasons[line_of(3)].startswith("tenure: 99")
    assert "totalCharges: -1" in reasons[line_of(5)] and "below the minimum 0" in reasons[line_of(5)]


def test_boundary_values_are_valid(tmp_path, rules, key, frame, parse):
    frame.loc[0, "tenure"] = "72"
    frame.loc[1, "tenure"] = "0"
    parsed = parse(write_csv(frame, tmp_path / "bounds.csv"))
    assert parsed.quarantine.empty
    assert in_order(parsed, frame)["tenure"].iloc[:2].tolist() == [72.0, 0.0]


def test_empty_non_nullable_value(tmp_path, rules, key, frame, parse):
    frame.loc[6, "gender"] = ""
    frame.loc[8, "monthlyCharges"] = "   "  # whitespace only counts as empty
    parsed = parse(write_csv(frame, tmp_path / "empty_cell.csv"))
    reasons = dict(zip(parsed.quarantine["line_number"], parsed.quarantine["reason"]))
    assert reasons == {line_of(6): "gender is empty", line_of(8): "monthlyCharges is empty"}


def test_several_reasons_on_one_row_are_all_listed(tmp_path, rules, key, frame, parse):
    frame.loc[1, "gender"] = ""
    frame.loc[1, "tenure"] = "-3"
    frame.loc[1, "internetService"] = "Cable"
    parsed = parse(write_csv(frame, tmp_path / "many.csv"))
    [reason] = parsed.quarantine["reason"]
    parts = reason.split("; ")
    assert "gender is empty" in parts
    assert any(p.startswith("tenure: -3") and "below the minimum 0" in p for p in parts)
    assert any(p.startswith("internetService: 'Cable'") for p in parts)


def test_blank_total_charges_is_allowed_and_loads_as_nan(tmp_path, rules, key, frame, parse):
    frame.loc[2, "totalCharges"] = ""
    frame.loc[2, "tenure"] = "0"
    parsed = parse(write_csv(frame, tmp_path / "blank_total.csv"))
    assert parsed.quarantine.empty
    assert len(parsed.valid) == ROWS
    assert parsed.valid["totalCharges"].dtype == np.float64
    assert np.isnan(in_order(parsed, frame).loc[2, "totalCharges"])
    assert parsed.valid["totalCharges"].isna().sum() == 1


def test_values_are_stripped(tmp_path, rules, key, frame, parse):
    frame.loc[0, "gender"] = "  Female "
    frame.loc[0, "tenure"] = " 12 "
    parsed = parse(write_csv(frame, tmp_path / "spaces.csv"))
    assert parsed.quarantine.empty
    assert in_order(parsed, frame).loc[0, "gender"] == "Female"
    assert in_order(parsed, frame).loc[0, "tenure"] == 12.0


def test_duplicated_key_quarantines_every_row_with_that_key(tmp_path, rules, key, frame, parse):
    dup = frame.loc[1, "customerID"]
    frame.loc[9, "customerID"] = dup
    frame.loc[20, "customerID"] = dup
    parsed = parse(write_csv(frame, tmp_path / "dup.csv"))
    assert len(parsed.valid) == ROWS - 3
    assert dup not in set(parsed.valid["customerID"])
    assert sorted(parsed.quarantine["line_number"]) == [line_of(1), line_of(9), line_of(20)]
    for reason in parsed.quarantine["reason"]:
        assert f"customerID '{dup}' appears more than once in this file" in reason
        assert f"(lines {line_of(1)}, {line_of(9)}, {line_of(20)})" in reason
    assert any("3 rows share a customerID" in p for p in parsed.problems)


def test_empty_keys_are_empty_not_duplicates(tmp_path, rules, key, frame, parse):
    frame.loc[0, "customerID"] = ""
    frame.loc[1, "customerID"] = ""
    parsed = parse(write_csv(frame, tmp_path / "empty_keys.csv"))
    assert parsed.quarantine["reason"].tolist() == ["customerID is empty", "customerID is empty"]


def _rewrite_line(path: Path, line_number: int, change) -> None:
    lines = path.read_text().splitlines()
    lines[line_number - 1] = change(lines[line_number - 1])
    path.write_text("\n".join(lines) + "\n")


def test_row_with_too_many_fields(tmp_path, rules, key, frame, parse):
    path = write_csv(frame, tmp_path / "wide.csv")
    _rewrite_line(path, line_of(3), lambda line: line + ",surplus")
    parsed = parse(path)
    assert len(parsed.valid) == ROWS - 1
    [row] = parsed.quarantine.to_dict("records")
    assert row["line_number"] == line_of(3)
    assert row["reason"] == "row has 22 fields, the header has 21"


def test_row_with_too_few_fields_reports_only_the_shape(tmp_path, rules, key, frame, parse):
    path = write_csv(frame, tmp_path / "narrow.csv")
    # Drop the gender field: every later value shifts one column left (and churnString is missing).
    _rewrite_line(path, line_of(5), lambda line: ",".join(f for i, f in enumerate(line.split(",")) if i != 1))
    parsed = parse(path)
    [row] = parsed.quarantine.to_dict("records")
    assert row["line_number"] == line_of(5)
    assert row["reason"] == "row has 20 fields, the header has 21"


def test_blank_lines_are_skipped_and_line_numbers_stay_physical(tmp_path, rules, key, frame, parse):
    frame.loc[3, "tenure"] = "abc"
    path = write_csv(frame, tmp_path / "blank_lines.csv")
    lines = path.read_text().splitlines()
    lines.insert(2, "")  # a blank line after the first data row
    path.write_text("\n".join(lines) + "\n")
    parsed = parse(path)
    assert len(parsed.valid) == ROWS - 1
    assert parsed.quarantine["line_number"].tolist() == [line_of(3) + 1]


def test_missing_required_columns_quarantines_every_row(tmp_path, rules, key, frame, parse):
    path = write_csv(frame.drop(columns=["tenure", "gender"]), tmp_path / "missing.csv")
    parsed = parse(path)
    assert parsed.valid.empty
    assert len(parsed.quarantine) == ROWS
    assert parsed.quarantine["line_number"].tolist() == [line_of(i) for i in range(ROWS)]
    reasons = set(parsed.quarantine["reason"])
    [reason] = reasons
    assert reason.startswith("file lacks required column(s) gender, tenure")
    assert parsed.problems == [reason]
    # The typed empty frame still has the contract's columns and types.
    assert parsed.valid["tenure"].dtype == np.float64


def test_empty_file(tmp_path, rules, key, parse):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    parsed = parse(path)
    assert parsed.valid.empty
    assert parsed.quarantine["reason"].tolist() == ["file is empty"]
    assert parsed.problems == ["file is empty"]
    assert parsed.rows_read == 1


def test_whitespace_only_file_is_empty(tmp_path, rules, key, parse):
    path = tmp_path / "blank.csv"
    path.write_text("\n  \n")
    parsed = parse(path)
    assert parsed.quarantine["reason"].tolist() == ["file is empty"]


def test_header_only_file(tmp_path, rules, key, parse):
    path = tmp_path / "header.csv"
    path.write_text(",".join(COLUMNS) + "\n")
    parsed = parse(path)
    assert parsed.valid.empty
    assert parsed.quarantine["reason"].tolist() == ["file has a header but no rows"]
    assert parsed.problems == ["file has a header but no rows"]


def test_non_utf8_file(tmp_path, rules, key, parse):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"\xff\xfe" + ",".join(COLUMNS).encode() + b"\n1234-ABCDE,M\xe4nnlich\n")
    parsed = parse(path)
    assert parsed.valid.empty
    [reason] = parsed.quarantine["reason"]
    assert "UTF-8" in reason
    assert parsed.problems == [reason]


def test_non_utf8_byte_later_in_the_file(tmp_path, rules, key, frame, parse):
    path = write_csv(frame, tmp_path / "late.csv")
    path.write_bytes(path.read_bytes() + b"9999-ZZZZZ,Caf\xe9\n")
    parsed = parse(path)
    assert parsed.valid.empty
    [reason] = parsed.quarantine["reason"]
    assert "not UTF-8" in reason


def test_extra_columns_are_ignored_and_reported(tmp_path, rules, key, frame, parse):
    frame["loyaltyTier"] = "gold"
    frame.insert(3, "notes", "x")
    parsed = parse(write_csv(frame, tmp_path / "extra.csv"))
    assert len(parsed.valid) == ROWS
    assert parsed.quarantine.empty
    assert "loyaltyTier" not in parsed.valid.columns and "notes" not in parsed.valid.columns
    assert parsed.problems == ["ignored column(s) not in the dataset contract: notes, loyaltyTier"]


def test_column_order_does_not_matter(tmp_path, rules, key, frame, parse):
    shuffled = frame[list(reversed(frame.columns))]
    parsed = parse(write_csv(shuffled, tmp_path / "reversed.csv"))
    assert len(parsed.valid) == ROWS
    assert in_order(parsed, frame)["customerID"].tolist() == frame["customerID"].tolist()


def test_quarantine_record_holds_the_original_fields(tmp_path, rules, key, frame, parse):
    frame.loc[4, "tenure"] = "abc"
    frame.loc[4, "gender"] = "Männlich"
    original = frame.loc[4].to_dict()
    parsed = parse(write_csv(frame, tmp_path / "record.csv"))
    [record] = parsed.quarantine["record"]
    restored = json.loads(record)
    assert list(restored) == COLUMNS
    assert restored["tenure"] == "abc"
    assert restored["gender"] == "Männlich"
    assert restored["customerID"] == original["customerID"]
    assert float(restored["monthlyCharges"]) == original["monthlyCharges"]
    assert "Männlich" in record  # not escaped


def test_rows_read_is_valid_plus_quarantine(tmp_path, rules, key, frame, parse):
    frame.loc[0, "tenure"] = "abc"
    frame.loc[1, "gender"] = ""
    frame.loc[2, "customerID"] = frame.loc[3, "customerID"]
    parsed = parse(write_csv(frame, tmp_path / "mixed.csv"))
    assert len(parsed.quarantine) == 4
    assert len(parsed.valid) == ROWS - 4
    assert parsed.rows_read == ROWS


def test_utf8_bom_is_handled(tmp_path, rules, key, parse):
    df = generate_customers(10, seed=8)
    path = write_csv(df, tmp_path / "bom.csv", encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    parsed = parse(path)
    assert parsed.quarantine.empty
    assert parsed.problems == []
    assert in_order(parsed, df)["customerID"].tolist() == df["customerID"].tolist()


def _reasons(typed: dict[str, pa.Array], rules) -> list[list[str]]:
    codes = {c: rule_codes(values, rules[c]) for c, values in typed.items()}
    shown = {c: values.cast(pa.string()) for c, values in typed.items()}
    rows = np.arange(len(next(iter(typed.values()))))
    return cell_reasons(rows, shown, typed, codes, {c: rules[c] for c in typed})


def test_rule_violations_on_typed_values(rules):
    typed = {
        "gender": pa.array(["Male", "Robot", None]),
        "seniorCitizen": pa.array([1.0, 2.0, 0.0]),
        "tenure": pa.array([5.0, -1.0, None]),
        "totalCharges": pa.array([None, 10.0, -3.0]),
    }
    reasons = _reasons(typed, rules)
    assert reasons[0] == []
    assert reasons[1] == [
        "gender: 'Robot' is not one of ['Male', 'Female']",
        "seniorCitizen: '2.0' is not one of [0, 1]",
        "tenure: -1.0 is below the minimum 0",
    ]
    assert reasons[2] == ["gender is empty", "tenure is empty", "totalCharges: -3.0 is below the minimum 0"]


def test_rule_violations_of_the_upper_bound(rules):
    assert _reasons({"tenure": pa.array([100.0, 10.0])}, rules) == [
        ["tenure: 100.0 is above the maximum 72"],
        [],
    ]


# --- what reading files as blocks of lines on Spark must not change -------------------------------


def test_quoted_values_may_hold_commas_and_quotes(tmp_path, frame, parse):
    frame.loc[0, "paymentMethod"] = "Bank transfer, automatic"  # not allowed, but parsed as one value
    frame.loc[1, "customerID"] = 'ab"c'  # an escaped quote inside a quoted value
    parsed = parse(write_csv(frame, tmp_path / "quoted.csv"))
    assert 'ab"c' in set(parsed.valid["customerID"])
    [row] = parsed.quarantine.to_dict("records")
    assert row["line_number"] == line_of(0)
    assert row["reason"].startswith("paymentMethod: 'Bank transfer, automatic' is not one of")
    assert json.loads(row["record"])["paymentMethod"] == "Bank transfer, automatic"


def test_a_quote_left_open_is_quarantined_not_read_across_lines(tmp_path, frame, parse):
    path = write_csv(frame, tmp_path / "open_quote.csv")
    lines = path.read_text().splitlines()
    lines[line_of(2) - 1] = lines[line_of(2) - 1].replace(",Yes,", ',"Yes,', 1)
    path.write_text("\n".join(lines) + "\n")
    parsed = parse(path)
    [row] = parsed.quarantine.to_dict("records")
    assert row["line_number"] == line_of(2)
    assert row["reason"].startswith("a quoted value is not closed on this line")
    assert len(parsed.valid) == ROWS - 1


def test_a_contract_column_named_twice_refuses_the_file(tmp_path, frame, parse):
    frame.insert(2, "tenure_copy", frame["tenure"])
    path = write_csv(frame, tmp_path / "twice.csv")
    path.write_text(path.read_text().replace("tenure_copy", "tenure", 1))
    parsed = parse(path)
    assert parsed.valid.empty and len(parsed.quarantine) == ROWS
    assert set(parsed.quarantine["reason"]) == {"column(s) tenure appear more than once in the header"}


def test_whitespace_only_lines_are_skipped(tmp_path, frame, parse):
    frame.loc[5, "tenure"] = "x"
    path = write_csv(frame, tmp_path / "tabs.csv")
    lines = path.read_text().splitlines()
    lines.insert(3, " \t ")
    path.write_text("\n".join(lines) + "\n")
    parsed = parse(path)
    assert parsed.quarantine["line_number"].tolist() == [line_of(5) + 1]
    assert len(parsed.valid) == ROWS - 1


def test_glob_characters_in_a_file_name_are_taken_literally(tmp_path, frame, parse):
    write_csv(frame, tmp_path / "batch1.csv")  # would match the pattern batch[1].csv as a glob
    parsed = parse(write_csv(frame.head(5), tmp_path / "batch[1].csv"))
    assert len(parsed.valid) == 5 and parsed.path.endswith("batch[1].csv")


def test_a_file_read_in_many_spark_blocks_keeps_exact_lines_and_finds_duplicates_across_blocks(
    spark, tmp_path, parse
):
    df = generate_customers(600, seed=5).astype(object)
    df.loc[3, "tenure"] = "abc"
    df.loc[590, "tenure"] = "-1"
    df.loc[595, "customerID"] = df.loc[7, "customerID"]  # the two rows are far apart: other blocks
    path = write_csv(df, tmp_path / "big.csv")
    lines = path.read_text().splitlines()
    lines.insert(300, "")  # a blank line in the middle
    path.write_text("\n".join(lines) + "\n")
    previous = {
        k: spark.conf.get(k) for k in ("spark.sql.files.maxPartitionBytes", "spark.sql.files.openCostInBytes")
    }
    spark.conf.set("spark.sql.files.maxPartitionBytes", "4096")
    spark.conf.set("spark.sql.files.openCostInBytes", "0")
    try:
        assert spark.read.text(str(path)).rdd.getNumPartitions() > 10
        parsed = parse(path)
    finally:
        for k, v in previous.items():
            spark.conf.set(k, v)
    reasons = dict(zip(parsed.quarantine["line_number"], parsed.quarantine["reason"]))
    # Rows after the blank line (file line 301) sit one line further down.
    assert set(reasons) == {line_of(3), line_of(590) + 1, line_of(7), line_of(595) + 1}
    assert "tenure: 'abc' is not a number" in reasons[line_of(3)]
    assert f"(lines {line_of(7)}, {line_of(595) + 1})" in reasons[line_of(7)]
    assert len(parsed.valid) == 600 - 4 and parsed.rows_read == 600


def test_several_files_in_one_run_the_newest_valid_row_of_a_key_wins(tmp_path, frame, parse_files):
    old = frame.head(10).copy()
    new = frame.iloc[5:15].copy()
    new["contract"] = "Two year"
    new.loc[6, "tenure"] = "oops"  # this key's new row is bad: its older valid row stays
    new.loc[8, "customerID"] = new.loc[9, "customerID"]  # duplicated within the newer file
    first, second = write_csv(old, tmp_path / "a_old.csv"), write_csv(new, tmp_path / "b_new.csv")
    (a, b), valid = parse_files([first, second])
    assert (a.rows_read, len(a.quarantine)) == (10, 0)
    assert len(b.quarantine) == 3 and b.problems[:1] == [
        "2 rows share a customerID with another row of the file"
    ]
    contract = valid.set_index("customerID")["contract"]
    assert contract.index.is_unique and len(contract) == 15  # the old file's 10 keys + 5 new ones
    assert (contract.loc[[old.loc[i, "customerID"] for i in (5, 7)]] == "Two year").all()  # newer file wins
    for i in (6, 8, 9):  # refused, duplicated or no longer in the newer file: the older valid row stays
        assert contract.loc[old.loc[i, "customerID"]] == old.loc[i, "contract"]
    assert (contract.loc[list(new["customerID"][5:])] == "Two year").all()


def test_timestamps_are_iso_8601_and_utc_without_a_zone():
    from mlops_dagster.ml.contract import check_cells
    from mlops_dagster.settings import ColumnRule

    raw = {
        "t": pa.array(
            [
                "2026-11-23",
                "2026-11-23 10:00:00",
                "2026-11-23T10:00",
                "2026-11-23T10:00:00.5+01:00",
                "2026-02-30",
                "yesterday",
                None,
            ]
        )
    }
    rules = {"t": ColumnRule(type="timestamp")}
    typed, codes = check_cells(raw, rules)
    utc = UTC
    assert typed["t"].to_pylist()[:4] == [
        datetime(2026, 11, 23, tzinfo=utc),
        datetime(2026, 11, 23, 10, tzinfo=utc),
        datetime(2026, 11, 23, 10, tzinfo=utc),
        datetime(2026, 11, 23, 9, 0, 0, 500000, tzinfo=utc),
    ]
    refused = np.flatnonzero(codes["t"])
    assert [r[0] for r in cell_reasons(refused, raw, typed, codes, rules)] == [
        "t: '2026-02-30' is not a date or time (ISO 8601, e.g. 2026-11-23 or 2026-11-23T10:30:00Z)",
        "t: 'yesterday' is not a date or time (ISO 8601, e.g. 2026-11-23 or 2026-11-23T10:30:00Z)",
        "t is empty",
    ]
