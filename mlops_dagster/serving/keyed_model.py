"""A registered model that answers rows carrying only their entity key, wherever MLflow serves it.

The model's pyfunc flavor (what Databricks Model Serving, ``mlflow models serve`` and Spark UDFs
load) is this module's: it loads the scikit-learn pipeline as MLflow's sklearn flavor does and,
before scoring, completes each row that lacks the model's features from the online store by its
key, as the project's gateway does. The model carries which feature tables to look up (its training
lookups) and where they are published (a Lakebase database instance); it is logged with that
instance as a Databricks resource, so Model Serving gives the endpoint credentials for it
(automatic authentication passthrough) and ``WorkspaceClient()`` finds them. Rows with every
feature are scored as they are; the sklearn flavor is untouched.

The module is copied into each such model (its ``code`` folder, imported there as ``keyed_model``),
so it imports nothing of this project: a serving container has MLflow, scikit-learn, psycopg and
databricks-sdk, not the project. The project uses its pieces too: the lookup by key (the gateway),
the key query (the SQL online stores) and the Lakebase login (the Lakebase online store).
"""

from __future__ import annotations

import math
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LOADER_MODULE = Path(__file__).stem
CONF = "online_lookups"  # the pyfunc flavor's entry: {"columns", "lookups", "store"}
# What a model looking features up in Lakebase needs besides MLflow and scikit-learn.
REQUIREMENTS = ("psycopg", "psycopg-binary", "databricks-sdk")


@dataclass(frozen=True)
class Lookup:
    table: str  # the feature table (catalog.schema.table) published online
    request_key: list[str]  # request columns holding the key, in the table's key order
    table_key: list[str]
    features: list[str]
    online_table: str = ""  # its table in the online store (what a model queries)


class LookupFailed(Exception):
    """A row cannot be completed: the message says why, ``status`` is the HTTP answer."""

    def __init__(self, message: str, status: int = 400, error_code: str = "BAD_REQUEST"):
        super().__init__(message)
        self.status, self.error_code = status, error_code

    @classmethod
    def unavailable(cls, message: str) -> LookupFailed:
        """The online store cannot answer now (a 503: try again, or publish first)."""
        return cls(message, status=503, error_code="TEMPORARILY_UNAVAILABLE")


def not_published(table: str, store: str) -> str:
    """What to say when a feature table has no table in the online store ``store``."""
    return (
        f"feature table {table} is not in the online store ({store}): "
        "materialize its online asset (<name>_features_online) first"
    )


def store_failed(store: str, exc: Exception) -> LookupFailed:
    """The online store ``store`` failed: say so, not "the model failed"."""
    return LookupFailed.unavailable(f"the online feature store ({store}) failed: {type(exc).__name__}: {exc}")


class LakebaseNotReadyError(RuntimeError):
    """The database instance is missing or not available: the message says what to do."""


def _shown(keys: list[tuple]) -> str:
    values = [k[0] if len(k) == 1 else k for k in keys]
    more = f" and {len(values) - 10} more" if len(values) > 10 else ""
    return ", ".join(map(repr, values[:10])) + more


def _check_keys(records: list[dict[str, Any]], need: list[int], lookup: Lookup) -> None:
    key_name = " + ".join(lookup.request_key)
    for i in need:
        if any(k not in records[i] for k in lookup.request_key):
            raise LookupFailed(
                f"row {i} has neither the model's features from {lookup.table} nor the "
                f"entity key {key_name} to look them up: send {key_name}, or every feature"
            )
        if any(
            not isinstance(records[i][k], (str, int)) or isinstance(records[i][k], bool)
            for k in lookup.request_key
        ):
            raise LookupFailed(
                f"row {i}: {key_name} must be a string or integer, not "
                f"{[records[i][k] for k in lookup.request_key]!r}"
            )


def fill(
    records: list[dict[str, Any]],
    lookups: list[Lookup],
    find: Callable[[Lookup, list[tuple]], dict[tuple, dict[str, Any]]],
) -> list[dict[str, Any]]:
    """Complete request rows by key: ``find(lookup, keys)`` returns the features of the keys it
    knows. Request values win over looked-up ones; an unknown key fails with 404."""
    for lookup in lookups:
        need = [i for i, r in enumerate(records) if any(f not in r for f in lookup.features)]
        if not need:
            continue
        _check_keys(records, need, lookup)
        keys = list(dict.fromkeys(tuple(records[i][k] for k in lookup.request_key) for i in need))
        found = find(lookup, keys)
        unknown = [k for k in keys if k not in found]
        if unknown:
            raise LookupFailed(
                f"unknown {' + '.join(lookup.request_key)} {_shown(unknown)}: no features for them in "
                f"{lookup.table} in the online store (publish the feature table, or send the features)",
                status=404,
                error_code="FEATURES_NOT_FOUND",
            )
        for i in need:
            records[i] = {**found[tuple(records[i][k] for k in lookup.request_key)], **records[i]}
    return records


