"""Names: every asset, table, job and check name of a use case, made in one place."""

from __future__ import annotations

from dataclasses import dataclass


def capture_prefix(endpoint: str) -> str:
    """The prefix of an endpoint's auto-capture (inference) table: Databricks names the table
    ``<prefix>_payload``."""
    return endpoint.replace("-", "_")


@dataclass(frozen=True)
class Names:
    """Every asset, table and check name of one use case, made here from its config (``name`` and
    ``dataset.name``) and nowhere else."""

    use_case: str
    dataset: str

    @property
    def prefix(self) -> list[str]:
        """The key prefix of every asset of the use case (``sales``: ``sales/sales_features``)."""
        return [self.use_case]

    def key(self, asset: str) -> list[str]:
        """An asset's full key path (wrap it in ``dagster.AssetKey``)."""
        return [*self.prefix, asset]

    def group(self, stage: str) -> str:
        """The UI group of a lifecycle stage: ``sales_training``, one set of groups per use case."""
        return f"{self.use_case}_{stage}"

    def op(self, name: str) -> str:
        """A step (op) name, unique in a code location holding several use cases."""
        return f"{self.use_case}__{name}"

    def job(self, kind: str) -> str:
        """``sales_lifecycle_job``, ``sales_training_job``, ..."""
        return f"{self.use_case}_{kind}_job"

    def automation(self, name: str) -> str:
        """A sensor or schedule of the use case: ``sales_landing_file_sensor``, ..."""
        return f"{self.use_case}_{name}"

    def ingest(self, loaded: str) -> str:
        """The op that ingests landing files into ``loaded`` (the raw table or the outcomes)."""
        return self.op("ingest_landing_files" if loaded == self.raw else f"ingest_{loaded}")

    @property
    def raw(self) -> str:
        return f"raw_{self.dataset}"

    @property
    def quarantine(self) -> str:
        return f"raw_{self.dataset}_quarantine"

    @property
    def features(self) -> str:
        """The features asset and its Delta table (and its feature-registry entry)."""
        return f"{self.use_case}_features"

    @property
    def labels(self) -> str:
        return f"{self.use_case}_labels"

    @property
    def features_online(self) -> str:
        return f"{self.use_case}_features_online"

    @property
    def training_set(self) -> str:
        return f"{self.use_case}_training_set"

    @property
    def model(self) -> str:
        """The trained-model asset (the registered model's name is ``mlflow.model_name``)."""
        return f"{self.use_case}_model"

    @property
    def endpoint(self) -> str:
        """The serving-endpoint asset (the endpoint's own name is ``serving.endpoint``)."""
        return f"{self.use_case}_endpoint"

    @property
    def predictions(self) -> str:
        return f"{self.use_case}_predictions"

    @property
    def probability(self) -> str:
        """The predictions' column with the positive class's probability."""
        return f"{self.use_case}_probability"

    @property
    def drift_report(self) -> str:
        return f"{self.use_case}_drift_report"

    @property
    def drift_metrics(self) -> str:
        return f"{self.use_case}_drift_metrics"

    @property
    def drift_columns(self) -> str:
        """Drift per feature column over time, against the champion's training data and the batch before."""
        return f"{self.use_case}_drift_columns"

    @property
    def ground_truth(self) -> str:
        """Outcomes that arrived after the predictions (asset and table)."""
        return f"{self.use_case}_ground_truth"

    @property
    def ground_truth_quarantine(self) -> str:
        return f"{self.use_case}_ground_truth_quarantine"

    @property
    def prediction_log(self) -> str:
        """Every batch prediction ever made (append-only), for judging them when outcomes arrive."""
        return f"{self.use_case}_prediction_log"

    @property
    def model_performance(self) -> str:
        """The performance asset and its history table."""
        return f"{self.use_case}_model_performance"

    @property
    def estimated_performance(self) -> str:
        """The asset estimating the champion's performance before outcomes, and its history table."""
        return f"{self.use_case}_estimated_performance"

    @property
    def endpoint_estimates(self) -> str:
        """The history table of the performance estimated per window of the endpoint's answers."""
        return f"{self.use_case}_endpoint_estimated_performance"

    @property
    def data_quality(self) -> str:
        """The asset profiling each ingested batch, and its history table."""
        return f"{self.use_case}_data_quality"

    @property
    def housekeeping(self) -> str:
        """The asset that applies retention, compaction and vacuum to the use case's tables and models."""
        return f"{self.use_case}_housekeeping"
