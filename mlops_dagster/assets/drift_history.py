"""Stage `monitoring`: drift kept per column over time, against two references: the champion's
training data (the drift report's) and the batch before the newest (consecutive windows), so a
slow slide shows as well as a jump. Called by the drift report; the arithmetic is in `ml/drift.py`."""

from datetime import datetime
from typing import TYPE_CHECKING

from ..monitoring.evidently_workspace import add_figures
from ..resources.lakehouse import Lakehouse
from ..settings import Settings
from .metadata import commit_info

if TYPE_CHECKING:
    import pandas as pd

    from ..ml.drift import DriftResult


def drift_over_time(
    context, settings: Settings, session, result: "DriftResult", current: "pd.DataFrame", now: datetime
) -> dict:
    """Append the per-column rows of ``result`` and, when the current data is the newest landing
    batch and one came before it, of the newest against that one; the latter's metadata."""
    import pandas as pd

    from ..ml.drift import column_history, detect_drift, drift_sample, previous_batch

    lakehouse: Lakehouse = context.resources.lakehouse
    fs, mon, table = settings.features, settings.monitoring, settings.table(settings.names.features)
    base = {"report_time": pd.Timestamp(now), "dagster_run_id": context.run.run_id}
    rows, metadata = [column_history(result, "champion_training", base)], {}
    before = previous_batch(lakehouse.read_spark(session, table)) if mon.current == "landing_batch" else None
    if before is not None:
        previous, _ = drift_sample(
            before,
            None,
            lakehouse.row_count(table),
            mon.sample_rows,
            fs.columns,
            settings.training.seed,
            settings.dataset.key,
        )
        consecutive = detect_drift(
            previous,
            current[fs.columns],
            fs.numeric_columns,
            fs.categorical,
            mon.drift_share,
            metadata={"reference": "the batch before the newest", "current": "the newest landing batch"},
        )
        rows.append(column_history(consecutive, "previous_batch", base))
        metadata = {
            "previous_batch_drift_share": consecutive.drift_share,
            "previous_batch_drifted": ", ".join(consecutive.drifted()) or "none",
        }
        figures = {"previous_batch_drift_share": consecutive.drift_share}
        add_figures(
            settings.evidently_path,
            settings.name,
            "drift_against_previous_batch",
            figures,
            settings.problem_type,
        )
    lakehouse.write(
        settings.table(settings.names.drift_columns),
        pd.concat(rows, ignore_index=True),
        "append",
        commit_info=commit_info(context),
        description="Drift per feature column and report, against the champion's training data "
        "(champion_training) and the batch before (previous_batch).",
    )
    return metadata