def quote(identifier: str) -> str:
    """A SQL identifier in double quotes (the same in SQLite and PostgreSQL)."""
    return '"' + identifier.replace('"', '""') + '"'


def select_by_key(
    query: Callable[[str, list], list[tuple]],
    online_table: str,
    keys: list[str],
    values: list[tuple],
    features: list[str],
    placeholder: str,
) -> dict[tuple, dict[str, Any]]:
    """{key: {feature: value}} of the keys ``values`` found in ``online_table``, by one query."""
    if not values:
        return {}
    selected = ", ".join(quote(c) for c in [*keys, *features])
    if len(keys) == 1:
        where = f"{quote(keys[0])} IN ({', '.join([placeholder] * len(values))})"
        params = [v[0] for v in values]
    else:
        row = "(" + ", ".join([placeholder] * len(keys)) + ")"
        where = f"({', '.join(map(quote, keys))}) IN (VALUES {', '.join([row] * len(values))})"
        params = [part for v in values for part in v]
    rows = query(f"SELECT {selected} FROM {quote(online_table)} WHERE {where}", params)
    n = len(keys)
    return {tuple(r[:n]): dict(zip(features, r[n:])) for r in rows}


def lakebase_conninfo(workspace, instance: str, database: str, port: int, sslmode: str) -> str:
    """A libpq connection string to a Lakebase instance: its address from the workspace, the
    workspace identity as the login and a one-hour OAuth token the workspace generates as password."""
    from databricks.sdk.errors import NotFound
    from databricks.sdk.service.database import DatabaseInstanceState
    from psycopg.conninfo import make_conninfo

    try:
        found = workspace.database.get_database_instance(instance)
    except NotFound:
        raise LakebaseNotReadyError(
            f"the Lakebase database instance {instance} of feature_store.online_store does not "
            "exist: run `mlops bootstrap` on this target (it creates it), or name an existing one"
        ) from None
    if found.state != DatabaseInstanceState.AVAILABLE or not found.read_write_dns:
        state = found.state.value if found.state else "unknown"
        raise LakebaseNotReadyError(
            f"the Lakebase database instance {instance} is {state}, not AVAILABLE: start it "
            "in the workspace (Compute > Lakebase) or wait for it, then run again"
        )
    credential = workspace.database.generate_database_credential(
        request_id=str(uuid.uuid4()), instance_names=[instance]
    )
    return make_conninfo(
        host=found.read_write_dns,
        port=port,
        dbname=database,
        user=workspace.current_user.me().user_name,
        password=credential.token,
        sslmode=sslmode,
    )


class _LakebaseRows:
    """Features by key from the Lakebase instance of the model's online store. One connection,
    opened on first use with a credential of the serving identity, and opened again (with a new
    credential) when it breaks."""

    def __init__(self, store: dict[str, Any]):
        self.store, self._conn, self._lock = store, None, threading.Lock()

    def _query(self, sql: str, params: list) -> list[tuple]:
        import psycopg
        from databricks.sdk import WorkspaceClient

        for attempt in (1, 2):
            if self._conn is None or self._conn.closed:
                conninfo = lakebase_conninfo(WorkspaceClient(), **self.store)
                self._conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=10)
            try:
                return self._conn.execute(sql, params).fetchall()
            except psycopg.OperationalError:
                self._conn.close()
                if attempt == 2:
                    raise

    def find(self, lookup: Lookup, keys: list[tuple]) -> dict[tuple, dict[str, Any]]:
        import psycopg

        where = f"Lakebase {self.store['instance']}/{self.store['database']}"
        with self._lock:
            try:
                return select_by_key(
                    self._query, lookup.online_table, lookup.table_key, keys, lookup.features, "%s"
                )
            except psycopg.errors.UndefinedTable:
                raise LookupFailed.unavailable(not_published(lookup.table, where)) from None
            except (psycopg.Error, LakebaseNotReadyError) as exc:
                raise store_failed(where, exc) from None


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# MLflow's error codes for the HTTP answers of LookupFailed (its scoring server answers with them).
_ERROR_CODES = {404: "RESOURCE_DOES_NOT_EXIST", 503: "TEMPORARILY_UNAVAILABLE"}


