"""Online features on a Databricks target: the Lakebase database instance `mlops bootstrap` makes,
published to from a cluster with credentials the workspace generates, then looked up by key.

The workspace emulator answers the database-instance and credential calls; a real PostgreSQL server
holds the instance's data, and each credential the emulator hands out is that server's password for
the workspace identity's role, so a publish logs in only with what the workspace gave it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import psycopg
import pytest
from dagster import AssetKey
from databricks.sdk import WorkspaceClient
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from mlops_dagster.governance.bootstrap import bootstrap
from mlops_dagster.resources.online_store import build_online_store, online_table_name

from .project import free_port
from .support.databricks_emulator import USER_NAME
from .test_databricks_target import (  # noqa: F401 - `seeded` is a fixture
    DAGSTER,
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

    _assert_the_trained_model_answers_keys_alone(ws, newest)


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _scoring_server(ws: Workspace, model_uri: str, log: Path) -> tuple[subprocess.Popen, str]:
    """MLflow's scoring server (what a Databricks serving endpoint runs) on the model, with what
    Model Serving's automatic authentication passthrough gives it: the workspace and a token."""
    port = free_port()
    bin_dir = Path(DAGSTER).parent
    env = {
        **ws.env(),
        "MLFLOW_TRACKING_URI": ws.settings.mlflow.tracking_uri,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",  # it execs uvicorn by name
    }
    command = [str(bin_dir / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local"]
    server = subprocess.Popen(
        [*command, "-h", "127.0.0.1", "-p", str(port)],
        env=env,
        cwd=ws.work,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 180
    while time.monotonic() < deadline:
        assert server.poll() is None, log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=5):
                return server, url
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise AssertionError(f"mlflow models serve did not answer within 180 s: {log.read_text()[-3000:]}")


def _assert_the_trained_model_answers_keys_alone(ws: Workspace, newest) -> None:
    """A model trained on the target answers rows that carry only their key, from MLflow's scoring
    server as a Databricks endpoint serves it: its pyfunc looks the features up in Lakebase."""
    import mlflow.sklearn
    from mlflow.models import Model

    out = ws.materialize("churn_model")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    with ws.instance() as instance:
        [record] = instance.fetch_materializations(AssetKey(["churn", "churn_model"]), limit=1).records
        model_uri = record.asset_materialization.metadata["model_uri"].value
    mlflow.set_tracking_uri(ws.settings.mlflow.tracking_uri)
    logged = Model.load(model_uri)
    assert logged.resources["databricks"] == {"lakebase": [{"name": INSTANCE}]}
    assert logged.flavors["python_function"]["loader_module"] == "keyed_model"
    pipeline, columns = mlflow.sklearn.load_model(model_uri), ws.settings.features.columns
    expected = pipeline.predict_proba(newest[columns])

    server, url = _scoring_server(ws, model_uri, ws.work / "mlflow-serve.log")
    credentials = len(ws.emulator.database_tokens)
    try:
        keys = list(newest.index[:3])
        status, answer = _post(f"{url}/invocations", {"dataframe_records": [{"customerID": k} for k in keys]})
        assert status == 200, answer
        np.testing.assert_allclose(answer["predictions"], expected[:3], rtol=1e-9)
        # The features came from Lakebase, logged in with a credential the serving process asked for.
        assert len(ws.emulator.database_tokens) == credentials + 1
        # Every feature sent: scored as sent, the same answer.
        rows = newest[columns].iloc[:3].astype(object).to_dict("records")
        status, answer = _post(f"{url}/invocations", {"dataframe_records": rows})
        assert status == 200, answer
        np.testing.assert_allclose(answer["predictions"], expected[:3], rtol=1e-9)
        status, answer = _post(f"{url}/invocations", {"dataframe_records": [{"customerID": "no-such-key"}]})
        assert status == 404 and "unknown customerID 'no-such-key'" in answer["message"], answer
    finally:
        server.terminate()
        server.wait(30)


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
