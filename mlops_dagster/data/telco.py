"""A deterministic generator for the IBM Telco customer churn dataset.

The real file cannot be downloaded here, so we generate data with its exact schema
(``shared/data/telco_schema.md``) and the relationships that make it a useful benchmark:
churn is higher on month-to-month contracts, short tenure, fiber optic, electronic checks,
no tech support / online security and higher charges. A plain model reaches ROC AUC ~0.84
and about 26.5% of customers churn.

``drifted=True`` produces the world after a price rise and a shift of the contract mix towards
month-to-month: more fiber and electronic checks, fewer paid add-ons, more paperless billing and
more seniors. The relationship between features and churn is unchanged; the feature
distributions are not.

Rows are made in chunks of ``CHUNK_ROWS``, each from its own random stream seeded by
(seed, chunk index), so ``write_customers_csv`` writes any number of rows in the memory of one
chunk, and ``generate_customers`` returns exactly the rows that file holds.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from .csv_files import write_csv

COLUMNS = [
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
DEFAULT_ROWS = 7043
# Rows made and written at a time: peak memory is that of one chunk, whatever the row count.
CHUNK_ROWS = 250_000

_NUMBERS = {"seniorCitizen", "tenure", "monthlyCharges", "totalCharges"}
_SCHEMA = pa.schema([(c, pa.float64() if c in _NUMBERS else pa.string()) for c in COLUMNS])
# Categorical columns are drawn as codes into these label lists.
_YES_NO = ["No", "Yes"]
_CONTRACTS = ["Month-to-month", "One year", "Two year"]
_INTERNET = ["DSL", "Fiber optic", "No"]
_PAYMENTS = [
    "Electronic check",
    "Mailed check",
    "Bank transfer (automatic)",
    "Credit card (automatic)",
]
_ADDON_LABELS = [*_YES_NO, "No internet service"]
# Share of internet customers who take each add-on, and its monthly price.
_ADDONS = {
    "onlineSecurity": (0.37, 5.0),
    "onlineBackup": (0.44, 5.0),
    "deviceProtection": (0.44, 5.0),
    "techSupport": (0.37, 5.0),
    "streamingTV": (0.49, 10.0),
    "streamingMovies": (0.50, 10.0),
}
# Intercept chosen so that ~26.5% of the baseline population churns.
_CHURN_INTERCEPT = -1.8
# Ids look like the real ones (``7590-VHVEG``): 10^4 * 26^5 = 2^9 * 5^4 * 13^5 of them.
_ID_SPACE = 10**4 * 26**5


def _id_map(seed: int) -> tuple[int, int]:
    """``a, b`` of the seed's one-to-one map ``row -> (a * row + b) mod _ID_SPACE``."""
    rng = np.random.default_rng(np.random.SeedSequence(seed))  # chunks' streams have a spawn key
    a = int(rng.integers(1, _ID_SPACE))
    while math.gcd(a, _ID_SPACE) != 1:  # a coprime to the space makes the map a bijection
        a = int(rng.integers(1, _ID_SPACE))
    return a, int(rng.integers(0, _ID_SPACE))


def _customer_ids(seed: int, start: int, n: int) -> pa.Array:
    """Ids of rows ``start`` to ``start + n - 1``: unique in the file without remembering any."""
    a, b = _id_map(seed)
    row = np.arange(start, start + n, dtype=np.int64)
    # a * row reaches 2^74 and would overflow int64: multiply by row's high and low 20 bits apart.
    x = ((a * (row >> 20) % _ID_SPACE) * 2**20 + a * (row & (2**20 - 1)) + b) % _ID_SPACE
    digits, letters = np.divmod(x, 26**5)
    chars = np.empty((n, 10), dtype=np.uint8)
    chars[:, :4] = ord("0") + digits[:, None] // 10 ** np.arange(3, -1, -1) % 10
    chars[:, 4] = ord("-")
    chars[:, 5:] = ord("A") + letters[:, None] // 26 ** np.arange(4, -1, -1) % 26
    return pa.array(chars.view("S10")[:, 0]).cast(pa.string())


def _labels(codes: np.ndarray, labels: list[str]) -> pa.Array:
    return pa.array(labels).take(codes.astype(np.int8))


def _chunk(seed: int, drifted: bool, index: int, start: int, n: int) -> pa.Table:
    """Rows ``start`` to ``start + n - 1``, drawn from chunk ``index``'s own random stream."""
    return _draw(seed, drifted, index, start, n)[0]