class KeyedModel:
    """The scikit-learn pipeline behind MLflow's pyfunc, completing key-only rows first."""

    def __init__(self, model, columns: list[str], lookups: list[Lookup], rows: _LakebaseRows | None):
        self.model, self.columns, self.lookups, self.rows = model, columns, lookups, rows

    def _complete(self, data):
        import pandas as pd
        from mlflow.exceptions import MlflowException

        keyed = any(k in data.columns for lookup in self.lookups for k in lookup.request_key)
        if not keyed:  # rows as batch scoring sends them: every feature, a null one is a null
            missing = [c for c in self.columns if c not in data.columns]
            if missing:
                raise MlflowException.invalid_parameter_value(
                    f"rows lack the features {missing} and the entity key to look them up: send one"
                )
            # Batch scoring's frames are already the features in order: no copy of each batch.
            return data if list(data.columns) == self.columns else data[self.columns]
        # A row with its key: what it lacks (absent or null in a frame of mixed rows) is looked up.
        records = [{k: v for k, v in r.items() if not _missing(v)} for r in data.to_dict("records")]
        if self.rows is None:
            raise MlflowException.invalid_parameter_value(
                "rows lack the model's features and this model has no online store to look them up "
                "in (it looks features up by key only from a Lakebase online store): send every feature"
            )
        try:
            return pd.DataFrame.from_records(
                fill(records, self.lookups, self.rows.find), columns=self.columns
            )
        except LookupFailed as exc:
            from mlflow.protos import databricks_pb2

            code = _ERROR_CODES.get(exc.status, "INVALID_PARAMETER_VALUE")
            raise MlflowException(str(exc), error_code=getattr(databricks_pb2, code)) from None

    def predict(self, data, params=None):
        return self.model.predict(self._complete(data))

    def predict_proba(self, data):
        return self.model.predict_proba(self._complete(data))


def save_model(path, mlflow_model, online_lookups: dict[str, Any], **kwargs) -> None:
    """MLflow's flavor hook for ``Model.log(flavor=keyed_model, ...)``: the sklearn flavor saves
    the model, with this file as its code; the pyfunc flavor then loads through this module."""
    import mlflow.sklearn
    from mlflow.pyfunc import FLAVOR_NAME

    mlflow.sklearn.save_model(path=path, mlflow_model=mlflow_model, code_paths=[__file__], **kwargs)
    mlflow_model.flavors[FLAVOR_NAME].update({"loader_module": LOADER_MODULE, CONF: online_lookups})
    mlflow_model.save(os.path.join(path, "MLmodel"))


def optional_inputs(features: list, keys: dict[str, str]) -> Any:
    """The keyed model's input schema: its features (MLflow ColSpecs), then its entity keys
    ({name: type}), each optional (a request sends the key or the features), so MLflow's schema
    check lets key-only rows by."""
    from mlflow.types.schema import ColSpec, Schema

    named = {c.name for c in features}
    return Schema(
        [ColSpec(c.type, c.name, required=False) for c in features]
        + [ColSpec(t, k, required=False) for k, t in keys.items() if k not in named]
    )


def conf(columns: list[str], lookups: list[Lookup], store: dict[str, Any] | None) -> dict[str, Any]:
    """The flavor's entry: the model's feature columns, its lookups, and its Lakebase store."""
    return {"columns": columns, "lookups": [asdict(lookup) for lookup in lookups], "store": store}


def _load_pyfunc(path: str) -> KeyedModel:
    """MLflow's pyfunc loader hook."""
    import mlflow.sklearn
    from mlflow.models import Model
    from mlflow.pyfunc import FLAVOR_NAME

    model_dir = os.path.dirname(path) if os.path.isfile(path) else path
    entry = Model.load(model_dir).flavors[FLAVOR_NAME][CONF]
    store = entry.get("store")
    return KeyedModel(
        mlflow.sklearn._load_pyfunc(path).sklearn_model,
        entry["columns"],
        [Lookup(**lookup) for lookup in entry["lookups"]],
        _LakebaseRows(store) if store else None,
    )
