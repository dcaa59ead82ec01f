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
"""

from __future__ import annotations

import string

import numpy as np
import pandas as pd

COLUMNS = [
    "customerID", "gender", "seniorCitizen", "partner", "dependents", "tenure",
    "phoneService", "multipleLines", "internetService", "onlineSecurity", "onlineBackup",
    "deviceProtection", "techSupport", "streamingTV", "streamingMovies", "contract",
    "paperlessBilling", "paymentMethod", "monthlyCharges", "totalCharges", "churnString",
]
DEFAULT_ROWS = 7043

_CONTRACTS = ["Month-to-month", "One year", "Two year"]
_INTERNET = ["DSL", "Fiber optic", "No"]
_PAYMENTS = [
    "Electronic check", "Mailed check", "Bank transfer (automatic)", "Credit card (automatic)",
]
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


def _customer_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unique ids shaped like the real ones (``7590-VHVEG``)."""
    letters = np.array(list(string.ascii_uppercase))
    ids: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        k = n - len(out)
        digits = rng.integers(0, 10_000, size=k)
        tails = rng.choice(letters, size=(k, 5))
        for d, t in zip(digits, tails):
            cid = f"{d:04d}-{''.join(t)}"
            if cid not in ids:
                ids.add(cid)
                out.append(cid)
    return np.array(out)


def _yes_no(mask: np.ndarray) -> np.ndarray:
    return np.where(mask, "Yes", "No")


def generate_customers(rows: int = DEFAULT_ROWS, seed: int = 42, drifted: bool = False) -> pd.DataFrame:
    """Return ``rows`` synthetic telco customers; the same ``seed`` gives the same frame."""
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    rng = np.random.default_rng(seed)
    n = rows

    contract_p = [0.75, 0.15, 0.10] if drifted else [0.55, 0.21, 0.24]
    internet_p = [0.25, 0.62, 0.13] if drifted else [0.34, 0.44, 0.22]
    payment_p = [0.52, 0.18, 0.15, 0.15] if drifted else [0.34, 0.23, 0.22, 0.21]

    senior = rng.random(n) < (0.30 if drifted else 0.16)
    partner = rng.random(n) < 0.48
    dependents = rng.random(n) < np.where(partner, 0.52, 0.10)
    contract = rng.choice(_CONTRACTS, size=n, p=contract_p)
    # Tenure follows the contract: long contracts are held by long-standing customers.
    a = np.select([contract == _CONTRACTS[0], contract == _CONTRACTS[1]], [0.8, 2.0], 3.0)
    b = np.select([contract == _CONTRACTS[0], contract == _CONTRACTS[1]], [2.2, 1.4], 0.8)
    tenure = (1 + np.floor(rng.beta(a, b) * 72)).clip(1, 72)
    # A handful of brand-new customers (tenure 0) have no total charges yet, as in the real file.
    tenure = np.where(rng.random(n) < 0.0016, 0.0, tenure)

    phone = rng.random(n) < 0.90
    multiple = np.where(phone, _yes_no(rng.random(n) < 0.47), "No phone service")
    internet = rng.choice(_INTERNET, size=n, p=internet_p)
    has_internet = internet != "No"

    frame: dict[str, np.ndarray] = {}
    charges = 20.0 + np.where(multiple == "Yes", 5.0, 0.0) - np.where(phone, 0.0, 15.0)
    charges = charges + np.select([internet == "DSL", internet == "Fiber optic"], [25.0, 50.0], 0.0)
    loyalty = tenure / 72.0
    for column, (share, price) in _ADDONS.items():
        takes = has_internet & (rng.random(n) < share * (0.7 + 0.6 * loyalty) * (0.55 if drifted else 1.0))
        frame[column] = np.where(has_internet, _yes_no(takes), "No internet service")
        charges = charges + np.where(takes, price, 0.0)
    if drifted:
        charges = charges * 1.15 + 5.0
    charges = (charges + rng.normal(0, 2.0, n)).clip(18.25, 118.75 * (1.25 if drifted else 1.0))
    charges = np.round(charges, 2)

    paperless = rng.random(n) < np.where(contract == _CONTRACTS[0], 0.67, 0.49) + (0.25 if drifted else 0.0)
    payment = rng.choice(_PAYMENTS, size=n, p=payment_p)
    total = np.round(tenure * charges * rng.normal(1.0, 0.04, n).clip(0.85, 1.15), 2)
    total = np.where(tenure == 0, np.nan, np.maximum(total, charges))

    logit = (
        _CHURN_INTERCEPT
        + np.select([contract == _CONTRACTS[0], contract == _CONTRACTS[1]], [1.0, -0.4], -1.3)
        - 1.9 * loyalty
        + np.where(internet == "Fiber optic", 0.7, 0.0)
        - np.where(internet == "No", 0.8, 0.0)
        + np.where(payment == "Electronic check", 0.55, 0.0)
        + np.where(frame["techSupport"] == "No", 0.35, 0.0)
        + np.where(frame["onlineSecurity"] == "No", 0.35, 0.0)
        + np.where(senior, 0.3, 0.0)
        + np.where(paperless, 0.3, 0.0)
        - np.where(dependents, 0.2, 0.0)
        + 0.008 * (charges - 65.0)
        # What the data does not show (service outages, competitor offers, life events).
        + rng.normal(0.0, 0.6, n)
    )
    churn = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))

    data = {
        "customerID": _customer_ids(rng, n),
        "gender": rng.choice(["Male", "Female"], size=n),
        "seniorCitizen": senior.astype(float),
        "partner": _yes_no(partner),
        "dependents": _yes_no(dependents),
        "tenure": tenure,
        "phoneService": _yes_no(phone),
        "multipleLines": multiple,
        "internetService": internet,
        **frame,
        "contract": contract,
        "paperlessBilling": _yes_no(paperless),
        "paymentMethod": payment,
        "monthlyCharges": charges,
        "totalCharges": total,
        "churnString": _yes_no(churn),
    }
    return pd.DataFrame(data, columns=COLUMNS)