def _draw(seed: int, drifted: bool, index: int, start: int, n: int) -> tuple[pa.Table, dict]:
    """The chunk's rows, and what drives each customer's churn (for outcomes drawn later)."""
    # A spawn key, not entropy [seed, index]: SeedSequence([seed, 0]) is SeedSequence(seed), the id map's.
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))

    contract_p = [0.75, 0.15, 0.10] if drifted else [0.55, 0.21, 0.24]
    internet_p = [0.25, 0.62, 0.13] if drifted else [0.34, 0.44, 0.22]
    payment_p = [0.52, 0.18, 0.15, 0.15] if drifted else [0.34, 0.23, 0.22, 0.21]

    senior = rng.random(n) < (0.30 if drifted else 0.16)
    partner = rng.random(n) < 0.48
    dependents = rng.random(n) < np.where(partner, 0.52, 0.10)
    contract = rng.choice(len(_CONTRACTS), size=n, p=contract_p)
    month_to_month = contract == 0
    # Tenure follows the contract: long contracts are held by long-standing customers.
    a = np.array([0.8, 2.0, 3.0])[contract]
    b = np.array([2.2, 1.4, 0.8])[contract]
    tenure = (1 + np.floor(rng.beta(a, b) * 72)).clip(1, 72)
    # A handful of brand-new customers (tenure 0) have no total charges yet, as in the real file.
    tenure = np.where(rng.random(n) < 0.0016, 0.0, tenure)

    phone = rng.random(n) < 0.90
    multiple = phone & (rng.random(n) < 0.47)
    internet = rng.choice(len(_INTERNET), size=n, p=internet_p)
    has_internet = internet != 2

    takes: dict[str, np.ndarray] = {}
    charges = 20.0 + np.where(multiple, 5.0, 0.0) - np.where(phone, 0.0, 15.0)
    charges = charges + np.array([25.0, 50.0, 0.0])[internet]
    loyalty = tenure / 72.0
    for column, (share, price) in _ADDONS.items():
        takes[column] = has_internet & (
            rng.random(n) < share * (0.7 + 0.6 * loyalty) * (0.55 if drifted else 1.0)
        )
        charges = charges + np.where(takes[column], price, 0.0)
    if drifted:
        charges = charges * 1.15 + 5.0
    charges = (charges + rng.normal(0, 2.0, n)).clip(18.25, 118.75 * (1.25 if drifted else 1.0))
    charges = np.round(charges, 2)

    paperless = rng.random(n) < np.where(month_to_month, 0.67, 0.49) + (0.25 if drifted else 0.0)
    payment = rng.choice(len(_PAYMENTS), size=n, p=payment_p)
    total = np.round(tenure * charges * rng.normal(1.0, 0.04, n).clip(0.85, 1.15), 2)
    total = np.maximum(total, charges)

    drivers = dict(
        contract=contract,
        loyalty=loyalty,
        internet=internet,
        payment=payment,
        has_internet=has_internet,
        takes=takes,
        senior=senior,
        paperless=paperless,
        dependents=dependents,
        charges=charges,
    )
    churn = _churns(rng, drivers, changed=False)

    data = {
        "customerID": _customer_ids(seed, start, n),
        "gender": _labels(rng.random(n) < 0.5, ["Male", "Female"]),
        "seniorCitizen": senior.astype(float),
        "partner": _labels(partner, _YES_NO),
        "dependents": _labels(dependents, _YES_NO),
        "tenure": tenure,
        "phoneService": _labels(phone, _YES_NO),
        "multipleLines": _labels(np.where(phone, multiple, 2), [*_YES_NO, "No phone service"]),
        "internetService": _labels(internet, _INTERNET),
        **{c: _labels(np.where(has_internet, t, 2), _ADDON_LABELS) for c, t in takes.items()},
        "contract": _labels(contract, _CONTRACTS),
        "paperlessBilling": _labels(paperless, _YES_NO),
        "paymentMethod": _labels(payment, _PAYMENTS),
        "monthlyCharges": charges,
        "totalCharges": pa.array(total, mask=tenure == 0),
        "churnString": _labels(churn, _YES_NO),
    }
    return pa.table(data, schema=_SCHEMA), drivers


