"""The whole lifecycle on target `dev` against the workspace emulator, once per launch mode
(``databricks.launch``): every step a job run, the endpoint created through the serving API. Each
mode's lifecycle runs once and every test of that mode reads it (the launcher's job runs, Pipes'
events, serverless environments, costs). A file of its own, so that the test runner can run it
beside the rest of the emulator's tests."""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterEventType, DagsterRun, DagsterRunStatus

from .test_databricks_target import (  # noqa: F401 - `seeded` is a fixture
    TOKEN,
    Workspace,
    assert_costs_recorded,
    assert_no_token_anywhere,
    compute_records,
    report_costs,
    seeded,
    step_of,
)

pytestmark = pytest.mark.integration

LAUNCHES = ("step_launcher", "pipes", "serverless")


@dataclass
class Lifecycle:
    launch: str
    ws: Workspace
    dagster_run: DagsterRun
    runs: dict  # step key -> the emulator's job run of that step
    logs: list  # the Dagster run's event log


@pytest.fixture(scope="module", params=LAUNCHES)
def lifecycle(request, seeded, tmp_path_factory):
    """lifecycle_job on `dev` with ``databricks.launch: <mode>`` and a new landing file, once per
    mode for every test of the module; the emulator stays up (its endpoint answers) for them."""
    from mlops_dagster.cli import generate

    launch, (root, _) = request.param, seeded
    databricks = {"launch": launch}
    if launch != "serverless":  # serverless steps have no cluster to give permissions on
        databricks["permissions"] = {"cluster_permissions": {"CAN_RESTART": [{"group_name": "ml-engineers"}]}}
    ws = Workspace(root, tmp_path_factory.mktemp(launch), {"databricks": databricks}, serving=True)
    ws.emulator.volumes.append(Path(ws.settings.io_path).resolve())  # where serverless steps stage
    generate(400, 11, False, "dev_batch.csv", landing=ws.settings.landing_path)
    with ws.emulator:
        out = ws.dagster("job", "execute", "-j", "churn_lifecycle_job")
        assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
        with ws.instance() as instance:
            [dagster_run] = instance.get_runs()
            logs = instance.all_logs(dagster_run.run_id)
        runs = {step_of(r): r for r in ws.emulator.runs.values()}
        yield Lifecycle(launch, ws, dagster_run, runs, logs)
    assert_no_token_anywhere(ws)


def _materialization(lifecycle: Lifecycle, asset: str):
    """The Dagster event of the asset's one materialization in the lifecycle's run."""
    [event] = [
        e.dagster_event
        for e in lifecycle.logs
        if e.dagster_event
        and e.dagster_event.event_type == DagsterEventType.ASSET_MATERIALIZATION
        and e.dagster_event.asset_key == AssetKey(["churn", asset])
    ]
    return event


def test_the_whole_lifecycle_runs_on_clusters_and_deploys_a_databricks_endpoint(lifecycle):
    """lifecycle_job on `dev`, in each launch mode: every step a job run; the endpoint is created
    through the serving API with auto-capture, by the cluster, with the token it got from the secret
    scope."""
    from databricks.sdk import WorkspaceClient

    ws, runs = lifecycle.ws, lifecycle.runs
    assert lifecycle.dagster_run.status == DagsterRunStatus.SUCCESS
    steps = {
        e.step_key
        for e in lifecycle.logs
        if e.dagster_event and e.dagster_event.event_type == DagsterEventType.STEP_SUCCESS
    }
    assert set(runs) == steps and len(steps) >= 12
    assert all(r.result_state == "SUCCESS" and r.pid != os.getpid() for r in runs.values())
    # The package each step shipped to its executors was removed when its process ended (an
    # all-purpose cluster's driver runs step after step).
    assert not list(ws.cluster_tmp.glob("mlops-dagster-pyfiles-*"))

    client = WorkspaceClient(host=ws.emulator.url, token=TOKEN, auth_type="pat")
    endpoint = client.api_client.do("GET", "/api/2.0/serving-endpoints/churn-endpoint")
    served = [e["entity_version"] for e in endpoint["config"]["served_entities"]]
    predictions = ws.lakehouse.read(ws.table("churn_predictions"))
    assert served == sorted(set(predictions["model_version"]))
    assert endpoint["auto_capture_config"]["enabled"]
    frame = ws.lakehouse.read(ws.table("churn_features")).head(3)[ws.settings.features.columns]
    answer = client.serving_endpoints.query("churn-endpoint", dataframe_records=frame.to_dict("records"))
    assert len(answer.predictions) == 3
    raw = ws.lakehouse.read(ws.table("raw_customers"))
    assert len(predictions) == len(raw) and "dev_batch.csv" in " ".join(raw["_source_file"].unique())
    assert sorted(predictions["customerID"]) == sorted(raw["customerID"])
    assert predictions["churn_probability"].between(0, 1).all()
    # A time-series feature table (key + ingestion time): every customer, each ingestion of it once.
    # The lifecycles of this module share a project and land the same file again: more rows than raw.
    features = ws.lakehouse.read(ws.table("churn_features"))
    assert set(features["customerID"]) == set(raw["customerID"])
    assert not features.duplicated(["customerID", "_ingested_at"]).any()
    for asset, step, table in (
        ("churn_features", "churn__build_feature_tables", features),
        ("churn_predictions", "churn__churn_predictions", predictions),
    ):
        event = _materialization(lifecycle, asset)
        # Materialized by the emulator's cluster process, streamed back into this instance.
        assert event.pid == runs[step].pid
        assert event.event_specific_data.materialization.metadata["dagster/row_count"].value == len(table)
    history = ws.lakehouse.history(ws.table("churn_predictions"), 5)
    assert history[0]["dagster_run_id"] == lifecycle.dagster_run.run_id
    assert Path(ws.settings.reports_path).is_dir() and any(Path(ws.settings.reports_path).iterdir())


