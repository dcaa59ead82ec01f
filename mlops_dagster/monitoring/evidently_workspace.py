"""Every Evidently report is also a snapshot in a local Evidently workspace (one project per use
case, with a dashboard of the key panels), so Evidently's own monitoring UI shows drift and
performance over time: ``evidently ui --workspace $MLOPS_HOME/evidently`` (``make monitor-ui``)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

# One snapshot added at a time in this process. Opening the workspace reads every snapshot file,
# and Evidently writes them in place: a run's drift report and performance report (steps in threads
# of one process) would otherwise read each other's half-written JSON (JSONDecodeError).
_ADDING = threading.Lock()
_ESTIMATE_LINES = [
    ("estimated_", "", "estimated"),
    ("estimated_", "_lower", "band, lower"),
    ("estimated_", "_upper", "band, upper"),
    ("realized_", "", "realized"),
]
# title -> [(Evidently metric, its labels, legend)]: what the dashboard plots over time, per kind.
# `MeanValue` of a one-row column is a figure one of our assets computed (`add_figures`).
_PANELS = {
    "drift": {
        "Share of drifted feature columns": [
            ("DriftedColumnsCount", {"value_type": "share"}, "against the champion's training data")
        ],
        "Share of drifted feature columns against the previous batch": [
            ("MeanValue", {"column": "previous_batch_drift_share"}, "against the batch before")
        ],
        "Data quality of the newest batch": [
            ("MeanValue", {"column": "null_share"}, "null share (mean over columns)"),
            ("MeanValue", {"column": "outside_contract_share"}, "share outside the contract"),
        ],
        "Rows per batch": [("MeanValue", {"column": "rows"}, "rows")],
    },
    "classification": {
        "ROC AUC on outcomes": [("RocAuc", {}, "ROC AUC")],
        "Recall on outcomes": [("Recall", {}, "recall")],
        "Precision on outcomes": [("Precision", {}, "precision")],
        "ROC AUC estimated before outcomes (CBPE), realized once they arrive": [
            ("MeanValue", {"column": f"{kind}roc_auc{end}"}, legend) for kind, end, legend in _ESTIMATE_LINES
        ],
        "ROC AUC of the endpoint's newest window, estimated (CBPE) and realized": [
            ("MeanValue", {"column": f"endpoint_{kind}roc_auc{end}"}, legend)
            for kind, end, legend in _ESTIMATE_LINES
        ],
    },
    "regression": {
        "RMSE on outcomes": [("RMSE", {}, "RMSE")],
        "MAE on outcomes": [("MAE", {}, "MAE")],
        "RMSE estimated before outcomes (DLE), realized once they arrive": [
            ("MeanValue", {"column": f"{kind}rmse{end}"}, legend) for kind, end, legend in _ESTIMATE_LINES
        ],
        "RMSE of the endpoint's newest window, estimated (DLE) and realized": [
            ("MeanValue", {"column": f"endpoint_{kind}rmse{end}"}, legend)
            for kind, end, legend in _ESTIMATE_LINES
        ],
    },
}


def add_snapshot(folder: str, use_case: str, snapshot, problem_type: str) -> str:
    """Add ``snapshot`` to ``use_case``'s project in the workspace at ``folder`` (created, with its
    dashboard, the first time); returns the project's id."""
    from evidently.ui.workspace import Workspace

    with _ADDING:
        workspace = Workspace.create(folder)
        found = workspace.search_project(use_case)
        project = found[0] if found else _new_project(workspace, use_case)
        _add_missing_panels(workspace, project, problem_type)
        workspace.add_run(project.id, snapshot, include_data=False)
    return str(project.id)


def add_figures(folder: str, use_case: str, kind: str, figures: dict[str, float], problem_type: str) -> None:
    """Figures one of our assets computed (a performance estimate, a batch's data quality, drift
    against the previous batch) as a snapshot of their own, tagged ``kind``, one ``MeanValue`` of a
    one-row column each, so the dashboard plots them over time beside Evidently's own metrics. NaN
    figures are left out (a line with a gap)."""
    import pandas as pd
    from evidently import Report
    from evidently.metrics import MeanValue

    known = {name: float(value) for name, value in figures.items() if value == value}
    if known:
        frame = pd.DataFrame({name: [value] for name, value in known.items()})
        snapshot = Report([MeanValue(column=name) for name in known]).run(frame, None, tags=[kind])
        add_snapshot(folder, use_case, snapshot, problem_type)


def prune_snapshots(folder: str, use_case: str, before: datetime, dry_run: bool) -> int:
    """Delete ``use_case``'s snapshots taken before ``before`` from the workspace at ``folder`` (none
    in a dry run); how many are (or would be) deleted."""
    if not Path(folder).is_dir():
        return 0
    from evidently.ui.workspace import Workspace

    with _ADDING:
        workspace = Workspace.create(folder)
        found = workspace.search_project(use_case)
        if not found:
            return 0
        project, old = found[0], []
        for snapshot_id in workspace.list_runs(project.id):
            snapshot = workspace.get_run(project.id, snapshot_id)
            taken = snapshot.timestamp  # naive local time, as Evidently stamps it
            if (taken.astimezone(UTC) if taken.tzinfo is None else taken) < before:
                old.append(snapshot_id)
        if not dry_run:
            for snapshot_id in old:
                workspace.delete_run(project.id, snapshot_id)
    return len(old)


def _new_project(workspace, use_case: str):
    return workspace.create_project(
        use_case,
        description=f"mlops_dagster use case {use_case}: drift, data quality and model performance, "
        "estimated before outcomes and realized on them, one snapshot per report",
    )


def _add_missing_panels(workspace, project, problem_type: str) -> None:
    """The panels of ``_PANELS`` the project's dashboard lacks (all for a new project; the newer
    ones for a project an older version made)."""
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import line_plot_panel

    shown = {panel.title for panel in workspace.get_dashboard(project.id).panels}
    for title, lines in {**_PANELS["drift"], **_PANELS[problem_type]}.items():
        if title not in shown:
            metrics = [
                PanelMetric(metric=m, metric_labels=labels, legend=legend) for m, labels, legend in lines
            ]
            project.dashboard.add_panel(line_plot_panel(title, metrics, size="half"))
