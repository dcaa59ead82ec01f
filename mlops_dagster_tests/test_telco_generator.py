"""The telco generator: exact schema, determinism, allowed values and realistic relationships."""

from __future__ import annotations

import csv
import time

import numpy as np
import pandas as pd
import pytest

from mlops_dagster.data.telco import COLUMNS, DEFAULT_ROWS, generate_customers, write_customers_csv

SCHEMA_COLUMNS = [
    "customerID",
    "gender",
    "seniorCitizen",
    "partner",
    "dependents",
    "tenure",
    "phoneService",
    "multipleLines",
    "internetService",
    "onlineSecurity",
    "onlineBackup",
    "deviceProtection",
    "techSupport",
    "streamingTV",
    "streamingMovies",
    "contract",
    "paperlessBilling",
    "paymentMethod",
    "monthlyCharges",
    "totalCharges",
    "churnString",
]
FLOAT_COLUMNS = {"seniorCitizen", "tenure", "monthlyCharges", "totalCharges"}
YES_NO = {"Yes", "No"}
NO_INTERNET = {"Yes", "No", "No internet service"}
ALLOWED = {
    "gender": {"Male", "Female"},
    "partner": YES_NO,
    "dependents": YES_NO,
    "phoneService": YES_NO,
    "multipleLines": {"Yes", "No", "No phone service"},
    "internetService": {"DSL", "Fiber optic", "No"},
    "onlineSecurity": NO_INTERNET,
    "onlineBackup": NO_INTERNET,
    "deviceProtection": NO_INTERNET,
    "techSupport": NO_INTERNET,
    "streamingTV": NO_INTERNET,
    "streamingMovies": NO_INTERNET,
    "contract": {"Month-to-month", "One year", "Two year"},
    "paperlessBilling": YES_NO,
    "paymentMethod": {
        "Electronic check",
        "Mailed check",
        "Bank transfer (automatic)",
        "Credit card (automatic)",
    },
    "churnString": YES_NO,
}
ADDONS = [
    "onlineSecurity",
    "onlineBackup",
    "deviceProtection",
    "techSupport",
    "streamingTV",
    "streamingMovies",
]


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    return generate_customers()


@pytest.fixture(scope="module")
def drifted() -> pd.DataFrame:
    return generate_customers(drifted=True)


def test_columns_match_the_schema_in_order(customers):
    assert COLUMNS == SCHEMA_COLUMNS
    assert list(customers.columns) == SCHEMA_COLUMNS
    assert len(customers) == DEFAULT_ROWS == 7043


def test_column_types(customers):
    for column in SCHEMA_COLUMNS:
        dtype = customers[column].dtype
        if column in FLOAT_COLUMNS:
            assert dtype == np.float64, column
        else:
            assert not pd.api.types.is_numeric_dtype(dtype), column
            assert customers[column].map(type).eq(str).all(), column


def test_same_seed_gives_the_identical_frame():
    a = generate_customers(500, seed=3)
    b = generate_customers(500, seed=3)
    pd.testing.assert_frame_equal(a, b)


def test_different_seed_gives_a_different_frame():
    a = generate_customers(500, seed=3)
    b = generate_customers(500, seed=4)
    assert not a.equals(b)
    assert set(a["customerID"]) != set(b["customerID"])
    assert not np.array_equal(a["monthlyCharges"].to_numpy(), b["monthlyCharges"].to_numpy())


def test_customer_ids_are_unique_and_shaped_like_the_real_ones(customers):
    ids = customers["customerID"]
    assert ids.is_unique
    assert ids.str.fullmatch(r"\d{4}-[A-Z]{5}").all()


@pytest.mark.parametrize("column", sorted(ALLOWED))
def test_allowed_values(customers, column):
    values = set(customers[column].unique())
    assert values <= ALLOWED[column], values - ALLOWED[column]
    assert customers[column].notna().all()


def test_senior_citizen_is_zero_or_one(customers):
    assert set(customers["seniorCitizen"].unique()) == {0.0, 1.0}


def test_service_consistency(customers):
    no_phone = customers["phoneService"] == "No"
    assert (customers.loc[no_phone, "multipleLines"] == "No phone service").all()
    assert (customers.loc[~no_phone, "multipleLines"] != "No phone service").all()
    no_internet = customers["internetService"] == "No"
    for column in ADDONS:
        assert (customers.loc[no_internet, column] == "No internet service").all(), column
        assert (customers.loc[~no_internet, column] != "No internet service").all(), column


def test_tenure_range(customers):
    tenure = customers["tenure"]
    assert tenure.notna().all()
    assert tenure.between(0, 72).all()
    assert (tenure == np.floor(tenure)).all()  # whole months


def test_monthly_charges_range(customers):
    charges = customers["monthlyCharges"]
    assert charges.notna().all()
    assert charges.min() >= 18.0 and charges.max() <= 120.0


def test_total_charges_is_nan_only_where_tenure_is_zero():
    frame = generate_customers(50_000, seed=1)  # large enough to contain tenure-0 rows
    missing = frame["totalCharges"].isna()
    zero_tenure = frame["tenure"] == 0
    assert zero_tenure.any()
    assert (missing == zero_tenure).all()
    present = frame[~missing]
    assert (present["totalCharges"] >= present["monthlyCharges"]).all()


def test_churn_rate(customers):
    rate = (customers["churnString"] == "Yes").mean()
    assert 0.22 <= rate <= 0.31, rate


def test_churn_is_higher_on_month_to_month_contracts(customers):
    churn = customers["churnString"] == "Yes"
    by_contract = churn.groupby(customers["contract"]).mean()
    assert by_contract["Month-to-month"] > by_contract["One year"] > by_contract["Two year"]


