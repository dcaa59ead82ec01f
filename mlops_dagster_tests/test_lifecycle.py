"""The whole lifecycle, materialized for real: landing files -> champion -> predictions -> drift."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import AssetCheckKey
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts
from mlflow.models import Model

from .project import gateway_token, project_at

pytestmark = pytest.mark.integration

ROWS = 2000


HOUSE_ROWS = 1500


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The shipped demos in one code location, each through its own lifecycle job: the telco churn
    classifier (the first use case, what most tests here look at) and the house price regression."""
    # `use_cases` in the override: the shipped use cases, not today's one-use-case format.
    with project_at(tmp_path_factory.mktemp("lifecycle"), overrides={"use_cases": {}}) as project:
        project.land(ROWS, seed=2)
        result = project.run("lifecycle_job")
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        houses = project.use_case("house_prices")
        houses.land(HOUSE_ROWS, seed=4)
        result = houses.run("lifecycle_job")
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        yield project


def test_every_stage_materialized_with_its_metadata(project):
    raw = project.metadata("raw_customers")
    assert raw["dagster/table_name"] == "ml_dev_catalog.mlops.raw_customers"
    assert raw["dagster/row_count"] == ROWS and raw["rows_loaded"] == ROWS
    assert raw["delta_version"] == project.lakehouse.version(project.table("raw_customers"))
    features = project.metadata("churn_features")
    assert features["dagster/row_count"] == ROWS
    assert {c.name for c in features["dagster/column_schema"].columns} >= {"customerID", "avgMonthlySpend"}
    training = project.metadata("churn_training_set")
    assert training["train_rows"] + training["test_rows"] == ROWS
    assert training["test_rows"] == pytest.approx(ROWS * 0.2, abs=1)
    model = project.metadata("churn_model")
    assert 0.78 <= model["roc_auc"] <= 0.92
    assert model["mlflow_run_id"]


def test_champion_alias_points_at_a_registered_version(project):
    champion = project.registry.by_alias("champion")
    challenger = project.registry.by_alias("challenger")
    assert champion is not None and champion.version == challenger.version
    assert champion.tags["validation_status"] == "passed"
    assert champion.tags["training_set"] == project.table("churn_training_set")
    version = project.registry.version(champion.version)
    assert version.run_id == project.metadata("churn_model")["mlflow_run_id"]
    assert project.metadata("champion_model_version")["promoted"] is True


