"""The endpoint asset end to end on the local gateway: blue/green to a new champion, canary and
shadow with a validated challenger, a broken version that leaves the old config serving, and
databricks-sdk querying the gateway like a workspace endpoint."""

from __future__ import annotations

import shutil
from urllib.parse import urlparse

import pytest
from databricks.sdk import WorkspaceClient

from mlops_dagster.serving.server import GatewayOwnedElsewhere
from mlops_dagster.serving.server import stop as stop_gateway

from .project import gateway_token, project_at

pytestmark = pytest.mark.integration

TRAIN = ["churn_model", "challenger_model_version", "champion_model_version"]
ENDPOINT = ["churn_endpoint"]
ALWAYS_PROMOTE = {"validation": {"max_regression": 1.0}}
WEAK_BUT_VALID = {
    "training": {"model": {"class": "sklearn.tree.DecisionTreeClassifier", "params": {"max_depth": 2}}},
    "validation": {"thresholds": {"roc_auc": {"min": 0.5}}, "max_regression": 0.0},
}


def _served(project) -> dict[str, int]:
    state = project.registry and _workspace(project).api_client.do(
        "GET", "/api/2.0/serving-endpoints/churn-endpoint"
    )
    versions = {e["name"]: e["entity_version"] for e in state["config"]["served_entities"]}
    routes = {
        versions[r["served_model_name"]]: r["traffic_percentage"]
        for r in state["config"]["traffic_config"]["routes"]
    }
    shadows = [versions[s["served_model_name"]] for s in state["config"].get("shadow_routes") or []]
    return {"routes": routes, "shadows": shadows}


def _workspace(project) -> WorkspaceClient:
    """databricks-sdk on the project's gateway, with a query token as a user would get one."""
    port = project.settings.serving.port
    return WorkspaceClient(
        host=f"http://127.0.0.1:{port}", token=gateway_token(project.settings), auth_type="pat"
    )


def _records(project, n=5) -> list[dict]:
    features = project.lakehouse.read(project.table("churn_features")).head(n)
    return features[project.settings.features.columns].to_dict("records")


def _another_home_is_refused(project, other_root):
    """A second MLOPS_HOME configured with the same port never uses the first one's gateway: its
    endpoint calls fail with an error naming the port, the other home and the setting to change."""
    port = project.settings.serving.port
    with project_at(other_root, {"serving": {"port": port}}) as other:
        serving = other.defs.resources["serving"]
        for call in (lambda: serving.describe("churn-endpoint"), lambda: serving.apply("churn-endpoint", {})):
            with pytest.raises(GatewayOwnedElsewhere) as refused:
                call()
            message = str(refused.value)
            assert f":{port}" in message and f"the serving gateway of {project.root.resolve()}" in message
            assert f"MLOPS_HOME {other_root.resolve()}" in message and "serving.port" in message
        assert not (other_root / "serving").exists()  # no gateway of its own was started on the taken port
    assert _workspace(project).serving_endpoints.get("churn-endpoint").state.ready.value == "READY"


