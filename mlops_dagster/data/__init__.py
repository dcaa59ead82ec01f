"""Synthetic datasets behind the shipped demos: each use case's `demo:` names its generator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple


class Demo(NamedTuple):
    columns: list[str]  # the file contract it writes
    write: Callable[[Path, int, int, bool], Path]  # (path, rows, seed, drifted) -> path
    rows: int  # rows `make run` generates
    # (path, rows, seed, drifted, changed, observed_at) -> path: outcomes for the customers written
    # earlier, observed later (None: the demo has no outcome generator)
    outcomes: Callable[..., Path] | None = None


def demo(name: str) -> Demo:
    if name == "telco":
        from .telco import COLUMNS, DEFAULT_ROWS, write_customers_csv, write_outcomes_csv

        return Demo(COLUMNS, write_customers_csv, DEFAULT_ROWS, write_outcomes_csv)
    from .houses import COLUMNS, DEFAULT_ROWS, write_houses_csv

    return Demo(COLUMNS, write_houses_csv, DEFAULT_ROWS)