def test_mlflow_run_has_params_metrics_model_plots_and_input(project):
    run_id = project.metadata("churn_model")["mlflow_run_id"]
    client = MlflowClient(tracking_uri=project.settings.mlflow.tracking_uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert {"test_roc_auc", "test_f1", "test_precision", "test_recall", "test_log_loss"} <= set(
        run.data.metrics
    )
    assert run.data.params["model_class"] == "sklearn.linear_model.LogisticRegression"
    assert run.data.tags["dagster_run_id"]
    plots = {Path(a.path).name for a in client.list_artifacts(run_id, "plots")}
    assert plots == {"roc_curve.png", "precision_recall_curve.png", "confusion_matrix.png"}
    dataset_inputs = run.inputs.dataset_inputs
    assert dataset_inputs and dataset_inputs[0].dataset.name == project.table("churn_training_set")
    version = project.lakehouse.version(project.table("churn_training_set"))
    assert f'"delta_table_version": {version}' in dataset_inputs[0].dataset.source
    champion = project.registry.by_alias("champion")
    uri = project.registry.client().get_model_version_download_uri(champion.name, champion.version)
    info = Model.load(download_artifacts(artifact_uri=uri))
    # The demo looks its features up online: its model also takes the key alone (each input optional).
    assert [c.name for c in info.signature.inputs] == [*project.settings.features.columns, "customerID"]
    assert not any(c.required for c in info.signature.inputs.inputs)
    assert info.flavors["python_function"]["loader_module"] == "keyed_model"
    assert info.saved_input_example_info is not None
    loaded = project.registry.load_sklearn(champion.version)
    features = project.lakehouse.read(project.table("churn_features")).head(3)
    assert loaded.predict_proba(features[project.settings.features.columns]).shape == (3, 2)


def test_predictions_cover_every_customer_with_model_version_and_time(project):
    predictions = project.lakehouse.read(project.table("churn_predictions"))
    customers = project.lakehouse.read(project.table("churn_features"), columns=["customerID"])
    assert len(predictions) == len(customers) == ROWS
    assert set(predictions["customerID"]) == set(customers["customerID"])
    champion = project.registry.by_alias("champion").version
    assert set(predictions["model_version"]) == {str(champion)}
    assert predictions["scored_at"].notna().all()
    assert predictions["churn_probability"].between(0, 1).all()
    assert ((predictions["churn_probability"] >= 0.5).astype(int) == predictions["prediction"]).all()
    assert project.metadata("churn_predictions")["rows_scored"] == ROWS
    # Each probability is the champion's own P(churn) for the customer's features, as scored here.
    features = project.lakehouse.read(project.table("churn_features")).set_index("customerID")
    expected = project.registry.load_sklearn(champion).predict_proba(
        features.loc[predictions["customerID"], project.settings.features.columns]
    )[:, 1]
    assert predictions["churn_probability"].to_numpy() == pytest.approx(expected, abs=1e-12)


def test_first_drift_report_is_saved_and_logged(project):
    report = project.metadata("churn_drift_report")
    assert Path(report["report_path"]).is_file()
    assert "<html" in Path(report["report_path"]).read_text()[:2000].lower()
    assert report["dataset_drift"] is False
    client = MlflowClient(tracking_uri=project.settings.mlflow.tracking_uri)
    artifacts = client.list_artifacts(report["mlflow_run_id"], "drift")
    assert [Path(a.path).name for a in artifacts] == [Path(report["report_path"]).name]
    history = project.lakehouse.read(project.table("churn_drift_metrics"))
    assert len(history) == 1 and not history["dataset_drift"].iloc[0]


def test_quality_checks_ran_and_passed(project):
    for asset, check in [
        ("raw_customers", "key_is_unique_and_not_null"),
        ("raw_customers", "rows_meet_contract"),
        ("churn_features", "key_is_unique_and_not_null"),
        ("churn_features", "features_are_complete"),
        ("churn_labels", "both_classes_present"),
        ("challenger_model_version", "passes_validation"),
        ("churn_drift_report", "no_dataset_drift"),
    ]:
        record = project.instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [AssetCheckKey(project.key(asset), check)]
        )[AssetCheckKey(project.key(asset), check)]
        evaluation = record.event.dagster_event.event_specific_data
        assert evaluation.passed, f"{asset}:{check} failed: {evaluation.metadata}"


def test_every_registered_version_has_a_model_card(project):
    champion = project.registry.by_alias("champion")
    card = project.registry.client().download_artifacts(champion.run_id, "model_card.md")
    text = Path(card).read_text()
    assert text.startswith(f"# Model card: churn_model version {champion.version}")
    assert "**Owner:** customer-analytics" in text and "Retention offers must not be withheld" in text
    training_version = champion.tags["training_set_version"]
    assert f"ml_dev_catalog.mlops.churn_training_set v{training_version}" in text
    features_version = project.lakehouse.version(project.table("churn_features"))
    assert f"features: ml_dev_catalog.mlops.churn_features v{features_version}" in text
    assert "| roc_auc |" in text and "| pass |" in text
    description = project.registry.version(champion.version).description
    assert "Owner: customer-analytics" in description and "validation passed" in description
    assert project.metadata("challenger_model_version")["model_card"] == text