def test_plain_logistic_regression_reaches_a_realistic_roc_auc(customers):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = ["seniorCitizen", "tenure", "monthlyCharges", "totalCharges"]
    categorical = [c for c in COLUMNS if c not in {*numeric, "customerID", "churnString"}]
    X = customers[categorical + numeric].copy()
    X["totalCharges"] = X["totalCharges"].fillna(0.0)
    y = (customers["churnString"] == "Yes").astype(int)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    model = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
                        ("num", StandardScaler(), numeric),
                    ]
                ),
            ),
            ("clf", LogisticRegression(max_iter=1000)),
        ]
    ).fit(X_train, y_train)
    auc = roc_auc_score(y_test, model.predict_proba(X_test)[:, 1])
    assert 0.80 <= auc <= 0.88, auc


def test_drifted_world_has_higher_charges_and_more_month_to_month(customers, drifted):
    assert list(drifted.columns) == COLUMNS
    assert len(drifted) == len(customers)
    assert drifted["monthlyCharges"].mean() - customers["monthlyCharges"].mean() > 10
    m2m = (drifted["contract"] == "Month-to-month").mean() - (
        customers["contract"] == "Month-to-month"
    ).mean()
    assert m2m > 0.1
    # Still within the contract: allowed values hold in the drifted world too.
    for column, allowed in ALLOWED.items():
        assert set(drifted[column].unique()) <= allowed, column


@pytest.mark.parametrize("rows", [0, -5])
def test_non_positive_rows_raise(rows):
    with pytest.raises(ValueError, match="rows must be at least 1"):
        generate_customers(rows)


def test_a_single_row():
    frame = generate_customers(1, seed=11)
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 1
    assert frame["customerID"].str.fullmatch(r"\d{4}-[A-Z]{5}").all()


def test_fifty_thousand_rows_quickly():
    start = time.perf_counter()
    frame = generate_customers(50_000, seed=5)
    elapsed = time.perf_counter() - start
    assert len(frame) == 50_000
    assert frame["customerID"].is_unique
    assert elapsed < 10, elapsed


def read_file(path) -> pd.DataFrame:
    # Whole-number columns are written without a decimal point ("0", "36"): read them as floats.
    return pd.read_csv(path, dtype={c: "float64" for c in FLOAT_COLUMNS})


@pytest.mark.parametrize("drifted", [False, True])
def test_the_file_holds_exactly_the_generated_rows(tmp_path, drifted):
    # 2,500 rows in chunks of 1,000: two whole chunks and a partial one.
    path = write_customers_csv(tmp_path / "c.csv", 2_500, seed=6, drifted=drifted, chunk_rows=1_000)
    expected = generate_customers(2_500, seed=6, drifted=drifted, chunk_rows=1_000)
    assert expected["totalCharges"].isna().any()  # blank fields are covered too
    pd.testing.assert_frame_equal(read_file(path), expected, check_exact=True)


def test_the_file_reads_with_the_csv_module(tmp_path):
    path = write_customers_csv(tmp_path / "c.csv", 3_000, seed=2, chunk_rows=1_000)
    with open(path, newline="") as f:
        header, *rows = list(csv.reader(f))
    assert header == COLUMNS
    assert len(rows) == 3_000
    assert all(len(row) == len(COLUMNS) for row in rows)
    expected = generate_customers(3_000, seed=2, chunk_rows=1_000)
    assert [row[0] for row in rows] == expected["customerID"].tolist()
    # Missing total charges are blank fields, not "nan".
    blank = [row[COLUMNS.index("totalCharges")] == "" for row in rows]
    assert blank == expected["totalCharges"].isna().tolist()


def test_the_same_arguments_write_a_byte_identical_file(tmp_path):
    a = write_customers_csv(tmp_path / "a.csv", 2_000, seed=4, chunk_rows=600)
    b = write_customers_csv(tmp_path / "b.csv", 2_000, seed=4, chunk_rows=600)
    c = write_customers_csv(tmp_path / "c.csv", 2_000, seed=5, chunk_rows=600)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_only_the_finished_file_is_left(tmp_path):
    path = write_customers_csv(tmp_path / "c.csv", 100, seed=1, chunk_rows=30)
    assert path == tmp_path / "c.csv"
    assert [p.name for p in tmp_path.iterdir()] == ["c.csv"]
    with pytest.raises(ValueError, match="rows must be at least 1"):
        write_customers_csv(tmp_path / "empty.csv", 0)
    assert [p.name for p in tmp_path.iterdir()] == ["c.csv"]


def test_customer_ids_are_unique_across_chunks():
    ids = generate_customers(20_000, seed=8, chunk_rows=1_500)["customerID"]
    assert ids.is_unique
    assert ids.str.fullmatch(r"\d{4}-[A-Z]{5}").all()


def test_a_rows_id_depends_only_on_the_seed_and_its_index():
    ids = generate_customers(3_000, seed=7)["customerID"]
    pd.testing.assert_series_equal(generate_customers(3_000, seed=7, chunk_rows=250)["customerID"], ids)
    pd.testing.assert_series_equal(
        generate_customers(1_000, seed=7, chunk_rows=333)["customerID"], ids[:1_000]
    )


def test_a_chunk_does_not_depend_on_the_row_count():
    whole = generate_customers(1_000, seed=9, chunk_rows=500)
    pd.testing.assert_frame_equal(generate_customers(2_300, seed=9, chunk_rows=500)[:1_000], whole)
