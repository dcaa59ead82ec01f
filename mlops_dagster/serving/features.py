"""Feature serving: a request may send just the entity key; the gateway looks the model's features
up in the online store before scoring (Databricks' "serve features and model" pattern). The lookup
itself is the registered model's (``keyed_model.fill``), so a key-only request gets the same answer
from the gateway and from a Databricks serving endpoint."""

from __future__ import annotations

from typing import Any

from .keyed_model import Lookup, LookupFailed, fill, store_failed
from .payload import BadRequest


class OnlineFeatures:
    """Completes request rows from the online store; request values win over looked-up ones."""

    def __init__(self, store, lookups: list[Lookup]):
        self.store, self.lookups = store, lookups

    def _find(self, lookup: Lookup, keys: list[tuple]) -> dict[tuple, dict[str, Any]]:
        from ..resources.online_store import OnlineTableNotFoundError

        try:
            return self.store.lookup(lookup.table, lookup.table_key, keys, lookup.features)
        except OnlineTableNotFoundError as exc:
            raise LookupFailed.unavailable(str(exc)) from None
        except Exception as exc:  # the store is down
            raise store_failed(self.store.describe(), exc) from None

    def fill(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        try:
            return fill(records, self.lookups, self._find)
        except LookupFailed as exc:
            raise BadRequest(str(exc), status=exc.status, error_code=exc.error_code) from None


def online_lookups(settings) -> list[Lookup]:
    """The use case's training lookups whose feature tables are published online."""
    from ..resources.online_store import online_table_name

    return [
        Lookup(
            settings.feature_table(spec.table),
            spec.lookup_key,
            settings.feature_store.tables[spec.table].keys,
            spec.feature_names or settings.feature_names(spec.table),
            online_table_name(settings.feature_table(spec.table)),
        )
        for spec in settings.feature_store.training_lookups
        if settings.feature_store.tables[spec.table].online
    ]


def online_features(settings, store) -> OnlineFeatures | None:
    """What the gateway looks up: the training lookups whose tables are published online."""
    lookups = online_lookups(settings)
    return OnlineFeatures(store, lookups) if lookups else None