def test_the_audit_log_records_each_lifecycle_action_and_cannot_be_rewritten(project):
    log = project.lakehouse.read(project.table("audit_log")).sort_values("event_time")
    actions = log["action"].tolist()
    for action in (
        "table_written",
        "model_registered",
        "model_validated",
        "alias_changed",
        "promoted",
        "deployed",
    ):
        assert action in actions, actions
    assert actions.index("model_registered") < actions.index("model_validated") < actions.index("promoted")
    written = set(log.loc[log["action"] == "table_written", "object"])
    assert {
        project.table(t)
        for t in (
            "raw_customers",
            "churn_features",
            "churn_labels",
            "churn_training_set",
            "churn_predictions",
        )
    } <= written
    assert (log["target"] == "local").all() and log["actor"].str.len().gt(0).all()
    promoted = log[log["action"] == "promoted"].iloc[0]
    assert promoted["object"] == "churn_model v1" and "no champion yet" in promoted["details"]
    from deltalake import DeltaTable

    with pytest.raises(Exception, match="append-only"):
        DeltaTable(project.lakehouse.location(project.table("audit_log"))).delete("action = 'promoted'")


def test_lineage_of_the_champion_lists_the_real_table_versions_and_files(project):
    from mlops_dagster.governance.lineage import format_lineage, model_lineage

    champion = project.registry.by_alias("champion")
    resources = project.defs.resources
    lineage = model_lineage(
        project.settings, project.lakehouse, project.registry, str(champion.version), resources["serving"]
    )
    lakehouse = project.lakehouse
    # One lifecycle run: each table's current version is the one the next step read.
    assert lineage["upstream"] == {
        name: (project.table(table), lakehouse.version(project.table(table)))
        for name, table in (
            ("training_set", "churn_training_set"),
            ("features", "churn_features"),
            ("labels", "churn_labels"),
            ("raw", "raw_customers"),
        )
    }
    assert lineage["upstream"]["training_set"][1] == int(champion.tags["training_set_version"])
    assert lineage["landing_files"] == ["customers_2000_seed2.csv"]
    assert lineage["prediction_versions"] == (
        project.table("churn_predictions"),
        [lakehouse.version(project.table("churn_predictions"))],
    )
    assert lineage["endpoints"] == [("churn-endpoint", 100)]
    text = format_lineage(lineage)
    assert "customers_2000_seed2.csv" in text and "churn-endpoint (100% of traffic)" in text


def test_the_endpoint_serves_by_customer_id_from_the_online_store(project):
    import json
    import urllib.error
    import urllib.request

    url = project.metadata("churn_endpoint")["url"]
    token = gateway_token(project.settings)

    def post(body: dict) -> tuple[int, dict]:
        request = urllib.request.Request(
            url,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    assert project.metadata("churn_features_online")["rows_published"] == ROWS
    features = project.lakehouse.read(project.table("churn_features")).head(3)
    by_key = post({"dataframe_records": [{"customerID": k} for k in features["customerID"]]})
    sent = post({"dataframe_records": features[project.settings.features.columns].to_dict("records")})
    assert by_key[0] == 200 and by_key == sent
    status, body = post({"dataframe_records": [{"customerID": "0000-NOBODY"}]})
    assert status == 404 and "unknown customerID '0000-NOBODY'" in body["message"]


def _post(url: str, body: dict, token: str) -> tuple[int, dict, str]:
    """Status, JSON body and the ``served-model-name`` header of one request to an endpoint."""
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read()), response.headers.get("served-model-name", "")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), ""


def test_each_use_case_has_its_own_prefixed_assets_tables_model_and_experiment(project):
    houses = project.use_case("house_prices")
    keys = {k.to_user_string() for k in project.defs.resolve_asset_graph().get_all_asset_keys()}
    assert {
        "churn/churn_model",
        "churn/raw_customers",
        "house_prices/house_prices_model",
        "house_prices/raw_houses",
        "house_prices/champion_model_version",
    } <= keys
    assert {k.split("/")[0] for k in keys} == {"churn", "house_prices", "compliance_report", "cost_report"}
    # Each use case's run materialized its own assets only.
    from dagster import DagsterEventType, RunsFilter

    for use_case in ("churn", "house_prices"):
        [run] = project.instance.get_runs(RunsFilter(job_name=f"{use_case}_lifecycle_job"))
        events = project.instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
        assert {e.dagster_event.asset_key.path[0] for e in events} == {use_case}
        assert run.tags["mlops/use_case"] == use_case
    assert len(houses.lakehouse.read(houses.table("raw_houses"))) == HOUSE_ROWS
    assert len(project.lakehouse.read(project.table("raw_customers"))) == ROWS  # the files did not mix
    client = MlflowClient(tracking_uri=project.settings.mlflow.tracking_uri)
    for use_case in ("churn", "house_prices"):
        view = project.use_case(use_case)
        champion = view.registry.by_alias("champion")
        assert champion.name == f"{use_case}_model" and champion.tags["validation_status"] == "passed"
        run = client.get_run(view.metadata(f"{use_case}_model")["mlflow_run_id"])
        assert client.get_experiment(run.info.experiment_id).name == use_case
        assert run.data.tags["mlops/use_case"] == use_case


