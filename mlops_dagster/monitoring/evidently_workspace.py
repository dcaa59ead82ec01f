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
_PANELS = {
    # title -> (Evidently metric, its labels): what the dashboard plots over time, per problem type
    "drift": [("Share of drifted feature columns", "DriftedColumnsCount", {"value_type": "share"})],
    "classification": [
        ("ROC AUC on outcomes", "RocAuc", {}),
        ("Recall on outcomes", "Recall", {}),
        ("Precision on outcomes", "Precision", {}),
    ],
    "regression": [("RMSE on outcomes", "RMSE", {}), ("MAE on outcomes", "MAE", {})],
}


def add_snapshot(folder: str, use_case: str, snapshot, problem_type: str) -> str:
    """Add ``snapshot`` to ``use_case``'s project in the workspace at ``folder`` (created, with its
    dashboard, the first time); returns the project's id."""
    from evidently.ui.workspace import Workspace

    with _ADDING:
        workspace = Workspace.create(folder)
        found = workspace.search_project(use_case)
        project = found[0] if found else _new_project(workspace, use_case, problem_type)
        workspace.add_run(project.id, snapshot, include_data=False)
    return str(project.id)


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


def _new_project(workspace, use_case: str, problem_type: str):
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import line_plot_panel

    project = workspace.create_project(
        use_case,
        description=f"mlops_dagster use case {use_case}: drift and "
        "model performance on outcomes, one snapshot per report",
    )
    for title, metric, labels in [*_PANELS["drift"], *_PANELS[problem_type]]:
        project.dashboard.add_panel(
            line_plot_panel(
                title, [PanelMetric(metric=metric, metric_labels=labels, legend=title)], size="half"
            )
        )
    return project
