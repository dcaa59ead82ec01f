"""Landing files in every format a source may send (issue 14): CSV with another delimiter, quote,
encoding or no header, gzip-compressed CSV and JSON lines, Parquet. Each ends as the same typed rows
as a plain CSV file would, and a value of the wrong type is quarantined, never crashed on."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_dagster.data.telco import generate_customers
from mlops_dagster.settings import (
    SOURCE_FILE,
    ColumnRule,
    ConfigError,
    CsvOptions,
    LandingFormat,
    load_settings,
)

from .test_landing import ROWS, dataset, frame, in_order, key, parse, parse_files, rules, write_csv  # noqa: F401

# The two write-ups a new user tried: a semicolon-separated, Latin-1 CSV.
EUROPEAN = LandingFormat(csv=CsvOptions(delimiter=";", encoding="latin-1"))


def same_rows(parsed, df, rules):
    """Every row of ``df`` loaded with the values a plain CSV file gives."""
    assert parsed.quarantine.empty, parsed.quarantine.to_dict("records")
    valid = in_order(parsed, df)
    for column, rule in rules.items():
        if rule.type == "double":
            np.testing.assert_array_equal(valid[column].to_numpy(), df[column].astype(float).to_numpy())
        else:
            assert valid[column].tolist() == df[column].tolist(), column


def test_semicolon_latin1_csv_loads_with_its_options_and_is_refused_whole_without(tmp_path, rules, parse):
    df = generate_customers(ROWS, seed=3)
    df.loc[0, "customerID"] = "Zoë-Ångström"  # not ASCII: Latin-1 bytes differ from UTF-8's
    path = tmp_path / "europe.csv"
    df.to_csv(path, index=False, sep=";", encoding="latin-1")

    same_rows(parse(path, EUROPEAN), df, rules)

    refused = parse(path)  # the defaults: comma, UTF-8
    assert refused.valid.empty and refused.rows_read == 1
    [reason] = refused.quarantine["reason"]
    assert (
        reason
        == "file is not UTF-8 text (line 2 is not valid UTF-8); set csv.encoding if it is written in another"
    )


def test_a_byte_the_encoding_refuses_refuses_the_file_naming_its_line(tmp_path, parse):
    path = tmp_path / "ascii.csv"
    df = generate_customers(5, seed=3)
    df.to_csv(path, index=False)
    with path.open("ab") as out:
        out.write(b"caf\xe9\n")
    parsed = parse(path, LandingFormat(csv=CsvOptions(encoding="ascii")))
    assert parsed.valid.empty
    assert parsed.quarantine["reason"].tolist() == [
        "file is not ascii text (line 7: ordinal not in range(128))"
    ]
    assert parsed.quarantine["line_number"].tolist() == [0]


def test_quote_character_and_no_header(tmp_path, rules, parse):
    df = generate_customers(ROWS, seed=4)
    df.loc[1, "customerID"] = "1234|ABC"  # holds the delimiter: quoted with '
    lines = [
        "|".join(f"'{v}'" if "|" in str(v) else str(v) for v in row)
        for row in df.astype(str).itertuples(index=False)
    ]
    lines.insert(5, "only|three|fields")
    path = tmp_path / "no_header.txt"
    path.write_text("\n".join(lines) + "\n")

    parsed = parse(path, LandingFormat(csv=CsvOptions(delimiter="|", quote="'", header=False)))
    assert len(parsed.valid) == ROWS
    assert in_order(parsed, df)["customerID"].tolist() == df["customerID"].tolist()
    [bad] = parsed.quarantine.to_dict("records")
    assert bad["line_number"] == 6  # no header: the first line is row 1
    assert bad["reason"] == f"row has 3 fields, the header has {len(rules)}"
    assert json.loads(bad["record"]) == dict(zip(list(rules)[:3], ["only", "three", "fields"]))


def test_gzip_csv_gives_the_rows_of_the_plain_file_and_a_broken_gzip_is_refused_alone(
    tmp_path, rules, parse_files
):
    df = generate_customers(ROWS, seed=5)
    plain = write_csv(df, tmp_path / "a.csv")
    packed = tmp_path / "b.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    broken = tmp_path / "c.csv.gz"
    broken.write_bytes(gzip.compress(plain.read_bytes())[:-40])  # truncated in transit

    [from_plain, from_gzip, from_broken], _ = parse_files([plain, packed, broken])
    same_rows(from_gzip, df, rules)  # the newer file: each key's row comes from it
    assert from_plain.rows_read == from_gzip.rows_read == ROWS and from_plain.quarantine.empty
    assert from_broken.valid.empty and from_broken.rows_read == 1
    assert from_broken.quarantine["reason"][0].startswith("file is not gzip-compressed data or is truncated")


def test_gzip_csv_in_another_encoding(tmp_path, rules, parse):
    df = generate_customers(ROWS, seed=6)
    df.loc[2, "customerID"] = "Müller-1"
    path = tmp_path / "europe.csv.gz"
    path.write_bytes(gzip.compress(df.to_csv(index=False, sep=";").encode("latin-1")))
    same_rows(parse(path, EUROPEAN), df, rules)


def test_parquet_loads_typed_rows_and_quarantines_wrong_types_by_row_number(tmp_path, rules, parse):
    df = generate_customers(ROWS, seed=7)
    good = tmp_path / "good.parquet"
    df.to_parquet(good, index=False)
    same_rows(parse(good), df, rules)

    # Written by another tool: tenure as text, seniorCitizen as whole numbers, one out-of-range value.
    odd = df.astype({"seniorCitizen": "int64"}).astype({"tenure": str})
    odd.loc[3, "tenure"] = "abc"
    odd.loc[8, "monthlyCharges"] = -5.0
    odd.loc[9, "tenure"] = "1.5e1"
    path = tmp_path / "odd.parquet"
    odd.to_parquet(path, index=False)
    parsed = parse(path)
    assert len(parsed.valid) == ROWS - 2
    assert parsed.valid.set_index("customerID").loc[df["customerID"][9], "tenure"] == 15.0
    assert parsed.quarantine["line_number"].tolist() == [4, 9]  # row numbers in the file, from 1
    assert parsed.quarantine["reason"].tolist() == [
        "tenure: 'abc' is not a number",
        "monthlyCharges: -5.0 is below the minimum 0",
    ]
    assert json.loads(parsed.quarantine["record"][0])["tenure"] == "abc"


def test_parquet_without_a_required_column_or_not_parquet_at_all(tmp_path, rules, parse_files):
    df = generate_customers(5, seed=8)
    missing = tmp_path / "missing.parquet"
    df.drop(columns=["monthlyCharges"]).to_parquet(missing, index=False)
    fake = tmp_path / "fake.parquet"
    fake.write_text("customerID,gender\n1,Male\n")
    empty = tmp_path / "empty.parquet"
    df.head(0).to_parquet(empty, index=False)

    [lacking, not_parquet, nothing], _ = parse_files([missing, fake, empty])
    assert lacking.valid.empty and len(lacking.quarantine) == 5  # every row kept, with the reason
    assert lacking.quarantine["reason"].str.startswith("file lacks required column(s) monthlyCharges").all()
    assert lacking.quarantine["line_number"].tolist() == [1, 2, 3, 4, 5]
    assert not_parquet.quarantine["reason"][0].startswith("file is not a Parquet file")
    assert nothing.quarantine["reason"].tolist() == ["file is empty"]


def test_parquet_timestamps_with_and_without_a_zone(tmp_path, parse_files):
    rules = {"customerID": ColumnRule(type="string"), "label_time": ColumnRule(type="timestamp")}
    local = pd.to_datetime(["2026-03-01 10:00:00", "2026-03-02 23:30:00.250"], format="ISO8601")
    berlin = local.tz_localize("Europe/Berlin")
    files = []
    for name, times in (("zoned", berlin), ("naive", local)):  # pandas writes nanoseconds
        files.append(tmp_path / f"{name}.parquet")
        pq.write_table(
            pa.table({"customerID": [f"{name}-1", f"{name}-2"], "label_time": pa.array(times)}), files[-1]
        )
    micros = tmp_path / "micros.parquet"
    pq.write_table(
        pa.table(
            {
                "customerID": ["micros-1", "micros-2"],
                "label_time": pa.array(berlin).cast(pa.timestamp("us", tz="Europe/Berlin")),
            }
        ),
        micros,
    )

    parsed, valid = parse_files([*files, micros], rules=rules)
    assert all(p.quarantine.empty for p in parsed)
    times = valid.set_index("customerID")["label_time"]
    utc = berlin.tz_convert("UTC")
    assert list(times[["zoned-1", "zoned-2"]]) == list(utc)
    assert list(times[["micros-1", "micros-2"]]) == list(utc)
    assert list(times[["naive-1", "naive-2"]]) == list(local.tz_localize("UTC"))  # no zone: UTC, as in CSV


def test_json_lines_types_and_broken_lines(tmp_path, rules, parse):
    df = generate_customers(ROWS, seed=9)
    records = df.to_dict("records")
    records[1]["tenure"] = True  # a JSON boolean where a number is expected
    records[2]["paymentMethod"] = ["a", "list"]  # nested
    del records[3]["gender"]  # a missing key is an empty cell
    records[4]["extra"] = {"ignored": 1}  # keys outside the contract are ignored
    lines = [json.dumps(r) for r in records]
    lines.insert(6, "{not json")
    lines.insert(8, "[1, 2]")
    path = tmp_path / "customers.jsonl"
    path.write_text("\n".join(lines) + "\n")

    parsed = parse(path)
    assert len(parsed.valid) == ROWS - 3
    assert in_order(parsed, df.drop([1, 2, 3]))["tenure"].tolist() == df.drop([1, 2, 3])["tenure"].tolist()
    quarantine = dict(zip(parsed.quarantine["line_number"], parsed.quarantine["reason"]))
    assert quarantine == {
        2: "tenure: 'true' is not a number",
        3: "paymentMethod: a JSON object or array where one value is expected",
        4: "gender is empty",
        7: "line is not valid JSON (Expecting property name enclosed in double quotes at column 2)",
        9: "line is a JSON list, not an object",
    }
    assert parsed.quarantine["record"][parsed.quarantine["line_number"] == 7].tolist() == ["{not json"]


def test_formats_mix_in_one_run_newest_file_wins_and_unknown_ones_are_refused(tmp_path, rules, parse_files):
    df = generate_customers(ROWS, seed=10)
    older = write_csv(df, tmp_path / "a.csv")
    newer = df.head(10).assign(tenure=70.0)
    parquet = tmp_path / "b.parquet"
    newer.to_parquet(parquet, index=False)
    twice = pd.concat([df.tail(3), df.tail(1)])  # a key twice in one file
    jsonl = tmp_path / "c.json.gz"
    jsonl.write_bytes(gzip.compress("\n".join(json.dumps(r) for r in twice.to_dict("records")).encode()))
    sheet = tmp_path / "d.xlsx"
    sheet.write_bytes(b"PK\x03\x04")

    parsed, valid = parse_files([older, parquet, jsonl, sheet])
    by_key = valid.set_index("customerID")
    # The key twice in the JSON file is refused there, so its row stays the CSV file's.
    assert len(by_key) == ROWS and by_key.loc[twice["customerID"].iloc[-1], SOURCE_FILE] == str(older)
    assert (by_key.loc[newer["customerID"], "tenure"] == 70.0).all()
    assert parsed[2].problems == [
        "2 rows share a customerID with another row of the file",
        "2 of 4 rows quarantined",
    ]
    assert parsed[3].quarantine["reason"][0].startswith("cannot tell the format of d.xlsx from its extension")


def test_csv_options_are_checked_when_the_config_loads(local_root, tmp_path):
    with pytest.raises(ValueError, match="not a codec Python knows"):
        CsvOptions(encoding="latin-9000")
    with pytest.raises(ValueError, match="two different characters"):
        CsvOptions(delimiter='"')
    config = tmp_path / "mine.yaml"
    config.write_text("dataset:\n  format: parquet\n  csv: {encoding: klingon}\n")
    with pytest.raises(ConfigError, match="klingon"):
        load_settings("local", extra_file=config)
    assert load_settings("local").dataset.csv == CsvOptions()


def test_json_batch_parsed_by_arrow_gives_the_cells_of_line_by_line_parsing(rules):
    from mlops_dagster.ml.landing_formats import json_cells

    records = generate_customers(50, seed=11).to_dict("records")
    records[0]["tenure"] = 7  # a whole number where others are fractional
    records[1]["gender"] = "  Male "  # stripped, as in a CSV cell
    del records[2]["partner"]  # missing: empty
    records[3]["extra"] = {"nested": [1, 2]}  # outside the contract: ignored
    lines = [json.dumps(r) for r in records]
    fast = json_cells(pa.array(lines), rules)
    slow = json_cells(pa.array([*lines, "[]"]), rules)  # one line Arrow cannot take: line by line
    assert slow.broken == {50: "line is a JSON list, not an object"}
    assert fast.broken == {}
    for column in rules:
        got, want = fast.raw[column].to_pylist(), slow.raw[column].to_pylist()[:50]
        if rules[column].type == "double":  # "7" and "7.0", "19.5" and "19.5": the same number
            got, want = (
                [None if v is None else float(v) for v in got],
                [None if v is None else float(v) for v in want],
            )
        assert got == want, column
    assert fast.raw["gender"][1].as_py() == "Male" and fast.raw["partner"][2].as_py() is None


def test_a_source_is_one_kind_with_what_that_kind_needs():
    from mlops_dagster.settings import DatasetSettings

    base = {"name": "x", "key": "a", "label": "a", "columns": {"a": {"type": "string"}}}
    delta = DatasetSettings.model_validate({**base, "source": {"kind": "delta", "table": "c.s.t"}})
    assert delta.source.table == "c.s.t"
    postgres = DatasetSettings.model_validate(
        {**base, "source": {"kind": "postgres", "query": "SELECT 1 AS a", "watermark": "a"}}
    )
    assert postgres.source.dsn_env == "MLOPS_SOURCE_DSN" and postgres.source.batch_rows == 50_000
    with pytest.raises(ValueError, match="exactly one of `table` or `query`"):
        DatasetSettings.model_validate({**base, "source": {"kind": "postgres", "watermark": "a"}})
    with pytest.raises(ValueError, match="kind"):
        DatasetSettings.model_validate({**base, "source": {"table": "c.s.t"}})