def test_each_launch_mode_runs_its_steps_its_own_way(lifecycle):
    """What is particular to the mode: the step launcher ships the project to a cluster per step
    (and its costs are reported beside the bill); Pipes passes its context to a cluster and streams
    back events; serverless runs in our environment, reports through a volume, and its bill is found
    by job run. In every mode each job run gets the configured job permissions, and each job
    cluster its cluster permissions."""
    for run in lifecycle.runs.values():
        [job_acl] = lifecycle.ws.emulator.permissions[("jobs", str(run.job_id))]
        assert job_acl == {"permission_level": "CAN_MANAGE_RUN", "group_name": "ml-engineers"}
        cluster_acl = lifecycle.ws.emulator.permissions.get(("clusters", f"emulated-{run.run_id}"))
        if lifecycle.launch == "serverless":
            assert cluster_acl is None
        else:
            assert cluster_acl == [{"permission_level": "CAN_RESTART", "group_name": "ml-engineers"}]
    {
        "step_launcher": _step_launcher_ships_the_project_to_a_cluster_per_step,
        "pipes": _pipes_steps_report_their_events_from_the_cluster,
        "serverless": _serverless_steps_run_in_our_environment_and_report_through_a_volume,
    }[lifecycle.launch](lifecycle)


def _step_launcher_ships_the_project_to_a_cluster_per_step(lifecycle: Lifecycle) -> None:
    ws, runs = lifecycle.ws, lifecycle.runs
    assert {"churn__build_feature_tables", "churn_features_checks", "churn_labels_checks"} <= set(runs)
    for run in runs.values():
        assert (run.life_cycle_state, run.result_state) == ("TERMINATED", "SUCCESS"), run.state_message
        assert run.task["spark_python_task"]["python_file"].endswith("databricks_step_main.py")
        assert any(lib.get("pypi", {}).get("package", "").startswith("dagster==") for lib in run.libraries)
        assert run.cluster["spark_version"] == ws.settings.databricks.cluster.spark_version
        assert run.cluster["autoscale"] == {"min_workers": 1, "max_workers": 2}
        # The launcher uploaded the project's code; the cluster unpacked it.
        code = ws.emulator.local_path(run.task["spark_python_task"]["parameters"][2])
        assert "mlops_dagster/definitions.py" in zipfile.ZipFile(code).namelist()
    urls = [
        e.dagster_event.engine_event_data.metadata["databricks_run_url"].value
        for e in lifecycle.logs
        if e.dagster_event
        and e.dagster_event.event_type == DagsterEventType.ENGINE_EVENT
        and "databricks_run_url" in e.dagster_event.engine_event_data.metadata
    ]
    assert len(urls) == len(runs) and all(u.startswith(ws.emulator.url) for u in urls)
    assert any("Captured stdout for step churn__build_feature_tables" in e.message for e in lifecycle.logs)
    assert_costs_recorded(ws, lifecycle.dagster_run, runs)


def _pipes_steps_report_their_events_from_the_cluster(lifecycle: Lifecycle) -> None:
    runs = lifecycle.runs
    for run in runs.values():
        assert (run.life_cycle_state, run.result_state) == ("TERMINATED", "SUCCESS"), run.state_message
        assert run.task["spark_python_task"]["python_file"].endswith("pipes_step.py")
        # Pipes' bootstrap parameters reach the job cluster as environment variables.
        assert "DAGSTER_PIPES_CONTEXT" in run.cluster["spark_env_vars"]
        packages = {lib["pypi"]["package"].split("==")[0] for lib in run.libraries if "pypi" in lib}
        assert {"dagster-pipes", "dagster"} <= packages
        assert run.cluster["custom_tags"]["dagster_step"] == step_of(run)
    checks = [
        e.dagster_event
        for e in lifecycle.logs
        if e.dagster_event and e.dagster_event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
    ]
    # Reported by the cluster processes through Pipes messages.
    assert checks and all(c.pid in {r.pid for r in runs.values()} for c in checks)
    assert all(c.event_specific_data.passed for c in checks if c.step_key == "churn_labels_checks")
    # Pipes' own log lines (the job run's state transitions) and the step's, logged on the cluster.
    messages = [e.message for e in lifecycle.logs]
    assert any("observed state transition to" in m and "TERMINATED" in m for m in messages)
    assert any("raw rows featurized" in m for m in messages)
    # Each step's job cluster is costed as the step launcher's are.
    for record in compute_records(lifecycle.ws, lifecycle.dagster_run, runs).values():
        assert record["compute_kind"] == "jobs" and record["cost_estimated"] > 0