def test_rollouts_on_the_local_gateway(tmp_path):
    with project_at(tmp_path / "serving") as project:
        project.land(1500, seed=42)
        result = project.run(
            "lifecycle_job",
            selection=[
                "raw_customers",
                "raw_customers_quarantine",
                "churn_features",
                "churn_labels",
                "churn_training_set",
                *TRAIN,
                *ENDPOINT,
            ],
        )
        assert result.success, project.failures(result)
        meta = project.metadata("churn_endpoint")
        assert meta["state"] == "READY" and meta["traffic"] == "v1 100%"
        assert urlparse(meta["url"]).path == "/serving-endpoints/churn-endpoint/invocations"
        sdk = _workspace(project)
        answer = sdk.serving_endpoints.query("churn-endpoint", dataframe_records=_records(project))
        assert answer.served_model_name == "churn_model-1" and len(answer.predictions) == 5
        _another_home_is_refused(project, tmp_path / "other")

        # Blue/green to a new champion: three steps, then only v2 serves.
        promote = project.rebuild(ALWAYS_PROMOTE)
        assert promote.run("training_job", selection=TRAIN + ENDPOINT).success
        assert project.metadata("churn_endpoint")["rollout_steps"] == 3
        assert _served(project) == {"routes": {"2": 100}, "shadows": []}
        assert (
            sdk.serving_endpoints.query(
                "churn-endpoint", dataframe_records=_records(project)
            ).served_model_name
            == "churn_model-2"
        )

        # Canary: a validated challenger that lost takes 10 %.
        weak = project.rebuild({**WEAK_BUT_VALID, "serving": {"strategy": "canary", "canary_percent": 10}})
        result = weak.run("training_job", selection=TRAIN + ENDPOINT)
        assert result.success, weak.failures(result)
        assert str(project.registry.by_alias("champion").version) == "2"
        assert _served(project) == {"routes": {"2": 90, "3": 10}, "shadows": []}
        names = [
            sdk.serving_endpoints.query(
                "churn-endpoint", dataframe_records=_records(project, 1)
            ).served_model_name
            for _ in range(60)
        ]
        assert 1 <= names.count("churn_model-3") <= 20 and names.count("churn_model-2") >= 40

        # Shadow: the challenger sees every request, answers none.
        shadow = project.rebuild({**WEAK_BUT_VALID, "serving": {"strategy": "shadow"}})
        assert shadow.run("training_job", selection=ENDPOINT).success
        assert _served(project) == {"routes": {"2": 100, "3": 0}, "shadows": ["3"]}
        for _ in range(10):
            assert (
                sdk.serving_endpoints.query(
                    "churn-endpoint", dataframe_records=_records(project, 2)
                ).served_model_name
                == "churn_model-2"
            )

        # A new champion whose artifacts are gone: the rollout fails, the endpoint keeps serving.
        assert promote.run("training_job", selection=TRAIN).success
        v4 = project.registry.by_alias("champion")
        assert str(v4.version) == "4"
        artifacts = project.registry.client().get_model_version_download_uri(v4.name, v4.version)
        shutil.rmtree(urlparse(artifacts).path)
        result = promote.run("training_job", selection=ENDPOINT)
        assert not result.success
        [failure] = project.failures(result)
        assert "rollout step 1/3" in failure and "could not load churn_model version 4" in failure
        assert "still serves: v2 100%, v3 0%, v3 (shadow)" in failure
        assert (
            sdk.serving_endpoints.query(
                "churn-endpoint", dataframe_records=_records(project, 1)
            ).served_model_name
            == "churn_model-2"
        )
        audit = project.lakehouse.read(project.table("audit_log"))
        assert (audit["action"] == "deployed").sum() == 4
        [failed] = audit.loc[audit["action"] == "deploy_failed", "details"]
        assert "could not load churn_model version 4" in failed and "v2 100%" in failed

        # A graceful stop flushes the inference table: every request above is in it.
        assert stop_gateway(project.settings)
        captured = project.lakehouse.read(project.table("churn_endpoint_payload"))
        primary = captured[~captured["mirrored"]]
        assert (primary["status_code"] == 200).sum() == 1 + 1 + 60 + 10 + 1
        assert len(captured[captured["mirrored"]]) == 10 + 1  # the shadow stayed through the failed rollout
        assert set(captured[captured["mirrored"]]["model_version"]) == {"3"}

        # Monitoring can take "current" data from what the endpoint was asked to score.
        served = project.rebuild({"monitoring": {"current": "inference_table"}})
        result = served.run("monitoring_job")
        # The champion (v4) lost its artifacts above: its performance cannot be estimated, and the
        # run says which version to restore or replace; the drift report still comes.
        [failure] = served.failures(result)
        assert failure.startswith("churn__churn_estimated_performance: ")
        assert "churn_model v4, the champion, could not be loaded" in failure
        assert "No such artifact" in failure and "train and promote a version that loads" in failure
        report = project.metadata("churn_drift_report")
        served = 5 + 5 + 60 + 10 * 2 + 1
        assert report["current_rows"] == served
        assert report["current_source"].startswith(f"the newest {served} rows of ")
        assert report["current_source"].endswith(" requests to churn-endpoint")
        # Without the prediction drift it cannot measure, and says so.
        assert report["prediction_drift"] == "not measured: the champion could not be loaded"


def test_port_zero_gives_each_home_its_own_gateway_on_a_free_port(tmp_path):
    from mlops_dagster.serving.server import is_up

    with (
        project_at(tmp_path / "a", {"serving": {"port": 0}}) as a,
        project_at(tmp_path / "b", {"serving": {"port": 0}}) as b,
    ):
        first, second = a.defs.resources["serving"], b.defs.resources["serving"]
        assert first.url is None and first.describe("churn-endpoint") is None  # nothing started yet
        first._workspace()  # what rolling out an endpoint does first
        second._workspace()
        urls = [first.url, second.url]
        assert None not in urls and urls[0] != urls[1] and all(is_up(u) for u in urls)
        for project, serving in ((a, first), (b, second)):
            health = WorkspaceClient(
                host=serving.url, token="probe-needs-none", auth_type="pat"
            ).api_client.do("GET", "/health")
            assert health["state_dir"] == str((project.root / "serving").resolve())
            assert serving.describe("churn-endpoint") is None  # its own, empty gateway: no such endpoint
        first._workspace()
        assert first.url == urls[0]  # the running gateway is found again, not a second one started
    assert not any(is_up(u) for u in urls)  # each project's exit stopped its own gateway