def _churns(rng: np.random.Generator, d: dict, changed: bool) -> np.ndarray:
    """Who churns. ``changed``: a world whose reasons changed (a competitor undercuts prices: long
    contracts and loyalty no longer keep customers, price does), so a model of the old world decays."""
    if changed:
        habits = np.array([0.6, 0.5, 0.4])[d["contract"]] + 0.8 * d["loyalty"] + 0.045 * (d["charges"] - 65.0)
    else:
        habits = (
            np.array([1.0, -0.4, -1.3])[d["contract"]] - 1.9 * d["loyalty"] + 0.008 * (d["charges"] - 65.0)
        )
    internet, takes, has_internet, n = d["internet"], d["takes"], d["has_internet"], len(d["contract"])
    logit = (
        _CHURN_INTERCEPT
        + habits
        + np.where(internet == 1, 0.7, 0.0)  # fiber optic
        - np.where(internet == 2, 0.8, 0.0)  # no internet
        + np.where(d["payment"] == 0, 0.55, 0.0)  # electronic check
        + np.where(has_internet & ~takes["techSupport"], 0.35, 0.0)
        + np.where(has_internet & ~takes["onlineSecurity"], 0.35, 0.0)
        + np.where(d["senior"], 0.3, 0.0)
        + np.where(d["paperless"], 0.3, 0.0)
        - np.where(d["dependents"], 0.2, 0.0)
        # What the data does not show (service outages, competitor offers, life events).
        + rng.normal(0.0, 0.6, n)
    )
    return rng.random(n) < 1.0 / (1.0 + np.exp(-logit))


def _chunks(rows: int, seed: int, drifted: bool, chunk_rows: int) -> Iterator[pa.Table]:
    # Checked here, not lazily in a generator: a bad count fails before any file is opened.
    if not 1 <= rows <= _ID_SPACE:
        raise ValueError(f"rows must be at least 1 and at most {_ID_SPACE} (one id each), got {rows}")
    return (
        _chunk(seed, drifted, index, start, min(chunk_rows, rows - start))
        for index, start in enumerate(range(0, rows, chunk_rows))
    )


def generate_customers(
    rows: int = DEFAULT_ROWS, seed: int = 42, drifted: bool = False, *, chunk_rows: int = CHUNK_ROWS
) -> pd.DataFrame:
    """Return ``rows`` synthetic telco customers: the rows ``write_customers_csv`` writes for them."""
    return pa.concat_tables(list(_chunks(rows, seed, drifted, chunk_rows))).to_pandas()


OUTCOME_COLUMNS = ["customerID", "churnString", "label_time"]
_OUTCOME_SCHEMA = pa.schema([(c, pa.string()) for c in OUTCOME_COLUMNS])


def write_outcomes_csv(
    path: str | Path,
    rows: int = DEFAULT_ROWS,
    seed: int = 42,
    drifted: bool = False,
    changed: bool = False,
    observed_at: str = "",
    *,
    chunk_rows: int = CHUNK_ROWS,
) -> Path:
    """Outcomes observed at ``observed_at`` (ISO 8601) for the ``rows`` customers that
    ``write_customers_csv(rows, seed, drifted)`` wrote: whether each churned since, drawn again
    (seed + 1) in the same world or, ``changed``, in a world whose reasons to churn changed."""

    def chunks():
        for index, start in enumerate(range(0, rows, chunk_rows)):
            table, drivers = _draw(seed, drifted, index, start, min(chunk_rows, rows - start))
            rng = np.random.default_rng(np.random.SeedSequence(seed + 1, spawn_key=(index,)))
            churn = _churns(rng, drivers, changed)
            yield pa.table(
                {
                    "customerID": table["customerID"],
                    "churnString": _labels(churn, _YES_NO),
                    "label_time": pa.array([observed_at] * len(churn), pa.string()),
                },
                schema=_OUTCOME_SCHEMA,
            )

    _chunks(rows, seed, drifted, chunk_rows)  # the same checks of the row count
    return write_csv(path, _OUTCOME_SCHEMA, chunks())


def write_customers_csv(
    path: str | Path,
    rows: int = DEFAULT_ROWS,
    seed: int = 42,
    drifted: bool = False,
    *,
    chunk_rows: int = CHUNK_ROWS,
) -> Path:
    """Write ``rows`` synthetic telco customers to the CSV file ``path``, one chunk at a time: the
    same arguments give a byte-identical file (see ``write_csv``)."""
    return write_csv(path, _SCHEMA, _chunks(rows, seed, drifted, chunk_rows))