def _serverless_steps_run_in_our_environment_and_report_through_a_volume(lifecycle: Lifecycle) -> None:
    ws, runs = lifecycle.ws, lifecycle.runs
    io = Path(ws.settings.io_path).resolve()
    for run in runs.values():
        assert run.result_state == "SUCCESS", run.state_message
        # No cluster: the run's environment, with our pinned libraries, and the entry point in the volume.
        dependencies = run.cluster["serverless_environment"]["dependencies"]
        assert f"dagster-pipes=={version('dagster-pipes')}" in dependencies
        assert Path(run.task["spark_python_task"]["python_file"]).is_relative_to(io)
    # Pipes' context and messages went through the Files API, not DBFS.
    paths = {path for _, path, _ in ws.emulator.calls}
    assert any(p.startswith(f"/api/2.0/fs/files{io}/_pipes/") for p in paths)
    assert not any(p.startswith("/api/2.0/dbfs/") for p in paths)
    launched = {str(r.run_id) for r in runs.values()}
    usage = [u for u in ws.emulator.usage if u["usage_metadata"]["job_run_id"] in launched]
    assert [u["sku_name"] for u in usage] == ["PREMIUM_JOBS_SERVERLESS_COMPUTE"] * len(runs)
    assert not any(u["custom_tags"] for u in usage)  # no cluster to carry the tags
    # Each step's compute is recorded but not estimated (Databricks sizes serverless compute); the
    # report finds its usage by job run and counts it at the serverless list price (0.35 a DBU).
    for record in compute_records(ws, lifecycle.dagster_run, runs).values():
        assert record["compute_kind"] == "serverless" and "cost_estimated" not in record
        assert "known only from system.billing.usage" in record["cost_problem"]
    costs, metadata = report_costs(ws, lifecycle.dagster_run, runs)
    assert set(costs["compute_kind"]) == {"serverless"} and costs["cost_estimated"].isna().all()
    billed = sum(u["usage_quantity"] for u in usage)
    assert billed > 0
    assert metadata["cost_actual_window"] == pytest.approx(billed * 0.35 + 2.0 * 0.07, abs=1e-5)
    assert "| not estimated |" in metadata["report"]


def test_databricks_monitors_profile_the_prediction_log_and_are_read_back(lifecycle):
    """In every mode the performance step makes the prediction log's inference-log monitor and starts
    a refresh; the emulator's refresh profiles the real table, and the next performance run reads
    the newest window back into its metadata. (Last in the module: it launches one more step.)"""
    import time

    import pandas as pd

    ws = lifecycle.ws
    settings, log_table = ws.settings, ws.table("churn_prediction_log")
    monitor = ws.emulator.monitors[log_table]
    assert monitor["inference_log"] == {
        "timestamp_col": "scored_at",
        "granularities": ["1 day"],
        "model_id_col": "model_version",
        "prediction_col": "prediction",
        "prediction_proba_col": "churn_probability",
        "problem_type": "PROBLEM_TYPE_CLASSIFICATION",
    }
    assert monitor["slicing_exprs"] == settings.slices and settings.slices
    assert monitor["output_schema_name"] == f"{settings.catalog}.{settings.schema_}"
    shown = _materialization(lifecycle, "churn_model_performance").event_specific_data.materialization
    assert "| created |" in shown.metadata["databricks_monitors"].value  # made by this mode's run
    deadline = time.monotonic() + 60
    while ws.emulator.refreshes[log_table][-1]["state"] in ("PENDING", "RUNNING"):
        assert time.monotonic() < deadline, "the monitor's refresh did not finish in 60 s"
        time.sleep(0.2)
    assert ws.emulator.refreshes[log_table][-1]["state"] == "SUCCESS"

    out = ws.materialize("churn_model_performance")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    with ws.instance() as instance:
        [record] = instance.fetch_materializations(
            AssetKey(["churn", "churn_model_performance"]), limit=1
        ).records
        metadata = {k: v.value for k, v in record.asset_materialization.metadata.items()}
    assert "| exists |" in metadata["databricks_monitors"]
    log = ws.lakehouse.read(log_table)
    day = pd.to_datetime(log["scored_at"], utc=True).dt.floor("1D")
    newest = log[day == day.max()]
    assert metadata["monitor_predictions"] == len(newest)
    for served, rows in newest.groupby("model_version"):
        assert metadata[f"monitor_prediction_mean_v{served}"] == pytest.approx(rows["prediction"].mean())
    profile = ws.lakehouse.read(monitor["profile_metrics_table_name"])
    assert set(profile["slice_key"].dropna()) == set(settings.slices)
