"""The summary ``mlops run`` prints of a run: its outcome, the tables it wrote, the model it trained,
registered and served, its predictions and monitoring verdicts, and what failed."""

from __future__ import annotations


def run_summary(result, seconds: float, settings) -> str:
    """The readable summary of ``result``, a run of one of ``settings``' jobs that took ``seconds``."""
    meta = _materializations(result, settings.names.prefix)
    outcome = "SUCCESS" if result.success else "FAILURE"
    lines = [f"{result.dagster_run.job_name} run {result.run_id}: {outcome} in {seconds:.1f} s", ""]
    lines += _data_lines(meta, settings)
    lines += _model_lines(meta, settings)
    lines += _monitoring_lines(meta, settings)
    lines += _housekeeping_lines(meta.get(settings.names.housekeeping)) or _disk_lines(settings)
    lines += _failure_lines(result)
    return "\n".join(lines)


def _materializations(result, prefix) -> dict[str, dict]:
    """The metadata of each asset the run materialized, by asset."""
    meta = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        path = mat.asset_key.path
        # This use case's assets by their name; others (project-wide) by their full key.
        meta[path[-1] if path[:-1] == prefix else mat.asset_key.to_user_string()] = {
            k: v.value for k, v in mat.metadata.items()
        }
    return meta


def _data_lines(meta: dict, settings) -> list[str]:
    """The Delta tables written, and what was read from a source table or database."""
    names, lines = settings.names, []
    tables = [(k, m) for k, m in meta.items() if "delta_version" in m]
    if tables:
        lines.append("Tables (Delta):")
        for key, m in tables:
            lines.append(
                f"  {m['dagster/table_name']:<48} v{m['delta_version']:<4} {m['dagster/row_count']:>8} rows  ({key})"
            )
    if "read" in meta.get(names.raw, {}):  # a source table or database, not landing files
        m = meta[names.raw]
        lines.append(
            f"Source:            {m.get('source_table', m.get('source'))}: {m['read']}, "
            f"{m['rows_loaded']} rows loaded"
        )
    return lines


def _model_lines(meta: dict, settings) -> list[str]:
    """The model trained, its registered version, the champion decision and the endpoint serving it."""
    from ..settings import PROBLEM_METRICS

    names, lines = settings.names, []
    if names.model in meta:
        m = meta[names.model]
        lines += [
            "",
            f"MLflow run:        {m['mlflow_run_id']}  ({m['mlflow_tracking_uri']})",
            "Holdout metrics:   "
            + ", ".join(
                f"{k} {m[k]:.3f}"
                for k in PROBLEM_METRICS[settings.problem_type]
                if k in m and k != "accuracy"
            ),
        ]
    if "challenger_model_version" in meta:
        m = meta["challenger_model_version"]
        lines.append(
            f"Model version:     {m['model_name']} v{m['model_version']} (alias {m['alias']}, validation {m['validation']})"
        )
    if "champion_model_version" in meta:
        m = meta["champion_model_version"]
        lines.append(f"Champion:          v{m['champion_version']}: {m['decision']}")
    if names.endpoint in meta:
        m = meta[names.endpoint]
        lines.append(
            f"Endpoint:          {m['url']} ({m['state']}: {m['traffic']}; inference table {m['inference_table']})"
        )
        if settings.target == "local":
            lines.append(
                "                   a token to query it (curl -H 'Authorization: Bearer <token>'): "
                "mlops token create --scope query"
            )
    return lines


def _monitoring_lines(meta: dict, settings) -> list[str]:
    """The predictions made, the drift found, the outcomes loaded and the model's measured performance."""
    names, ds, lines = settings.names, settings.dataset, []
    if names.predictions in meta:
        m = meta[names.predictions]
        outcome = (
            f"{m['predicted_positive_rate']:.1%} predicted {ds.label} = {ds.positive_label!r}"
            if "predicted_positive_rate" in m
            else f"mean predicted {ds.label} {m['mean_prediction']:.4g}"
        )
        lines.append(f"Predictions:       {m['rows_scored']} rows by v{m['model_version']} ({outcome})")
    if names.drift_report in meta:
        m = meta[names.drift_report]
        lines += [
            f"Drift:             {m['verdict']} ({m['drifted_columns']} columns, share {m['drift_share']:.2f}, "
            f"threshold {m['threshold_share']})",
            f"Drift report:      {m['report_path']}",
        ]
    if names.ground_truth in meta and meta[names.ground_truth]["files_ingested"]:
        m = meta[names.ground_truth]
        lines.append(f"Outcomes:          {m['rows_loaded']} loaded from {m['files_ingested']} file(s)")
    if names.model_performance in meta:
        m = meta[names.model_performance]
        lines.append(
            f"Performance:       {m.get('verdict', m.get('reason'))}"
            + (
                f" ({m['labelled_predictions']} labelled predictions)"
                if m.get("labelled_predictions")
                else ""
            )
        )
        if "report_path" in m:
            lines.append(f"Performance report: {m['report_path']}")
    return lines


def _housekeeping_lines(m: dict | None) -> list[str]:
    """What housekeeping removed (or would), and the disk use of each table and the MLflow store."""
    if m is None:
        return []
    verb = "would delete" if m["dry_run"] else "deleted"
    return [
        f"Housekeeping:      {verb} {m['rows_deleted']} rows, {m['runs_deleted']} MLflow runs, "
        f"{m['reports_deleted']} reports, {m['evidently_snapshots_deleted']} Evidently snapshots; "
        f"{m['landing_files_removed']} landing files archived or deleted; files {m['files_before']} -> {m['files_after']}, "
        f"{m['bytes_freed']} bytes freed",
        "Tables:",
        m["tables"],
        "Model versions:",
        m["model_versions"],
        f"Disk use ({m['disk_bytes_total']} bytes):",
        m["disk_use"],
    ]


def _disk_lines(settings) -> list[str]:
    """How much disk the use case's tables and the MLflow store take (under ``root``, where they
    can be listed from here), so growth is seen run after run."""
    if settings.root is None:
        return []
    from ..assets.housekeeping import disk_use
    from ..resources.local_lakehouse import LocalLakehouse

    rows = disk_use(LocalLakehouse(root=str(settings.root / "lakehouse")), settings)
    tables = [r for r in rows if r["what"] != "MLflow store"]
    store = next((r for r in rows if r["what"] == "MLflow store"), None)
    line = (
        f"Disk use:          tables {sum(r['bytes'] for r in tables) / 2**20:.1f} MB "
        f"({sum(r['files'] for r in tables)} data files, {len(tables)} tables)"
    )
    if store:
        line += f", MLflow store {store['bytes'] / 2**20:.1f} MB"
    return ["", line + " (mlops housekeeping applies the retention)"]


def _failure_lines(result) -> list[str]:
    """The asset checks that failed, and on a failed run the steps that failed and why."""
    lines = []
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            if not data.passed:
                lines.append(
                    f"Check failed:      {data.asset_key.to_user_string()}:{data.check_name} "
                    f"({data.severity.value})"
                )
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure:
                error = event.step_failure_data.error
                cause = error.cause or error
                lines.append(f"Step failed:       {event.step_key}: {cause.message.strip()}")
    return lines
