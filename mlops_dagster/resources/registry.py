"""The model registry: MLflow's, on SQLite locally and Unity Catalog (``databricks-uc``) on Databricks.

Both speak the same client API (versions, aliases, tags), so one implementation serves every
target; only the URIs differ.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from dagster import ConfigurableResource

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHALLENGER = "challenger"
CHAMPION = "champion"
# The tag that records a version's validation outcome: "passed", "failed", "unvalidated", or
# "abandoned" (its run died before validating it).
VALIDATION_TAG = "validation_status"
ABANDONED = "abandoned"
# The tag naming the Dagster run that registered a version.
REGISTERED_BY_TAG = "dagster_run_id"


class ModelRegistry(ConfigurableResource):
    """Registered versions of the project's model, with ``challenger`` / ``champion`` aliases."""

    tracking_uri: str
    registry_uri: str
    # One registry serves every use case: assets act on ``registry.for_use_case(settings)``.
    model_name: str = ""

    def for_model(self, model_name: str) -> ModelRegistry:
        """This registry, acting on the registered model ``model_name``."""
        return ModelRegistry(
            tracking_uri=self.tracking_uri, registry_uri=self.registry_uri, model_name=model_name
        )

    def for_use_case(self, settings) -> ModelRegistry:
        """This registry, acting on the use case's registered model (``mlflow.model_name``)."""
        return self.for_model(settings.mlflow.model_name)

    @staticmethod
    def validation_status(version: ModelVersion) -> str | None:
        """The recorded validation outcome of a version (None: never validated)."""
        return version.tags.get(VALIDATION_TAG)

    @classmethod
    def is_validated(cls, version: ModelVersion) -> bool:
        """Whether the version passed validation: the one gate of promotion, rollout and approval."""
        return cls.validation_status(version) == "passed"

    def client(self) -> MlflowClient:
        from mlflow import MlflowClient

        if not self.model_name:
            raise RuntimeError("this ModelRegistry names no model: use registry.for_use_case(settings)")
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)

    def register(
        self, model_uri: str, run_id: str, model_id: str | None, tags: dict[str, str], description: str
    ) -> ModelVersion:
        from mlflow.exceptions import MlflowException

        client = self.client()
        try:
            client.create_registered_model(self.model_name)
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise
        return client.create_model_version(
            self.model_name,
            source=model_uri,
            run_id=run_id,
            model_id=model_id,
            tags=tags,
            description=description,
        )

    def abandon_unvalidated(self, run_id: str) -> list[str]:
        """Tag ``abandoned`` every version another run registered without recording its validation:
        that run died between the two (one run of a use case at a time, so it is not running now).
        Such a version is never promoted nor served. Returns their numbers."""
        client, found = self.client(), []
        for mv in client.search_model_versions(f"name='{self.model_name}'"):
            registered_by = mv.tags.get(REGISTERED_BY_TAG)
            if registered_by and registered_by != run_id and self.validation_status(mv) is None:
                self.set_tags(
                    mv.version,
                    {
                        VALIDATION_TAG: ABANDONED,
                        "validation_details": f"registered by run {registered_by}, which ended before validating it",
                    },
                )
                found.append(str(mv.version))
        return found

    def by_alias(self, alias: str) -> ModelVersion | None:
        from mlflow.exceptions import MlflowException

        try:
            return self.client().get_model_version_by_alias(self.model_name, alias)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
                return None
            raise

    def version(self, version: str | int) -> ModelVersion:
        return self.client().get_model_version(self.model_name, str(version))

    def versions(self) -> list[ModelVersion]:
        """Every registered version of the model (none when it is not registered yet)."""
        return list(self.client().search_model_versions(f"name = '{self.model_name}'"))

    def aliases(self) -> dict[str, str]:
        """Alias to version number (empty when the model is not registered yet)."""
        from mlflow.exceptions import MlflowException

        try:
            return dict(self.client().get_registered_model(self.model_name).aliases)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
                return {}
            raise

    def delete_version(self, version: str | int) -> None:
        self.client().delete_model_version(self.model_name, str(version))

    def runs_started_before(self, experiment: str, before: datetime) -> list[tuple[str, datetime]]:
        """The active runs of ``experiment`` (id, start) started before ``before``."""
        from datetime import UTC
        from datetime import datetime as dt

        client = self.client()
        found = client.get_experiment_by_name(experiment)
        if found is None:
            return []
        runs = client.search_runs(
            [found.experiment_id],
            f"attributes.start_time < {int(before.timestamp() * 1000)}",
            max_results=50_000,
        )
        return [(r.info.run_id, dt.fromtimestamp(r.info.start_time / 1000, UTC)) for r in runs]

    def delete_runs(self, run_ids: list[str]) -> None:
        """Delete runs; on a local SQLite store their rows and artifacts are purged at once (a
        Databricks workspace purges deleted runs itself)."""
        import subprocess
        import sys

        client = self.client()
        for run_id in run_ids:
            client.delete_run(run_id)
        if run_ids and self.tracking_uri.startswith("sqlite:"):
            store = ["--backend-store-uri", self.tracking_uri, "--tracking-uri", self.tracking_uri]
            gc = subprocess.run(
                [sys.executable, "-m", "mlflow", "gc", *store, "--run-ids", ",".join(run_ids)],
                capture_output=True,
                text=True,
            )
            if gc.returncode:
                raise RuntimeError(f"mlflow gc could not purge the deleted runs: {gc.stderr.strip()[-2000:]}")

    def set_alias(self, alias: str, version: str | int) -> None:
        self.client().set_registered_model_alias(self.model_name, alias, str(version))

    def set_tags(self, version: str | int, tags: dict[str, Any]) -> None:
        client = self.client()
        for key, value in tags.items():
            client.set_model_version_tag(self.model_name, str(version), key, str(value))

    def model_uri(self, version: str | int) -> str:
        return f"models:/{self.model_name}/{version}"

    def load_sklearn(self, version: str | int):
        """The registered scikit-learn pipeline (for scoring in this process)."""
        import mlflow.sklearn

        uri = self.client().get_model_version_download_uri(self.model_name, str(version))
        return mlflow.sklearn.load_model(uri)

    def spark_udf(self, spark, version: str | int):
        """A Spark UDF scoring rows with a registered version (MLflow's spark_udf), one double per row:
        MLflow's leftmost numeric output, i.e. a regressor's prediction or a binary classifier's
        probability of label 0 (``predict_proba``'s first column; P(1) = 1 - that).

        Not ``array<double>`` for ``[P(0), P(1)]``: MLflow would build a Python list per row (1M
        rows: 1.6 s more to score, and garbage for the JVM)."""
        import mlflow
        import mlflow.pyfunc

        # spark_udf resolves models:/ URIs through MLflow's process-wide URIs, here and, through
        # extra_env, in the Python workers: a Spark Connect server's workers were started with the
        # server's environment, not this run's.
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.registry_uri)
        uris = {"MLFLOW_TRACKING_URI": self.tracking_uri, "MLFLOW_REGISTRY_URI": self.registry_uri}
        return mlflow.pyfunc.spark_udf(
            spark, self._udf_model_uri(version), result_type="double", env_manager="local", extra_env=uris
        )

    def _udf_model_uri(self, version: str | int) -> str:
        """Where Spark's workers load a version from. A Databricks registry: ``models:/``, which its
        workers resolve with the workspace's credentials. Any other: the version's own artifact
        location, because MLflow caches a model a Spark Connect server's long-lived worker loaded
        under its URI, and ``models:/<model>/1`` of a reset home is another model."""
        if self.registry_uri.startswith("databricks"):
            return self.model_uri(version)
        return self.client().get_model_version_download_uri(self.model_name, str(version))

    def load_for_serving(self, version: str | int):
        """(model, [(column, type)], example rows, predict method) of a version: what a serving
        gateway needs. The method is the one the model was logged to answer with (``predict_proba``
        for a classifier, ``predict`` for a regressor)."""
        import mlflow.sklearn
        from mlflow.artifacts import download_artifacts
        from mlflow.models import Model

        from ..serving.keyed_model import CONF

        uri = self.client().get_model_version_download_uri(self.model_name, str(version))
        local = download_artifacts(artifact_uri=uri)
        mlmodel = Model.load(local)
        if mlmodel.signature is None:
            raise ValueError(f"{self.model_name} version {version} has no signature: serving needs one")
        pyfunc = mlmodel.flavors.get("python_function", {})
        # A keyed model's signature also names its entity keys: the gateway scores its features.
        features = pyfunc.get(CONF, {}).get("columns")
        columns = [
            (c.name, c.type.name)
            for c in mlmodel.signature.inputs.inputs
            if features is None or c.name in features
        ]
        example = mlmodel.load_input_example(local)
        rows = example[[name for name, _ in columns]].values.tolist() if example is not None else []
        predict_fn = pyfunc.get("predict_fn", "predict")
        return mlflow.sklearn.load_model(local), columns, rows, predict_fn

    def read_text(self, version: str | int, artifact_file: str) -> str | None:
        """A text artifact of the version's run (e.g. its model card), or None if it has none."""
        from pathlib import Path

        from mlflow.exceptions import MlflowException

        try:
            path = self.client().download_artifacts(self.version(version).run_id, artifact_file)
        except (MlflowException, OSError):
            return None
        return Path(path).read_text()

    def attach_text(
        self, version: str | int, text: str, artifact_file: str, description: str | None = None
    ) -> None:
        """Store ``text`` as an artifact of the version's run and make ``description`` its summary."""
        client = self.client()
        mv = client.get_model_version(self.model_name, str(version))
        client.log_text(mv.run_id, text, artifact_file)
        if description is not None:
            client.update_model_version(self.model_name, str(version), description=description)

    def copy_to(
        self, version: str | int, dst_name: str, registry_uri: str | None = None, alias: str = CHALLENGER
    ) -> ModelVersion:
        """Copy a version (artifacts, tags, description) to another registered model, possibly in
        another registry, and give the copy ``alias`` there: the "deploy model" way of moving a
        model to the next environment, which then validates and promotes it itself."""
        from mlflow import MlflowClient

        source = self.version(version)
        client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=registry_uri or self.registry_uri)
        copied = client.copy_model_version(self.model_uri(version), dst_name)
        for key, value in {**source.tags, "copied_from": f"{self.model_name}/{version}"}.items():
            client.set_model_version_tag(dst_name, copied.version, key, value)
        client.update_model_version(dst_name, copied.version, description=source.description or "")
        client.set_registered_model_alias(dst_name, alias, copied.version)
        return client.get_model_version(dst_name, copied.version)
