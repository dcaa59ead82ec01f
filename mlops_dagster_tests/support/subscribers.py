"""A second classification dataset (subscribers who cancel), generated: its use case's config and rows."""

from __future__ import annotations

import numpy as np
import pandas as pd

SUBSCRIBERS = {
    "dataset": {
        "name": "subscribers",
        "file_pattern": "subs_*.csv",
        "key": "subscriber_id",
        "label": "cancelled",
        "positive_label": "true",
        "columns": {
            "subscriber_id": {"type": "string"},
            "plan": {"type": "string", "allowed": ["basic", "plus", "pro"]},
            "months": {"type": "double", "min": 0},
            "spend": {"type": "double", "nullable": True, "min": 0},
            "cancelled": {"type": "string", "allowed": ["true", "false"]},
        },
    },
    "features": {
        "categorical": ["plan"],
        "numerical": ["months", "spend"],
        "derived": {
            "spend": "coalesce(spend, 0.0)",
            "spend_per_month": "coalesce(spend, 0.0) / greatest(months, 1.0)",
        },
    },
    "training": {
        "model": {
            "class": "sklearn.ensemble.HistGradientBoostingClassifier",
            "params": {"max_iter": 60, "learning_rate": 0.1},
        }
    },
    "validation": {"thresholds": {"roc_auc": {"min": 0.65}}},
}


def subscribers(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "plus", "pro"], rows, p=[0.5, 0.3, 0.2])
    months = rng.integers(0, 48, rows).astype(float)
    spend = np.round(months * np.select([plan == "basic", plan == "plus"], [10.0, 20.0], 35.0), 2)
    logit = 1.0 - 0.08 * months + np.where(plan == "basic", 0.8, 0.0) + rng.normal(0, 0.5, rows)
    cancelled = rng.random(rows) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(
        {
            "subscriber_id": [f"S{seed}-{i:05d}" for i in range(rows)],
            "plan": plan,
            "months": months,
            "spend": np.where(rng.random(rows) < 0.05, np.nan, spend),
            "cancelled": np.where(cancelled, "true", "false"),
        }
    )
