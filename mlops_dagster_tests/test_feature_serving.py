"""Feature serving over real HTTP: a request sends only the entity key, the gateway looks the
features up in a real online store (SQLite file, PostgreSQL server) and scores them."""

from __future__ import annotations

import pandas as pd
import pytest

from mlops_dagster.resources.postgres_online_store import PostgresOnlineStore
from mlops_dagster.resources.sqlite_online_store import SqliteOnlineStore
from mlops_dagster.serving.features import OnlineFeatures
from mlops_dagster.serving.keyed_model import Lookup

from .test_gateway import CountingModel, Server

TABLE = "ml.fs.points"
POINTS = pd.DataFrame({"id": ["up", "down", "mixed"], "x": [2.0, -2.0, 3.0], "y": [2.0, -2.0, -1.0]})


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def server(request, tmp_path, monkeypatch):
    if request.param == "sqlite":
        store = SqliteOnlineStore(path=str(tmp_path / "online.db"))
    else:
        monkeypatch.setenv("TEST_SERVING_DSN", request.getfixturevalue("postgres_dsn"))
        store = PostgresOnlineStore(dsn_env="TEST_SERVING_DSN")
    store.publish(TABLE, POINTS, ["id"], delta_version=2)
    features = OnlineFeatures(store, [Lookup(TABLE, ["id"], ["id"], ["x", "y"])])
    with Server(tmp_path, {"1": CountingModel()}, {"ep": features}) as server:
        server.deploy({"1": 100}, create=True)
        yield server


def scores(server, body) -> list[list[float]]:
    status, response, _ = server.call("POST", "/serving-endpoints/ep/invocations", body)
    assert status == 200, response
    return response["predictions"]


def test_the_entity_key_alone_is_enough_in_every_named_format(server):
    direct = scores(server, {"dataframe_records": POINTS[["x", "y"]].to_dict("records")})
    assert direct[0][1] > 0.9 and direct[1][1] < 0.1
    by_key = scores(server, {"dataframe_records": [{"id": "up"}, {"id": "down"}, {"id": "mixed"}]})
    assert by_key == direct
    assert scores(server, {"dataframe_split": {"columns": ["id"], "data": [["down"], ["up"]]}}) == [
        direct[1],
        direct[0],
    ]
    assert scores(server, {"inputs": {"id": ["mixed"]}}) == [direct[2]]
    assert scores(server, {"instances": [{"id": "up"}]}) == [direct[0]]
    # The old formats, with every feature sent, still work and are not looked up.
    assert scores(server, {"dataframe_split": {"columns": ["x", "y"], "data": [[2.0, 2.0]]}}) == [direct[0]]
    assert scores(server, {"instances": [[-2.0, -2.0]]}) == [direct[1]]


def test_features_sent_with_the_key_win_over_looked_up_ones(server):
    [overridden] = scores(server, {"dataframe_records": [{"id": "up", "x": -2.0}]})
    assert overridden == scores(server, {"dataframe_records": [{"x": -2.0, "y": 2.0}]})[0]
    assert overridden != scores(server, {"dataframe_records": [{"id": "up"}]})[0]


def test_unknown_keys_get_a_404_naming_them(server):
    status, body, _ = server.call(
        "POST",
        "/serving-endpoints/ep/invocations",
        {"dataframe_records": [{"id": "up"}, {"id": "ghost"}, {"id": "nobody"}]},
    )
    assert status == 404 and body["error_code"] == "FEATURES_NOT_FOUND"
    assert "unknown id 'ghost', 'nobody'" in body["message"] and TABLE in body["message"]
    status, body, _ = server.call(
        "POST", "/serving-endpoints/ep/invocations", {"dataframe_records": [{"name": "up"}]}
    )
    assert status == 400
    assert body["message"] == (
        f"row 0 has neither the model's features from {TABLE} nor the entity key id to look "
        "them up: send id, or every feature"
    )
    status, body, _ = server.call(
        "POST", "/serving-endpoints/ep/invocations", {"dataframe_records": [{"id": [1]}]}
    )
    assert status == 400 and "id must be a string or integer" in body["message"]
    captured = server.captured()
    assert sorted(captured["status_code"].value_counts().items()) == [(400, 2), (404, 1)]


def test_a_keyed_model_without_an_online_store_scores_full_rows_and_says_what_key_only_rows_need(
    tmp_path,
):
    """The keyed pyfunc flavor (``keyed_model``) as MLflow loads it: rows with every feature are
    the pipeline's; rows it cannot complete get an error that says what to send."""
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model
    from sklearn.linear_model import LogisticRegression

    from mlops_dagster.serving import keyed_model

    pipeline = LogisticRegression().fit(POINTS[["x", "y"]], [1, 0, 1])
    lookups = [Lookup(TABLE, ["id"], ["id"], ["x", "y"], "ml__fs__points")]
    keyed_model.save_model(
        str(tmp_path / "model"),
        Model(),
        online_lookups=keyed_model.conf(["x", "y"], lookups, None),
        sk_model=pipeline,
        serialization_format="skops",
        pyfunc_predict_fn="predict_proba",
    )
    model = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    rows = pd.DataFrame({"y": [1.0, -3.0], "x": [2.0, -1.0]})
    assert model.predict(rows).tolist() == pipeline.predict_proba(rows[["x", "y"]]).tolist()
    with pytest.raises(MlflowException, match="no online store to look them up in"):
        model.predict(pd.DataFrame({"id": ["up"]}))
    with pytest.raises(MlflowException, match=r"rows lack the features \['y'\] and the entity key"):
        model.predict(pd.DataFrame({"x": [1.0]}))
