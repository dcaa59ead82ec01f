"""Feature serving: a request may send just the entity key; the gateway looks the model's features
up in the online store before scoring (Databricks' "serve features and model" pattern)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .payload import BadRequest


@dataclass(frozen=True)
class OnlineLookup:
    table: str  # the feature table (catalog.schema.table) published online
    request_key: list[str]  # request columns holding the key, in the table's key order
    table_key: list[str]
    features: list[str]


def _shown(keys: list[tuple]) -> str:
    values = [k[0] if len(k) == 1 else k for k in keys]
    more = f" and {len(values) - 10} more" if len(values) > 10 else ""
    return ", ".join(map(repr, values[:10])) + more


class OnlineFeatures:
    """Completes request rows from the online store; request values win over looked-up ones."""

    def __init__(self, store, lookups: list[OnlineLookup]):
        self.store, self.lookups = store, lookups

    def fill(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from ..resources.online_store import OnlineTableNotFoundError

        for lookup in self.lookups:
            need = [i for i, r in enumerate(records) if any(f not in r for f in lookup.features)]
            if not need:
                continue
            key_name = " + ".join(lookup.request_key)
            for i in need:
                if any(k not in records[i] for k in lookup.request_key):
                    raise BadRequest(
                        f"row {i} has neither the model's features from {lookup.table} nor the "
                        f"entity key {key_name} to look them up: send {key_name}, or every feature"
                    )
                if any(
                    not isinstance(records[i][k], (str, int)) or isinstance(records[i][k], bool)
                    for k in lookup.request_key
                ):
                    raise BadRequest(
                        f"row {i}: {key_name} must be a string or integer, not "
                        f"{[records[i][k] for k in lookup.request_key]!r}"
                    )
            keys = list(dict.fromkeys(tuple(records[i][k] for k in lookup.request_key) for i in need))
            try:
                found = self.store.lookup(lookup.table, lookup.table_key, keys, lookup.features)
            except OnlineTableNotFoundError as exc:
                raise BadRequest(str(exc), status=503, error_code="TEMPORARILY_UNAVAILABLE") from None
            except Exception as exc:  # the store is down: say so, not "the model failed"
                raise BadRequest(
                    f"the online feature store ({self.store.describe()}) failed: {type(exc).__name__}: {exc}",
                    status=503,
                    error_code="TEMPORARILY_UNAVAILABLE",
                ) from None
            unknown = [k for k in keys if k not in found]
            if unknown:
                raise BadRequest(
                    f"unknown {key_name} {_shown(unknown)}: no features for them in {lookup.table} "
                    "in the online store (publish the feature table, or send the features)",
                    status=404,
                    error_code="FEATURES_NOT_FOUND",
                )
            for i in need:
                records[i] = {**found[tuple(records[i][k] for k in lookup.request_key)], **records[i]}
        return records


def online_features(settings, store) -> OnlineFeatures | None:
    """What the gateway looks up: the training lookups whose tables are published online."""
    lookups = [
        OnlineLookup(
            settings.feature_table(spec.table),
            spec.lookup_key,
            settings.feature_store.tables[spec.table].keys,
            spec.feature_names or settings.feature_names(spec.table),
        )
        for spec in settings.feature_store.training_lookups
        if settings.feature_store.tables[spec.table].online
    ]
    return OnlineFeatures(store, lookups) if lookups else None
