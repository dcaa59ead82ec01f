"""Landing files against the real dataset contract: typed valid rows, every refusal quarantined."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_dagster.data.telco import COLUMNS, generate_customers
from mlops_dagster.ml.landing import QUARANTINE_COLUMNS, ParsedFile, parse_landing_file, rule_violations
from mlops_dagster.settings import load_settings

ROWS = 30


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


def parse(path, rules, key) -> ParsedFile:
    parsed = parse_landing_file(path, rules, key)
    assert parsed.rows_read == len(parsed.valid) + len(parsed.quarantine)
    assert list(parsed.quarantine.columns) == QUARANTINE_COLUMNS
    assert list(parsed.valid.columns) == list(rules)
    return parsed


def test_dataset_contract_is_the_telco_schema(dataset):
    assert list(dataset.columns) == COLUMNS
    assert dataset.key == "customerID"


def test_clean_file_loads_every_row_typed(tmp_path, rules, key):
    df = generate_customers(ROWS, seed=42)
    path = write_csv(df, tmp_path / "clean.csv")
    parsed = parse(path, rules, key)
    assert parsed.path == str(path)
    assert len(parsed.valid) == ROWS
    assert parsed.rows_read == ROWS
    assert parsed.quarantine.empty
    assert parsed.problems == []
    for column, rule in rules.items():
        if rule.type == "double":
            assert parsed.valid[column].dtype == np.float64, column
            np.testing.assert_array_equal(parsed.valid[column].to_numpy(), df[column].to_numpy())
        else:
            assert parsed.valid[column].tolist() == df[column].tolist(), column


def test_unparsable_number_is_quarantined_with_its_line(tmp_path, rules, key, frame):
    frame.loc[4, "tenure"] = "abc"
    parsed = parse(write_csv(frame, tmp_path / "bad_number.csv"), rules, key)
    assert len(parsed.valid) == ROWS - 1
    assert frame.loc[4, "customerID"] not in set(parsed.valid["customerID"])
    [row] = parsed.quarantine.to_dict("records")
    assert row["line_number"] == line_of(4) == 6
    assert "tenure: 'abc' is not a number" in row["reason"]
    assert "tenure is empty" not in row["reason"]  # unparsable is not also reported as empty
    assert row["source_file"] == str(tmp_path / "bad_number.csv")
    assert "1 of 30 rows quarantined" in parsed.problems


def test_value_not_in_allowed_list(tmp_path, rules, key, frame):
    frame.loc[0, "gender"] = "Robot"
    frame.loc[7, "contract"] = "Monthly"
    parsed = parse(write_csv(frame, tmp_path / "allowed.csv"), rules, key)
    assert len(parsed.valid) == ROWS - 2
    reasons = dict(zip(parsed.quarantine["line_number"], parsed.quarantine["reason"]))
    assert set(reasons) == {line_of(0), line_of(7)}
    assert reasons[line_of(0)] == "gender: 'Robot' is not one of ['Male', 'Female']"
    assert "contract: 'Monthly' is not one of" in reasons[line_of(7)]


def test_numeric_value_not_in_allowed_list(tmp_path, rules, key, frame):
    frame.loc[2, "seniorCitizen"] = "2"
    parsed = parse(write_csv(frame, tmp_path / "senior.csv"), rules, key)
    [reason] = parsed.quarantine["reason"]
    assert "seniorCitizen" in reason and "is not one of [0, 1]" in reason


def test_value_out_of_range(tmp_path, rules, key, frame):
    frame.loc[3, "tenure"] = "99"
    frame.loc[5, "totalCharges"] = "-1"
    parsed = parse(write_csv(frame, tmp_path / "range.csv"), rules, key)
    assert len(parsed.valid) == ROWS - 2
    reasons = dict(zip(parsed.quarantine["line_number"], parsed.quarantine["reason"]))
    assert "above the maximum 72" in reasons[line_of(3)]
    assert reasons[line_of(3)].startswith("tenure: 99")
    assert "totalCharges: -1" in reasons[line_of(5)] and "below the minimum 0" in reasons[line_of(5)]


def test_boundary_values_are_valid(tmp_path, rules, key, frame):
    frame.loc[0, "tenure"] = "72"
    frame.loc[1, "tenure"] = "0"
    parsed = parse(write_csv(frame, tmp_path / "bounds.csv"), rules, key)
    assert parsed.quarantine.empty
    assert parsed.valid["tenure"].iloc[:2].tolist() == [72.0, 0.0]


def test_empty_non_nullable_value(tmp_path, rules, key, frame):
    frame.loc[6, "gender"] = ""
    frame.loc[8, "monthlyCharges"] = "   "  # whitespace only counts as empty
    parsed = parse(write_csv(frame, tmp_path / "empty_cell.csv"), rules, key)
    reasons = dict(zip(parsed.quarantine["line_number"], parsed.quarantine["reason"]))
    assert reasons == {line_of(6): "gender is empty", line_of(8): "monthlyCharges is empty"}


def test_several_reasons_on_one_row_are_all_listed(tmp_path, rules, key, frame):
    frame.loc[1, "gender"] = ""
    frame.loc[1, "tenure"] = "-3"
    frame.loc[1, "internetService"] = "Cable"
    parsed = parse(write_csv(frame, tmp_path / "many.csv"), rules, key)
    [reason] = parsed.quarantine["reason"]
    parts = reason.split("; ")
    assert "gender is empty" in parts
    assert any(p.startswith("tenure: -3") and "below the minimum 0" in p for p in parts)
    assert any(p.startswith("internetService: 'Cable'") for p in parts)


def test_blank_total_charges_is_allowed_and_loads_as_nan(tmp_path, rules, key, frame):
    frame.loc[2, "totalCharges"] = ""
    frame.loc[2, "tenure"] = "0"
    parsed = parse(write_csv(frame, tmp_path / "blank_total.csv"), rules, key)
    assert parsed.quarantine.empty
    assert len(parsed.valid) == ROWS
    assert parsed.valid["totalCharges"].dtype == np.float64
    assert np.isnan(parsed.valid.loc[2, "totalCharges"])
    assert parsed.valid["totalCharges"].isna().sum() == 1


def test_values_are_stripped(tmp_path, rules, key, frame):
    frame.loc[0, "gender"] = "  Female "
    frame.loc[0, "tenure"] = " 12 "
    parsed = parse(write_csv(frame, tmp_path / "spaces.csv"), rules, key)
    assert parsed.quarantine.empty
    assert parsed.valid.loc[0, "gender"] == "Female"
    assert parsed.valid.loc[0, "tenure"] == 12.0


def test_duplicated_key_quarantines_every_row_with_that_key(tmp_path, rules, key, frame):
    dup = frame.loc[1, "customerID"]
    frame.loc[9, "customerID"] = dup
    frame.loc[20, "customerID"] = dup
    parsed = parse(write_csv(frame, tmp_path / "dup.csv"), rules, key)
    assert len(parsed.valid) == ROWS - 3
    assert dup not in set(parsed.valid["customerID"])
    assert sorted(parsed.quarantine["line_number"]) == [line_of(1), line_of(9), line_of(20)]
    for reason in parsed.quarantine["reason"]:
        assert f"customerID '{dup}' appears more than once in this file" in reason
        assert f"(lines {line_of(1)}, {line_of(9)}, {line_of(20)})" in reason
    assert any("3 rows share a customerID" in p for p in parsed.problems)


def test_empty_keys_are_empty_not_duplicates(tmp_path, rules, key, frame):
    frame.loc[0, "customerID"] = ""
    frame.loc[1, "customerID"] = ""
    parsed = parse(write_csv(frame, tmp_path / "empty_keys.csv"), rules, key)
    assert parsed.quarantine["reason"].tolist() == ["customerID is empty", "customerID is empty"]


def _rewrite_line(path: Path, line_number: int, change) -> None:
    lines = path.read_text().splitlines()
    lines[line_number - 1] = change(lines[line_number - 1])
    path.write_text("\n".join(lines) + "\n")


def test_row_with_too_many_fields(tmp_path, rules, key, frame):
    path = write_csv(frame, tmp_path / "wide.csv")
    _rewrite_line(path, line_of(3), lambda line: line + ",surplus")
    parsed = parse(path, rules, key)
    assert len(parsed.valid) == ROWS - 1
    [row] = parsed.quarantine.to_dict("records")
    assert row["line_number"] == line_of(3)
    assert row["reason"] == "row has 22 fields, the header has 21"


def test_row_with_too_few_fields_reports_only_the_shape(tmp_path, rules, key, frame):
    path = write_csv(frame, tmp_path / "narrow.csv")
    # Drop the gender field: every later value shifts one column left (and churnString is missing).
    _rewrite_line(path, line_of(5), lambda line: ",".join(f for i, f in enumerate(line.split(",")) if i != 1))
    parsed = parse(path, rules, key)
    [row] = parsed.quarantine.to_dict("records")
    assert row["line_number"] == line_of(5)
    assert row["reason"] == "row has 20 fields, the header has 21"


def test_blank_lines_are_skipped_and_line_numbers_stay_physical(tmp_path, rules, key, frame):
    frame.loc[3, "tenure"] = "abc"
    path = write_csv(frame, tmp_path / "blank_lines.csv")
    lines = path.read_text().splitlines()
    lines.insert(2, "")  # a blank line after the first data row
    path.write_text("\n".join(lines) + "\n")
    parsed = parse(path, rules, key)
    assert len(parsed.valid) == ROWS - 1
    assert parsed.quarantine["line_number"].tolist() == [line_of(3) + 1]


def test_missing_required_columns_quarantines_every_row(tmp_path, rules, key, frame):
    path = write_csv(frame.drop(columns=["tenure", "gender"]), tmp_path / "missing.csv")
    parsed = parse(path, rules, key)
    assert parsed.valid.empty
    assert len(parsed.quarantine) == ROWS
    assert parsed.quarantine["line_number"].tolist() == [line_of(i) for i in range(ROWS)]
    reasons = set(parsed.quarantine["reason"])
    [reason] = reasons
    assert reason.startswith("file lacks required column(s) gender, tenure")
    assert parsed.problems == [reason]
    # The typed empty frame still has the contract's columns and types.
    assert parsed.valid["tenure"].dtype == np.float64


def test_empty_file(tmp_path, rules, key):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    parsed = parse(path, rules, key)
    assert parsed.valid.empty
    assert parsed.quarantine["reason"].tolist() == ["file is empty"]
    assert parsed.problems == ["file is empty"]
    assert parsed.rows_read == 1


def test_whitespace_only_file_is_empty(tmp_path, rules, key):
    path = tmp_path / "blank.csv"
    path.write_text("\n  \n")
    parsed = parse(path, rules, key)
    assert parsed.quarantine["reason"].tolist() == ["file is empty"]


def test_header_only_file(tmp_path, rules, key):
    path = tmp_path / "header.csv"
    path.write_text(",".join(COLUMNS) + "\n")
    parsed = parse(path, rules, key)
    assert parsed.valid.empty
    assert parsed.quarantine["reason"].tolist() == ["file has a header but no rows"]
    assert parsed.problems == ["file has a header but no rows"]


def test_non_utf8_file(tmp_path, rules, key):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"\xff\xfe" + ",".join(COLUMNS).encode() + b"\n1234-ABCDE,M\xe4nnlich\n")
    parsed = parse(path, rules, key)
    assert parsed.valid.empty
    [reason] = parsed.quarantine["reason"]
    assert "UTF-8" in reason
    assert parsed.problems == [reason]


def test_non_utf8_byte_later_in_the_file(tmp_path, rules, key, frame):
    path = write_csv(frame, tmp_path / "late.csv")
    path.write_bytes(path.read_bytes() + b"9999-ZZZZZ,Caf\xe9\n")
    parsed = parse(path, rules, key)
    assert parsed.valid.empty
    [reason] = parsed.quarantine["reason"]
    assert "not UTF-8" in reason


def test_extra_columns_are_ignored_and_reported(tmp_path, rules, key, frame):
    frame["loyaltyTier"] = "gold"
    frame.insert(3, "notes", "x")
    parsed = parse(write_csv(frame, tmp_path / "extra.csv"), rules, key)
    assert len(parsed.valid) == ROWS
    assert parsed.quarantine.empty
    assert "loyaltyTier" not in parsed.valid.columns and "notes" not in parsed.valid.columns
    assert parsed.problems == ["ignored column(s) not in the dataset contract: notes, loyaltyTier"]


def test_column_order_does_not_matter(tmp_path, rules, key, frame):
    shuffled = frame[list(reversed(frame.columns))]
    parsed = parse(write_csv(shuffled, tmp_path / "reversed.csv"), rules, key)
    assert len(parsed.valid) == ROWS
    assert parsed.valid["customerID"].tolist() == frame["customerID"].tolist()


def test_quarantine_record_holds_the_original_fields(tmp_path, rules, key, frame):
    frame.loc[4, "tenure"] = "abc"
    frame.loc[4, "gender"] = "Männlich"
    original = frame.loc[4].to_dict()
    parsed = parse(write_csv(frame, tmp_path / "record.csv"), rules, key)
    [record] = parsed.quarantine["record"]
    restored = json.loads(record)
    assert list(restored) == COLUMNS
    assert restored["tenure"] == "abc"
    assert restored["gender"] == "Männlich"
    assert restored["customerID"] == original["customerID"]
    assert float(restored["monthlyCharges"]) == original["monthlyCharges"]
    assert "Männlich" in record  # not escaped


def test_rows_read_is_valid_plus_quarantine(tmp_path, rules, key, frame):
    frame.loc[0, "tenure"] = "abc"
    frame.loc[1, "gender"] = ""
    frame.loc[2, "customerID"] = frame.loc[3, "customerID"]
    parsed = parse(write_csv(frame, tmp_path / "mixed.csv"), rules, key)
    assert len(parsed.quarantine) == 4
    assert len(parsed.valid) == ROWS - 4
    assert parsed.rows_read == ROWS


def test_utf8_bom_is_handled(tmp_path, rules, key):
    df = generate_customers(10, seed=8)
    path = write_csv(df, tmp_path / "bom.csv", encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    parsed = parse(path, rules, key)
    assert parsed.quarantine.empty
    assert parsed.problems == []
    assert parsed.valid["customerID"].tolist() == df["customerID"].tolist()


def test_rule_violations_on_a_typed_frame(rules):
    subset = {c: rules[c] for c in ("gender", "seniorCitizen", "tenure", "totalCharges")}
    typed = pd.DataFrame({
        "gender": pd.Series(["Male", "Robot", None], dtype="string"),
        "seniorCitizen": [1.0, 2.0, 0.0],
        "tenure": [5.0, -1.0, np.nan],
        "totalCharges": [np.nan, 10.0, -3.0],
    })
    reasons = rule_violations(typed, subset)
    assert list(reasons.columns) == list(subset)
    assert reasons.loc[0].tolist() == ["", "", "", ""]
    assert reasons.loc[1, "gender"] == "gender: 'Robot' is not one of ['Male', 'Female']"
    assert reasons.loc[1, "seniorCitizen"] == "seniorCitizen: '2.0' is not one of [0, 1]"
    assert reasons.loc[1, "tenure"] == "tenure: -1.0 is below the minimum 0"
    assert reasons.loc[1, "totalCharges"] == ""
    assert reasons.loc[2, "gender"] == "gender is empty"
    assert reasons.loc[2, "seniorCitizen"] == ""
    assert reasons.loc[2, "tenure"] == "tenure is empty"
    assert reasons.loc[2, "totalCharges"] == "totalCharges: -3.0 is below the minimum 0"


def test_rule_violations_keeps_the_frame_index(rules):
    typed = pd.DataFrame({"tenure": [100.0, 10.0]}, index=[7, 3])
    reasons = rule_violations(typed, {"tenure": rules["tenure"]})
    assert reasons.index.tolist() == [7, 3]
    assert reasons.loc[7, "tenure"] == "tenure: 100.0 is above the maximum 72"
    assert reasons.loc[3, "tenure"] == ""
