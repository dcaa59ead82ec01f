"""The housekeeping job: retention, compaction and vacuum of one use case (``mlops housekeeping``)."""

from dagster import AssetSelection, define_asset_job

from ..settings import USE_CASE_TAG, Settings


def housekeeping_job(settings: Settings):
    """``<use case>_housekeeping_job``: the housekeeping asset alone (config ``dry_run``)."""
    names = settings.names
    return define_asset_job(
        names.job("housekeeping"),
        AssetSelection.assets(names.key(names.housekeeping)),
        tags={USE_CASE_TAG: names.use_case},
        description="Delete rows, reports, runs and model versions past their retention; compact and "
        "vacuum the tables written in small appends (retention in the config).",
    )