def test_the_regression_demo_is_trained_judged_scored_and_monitored_as_a_regression(project):
    houses = project.use_case("house_prices")
    model = houses.metadata("house_prices_model")
    assert model["r2"] >= 0.8 and 0 < model["mae"] < 60 and model["rmse"] >= model["mae"]
    assert "roc_auc" not in model
    client = MlflowClient(tracking_uri=project.settings.mlflow.tracking_uri)
    run = client.get_run(model["mlflow_run_id"])
    assert {"test_rmse", "test_mae", "test_r2"} <= set(run.data.metrics) and run.data.params[
        "problem_type"
    ] == "regression"
    plots = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {"actual_vs_predicted.png", "residual_vs_predicted.png"}
    champion = houses.registry.by_alias("champion")
    card = Path(houses.registry.client().download_artifacts(champion.run_id, "model_card.md")).read_text()
    assert "| rmse |" in card and "| r2 |" in card and "**Owner:** pricing-analytics" in card
    labels_check = project.instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [AssetCheckKey(houses.key("house_prices_labels"), "labels_are_numbers")]
    )
    assert next(iter(labels_check.values())).event.dagster_event.event_specific_data.passed
    predictions = houses.lakehouse.read(houses.table("house_prices_predictions"))
    assert len(predictions) == HOUSE_ROWS and "house_prices_probability" not in predictions.columns
    raw = houses.lakehouse.read(houses.table("raw_houses"), columns=["houseID", "price"]).set_index("houseID")
    joined = predictions.set_index("houseID").join(raw)
    assert ((joined["prediction"] - joined["price"]).abs() < 0.5 * joined["price"] + 60).mean() > 0.95
    assert houses.metadata("house_prices_predictions")["mean_prediction"] == pytest.approx(
        predictions["prediction"].mean()
    )
    drift = houses.metadata("house_prices_drift_report")
    assert drift["dataset_drift"] is False and drift["prediction_drift"] is False
    assert drift["prediction_drift_method"] and drift["prediction_drift_score"] >= 0


def test_one_gateway_serves_each_use_case_from_its_own_model_and_features(project):
    churn = project.metadata("churn_endpoint")
    houses = project.use_case("house_prices").metadata("house_prices_endpoint")
    assert churn["url"].rsplit("/", 3)[0] == houses["url"].rsplit("/", 3)[0]  # one gateway
    token = gateway_token(project.settings)  # one gateway: one token for both
    customers = project.lakehouse.read(project.table("churn_features"), columns=["customerID"]).head(2)
    status, body, served = _post(churn["url"], {"dataframe_records": customers.to_dict("records")}, token)
    assert status == 200 and served.startswith("churn_model")
    assert all(len(p) == 2 and sum(p) == pytest.approx(1) for p in body["predictions"])  # P(no), P(yes)
    keys = project.lakehouse.read(project.table("house_prices_features"), columns=["houseID"]).head(2)
    status, body, served = _post(houses["url"], {"dataframe_records": keys.to_dict("records")}, token)
    assert status == 200 and served.startswith("house_prices_model")
    assert all(isinstance(p, float) and p > 0 for p in body["predictions"])  # a price each
    # Each endpoint looks keys up in its own use case's features only.
    status, body, _ = _post(houses["url"], {"dataframe_records": customers.to_dict("records")}, token)
    assert status == 400 and "houseID" in body["message"], body
