"""Sensors evaluated with build_sensor_context against a real (ephemeral) Dagster instance."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from dagster import AssetKey, AssetMaterialization, DagsterInstance, DefaultSensorStatus, build_sensor_context

from mlops_dagster.automation.file_arrival import file_arrival_sensor, outcome_file_sensor
from mlops_dagster.automation.retraining import decay_sensor, drift_sensor, estimated_decay_sensor
from mlops_dagster.definitions import build_definitions
from mlops_dagster.jobs.lifecycle import build_jobs
from mlops_dagster.resources.landing import LocalLandingVolume
from mlops_dagster.settings import load_project, load_settings

LIFECYCLE = build_jobs(load_settings()).lifecycle

STOPPED = DefaultSensorStatus.STOPPED


def _settings(local_root, tmp_path, stable_seconds=0, cooldown_minutes=60):
    extra = tmp_path / "automation.yaml"
    extra.write_text(
        json.dumps(
            {
                "automation": {
                    "file_sensor": {"stable_seconds": stable_seconds},
                    "drift_sensor": {"cooldown_minutes": cooldown_minutes},
                }
            }
        )
    )
    return load_settings("local", extra_file=extra)


@pytest.fixture
def instance():
    with DagsterInstance.ephemeral() as instance:
        yield instance


def _tick(sensor, instance, cursor):
    result = sensor.evaluate_tick(
        build_sensor_context(
            instance=instance, cursor=cursor, resources={"landing_volume": LocalLandingVolume()}
        )
    )
    return result.run_requests or [], result.skip_message, result.cursor


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    old = time.time() - 60  # as if written a minute ago
    os.utime(path, (old, old))


def test_new_file_triggers_exactly_one_run_and_is_not_seen_again(local_root, tmp_path, instance):
    settings = _settings(local_root, tmp_path)
    sensor = file_arrival_sensor(settings, LIFECYCLE, STOPPED)
    landing = Path(settings.landing_path)
    _write(landing / "a.csv", "customerID\n1\n")
    _write(landing / "ignored.txt", "not a landing file")

    requests, skip, cursor = _tick(sensor, instance, None)
    assert requests == [] and "waiting for 1 file" in skip  # first sighting: not yet known stable
    requests, skip, cursor = _tick(sensor, instance, cursor)
    [request] = requests
    path = str((landing / "a.csv").resolve())
    assert request.run_config == {"ops": {"churn__ingest_landing_files": {"config": {"files": [path]}}}}
    assert request.run_key.startswith(path + ":") and request.tags["mlops/trigger"] == "file_arrival"
    requests, skip, cursor2 = _tick(sensor, instance, cursor)
    assert requests == [] and "no new files" in skip
    # A restarted daemon evaluates with the stored cursor: still nothing to do.
    requests, _, _ = _tick(sensor, instance, cursor2)
    assert requests == []


def test_an_outcome_file_starts_one_monitoring_run_and_the_dataset_sensor_ignores_it(
    local_root, tmp_path, instance
):
    settings = _settings(local_root, tmp_path)
    monitoring = build_jobs(settings).monitoring
    outcomes = outcome_file_sensor(settings, monitoring, STOPPED)
    dataset = file_arrival_sensor(settings, LIFECYCLE, STOPPED)
    path = Path(settings.ground_truth_path) / "outcomes.csv"
    _write(path, "customerID,churnString,label_time\n1,Yes,2026-11-23\n")

    _, skip, cursor = _tick(outcomes, instance, None)
    assert "waiting for 1 file" in skip
    [request], _, _ = _tick(outcomes, instance, cursor)
    assert request.run_config == {
        "ops": {"churn__ingest_churn_ground_truth": {"config": {"files": [str(path.resolve())]}}}
    }
    assert outcomes.job_name == "churn_monitoring_job"
    requests, skip, _ = _tick(dataset, instance, None)
    assert requests == [] and "no new files" in skip


def test_a_changed_file_triggers_again_with_a_new_run_key(local_root, tmp_path, instance):
    settings = _settings(local_root, tmp_path)
    sensor = file_arrival_sensor(settings, LIFECYCLE, STOPPED)
    target = Path(settings.landing_path) / "a.csv"
    _write(target, "customerID\n1\n")
    _, _, cursor = _tick(sensor, instance, None)
    [first], _, cursor = _tick(sensor, instance, cursor)
    _write(target, "customerID\n1\n2\n")
    _, _, cursor = _tick(sensor, instance, cursor)
    [second], _, _ = _tick(sensor, instance, cursor)
    assert second.run_key != first.run_key


def test_a_growing_file_waits_until_it_is_stable(local_root, tmp_path, instance):
    settings = _settings(local_root, tmp_path, stable_seconds=30)
    sensor = file_arrival_sensor(settings, LIFECYCLE, STOPPED)
    target = Path(settings.landing_path) / "big.csv"
    target.parent.mkdir(parents=True)
    target.write_text("customerID\n1\n")  # just written: mtime is now
    requests, skip, cursor = _tick(sensor, instance, None)
    assert requests == [] and "big.csv" in skip
    with target.open("a") as handle:  # still being copied
        handle.write("2\n")
    requests, skip, cursor = _tick(sensor, instance, cursor)
    assert requests == []
    old = time.time() - 60  # the copy finished a minute ago and the file has not changed since
    os.utime(target, (old, old))
    requests, _, cursor = _tick(sensor, instance, cursor)
    assert requests == []  # first tick that sees this settled version
    [request], _, _ = _tick(sensor, instance, cursor)
    assert request.run_key.endswith(f":{old:.6f}")


def test_several_files_give_one_run_each_and_removed_files_leave_the_cursor(local_root, tmp_path, instance):
    settings = _settings(local_root, tmp_path)
    sensor = file_arrival_sensor(settings, LIFECYCLE, STOPPED)
    landing = Path(settings.landing_path)
    for name in ("a.csv", "b.csv", "c.csv"):
        _write(landing / name, "customerID\n1\n")
    _, _, cursor = _tick(sensor, instance, None)
    requests, _, cursor = _tick(sensor, instance, cursor)
    assert sorted(r.tags["mlops/landing_file"].rsplit("/", 1)[-1] for r in requests) == [
        "a.csv",
        "b.csv",
        "c.csv",
    ]
    assert len({r.run_key for r in requests}) == 3
    (landing / "b.csv").unlink()
    _, _, cursor = _tick(sensor, instance, cursor)
    assert sorted(p.rsplit("/", 1)[-1] for p in json.loads(cursor)["done"]) == ["a.csv", "c.csv"]


def _report(instance, drifted: bool, share: float):
    instance.report_runless_asset_event(
        AssetMaterialization(
            AssetKey(["churn", "churn_drift_report"]),
            metadata={"dataset_drift": drifted, "drift_share": share},
        )
    )


def _ingestion(instance, rows_loaded: int):
    instance.report_runless_asset_event(
        AssetMaterialization(AssetKey(["churn", "raw_customers"]), metadata={"rows_loaded": rows_loaded})
    )


def test_drift_sensor_acts_on_drift_once_per_report(local_root, tmp_path, instance):
    sensor = drift_sensor(_settings(local_root, tmp_path, cooldown_minutes=0), LIFECYCLE, STOPPED)
    requests, skip, cursor = _tick(sensor, instance, None)
    assert requests == [] and skip == "no drift report yet"

    _ingestion(instance, 100)
    _report(instance, drifted=False, share=0.1)
    requests, skip, cursor = _tick(sensor, instance, cursor)
    assert requests == [] and "no dataset drift (share 0.10)" in skip

    _ingestion(instance, 800)
    _report(instance, drifted=True, share=0.7)
    [request], _, cursor = _tick(sensor, instance, cursor)
    assert request.run_key.startswith("drift-report-") and request.tags["mlops/trigger"] == "drift"
    requests, skip, _ = _tick(sensor, instance, cursor)
    assert requests == [] and "already handled" in skip


def test_drift_sensor_respects_its_cool_down(local_root, tmp_path, instance):
    sensor = drift_sensor(_settings(local_root, tmp_path, cooldown_minutes=60), LIFECYCLE, STOPPED)
    _ingestion(instance, 800)
    _report(instance, drifted=True, share=0.6)
    [_], _, cursor = _tick(sensor, instance, None)
    _ingestion(instance, 500)
    _report(instance, drifted=True, share=0.8)  # a new drifted report, 0 minutes later
    requests, skip, cursor_after = _tick(sensor, instance, cursor)
    assert requests == [] and "cool-down for another 60 min" in skip
    assert cursor_after is None or cursor_after == cursor  # the report is kept for after the cool-down
    state = json.loads(cursor)
    state["last_triggered"] -= 61 * 60  # the cool-down is over
    [request], _, _ = _tick(sensor, instance, json.dumps(state))
    assert request.tags["mlops/drift_share"] == "0.800"


def test_drift_sensor_skips_when_a_model_already_learned_from_the_drifted_data(
    local_root, tmp_path, instance
):
    sensor = drift_sensor(_settings(local_root, tmp_path, cooldown_minutes=0), LIFECYCLE, STOPPED)
    _ingestion(instance, 800)
    instance.report_runless_asset_event(
        AssetMaterialization(AssetKey(["churn", "churn_model"]))
    )  # the file-arrival run retrained
    _report(instance, drifted=True, share=0.7)
    requests, skip, _ = _tick(sensor, instance, None)
    assert requests == [] and "already trained after the newest data arrived" in skip


def _performance(instance, decayed: bool | None, auc: float = 0.70):
    judged = (
        {}
        if decayed is None
        else {"decayed": decayed, "champion_roc_auc": auc, "validated_roc_auc": 0.84, "champion_version": "3"}
    )
    instance.report_runless_asset_event(
        AssetMaterialization(
            AssetKey(["churn", "churn_model_performance"]), metadata={"judged": decayed is not None, **judged}
        )
    )


def test_decay_sensor_retrains_once_per_decay_and_not_after_a_model_learned_from_the_outcomes(
    local_root, tmp_path, instance
):
    sensor = decay_sensor(_settings(local_root, tmp_path, cooldown_minutes=0), LIFECYCLE, STOPPED)
    _, skip, cursor = _tick(sensor, instance, None)
    assert skip == "no performance report yet"
    _performance(instance, None)
    _, skip, cursor = _tick(sensor, instance, cursor)
    assert skip == "latest report: no decay (the champion was not judged)"
    # Figures on outcomes but no validation figure to compare them with (a version registered without
    # metric tags): not judged, and the sensor does not fail.
    instance.report_runless_asset_event(
        AssetMaterialization(
            AssetKey(["churn", "churn_model_performance"]),
            metadata={"judged": False, "champion_roc_auc": 0.7},
        )
    )
    _, skip, cursor = _tick(sensor, instance, cursor)
    assert skip == "latest report: no decay (the champion was not judged)"
    outcomes = AssetKey(["churn", "churn_ground_truth"])
    instance.report_runless_asset_event(AssetMaterialization(outcomes, metadata={"rows_loaded": 500}))
    _performance(instance, True)
    [request], _, cursor = _tick(sensor, instance, cursor)
    assert request.tags["mlops/trigger"] == "decay" and request.tags["mlops/decay_model_version"] == "3"
    assert (
        request.tags["mlops/decay_measured"] == "0.7000" and request.tags["mlops/decay_validated"] == "0.8400"
    )
    requests, skip, _ = _tick(sensor, instance, cursor)
    assert requests == [] and "already handled" in skip

    instance.report_runless_asset_event(AssetMaterialization(AssetKey(["churn", "churn_model"])))  # retrained
    _performance(instance, True, auc=0.69)  # the old predictions judged again before the new model scored
    requests, skip, _ = _tick(sensor, instance, cursor)
    assert requests == [] and "already trained after the newest data arrived" in skip
    assert "decay (roc_auc 0.690 on outcomes vs 0.840 at validation)" in skip


def _estimate(instance, decayed: bool | None, **figures):
    if decayed is not None:
        figures = {"estimated_roc_auc": 0.71, "estimated_drop": 0.13, "estimated_decay": decayed, **figures}
    instance.report_runless_asset_event(
        AssetMaterialization(
            AssetKey(["churn", "churn_estimated_performance"]),
            metadata={"method": "CBPE", "champion_version": "3", **figures},
        )
    )


def test_the_estimated_decay_sensor_retrains_on_an_estimate_only_when_asked_to(
    local_root, tmp_path, instance
):
    names = {s.name for s in build_definitions(load_project("local")).get_repository_def().sensor_defs}
    assert "churn_estimated_decay_retraining_sensor" not in names  # off by default: estimates only warn
    extra = tmp_path / "on.yaml"
    extra.write_text(
        json.dumps({"automation": {"decay_sensor": {"on_estimates": True, "cooldown_minutes": 0}}})
    )
    project = load_project("local", extra_file=extra)
    names = {s.name for s in build_definitions(project).get_repository_def().sensor_defs}
    assert "churn_estimated_decay_retraining_sensor" in names

    sensor = estimated_decay_sensor(project.default, LIFECYCLE, STOPPED)
    _, skip, cursor = _tick(sensor, instance, None)
    assert skip == "no performance estimate yet"
    _estimate(instance, None)  # no validation figure to compare with
    _, skip, cursor = _tick(sensor, instance, cursor)
    assert skip == "latest report: no estimated decay (roc_auc not estimated or not validated)"
    _ingestion(instance, 800)
    _estimate(instance, True)
    [request], _, cursor = _tick(sensor, instance, cursor)
    assert {k: v for k, v in request.tags.items() if k.startswith("mlops/")} == {
        "mlops/trigger": "estimated_decay",
        "mlops/estimated_decay_report_run": request.tags["mlops/estimated_decay_report_run"],
        "mlops/decay_metric": "roc_auc",
        "mlops/decay_estimated": "0.7100",
        "mlops/decay_estimated_on": "batch",
        "mlops/decay_model_version": "3",
    }
    instance.report_runless_asset_event(AssetMaterialization(AssetKey(["churn", "churn_model"])))  # retrained
    _estimate(instance, True)
    requests, skip, cursor = _tick(sensor, instance, cursor)
    assert requests == [] and "already trained after the newest data arrived" in skip

    # The batch held up, the endpoint's newest window did not: the window is what the request names.
    _ingestion(instance, 900)
    _estimate(
        instance, True, estimated_drop=0.01, endpoint_estimated_roc_auc=0.69, endpoint_estimated_drop=0.15
    )
    [request], _, _ = _tick(sensor, instance, cursor)
    assert request.tags["mlops/decay_estimated"] == "0.6900"
    assert request.tags["mlops/decay_estimated_on"] == "endpoint window"


def test_default_status_follows_the_target(local_root):
    local = build_definitions(load_project("local")).get_repository_def()
    demos = ("churn", "house_prices")  # each use case has its own sensors and schedules
    statuses = {s.name: s.default_status.value for s in local.sensor_defs}
    assert statuses == {
        **{
            f"{u}_{s}": "STOPPED"
            for u in demos
            for s in (
                "landing_file_sensor",
                "outcome_file_sensor",
                "drift_retraining_sensor",
                "decay_retraining_sensor",
                "follow_new_champion",
            )
        },
        "lifecycle_failure_sensor": "RUNNING",
        "cost_sensor": "STOPPED",
    }
    crons = {
        "training": "0 3 * * *",
        "batch_inference": "0 * * * *",
        "monitoring": "30 4 * * *",
        "housekeeping": "0 2 * * *",
    }
    assert {s.name: (s.default_status.value, s.cron_schedule) for s in local.schedule_defs} == {
        f"{u}_{kind}_schedule": ("STOPPED", cron) for u in demos for kind, cron in crons.items()
    }
    assert load_settings("prod").automation.default_status == "running"
    prod = build_definitions(load_project("prod")).get_repository_def()
    assert {s.default_status.value for s in [*prod.sensor_defs, *prod.schedule_defs]} == {"RUNNING"}


def test_followers_use_declarative_automation(local_root):
    defs = build_definitions(load_project("local"))
    for key in (AssetKey(["churn", "churn_predictions"]), AssetKey(["churn", "churn_drift_report"])):
        assert defs.resolve_assets_def(key).automation_conditions_by_key[key] is not None
