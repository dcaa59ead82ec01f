"""A deterministic generator for the second demo: house sale prices (a regression).

Each house has a neighborhood, a type, a floor area, rooms, a construction year, a distance to
the center and a garden; its ``price`` (thousands) grows with the area and the neighborhood's
premium, falls with distance and age, and carries noise, so a gradient-boosted regressor reaches
R² ~0.9 and a linear one less.

``drifted=True`` produces the market a year later: more large detached houses far out (the
feature distributions shift) and prices up 12% for the same house (the relationship shifts too).

Rows are made in chunks of ``CHUNK_ROWS``, each from its own random stream seeded by (seed,
chunk index), so ``write_houses_csv`` writes any number of rows in the memory of one chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from .csv_files import write_csv

COLUMNS = [
    "houseID",
    "neighborhood",
    "houseType",
    "area",
    "rooms",
    "yearBuilt",
    "distanceToCenter",
    "hasGarden",
    "price",
]
DEFAULT_ROWS = 5000
CHUNK_ROWS = 250_000

_STRINGS = {"houseID", "neighborhood", "houseType", "hasGarden"}
_SCHEMA = pa.schema([(c, pa.string() if c in _STRINGS else pa.float64()) for c in COLUMNS])
# Neighborhood -> (share of houses, drifted share, price premium, distance range in km).
_NEIGHBORHOODS = {
    "Center": (0.15, 0.10, 1.50, (0.0, 3.0)),
    "Riverside": (0.20, 0.15, 1.25, (2.0, 8.0)),
    "Hillside": (0.20, 0.15, 1.15, (4.0, 12.0)),
    "Suburbs": (0.30, 0.30, 1.00, (8.0, 20.0)),
    "Outskirts": (0.15, 0.30, 0.80, (15.0, 45.0)),
}
# House type -> (share, drifted share, median area in m², share with a garden).
_TYPES = {
    "Apartment": (0.45, 0.30, 70.0, 0.10),
    "Terraced": (0.30, 0.30, 110.0, 0.70),
    "Detached": (0.25, 0.40, 160.0, 0.95),
}
_YES_NO = ["No", "Yes"]
_ID_SPACE = 10**8


def _chunk(seed: int, drifted: bool, index: int, start: int, n: int) -> pa.Table:
    rng = np.random.default_rng([seed, index])
    hoods, types = list(_NEIGHBORHOODS), list(_TYPES)
    hood = rng.choice(len(hoods), n, p=[v[1 if drifted else 0] for v in _NEIGHBORHOODS.values()])
    kind = rng.choice(len(types), n, p=[v[1 if drifted else 0] for v in _TYPES.values()])
    median_area = np.array([v[2] for v in _TYPES.values()])[kind] * (1.1 if drifted else 1.0)
    area = np.clip(np.round(median_area * rng.lognormal(0.0, 0.3, n), 1), 20.0, 600.0)
    rooms = np.clip(np.round(area / 28 + rng.normal(0, 0.7, n)), 1, 15)
    year = rng.integers(1900, 2025, n).astype(float)
    low, high = (np.array([v[3][i] for v in _NEIGHBORHOODS.values()])[hood] for i in (0, 1))
    distance = np.round(low + (high - low) * rng.random(n), 2)
    garden = (rng.random(n) < np.array([v[3] for v in _TYPES.values()])[kind]).astype(np.int8)
    premium = np.array([v[2] for v in _NEIGHBORHOODS.values()])[hood]
    price = (
        3.2 * area * premium * np.exp(-0.012 * distance) * (1 + 0.08 * garden) * (1 - 0.0012 * (2025 - year))
        + 4.0 * rooms
    ) * (1.12 if drifted else 1.0)
    price = np.round(np.maximum(price + rng.normal(0, 0.08 * price.mean(), n), 10.0), 1)
    ids = [f"H{seed % 1000:03d}-{i:08d}" for i in range(start, start + n)]
    return pa.table(
        {
            "houseID": pa.array(ids),
            "neighborhood": pa.array(hoods).take(hood),
            "houseType": pa.array(types).take(kind),
            "area": area,
            "rooms": rooms,
            "yearBuilt": year,
            "distanceToCenter": distance,
            "hasGarden": pa.array(_YES_NO).take(garden),
            "price": price,
        },
        schema=_SCHEMA,
    )


def _chunks(rows: int, seed: int, drifted: bool, chunk_rows: int) -> Iterator[pa.Table]:
    if not 1 <= rows <= _ID_SPACE:
        raise ValueError(f"rows must be at least 1 and at most {_ID_SPACE} (one id each), got {rows}")
    return (
        _chunk(seed, drifted, index, start, min(chunk_rows, rows - start))
        for index, start in enumerate(range(0, rows, chunk_rows))
    )


def generate_houses(
    rows: int = DEFAULT_ROWS, seed: int = 42, drifted: bool = False, *, chunk_rows: int = CHUNK_ROWS
) -> pd.DataFrame:
    """Return ``rows`` synthetic house sales: the rows ``write_houses_csv`` writes for them."""
    return pa.concat_tables(list(_chunks(rows, seed, drifted, chunk_rows))).to_pandas()


def write_houses_csv(
    path: str | Path,
    rows: int = DEFAULT_ROWS,
    seed: int = 42,
    drifted: bool = False,
    *,
    chunk_rows: int = CHUNK_ROWS,
) -> Path:
    """Write ``rows`` synthetic house sales to the CSV file ``path`` (see ``write_csv``)."""
    return write_csv(path, _SCHEMA, _chunks(rows, seed, drifted, chunk_rows))
