"""The data quality checks fail on the tables they guard against, and say what they found."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest
from dagster import AssetCheckKey

from .project import project_at

pytestmark = pytest.mark.integration

ROWS = 300


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    with project_at(tmp_path_factory.mktemp("checks")) as project:
        project.land(ROWS, seed=3)
        result = project.run(
            "lifecycle_job",
            selection=["raw_customers", "raw_customers_quarantine", "churn_features", "churn_labels"],
        )
        assert result.success, project.failures(result)
        yield project


def _overwrite(project, table: str, change) -> None:
    """Rewrite ``table`` with ``change`` applied to its rows (as pandas), keeping its schema."""
    data = project.lakehouse.read_arrow(table)
    project.lakehouse.write(
        table,
        pa.Table.from_pandas(change(data.to_pandas()), schema=data.schema, preserve_index=False),
        "overwrite",
    )


def _evaluate(project, checks: list[tuple[str, str]]) -> dict[tuple[str, str], object]:
    keys = {AssetCheckKey(project.key(asset), name): (asset, name) for asset, name in checks}
    job = project.defs.resolve_job_def(project.job("lifecycle_job")).get_subset(
        asset_selection=set(), asset_check_selection=set(keys)
    )
    result = job.execute_in_process(instance=project.instance, raise_on_error=False)
    return {keys[e.asset_check_key]: e for e in project.check_evaluations(result)}


def test_duplicated_keys_and_missing_features_fail_the_feature_checks(project):
    features = project.table("churn_features")

    def break_rows(frame):
        frame.loc[1, "tenure"] = None
        return pd.concat([frame, frame.iloc[[0]]])  # the same key at the same time twice

    _overwrite(project, features, break_rows)
    found = _evaluate(
        project,
        [("churn_features", "key_is_unique_and_not_null"), ("churn_features", "features_are_complete")],
    )
    keys = found[("churn_features", "key_is_unique_and_not_null")]
    complete = found[("churn_features", "features_are_complete")]
    assert not keys.passed and not complete.passed
    assert keys.metadata["rows"].value == ROWS + 1 and keys.metadata["duplicate_keys"].value == 1
    assert (
        complete.metadata["null_cells"].value == 1
        and complete.metadata["columns_with_nulls"].value == "tenure"
    )


def test_labels_of_one_class_fail_the_label_check(project):
    _overwrite(project, project.table("churn_labels"), lambda frame: frame.assign(label=1))
    found = _evaluate(
        project, [("churn_labels", "key_is_unique_and_not_null"), ("churn_labels", "both_classes_present")]
    )
    assert found[("churn_labels", "key_is_unique_and_not_null")].passed
    found = found[("churn_labels", "both_classes_present")]
    assert not found.passed
    assert (found.metadata["positives"].value, found.metadata["negatives"].value) == (ROWS, 0)
