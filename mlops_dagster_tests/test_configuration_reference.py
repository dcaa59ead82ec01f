"""The configuration reference is generated from the schema: the committed page is what the
generator writes today, and every key has a description."""

from pydantic import BaseModel

import mlops_dagster.settings as settings
from mlops_dagster.settings.reference import rows, stale


def test_the_committed_page_is_what_the_schema_generates():
    problem = stale()
    assert problem is None, problem


def test_every_field_of_every_section_has_a_description():
    sections = [m for m in vars(settings).values() if isinstance(m, type) and issubclass(m, BaseModel)]
    undescribed = [
        f"{m.__name__}.{name}"
        for m in sections
        for name, field in m.model_fields.items()
        if not (field.description or "").strip()
    ]
    assert not undescribed, f"fields without a description (write a docstring under each): {undescribed}"


def test_the_reference_lists_nested_keys_with_their_type_default_bounds_and_scope():
    by_key = {row.key: row for row in rows()}
    drift = by_key["monitoring.drift_share"]
    assert (drift.type, drift.default, drift.allowed, drift.scope) == (
        "number",
        "`0.5`",
        "> 0, <= 1",
        "use case",
    )
    assert by_key["serving.port"].scope == "project" and by_key["serving.strategy"].scope == "use case"
    assert (
        by_key["dataset.columns.<column>.type"].allowed
        == "`string`, `double`, `long`, `boolean`, `timestamp`"
    )
    assert by_key["name"].allowed == "pattern `^[a-z][a-z0-9_]*$`"
    assert by_key["training.model.class"].default == "required"
    assert by_key["dataset.source.kind"].allowed == "`delta`, `postgres`"
    assert by_key["databricks.secrets_to_env_variables[].scope"].scope == "project"
    assert all(row.description for row in by_key.values())
