"""Retraining sensors: retrain when the latest drift report says the data drifted, or when the latest
performance figures say the champion decayed. Each acts at most once per report and once per
cool-down, and not when a model was already trained after the data behind the signal arrived."""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from dagster import AssetKey, RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from ..settings import RetrainSensorSettings, Settings


def _latest(instance, asset: list[str]):
    """The newest materialization record of ``asset`` (with its storage id), or None."""
    records = instance.fetch_materializations(AssetKey(asset), limit=1).records
    return records[0] if records else None


def _latest_data_arrival(instance, loaded: list[str]) -> float | None:
    """When new rows last reached ``loaded`` (ingestions that loaded nothing skipped)."""
    records = instance.fetch_materializations(AssetKey(loaded), limit=100).records
    for record in records:  # newest first
        rows = record.asset_materialization.metadata.get("rows_loaded")
        if rows is not None and rows.value > 0:
            return record.timestamp
    return None


@dataclass(frozen=True)
class _Signal:
    """What one retraining sensor watches."""

    trigger: str  # the run's mlops/trigger tag: drift | decay | estimated_decay
    sensor: str
    report_name: str  # what the report is called in messages
    report: str  # the asset whose newest materialization is the signal
    data: str  # the asset whose new rows the signal is about
    settings: RetrainSensorSettings
    # (report metadata) -> (acted on?, figures for messages, run tags)
    read: Callable[[dict], tuple[bool, str, dict[str, str]]]
    quiet: str  # what a report that needs no retraining says


def drift_sensor(settings: Settings, job, default_status):
    names = settings.names

    def read(metadata):
        share = metadata["drift_share"].value
        return (
            bool(metadata["dataset_drift"].value),
            f"share {share:.2f}",
            {"mlops/drift_share": f"{share:.3f}"},
        )

    signal = _Signal(
        "drift",
        "drift_retraining_sensor",
        "drift report",
        names.drift_report,
        names.raw,
        settings.automation.drift_sensor,
        read,
        "no dataset drift",
    )
    return _retraining_sensor(
        settings,
        job,
        default_status,
        signal,
        (f"Requests a `{job.name}` run when the latest `{names.drift_report}` found dataset drift"),
    )


def decay_sensor(settings: Settings, job, default_status):
    names, metric = settings.names, settings.validation.compare_metric

    def read(metadata):
        # Judged against its validation figure only when both are there (a version registered without
        # `metric.<name>` tags has figures on outcomes but nothing to compare them with).
        if f"validated_{metric}" not in metadata:
            return False, "the champion was not judged", {}
        now, validated = metadata[f"champion_{metric}"].value, metadata[f"validated_{metric}"].value
        figures = f"{metric} {now:.3f} on outcomes vs {validated:.3f} at validation"
        return (
            bool(metadata["decayed"].value),
            figures,
            {
                "mlops/decay_metric": metric,
                "mlops/decay_measured": f"{now:.4f}",
                "mlops/decay_validated": f"{validated:.4f}",
                "mlops/decay_model_version": str(metadata["champion_version"].value),
            },
        )

    signal = _Signal(
        "decay",
        "decay_retraining_sensor",
        "performance report",
        names.model_performance,
        names.ground_truth,
        settings.automation.decay_sensor,
        read,
        "no decay",
    )
    return _retraining_sensor(
        settings,
        job,
        default_status,
        signal,
        (
            f"Requests a `{job.name}` run when the latest `{names.model_performance}` found that the champion's "
            f"{metric} on outcomes fell more than {settings.monitoring.max_performance_drop:g} below its validation "
            "figure"
        ),
    )


