"""Compute cost: estimates by hand, run records through cost_sensor into run_costs, the report,
and a budget that alerts once a day (to a real webhook). The Databricks side (launched clusters,
the Jobs API's times, system.billing.usage) is in test_databricks_target.py and
test_databricks_lifecycle.py (every launch mode), on the emulator."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from dagster import AssetCheckSeverity, build_sensor_context

from mlops_dagster.ml.cost import (
    SERVERLESS,
    Compute,
    billed_by_day,
    cluster_compute,
    estimate,
    spent_on,
    window_start,
    window_totals,
)
from mlops_dagster.settings import ClusterSettings, CostSettings

from .project import project_at
from .webhook import webhook  # noqa: F401 (a fixture)

RATES = CostSettings(dbu_per_node_hour={"i3.xlarge": 1.0}, dbu_price={"jobs": 0.15, "all_purpose": 0.55})


def test_an_estimate_is_nodes_times_hours_times_rate_times_price():
    jobs = cluster_compute(ClusterSettings(node_type_id="i3.xlarge", min_workers=1, max_workers=2))
    assert (jobs.kind, jobs.nodes, jobs.availability) == ("jobs", 3, "SPOT_WITH_FALLBACK")
    # 3 nodes x 0.5 h x 1 DBU/node-hour = 1.5 DBU; x 0.15 per DBU = 0.225
    figure = estimate(jobs, 1800, RATES)
    assert figure.dbus == pytest.approx(1.5) and figure.cost == pytest.approx(0.225)

    shared = cluster_compute(
        ClusterSettings(node_type_id="i3.xlarge", max_workers=3, existing_cluster_id="0101-abc")
    )
    assert (shared.kind, shared.nodes) == ("all_purpose", 4)
    assert estimate(shared, 900, RATES).cost == pytest.approx(4 * 0.25 * 0.55)

    pooled = cluster_compute(ClusterSettings(node_type_id="i3.xlarge", instance_pool_id="pool-1"))
    assert (pooled.pool, pooled.availability) == ("pool-1", "")

    unknown = estimate(cluster_compute(ClusterSettings(node_type_id="m6gd.large")), 60, RATES)
    assert unknown.cost is None and "cost.dbu_per_node_hour.m6gd.large" in unknown.problem
    assert estimate(Compute("local"), 3600, RATES) == estimate(Compute("local"), 1, RATES)
    assert estimate(Compute("local"), 3600, RATES).cost == 0.0
    # Serverless compute: Databricks sizes it, so no estimate; the bill has the figure.
    serverless = estimate(Compute(SERVERLESS), 3600, RATES)
    assert serverless.cost is None and serverless.dbus is None
    assert "system.billing.usage" in serverless.problem and "cost.warehouse_id" in serverless.problem


def test_the_report_window_days_totals_and_todays_spend():
    import pandas as pd

    now = datetime(2026, 3, 10, 14, 30, 5, 123, tzinfo=UTC)
    assert window_start(now, 7) == datetime(2026, 3, 3, tzinfo=UTC)  # from midnight, 7 days back

    assert (
        billed_by_day(None) == {} and billed_by_day(pd.DataFrame(columns=["usage_date", "cost_actual"])) == {}
    )
    bill = pd.DataFrame(
        {
            "usage_date": [date(2026, 3, 9), date(2026, 3, 10), date(2026, 3, 10)],
            "cost_actual": [1.0, 0.25, 0.5],
        }
    )
    billed = billed_by_day(bill)
    assert billed == {"2026-03-09": 1.0, "2026-03-10": 0.75}

    # The larger figure counts: the bill lags, the estimate leaves out the endpoints.
    assert spent_on("2026-03-10", {"2026-03-10": 0.5}, billed) == 0.75
    assert spent_on("2026-03-10", {"2026-03-10": 2.0}, billed) == 2.0
    assert spent_on("2026-03-11", {}, billed) == 0.0

    records = pd.DataFrame(
        {"cost_estimated": [0.1, 0.2], "dbus_estimated": [1.0, 2.0], "seconds": [1800.0, 5400.0]}
    )
    assert window_totals(records) == pytest.approx(
        {"cost_window": 0.3, "dbus_window": 3.0, "compute_hours_window": 2.0}
    )


def _tick(project, cursor=None):
    sensor = project.defs.get_sensor_def("cost_sensor")
    return sensor.evaluate_tick(
        build_sensor_context(
            instance=project.instance, cursor=cursor, repository_def=project.defs.get_repository_def()
        )
    )


def _report(project, records: list[dict]):
    result = project.defs.resolve_job_def("cost_report_job").execute_in_process(
        instance=project.instance,
        raise_on_error=False,
        run_config={"ops": {"cost_report": {"config": {"records": records}}}},
    )
    assert result.success, project.failures(result)
    return result


def test_local_runs_are_recorded_with_their_wall_time_and_no_cost(tmp_path):
    with project_at(tmp_path / "local") as project:
        project.land(300, seed=1)
        ingest = project.run(selection=["raw_customers", "raw_customers_quarantine"])
        assert ingest.success, project.failures(ingest)

        tick = _tick(project)
        [request] = tick.run_requests
        records = request.run_config["ops"]["cost_report"]["config"]["records"]
        steps = {r["step_key"]: r for r in records}
        assert set(steps) == {s.step_key for s in ingest.get_step_success_events()}
        for record in steps.values():
            assert record["dagster_run_id"] == ingest.run_id and record["use_case"] == "churn"
            assert record["status"] == "success" and record["target"] == "local"
            assert record["compute_kind"] == "local" and record["cost_estimated"] == 0.0
            assert 0 < record["seconds"] < 600
        assert any("churn/raw_customers" in r["assets"].split(",") for r in records)
        assert {r["stage"] for r in records} == {"ingestion"}  # check steps take their asset's stage

        report = _report(project, request.run_config["ops"]["cost_report"]["config"]["records"])
        costs = project.lakehouse.read(project.table("run_costs"))
        assert sorted(costs["step_key"]) == sorted(steps) and (costs["cost_estimated"] == 0).all()
        metadata = project.metadata("cost_report")
        assert metadata["steps_added"] == len(steps) and metadata["runs_in_window"] == 1
        assert metadata["cost_today"] == 0 and metadata["compute_hours_window"] > 0
        assert "## By stage" in metadata["report"] and "| ingestion |" in metadata["report"]
        assert "local target" in metadata["actual_usage_from"]

        # The report's own run alone requests nothing; it is recorded with the next run's report.
        second = _tick(project, tick.cursor)
        assert not second.run_requests and "only cost reports" in second.skip_message
        again = project.run(selection=["raw_customers", "raw_customers_quarantine"])
        [request] = _tick(project, tick.cursor).run_requests
        recorded = {
            r["dagster_run_id"] for r in request.run_config["ops"]["cost_report"]["config"]["records"]
        }
        assert recorded == {report.run_id, again.run_id}

        # Recording the same records twice keeps one row per step.
        _report(project, request.run_config["ops"]["cost_report"]["config"]["records"])
        _report(project, request.run_config["ops"]["cost_report"]["config"]["records"])
        costs = project.lakehouse.read(project.table("run_costs"))
        assert not costs.duplicated(["dagster_run_id", "step_key"]).any()
        assert costs["dagster_run_id"].nunique() == 3


def _launched(run_id: str, cost: float) -> dict:
    now = datetime.now(UTC).isoformat()
    return {
        "dagster_run_id": run_id,
        "job_name": "churn_training_job",
        "use_case": "churn",
        "target": "local",
        "trigger": "manual",
        "step_key": "churn__churn_model",
        "assets": "churn/churn_model",
        "stage": "training",
        "status": "success",
        "started_at": now,
        "finished_at": now,
        "seconds": 1200.0,
        "databricks_run_id": 7,
        "compute_kind": "jobs",
        "compute_node_type": "i3.xlarge",
        "compute_nodes": 3,
        "compute_availability": "SPOT_WITH_FALLBACK",
        "compute_pool": "",
        "dbus_estimated": cost / 0.15,
        "cost_estimated": cost,
        "currency": "USD",
        "cost_problem": "",
    }


def test_a_crossed_daily_budget_alerts_once_a_day(tmp_path, webhook):  # noqa: F811 (a fixture)
    url, received = webhook
    with project_at(
        tmp_path / "budget", overrides={"cost": {"daily_budget": 1.0}, "automation": {"alert_webhook": url}}
    ) as project:
        first = _report(project, [_launched("run-a", 0.6)])
        [check] = first.get_asset_check_evaluations()
        assert check.passed and check.metadata["spent_today"].value == pytest.approx(0.6)
        assert not received

        crossed = _report(project, [_launched("run-b", 0.5)])
        [check] = crossed.get_asset_check_evaluations()
        assert not check.passed and check.severity == AssetCheckSeverity.WARN
        assert check.metadata["spent_today"].value == pytest.approx(1.1)
        [alert] = received
        assert alert["kind"] == "budget" and "over the daily budget of 1.0 USD" in alert["text"]

        _report(project, [_launched("run-c", 0.5)])  # still over, the same day: no second alert
        assert len(received) == 1
        alerts = project.lakehouse.read(project.table("alerts"))
        assert list(alerts["kind"]) == ["budget"] and alerts["webhook_status"].iloc[0] == "HTTP 204"
        assert url not in json.dumps(project.metadata("cost_report"), default=str)
