"""Online features on a Databricks target: the Lakebase database instance `mlops bootstrap` makes,
published to from a cluster with credentials the workspace generates, then looked up by key.

The workspace emulator answers the database-instance and credential calls; a real PostgreSQL server
holds the instance's data, and each credential the emulator hands out is that server's password for
the workspace identity's role, so a publish logs in only with what the workspace gave it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import psycopg
import pytest
from dagster import AssetKey
from databricks.sdk import WorkspaceClient
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from mlops_dagster.governance.bootstrap import bootstrap
from mlops_dagster.resources.online_store import build_online_store, online_table_name

from .support.databricks_emulator import USER_NAME
from .test_databricks_target import (  # noqa: F401 - `seeded` is a fixture
    TOKEN,
    Workspace,
    assert_no_token_anywhere,
    run_text,
    seeded,
)

pytestmark = pytest.mark.integration

INSTANCE = "mlops-dev-features"


@pytest.fixture
def lakebase(seeded, tmp_path, postgres_dsn):
    """`dev` with its online store on the Lakebase instance INSTANCE, the emulator's instances on the
    session's PostgreSQL server (no TLS there, hence sslmode prefer; Lakebase itself requires it)."""
    root, _ = seeded
    store = {
        "kind": "lakebase",
        "instance": INSTANCE,
        "port": urlsplit(postgres_dsn).port,
        "sslmode": "prefer",
    }
    ws = Workspace(root, tmp_path, {"feature_store": {"online_store": store}})
    ws.emulator.add_postgres(postgres_dsn)
    ws.emulator.add_catalog(ws.settings.catalog)
    with ws.emulator:
        yield ws
    assert_no_token_anywhere(ws)  # neither the workspace token nor any database credential


def _published(ws: Workspace) -> dict:
    """The metadata of the newest online publish."""
    with ws.instance() as instance:
        [record] = instance.fetch_materializations(
            AssetKey(["churn", "churn_features_online"]), limit=1
        ).records
        return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def _admin_query(postgres_dsn: str, sql: str) -> list[tuple]:
    dsn = make_conninfo(**{**conninfo_to_dict(postgres_dsn), "dbname": "databricks_postgres"})
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


def test_lakebase_online_features_are_published_from_a_cluster_and_looked_up_by_key(
    lakebase, postgres_dsn, monkeypatch
):
    ws = lakebase
    workspace = WorkspaceClient(host=ws.emulator.url, token=TOKEN, auth_type="pat")
    outcomes = bootstrap(ws.project, workspace, lambda settings: True)
    [instance] = [o for o in outcomes if o.kind == "database instance"]
    assert (instance.name, instance.result) == (INSTANCE, "created")

    out = ws.materialize("churn_features_online")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    features = ws.lakehouse.read_arrow(ws.table("churn_features")).to_pandas()
    keys = features["customerID"].nunique()
    metadata = _published(ws)
    assert (
        metadata["online_store"]
        == f"Lakebase {INSTANCE}/databricks_postgres (credentials from the workspace)"
    )
    assert (metadata["mode"], metadata["rows_published"]) == ("full", keys)

    # The rows are in the instance's database, in a table the workspace identity's role made.
    online = online_table_name(ws.table("churn_features"))
    [(count, owner)] = _admin_query(
        postgres_dsn,
        f"SELECT (SELECT count(*) FROM {online}), tableowner FROM pg_tables WHERE tablename = '{online}'",
    )
    assert (count, owner) == (keys, USER_NAME)
    assert len(ws.emulator.database_tokens) >= 1  # the cluster asked the workspace for a credential

    # A key alone finds the newest features, through a store that gets its own credential.
    monkeypatch.setenv("DATABRICKS_HOST", ws.emulator.url)
    monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)
    store = build_online_store(ws.settings)
    newest = features.sort_values("_ingested_at").groupby("customerID").tail(1).set_index("customerID")
    key = newest.index[0]
    found = store.lookup(ws.table("churn_features"), ["customerID"], [(key,), ("no-such-key",)], ["tenure"])
    store.close()
    assert found == {(key,): {"tenure": newest.loc[key, "tenure"]}}
    # Each credential replaces the last: the cluster's token no longer logs in.
    first = make_conninfo(
        **{
            **conninfo_to_dict(postgres_dsn),
            "dbname": "databricks_postgres",
            "user": USER_NAME,
            "password": ws.emulator.database_tokens[0],
        }
    )
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(first).close()

    # Nothing new: the next publish says so and leaves the table alone.
    again = ws.materialize("churn_features_online")
    assert again.returncode == 0, again.stderr[-3000:]
    assert (_published(ws)["mode"], _published(ws)["rows_published"]) == ("unchanged", 0)


def test_a_missing_lakebase_instance_fails_the_publish_naming_bootstrap(lakebase):
    ws = lakebase  # no bootstrap: the instance was never made
    out = ws.materialize("churn_features_online")
    assert out.returncode != 0
    with ws.instance() as instance:
        [run] = instance.get_runs()
        text = run_text(instance, run.run_id)
    assert (
        f"the Lakebase database instance {INSTANCE} of feature_store.online_store does not exist: "
        "run `mlops bootstrap` on this target" in text
    )