def estimated_decay_sensor(settings: Settings, job, default_status):
    """Retrain on the champion's estimated performance (before outcomes): only with
    ``automation.decay_sensor.on_estimates``."""
    names, metric = settings.names, settings.validation.compare_metric

    def read(metadata):
        from ..ml.performance import ESTIMATED_ON  # here: the code location does not import pandas

        # The batch's estimate and the endpoint's newest window's: the one that fell furthest speaks.
        judged = [w for w, p in ESTIMATED_ON.items() if f"{p}estimated_drop" in metadata]
        if not judged:
            return False, f"{metric} not estimated or not validated", {}
        where = max(judged, key=lambda w: metadata[f"{ESTIMATED_ON[w]}estimated_drop"].value)
        prefix = ESTIMATED_ON[where]
        estimated = metadata[f"{prefix}estimated_{metric}"].value
        fell = metadata[f"{prefix}estimated_drop"].value
        return (
            bool(metadata["estimated_decay"].value),
            f"{where}'s estimated {metric} {estimated:.3f} ({metadata['method'].value}), {fell:.3f} below validation",
            {
                "mlops/decay_metric": metric,
                "mlops/decay_estimated": f"{estimated:.4f}",
                "mlops/decay_estimated_on": where,
                "mlops/decay_model_version": str(metadata["champion_version"].value),
            },
        )

    signal = _Signal(
        "estimated_decay",
        "estimated_decay_retraining_sensor",
        "performance estimate",
        names.estimated_performance,
        names.raw,
        settings.automation.decay_sensor,
        read,
        "no estimated decay",
    )
    return _retraining_sensor(
        settings,
        job,
        default_status,
        signal,
        (
            f"Requests a `{job.name}` run when the latest `{names.estimated_performance}` estimated (before "
            f"outcomes) that the champion's {metric} fell more than {settings.monitoring.max_performance_drop:g} "
            "below its validation figure"
        ),
    )


def _retraining_sensor(settings: Settings, job, default_status, signal: _Signal, what: str):
    names = settings.names
    cooldown = signal.settings.cooldown_minutes * 60

    @sensor(
        name=names.automation(signal.sensor),
        job=job,
        minimum_interval_seconds=signal.settings.interval_seconds,
        default_status=default_status,
        description=(
            f"{what}: never twice for the same report, at most once per "
            f"{signal.settings.cooldown_minutes:g} minutes, and not when a model was already trained after "
            f"the newest `{signal.data}` rows arrived."
        ),
    )
    def retraining_sensor(context: SensorEvaluationContext):
        state = json.loads(context.cursor) if context.cursor else {}
        report = _latest(context.instance, names.key(signal.report))
        if report is None:
            return SkipReason(f"no {signal.report_name} yet")
        if report.storage_id == state.get("handled_report"):
            return SkipReason(f"{signal.report_name} {report.storage_id} was already handled")
        acted_on, figures, tags = signal.read(report.asset_materialization.metadata)
        handled = json.dumps({**state, "handled_report": report.storage_id})
        if not acted_on:
            return SensorResult(
                skip_reason=SkipReason(f"latest report: {signal.quiet} ({figures})"), cursor=handled
            )
        figures = f"{signal.trigger} ({figures})"
        trained = _latest(context.instance, names.key(names.model))
        arrived = _latest_data_arrival(context.instance, names.key(signal.data))
        if trained is not None and arrived is not None and trained.timestamp > arrived:
            return SensorResult(
                skip_reason=SkipReason(
                    f"{figures} in report {report.storage_id}, but a model was already "
                    f"trained after the newest data arrived (run {trained.run_id})"
                ),
                cursor=handled,
            )
        wait = state.get("last_triggered", 0) + cooldown - time.time()
        if wait > 0:
            # The report stays unhandled: it is acted on once the cool-down is over.
            return SkipReason(f"{figures}, but in cool-down for another {wait / 60:.0f} min")
        request = RunRequest(
            run_key=f"{signal.trigger}-report-{report.storage_id}",
            tags={
                "mlops/trigger": signal.trigger,
                f"mlops/{signal.trigger}_report_run": report.run_id,
                **tags,
            },
        )
        cursor = json.dumps({"handled_report": report.storage_id, "last_triggered": time.time()})
        return SensorResult(run_requests=[request], cursor=cursor)

    return retraining_sensor
