"""Drift sensor: retrain when the latest drift report says the data drifted, at most once per
report and once per cool-down, and not when a model has already learned from the drifted data."""

import json
import time

from dagster import AssetKey, RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from ..settings import Settings


def _latest(instance, asset: list[str]):
    """The newest materialization record of ``asset`` (with its storage id), or None."""
    records = instance.fetch_materializations(AssetKey(asset), limit=1).records
    return records[0] if records else None


def _latest_data_arrival(instance, raw: list[str]) -> float | None:
    """When the newest landing data reached the raw table (ingestions that loaded nothing skipped)."""
    records = instance.fetch_materializations(AssetKey(raw), limit=100).records
    for record in records:  # newest first
        loaded = record.asset_materialization.metadata.get("rows_loaded")
        if loaded is not None and loaded.value > 0:
            return record.timestamp
    return None


def drift_sensor(settings: Settings, job, default_status):
    cfg, names = settings.automation.drift_sensor, settings.names
    cooldown = cfg.cooldown_minutes * 60

    @sensor(
        name=names.automation("drift_retraining_sensor"), job=job, minimum_interval_seconds=cfg.interval_seconds,
        default_status=default_status,
        description=(
            f"Requests a `{job.name}` run when the latest `{names.drift_report}` found dataset drift: never "
            f"twice for the same report, at most once per {cfg.cooldown_minutes:g} minutes, and not when a "
            "model was already trained after the drifted data arrived (the file-arrival run retrains too)."
        ),
    )
    def drift_retraining_sensor(context: SensorEvaluationContext):
        state = json.loads(context.cursor) if context.cursor else {}
        report = _latest(context.instance, names.key(names.drift_report))
        if report is None:
            return SkipReason("no drift report yet")
        if report.storage_id == state.get("handled_report"):
            return SkipReason(f"drift report {report.storage_id} was already handled")
        metadata = report.asset_materialization.metadata
        drifted = bool(metadata["dataset_drift"].value)
        share = metadata["drift_share"].value
        handled = json.dumps({**state, "handled_report": report.storage_id})
        if not drifted:
            return SensorResult(skip_reason=SkipReason(f"latest report: no dataset drift (share {share:.2f})"),
                                cursor=handled)
        trained = _latest(context.instance, names.key(names.model))
        arrived = _latest_data_arrival(context.instance, names.key(names.raw))
        if trained is not None and arrived is not None and trained.timestamp > arrived:
            return SensorResult(
                skip_reason=SkipReason(
                    f"drift (share {share:.2f}) in report {report.storage_id}, but a model was already "
                    f"trained after the newest data arrived (run {trained.run_id})"
                ),
                cursor=handled,
            )
        wait = state.get("last_triggered", 0) + cooldown - time.time()
        if wait > 0:
            # The report stays unhandled: it is acted on once the cool-down is over.
            return SkipReason(f"drift (share {share:.2f}), but in cool-down for another {wait / 60:.0f} min")
        request = RunRequest(
            run_key=f"drift-report-{report.storage_id}",
            tags={"mlops/trigger": "drift", "mlops/drift_report_run": report.run_id,
                  "mlops/drift_share": f"{share:.3f}"},
        )
        cursor = json.dumps({"handled_report": report.storage_id, "last_triggered": time.time()})
        return SensorResult(run_requests=[request], cursor=cursor)

    return drift_retraining_sensor
